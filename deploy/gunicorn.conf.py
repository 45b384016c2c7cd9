"""gunicorn settings for xcap-wsgi behind nginx (deploy/nginx.conf), as deploy/xcap-wsgi.service runs it.

    XCAP_DB_URL=mysql://kamailio:secret@127.0.0.1/kamailio XCAP_AUTH_SECRET=$(openssl rand -hex 32) \\
        gunicorn -c deploy/gunicorn.conf.py 'xcap_wsgi:create_app()'

Every XCAP_* variable is checked here, before a worker starts: a bad value stops the server
with one line naming it (exit status 2). Authentication defaults to digest against the
subscriber table; XCAP_AUTH=none also needs XCAP_ALLOW_UNAUTHENTICATED=true.

XCAP_TRUSTED_PROXIES (default 127.0.0.1: nginx on this host) is the one proxy-trust
setting. gunicorn takes ``wsgi.url_scheme`` from X-Forwarded-Proto, and xcap-wsgi the
client address from X-Forwarded-For, only when the request comes from one of those addresses.

gthread workers keep nginx's upstream connections alive (sync workers close each one
after a response). nginx shields the workers from slow clients: it reads each request
whole before it passes the request on. SIGHUP (systemctl reload) reads this file again
and replaces the workers, which then run the installed code. The environment stays as
it was at start.
"""

import os
import sys
from typing import NoReturn

from xcap_wsgi.config import positive_int, settings_from_env
from xcap_wsgi.notify import post_worker_init, worker_exit  # noqa: F401  (gunicorn hooks: --notify delivery)

os.environ.setdefault("XCAP_AUTH", "digest")
os.environ.setdefault("XCAP_TRUSTED_PROXIES", "127.0.0.1")


def _refuse(message: str) -> NoReturn:
    print(f"xcap-wsgi: configuration error: {message}", file=sys.stderr)
    raise SystemExit(2)


try:
    settings = settings_from_env()
    workers = positive_int(os.environ.get("XCAP_WORKERS", str(2 * (os.cpu_count() or 1))), "XCAP_WORKERS")
except ValueError as exc:
    _refuse(str(exc))
if settings.get("auth", "none") == "none" and os.environ.get("XCAP_ALLOW_UNAUTHENTICATED") != "true":
    _refuse("XCAP_AUTH=none lets anyone who reaches nginx read and write every user's documents:"
            " set XCAP_AUTH=digest|basic|upstream|ims, or XCAP_ALLOW_UNAUTHENTICATED=true")
if settings.get("auth") == "digest" and not settings.get("auth_secret"):
    _refuse("XCAP_AUTH=digest needs XCAP_AUTH_SECRET, the same for every worker and host:"
            " python3 -c 'import secrets; print(secrets.token_hex(32))'")
if settings.get("metrics_path"):
    from xcap_wsgi.cli import shared_metrics_dir
    from xcap_wsgi.metrics import child_exit  # noqa: F401  (gunicorn hook: a dead worker's gauges go)

    shared_metrics_dir()  # the unit points PROMETHEUS_MULTIPROC_DIR into its RuntimeDirectory

bind = os.environ.get("XCAP_BIND", "127.0.0.1:8000")
worker_class = "gthread"
threads = 8  # requests at once per worker, each with its own database connection
keepalive = 75  # longer than nginx's upstream keepalive_timeout (60 s): nginx closes idle connections first
timeout = 30
graceful_timeout = 20
forwarded_allow_ips = ",".join(settings.get("trusted_proxies", []))
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}  # the one header xcap-wsgi believes too
accesslog = None  # xcap-wsgi writes the access lines, naming the client behind nginx
errorlog = "-"
proc_name = "xcap-wsgi"
control_socket_disable = True  # gunicorn >= 25.1 (older releases ignore the name); nothing uses it here

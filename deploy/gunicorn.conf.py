"""gunicorn settings for xcap-wsgi behind nginx.

    XCAP_DB_URL=mysql://kamailio:secret@127.0.0.1/kamailio \
        gunicorn -c deploy/gunicorn.conf.py 'xcap_wsgi:create_app()'
"""

import multiprocessing
import os

from xcap_wsgi.notify import post_worker_init, worker_exit  # noqa: F401  (gunicorn hooks: --notify delivery)

bind = os.environ.get("XCAP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("XCAP_WORKERS", multiprocessing.cpu_count() * 2))
worker_class = "sync"  # nginx buffers slow clients; sync workers are the fastest here
timeout = 30
graceful_timeout = 20
# nginx terminates TLS; trust its forwarding headers only from loopback
forwarded_allow_ips = "127.0.0.1"
accesslog = "-"
errorlog = "-"
proc_name = "xcap-wsgi"

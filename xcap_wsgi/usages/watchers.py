"""The watchers of a user's presence, ``org.openxcap.watchers`` (issue 11 item 7).

A generated, read-only document: who subscribed to the user's presence (and other
event packages that need authorization, such as ``dialog``) and what the presence
server decided, so a client can show the requests still awaiting a decision::

    GET /xcap-root/org.openxcap.watchers/users/sip:alice@example.com/index

    body = watchers_document(storage, "alice", "example.com")  # or raises NotFound

It is read from the presence server's own ``watchers`` and ``active_watchers`` tables
(Kamailio's and OpenSIPS's presence module, same columns) when they live in the database
of the ``xcap`` table, through the storage's connection; without them the document is
404. The format is OpenXCAP's (namespace ``http://openxcap.org/ns/watchers``, MIME type
``application/xml``, document ``index``, the name its clients request; ``watchers.xml``
names it too)::

    <watchers xmlns="http://openxcap.org/ns/watchers">
      <watcher>
        <id>bob@example.com</id>
        <status>confirm</status>
        <online>true</online>
        <event>presence</event>
      </watcher>
    </watchers>

``status`` maps the presence module's ``watchers.status`` (``presence/subscribe.h``) as
OpenXCAP does: 1 active → allow, 2 pending → confirm, 3 terminated → deny; Kamailio's 4,
waiting (the subscription expired before the user decided, RFC 3857 §3.3), is a request
still awaiting a decision, so confirm too; anything else is unknown. ``online`` is true
while the watcher holds an unexpired subscription in ``active_watchers`` for that event.
``event`` is xcap-wsgi's addition: OpenXCAP lists every event's rows without saying which.
Watchers are sorted by id, then event. Kamailio keeps these tables in the database unless
``subs_db_mode`` is 0 (memory only); with 2, write-back, they follow on its
``db_update_period`` timer; 3 (database only) is immediate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from xcap_wsgi.errors import NotFound
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.usages import ApplicationUsage, register
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS

WATCHERS_NS = "http://openxcap.org/ns/watchers"
#: the document names: OpenXCAP's clients (xcaplib) ask for ``index``
WATCHERS_DOCUMENTS = ("index", "watchers.xml")

WATCHERS = register(ApplicationUsage(
    auid="org.openxcap.watchers",
    mime_type="application/xml",
    namespace=WATCHERS_NS,
    doc_type=0,  # never stored
    generated=True,
    root=f"{{{WATCHERS_NS}}}watchers",
    schemas=BUILTIN_SCHEMAS,
))

#: ``watchers.status`` (Kamailio's and OpenSIPS's presence/subscribe.h) as OpenXCAP names it
STATUS = {1: "allow", 2: "confirm", 3: "deny", 4: "confirm"}

NO_TABLES = (
    "no watchers here: the database of the xcap table has no presence watchers and active_watchers"
    " tables (Kamailio's or OpenSIPS's presence module keeps them when it shares this database)"
)

# -- SQL: plain SELECTs every backend runs ({p} is the storage's placeholder) ----------------
_PRESENCE_TABLES = "('watchers', 'active_watchers')"
TABLES_PRESENT = {
    "sqlite": f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN {_PRESENCE_TABLES}",
    "mysql": "SELECT COUNT(*) FROM information_schema.tables"
             f" WHERE table_schema = DATABASE() AND table_name IN {_PRESENCE_TABLES}",
    "postgresql": "SELECT COUNT(*) FROM information_schema.tables"
                  f" WHERE table_schema = current_schema() AND table_name IN {_PRESENCE_TABLES}",
}
SELECT_WATCHERS = "SELECT watcher_username, watcher_domain, event, status FROM watchers WHERE presentity_uri = {p}"
SELECT_ONLINE = (
    "SELECT watcher_username, watcher_domain, event FROM active_watchers"
    " WHERE presentity_uri = {p} AND expires > {p}"
)


@dataclass(frozen=True, order=True)
class Watcher:
    """One row of the document: ``id`` is the watcher's ``user@domain``."""

    id: str
    event: str
    status: str
    online: bool


def watchers_document(storage: Storage, username: str, domain: str) -> bytes:
    """The watchers of ``sip:<username>@<domain>``; NotFound when the presence tables are
    not in the storage's database."""
    dialect = _dialect(storage)
    if dialect is None or not isinstance(storage, DBAPIStorage):
        raise NotFound(NO_TABLES)
    found = storage.run(_read, dialect, storage.placeholder, f"sip:{username}@{domain}", int(time.time()))
    if found is None:
        raise NotFound(NO_TABLES)
    return render(found)


#: what XML 1.0 cannot carry (control characters, surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    """``value`` as XML character data: escaped, and each character XML cannot hold (a
    watcher's URI is whatever the presence server stored) replaced by U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", value))


def render(watchers: Iterable[Watcher]) -> bytes:
    """The document, deterministic: sorted, two-space indentation, final newline."""
    items = "".join(
        f"\n  <watcher>\n    <id>{_text(w.id)}</id>\n    <status>{w.status}</status>"
        f"\n    <online>{'true' if w.online else 'false'}</online>\n    <event>{_text(w.event)}</event>\n  </watcher>"
        for w in sorted(watchers)
    )
    body = f">{items}\n</watchers>\n" if items else "/>\n"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<watchers xmlns="{WATCHERS_NS}"{body}'.encode()


def _dialect(storage: Storage) -> str | None:
    scheme = storage.url.split(":", 1)[0].split("+", 1)[0].lower()
    return "postgresql" if scheme == "postgres" else scheme if scheme in TABLES_PRESENT else None


def _read(cursor: Any, dialect: str, p: str, presentity: str, now: int) -> list[Watcher] | None:
    """None when a table is missing. CHAR columns (OpenSIPS) may come back padded: stripped."""
    cursor.execute(TABLES_PRESENT[dialect])
    if cursor.fetchone()[0] != 2:
        return None
    cursor.execute(SELECT_ONLINE.format(p=p), (presentity, now))
    online = {_key(user, host, event) for user, host, event in cursor.fetchall()}
    cursor.execute(SELECT_WATCHERS.format(p=p), (presentity,))
    watchers = []
    for user, host, event, status in cursor.fetchall():
        key = _key(user, host, event)
        watchers.append(Watcher(*key, status=STATUS.get(int(status), "unknown"), online=key in online))
    return watchers


def _key(user: str, host: str, event: str) -> tuple[str, str]:
    return f"{user.rstrip()}@{host.rstrip()}", event.rstrip()

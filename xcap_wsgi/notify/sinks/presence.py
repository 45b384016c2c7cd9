"""What a presence server (Kamailio's or OpenSIPS's) re-reads for each usage's change.

Both servers read the state back from the ``xcap`` table themselves; a notifier only
says which presentity and event to re-evaluate. Neither can re-evaluate watchers from a
rules document that is gone: that change is logged, not sent.
"""

from __future__ import annotations

import logging

from xcap_wsgi.notify.events import ChangeEvent

log = logging.getLogger("xcap_wsgi.notify")

#: authorization-rules usages and the SIP event package whose watchers they decide
RULES_EVENTS = {
    "pres-rules": "presence",
    "org.openmobilealliance.pres-rules": "presence",
    "org.openxcap.dialog-rules": "dialog",
}
#: usages the RLS reads its resource lists from
LIST_USAGES = frozenset({"resource-lists", "rls-services"})
PIDF_MANIPULATION = "pidf-manipulation"


def unannounceable(sink: str, server: str, event: ChangeEvent) -> bool:
    """True (and logged) when ``event`` deleted a rules document: nothing can be sent."""
    if event.tree != "users" or event.auid not in RULES_EVENTS or not event.document_deleted:
        return False
    log.info("%s: %s deleted; %s cannot re-evaluate watchers without a rules document, they keep their last status",
             sink, event.doc_uri, server)
    return True

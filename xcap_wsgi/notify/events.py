"""Change events: what one committed PUT or DELETE did to one document.

An event is written into the outbox in the transaction that changes the document, as
JSON (:meth:`ChangeEvent.to_json`), and read back by the delivery thread
(:meth:`ChangeEvent.from_json`)::

    event = ChangeEvent.from_json(row_text)
    event.presentity        # 'sip:alice@example.com', the owner Kamailio's presence knows
    event.document_selector # 'pres-rules/users/sip:alice@example.com/index'

Several pending events of one document may be delivered as one notification
(:func:`fold`): it carries the first event's previous ETag and the last one's new ETag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

Action = Literal["created", "replaced", "deleted"]
NodeKind = Literal["element", "attribute"]


@dataclass(frozen=True)
class ChangeEvent:
    """One committed change (issue 8): the document, its owner and both ETags.

    ``action`` is what happened to the addressed resource: the document for a document
    PUT/DELETE, the node for an element or attribute PUT/DELETE (a node DELETE leaves
    the document in place with ``new_etag`` set). ``node_selector`` is percent-decoded,
    as in :class:`xcap_wsgi.uri.XCAPURI`, with the prefixes of its ``xmlns()`` query in
    ``namespaces``. ``xcap_root_url`` is the absolute root the client addressed
    (``http://xcap.example.com/xcap-root/``), for xcap-diff's ``xcap-root`` (RFC 5874).
    ``id`` is the outbox row id (0 before the event is stored).
    """

    auid: str
    tree: str
    xui: str | None
    username: str
    domain: str
    doc_uri: str
    doc_type: int
    document_selector: str
    action: Action
    previous_etag: str | None
    new_etag: str | None
    xcap_root_url: str = ""
    node_selector: str | None = None
    node_kind: NodeKind | None = None
    namespaces: Mapping[str, str] = field(default_factory=dict)
    committed_at: float = 0.0
    id: int = 0

    @property
    def presentity(self) -> str:
        """The owner as a SIP URI: what presence servers key watchers on."""
        return f"sip:{self.username}@{self.domain}" if self.domain else f"sip:{self.username}"

    @property
    def document_deleted(self) -> bool:
        return self.new_etag is None

    @property
    def document_name(self) -> str:
        """The last segment of the document path (Kamailio's ``filename`` for hard state)."""
        return self.doc_uri.rsplit("/", 1)[-1]

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in _STORED}
        data["namespaces"] = dict(self.namespaces)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, id: int = 0) -> ChangeEvent:
        data: dict[str, Any] = json.loads(text)
        return cls(**data, id=id)


#: what the outbox stores (the row id is the row's own)
_STORED = tuple(f.name for f in fields(ChangeEvent) if f.name != "id")


def fold(events: Sequence[ChangeEvent]) -> ChangeEvent:
    """Several pending changes of one document as one, carrying the newest state.

    The result is document-level (no node selector) unless there is a single event; its
    previous ETag is the first event's, its new ETag the last one's, and its action says
    what happened to the document overall.
    """
    if not events:
        raise ValueError("nothing to fold")
    if len(events) == 1:
        return events[0]
    first, last = events[0], events[-1]
    existed = first.previous_etag is not None
    action: Action = "deleted" if last.new_etag is None else ("replaced" if existed else "created")
    return replace(last, action=action, previous_etag=first.previous_etag, node_selector=None,
                   node_kind=None, namespaces={})

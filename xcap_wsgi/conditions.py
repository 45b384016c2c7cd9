"""HTTP preconditions (If-Match, If-None-Match) against a document's ETag.

RFC 4825 §7.11 and §8.5 (E1-E8) defer to HTTP; the comparison rules are RFC 9110
§13.1: If-Match uses the strong comparison (a weak tag never matches), If-None-Match
the weak one; ``*`` matches any existing document. Clients send tags quoted, unquoted
or in lists; all are understood. The check runs inside the storage transaction for
writes, so check-then-write is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass

from xcap_wsgi.errors import PreconditionFailed

ANY = "*"


@dataclass(frozen=True)
class EntityTag:
    value: str
    weak: bool = False


def parse_etag_list(header: str) -> list[EntityTag] | str:
    """``*`` or the list of tags in an If-Match / If-None-Match value."""
    text = header.strip()
    if text in ("*", '"*"'):
        return ANY
    tags: list[EntityTag] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        weak = text.startswith(("W/", "w/"), i)
        if weak:
            i += 2
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            tags.append(EntityTag(text[i + 1:end], weak))
            i = end + 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            tags.append(EntityTag(text[i:end].strip(), weak))
            i = end
    return tags


@dataclass(frozen=True, slots=True)
class Preconditions:
    """The conditional headers of one request, parsed once."""

    if_match: list[EntityTag] | str | None = None
    if_none_match: list[EntityTag] | str | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, object]) -> Preconditions:
        im = environ.get("HTTP_IF_MATCH")
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if im is None and inm is None:
            return NONE
        return cls(
            parse_etag_list(im) if isinstance(im, str) else None,
            parse_etag_list(inm) if isinstance(inm, str) else None,
        )

    @property
    def empty(self) -> bool:
        return self.if_match is None and self.if_none_match is None

    def evaluate(self, etag: str | None) -> bool:
        """True when the request may proceed against a document whose ETag is ``etag``
        (None: no such document). False when If-None-Match matched: the caller answers
        304 for GET/HEAD and 412 otherwise. A failed If-Match raises 412 directly.
        """
        if self.if_match is not None and not _matches(self.if_match, etag, strong=True):
            raise PreconditionFailed(
                "If-Match failed: the document does not exist" if etag is None
                else "If-Match failed: the document has changed (its ETag differs)"
            )
        return self.if_none_match is None or not _matches(self.if_none_match, etag, strong=False)

    def check_write(self, etag: str | None) -> None:
        """For PUT and DELETE: any failed precondition is 412 (RFC 9110 §13.1.2)."""
        if not self.evaluate(etag):
            raise PreconditionFailed(
                "If-None-Match failed: the document exists" if self.if_none_match == ANY
                else "If-None-Match failed: the document's ETag matches"
            )


#: A request without conditional headers (the common case, shared).
NONE = Preconditions()


def _matches(tags: list[EntityTag] | str, etag: str | None, *, strong: bool) -> bool:
    if etag is None:
        return False
    if isinstance(tags, str):  # ANY
        return True
    return any(t.value == etag and not (strong and t.weak) for t in tags)

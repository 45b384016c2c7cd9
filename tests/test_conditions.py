"""If-Match / If-None-Match parsing and evaluation (RFC 9110 §13.1, E5-E8)."""

from __future__ import annotations

import pytest

from xcap_wsgi.conditions import ANY, EntityTag, Preconditions, parse_etag_list
from xcap_wsgi.errors import PreconditionFailed


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("*", ANY),
        (' "*" ', ANY),
        ('"abc"', [EntityTag("abc")]),
        ("abc", [EntityTag("abc")]),
        ('W/"abc"', [EntityTag("abc", weak=True)]),
        ('"a", W/"b" ,c', [EntityTag("a"), EntityTag("b", True), EntityTag("c")]),
        ('"a,b", "c"', [EntityTag("a,b"), EntityTag("c")]),
    ],
)
def test_parse_etag_list(header: str, parsed: object) -> None:
    assert parse_etag_list(header) == parsed


def pre(im: str | None = None, inm: str | None = None) -> Preconditions:
    env = {k: v for k, v in (("HTTP_IF_MATCH", im), ("HTTP_IF_NONE_MATCH", inm)) if v is not None}
    return Preconditions.from_environ(env)


def test_if_match_current_etag_proceeds() -> None:
    assert pre(im='"x", "e1"').evaluate("e1") is True


@pytest.mark.parametrize("im", ['"other"', 'W/"e1"', "*"])
def test_if_match_fails_with_412(im: str) -> None:
    etag = None if im == "*" else "e1"
    with pytest.raises(PreconditionFailed):
        pre(im=im).evaluate(etag)


def test_weak_tag_satisfies_if_none_match() -> None:
    assert pre(inm='W/"e1"').evaluate("e1") is False


def test_if_none_match_star_on_missing_document_proceeds() -> None:
    pre(inm="*").check_write(None)


def test_if_none_match_star_on_existing_document_is_412_for_writes() -> None:
    with pytest.raises(PreconditionFailed) as exc:
        pre(inm="*").check_write("e1")
    assert exc.value.description == "If-None-Match failed: the document exists"


def test_if_match_is_evaluated_before_if_none_match() -> None:
    with pytest.raises(PreconditionFailed):
        pre(im='"nope"', inm='"e1"').evaluate("e1")

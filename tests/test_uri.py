"""The XCAP URI parser (requirements U1-U17, N1)."""

from __future__ import annotations

import pytest

from xcap_wsgi.errors import BadRequest, NotFound, URITooLong
from xcap_wsgi.uri import XCAPRoot, parse_xcap_path, raw_request_path, split_xui

ROOT = XCAPRoot("/xcap-root/")


def parse(path: str, query: str = ""):
    return parse_xcap_path(path, query, ROOT)


@pytest.mark.parametrize(
    ("xui", "user", "domain"),
    [
        pytest.param("sip:alice@example.com", "alice", "example.com", id="sip"),
        pytest.param("sips:alice@example.com", "alice", "example.com", id="sips"),
        pytest.param("SIP:alice@Example.com", "alice", "Example.com", id="scheme-case"),
        pytest.param("tel:+15551234567", "+15551234567", "", id="tel"),
        pytest.param("tel:+15551234567;phone-context=example.com", "+15551234567", "", id="tel-params"),
        pytest.param("alice@example.com", "alice", "example.com", id="bare"),
        pytest.param("alice", "alice", "", id="bare-user"),
        pytest.param("sip:alice@example.com:5061;transport=tls", "alice", "example.com", id="port-params"),
        pytest.param("sip:+33612345678@sip.example.com", "+33612345678", "sip.example.com", id="rcs"),
    ],
)
def test_xui_splits_into_kamailio_username_and_domain(xui: str, user: str, domain: str) -> None:
    assert split_xui(xui) == (user, domain)


def test_document_uri_parts() -> None:
    u = parse("/xcap-root/resource-lists/users/sip:alice@example.com/index")
    assert (u.auid, u.tree, u.xui, u.username, u.domain, u.document) == (
        "resource-lists", "users", "sip:alice@example.com", "alice", "example.com", "index")
    assert u.doc_uri == "/xcap-root/resource-lists/users/sip:alice@example.com/index"
    assert u.node_selector is None


def test_percent_encoded_xui_is_decoded_in_doc_uri() -> None:
    u = parse("/xcap-root/resource-lists/users/sip%3Aalice%40example.com/index")
    assert u.xui == "sip:alice@example.com"
    assert u.doc_uri == "/xcap-root/resource-lists/users/sip:alice@example.com/index"


def test_encoded_slash_stays_inside_the_xui_segment() -> None:
    u = parse("/xcap-root/resource-lists/users/sip:a%2Fb@example.com/index")
    assert (u.xui, u.document) == ("sip:a/b@example.com", "index")


def test_raw_utf8_in_the_path_is_decoded() -> None:
    # WSGI hands raw (unencoded) UTF-8 octets over as latin-1 text
    u = parse("/xcap-root/resource-lists/users/sip:j\xc3\xbcrgen@example.com/index")
    assert (u.xui, u.username) == ("sip:jürgen@example.com", "jürgen")


def test_document_in_sub_folders() -> None:
    u = parse("/xcap-root/org.openmobilealliance.pres-content/users/sip:a@b/oma_status-icon/rcs_status_icon")
    assert u.document == "oma_status-icon/rcs_status_icon"


def test_global_tree_has_no_owner() -> None:
    u = parse("/xcap-root/xcap-caps/global/index")
    assert (u.tree, u.xui, u.username, u.domain) == ("global", None, "", "")


@pytest.mark.parametrize("sep", ["~~", "%7E%7E", "%7e%7e", "~%7E"])
def test_node_selector_separator_in_any_spelling(sep: str) -> None:
    u = parse(f"/xcap-root/resource-lists/users/sip:a@b/index/{sep}/resource-lists/list%5B@name=%22f%22%5D")
    assert u.doc_uri == "/xcap-root/resource-lists/users/sip:a@b/index"
    assert u.node_selector == 'resource-lists/list[@name="f"]'


def test_node_selector_keeps_encoded_slash_and_non_ascii() -> None:
    u = parse("/xcap-root/resource-lists/users/sip:a@b/index/~~/resource-lists/list%5B@name=%22a%2Fb%20%C3%BC%22%5D")
    assert u.node_selector == 'resource-lists/list[@name="a/b ü"]'


def test_xmlns_query_is_decoded() -> None:
    u = parse("/xcap-root/pres-rules/users/sip:a@b/index/~~/cr:ruleset", "xmlns(cr=urn%3Aietf%3Aparams%3Axml%3Ans%3Acommon-policy)")
    assert u.query == "xmlns(cr=urn:ietf:params:xml:ns:common-policy)"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param("/xcap-root/", "no application usage", id="root-itself"),
        pytest.param("/xcap-root", "no application usage", id="root-no-slash"),
        pytest.param("/xcap-root/unknown-auid/users/sip:a@b/index", "unknown application usage (AUID) 'unknown-auid'", id="auid"),
        pytest.param("/xcap-root/resource-lists/people/sip:a@b/index", "expected 'users' or 'global'", id="tree"),
        pytest.param("/xcap-root/resource-lists/users", "missing user id", id="no-xui"),
        pytest.param("/xcap-root/resource-lists/users//index", "missing user id", id="empty-xui"),
        pytest.param("/xcap-root/resource-lists/users/sip:example.com/index", "has no user part", id="no-user-part"),
        pytest.param("/xcap-root/resource-lists/users/sip:a@b", "no document name", id="no-document"),
        pytest.param("/xcap-root/resource-lists/users/sip:a@b/", "no document name", id="directory"),
        pytest.param("/xcap-root/resource-lists/users/sip:a@b/x/../index", "'.' or '..'", id="dot-dot"),
        pytest.param("/xcap-root/resource-lists/users/sip:" + "a" * 65 + "@b/index", "longer than 64", id="long-user"),
    ],
)
def test_wrong_uri_part_is_404_naming_it(path: str, message: str) -> None:
    with pytest.raises(NotFound) as exc:
        parse(path)
    assert message in str(exc.value.description)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/xcap-root/resource-lists/users/sip:a%zz@b/index", id="bad-escape"),
        pytest.param("/xcap-root/resource-lists/users/sip:a%FF@b/index", id="not-utf8"),
        pytest.param("/xcap-root/resource-lists/users/sip:a@b/index/~~/", id="empty-selector"),
    ],
)
def test_malformed_uri_is_400(path: str) -> None:
    with pytest.raises(BadRequest):
        parse(path)


def test_doc_uri_longer_than_the_column_is_414() -> None:
    with pytest.raises(URITooLong) as exc:
        parse("/xcap-root/resource-lists/users/sip:a@b/" + "d" * 250)
    assert "at most 255" in str(exc.value.description)


@pytest.mark.parametrize(
    ("root", "path", "inside"),
    [
        ("/xcap-root/", "/xcap-root/resource-lists", True),
        ("/xcap-root/", "/xcap-root", True),
        ("/xcap-root/", "/xcap-rootless/x", False),
        ("/xcap-root", "/xcap-root/x", True),
        ("/services/xcap/", "/services/xcap/x", True),
        ("/services/xcap/", "/services/xcapx", False),
        ("/", "/anything", True),
    ],
)
def test_root_matches_whole_segments(root: str, path: str, inside: bool) -> None:
    assert XCAPRoot(root).contains(path) is inside


@pytest.mark.parametrize("root", ["xcap-root/", "/a?b/", "/a//b/", "/a%2F/", ""])
def test_invalid_root_is_refused(root: str) -> None:
    with pytest.raises(ValueError):
        XCAPRoot(root)


def test_raw_uri_is_preferred_when_it_matches_path_info() -> None:
    environ = {"SCRIPT_NAME": "", "PATH_INFO": "/xcap-root/a/b", "RAW_URI": "/xcap-root/a%2Fb?x=1"}
    # PATH_INFO decodes %2F to "/", so the raw form is the faithful one
    assert raw_request_path(environ) == "/xcap-root/a%2Fb"


def test_absolute_form_raw_uri_is_reduced_to_its_path() -> None:
    environ = {"PATH_INFO": "/xcap-root/x", "RAW_URI": "http://h:8000/xcap-root/x?q"}
    assert raw_request_path(environ) == "/xcap-root/x"


def test_raw_uri_that_disagrees_with_path_info_is_ignored() -> None:
    # a proxy rewrote the path: trust PATH_INFO (latin-1 WSGI text of UTF-8 bytes)
    environ = {"PATH_INFO": "/xcap-root/\xc3\xbc", "RAW_URI": "/other"}
    assert raw_request_path(environ) == "/xcap-root/%C3%BC"

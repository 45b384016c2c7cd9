"""Documents the server generates: xcap-caps, the rls-services global index, the OMA directory."""

from __future__ import annotations

from lxml import etree
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI

CAPS = "/xcap-root/xcap-caps/global/index"
RLS_INDEX = "/xcap-root/rls-services/global/index"
RLS_MIME = "application/rls-services+xml"
CAPS_NS = "{urn:ietf:params:xml:ns:xcap-caps}"
DIRECTORY = "/xcap-root/org.openmobilealliance.xcap-directory/users/sip:alice@example.com/directory.xml"


def rls(*services: str) -> bytes:
    body = "".join(
        f'<service uri="{uri}"><list><entry uri="sip:bob@example.com"/></list>'
        "<packages><package>presence</package></packages></service>"
        for uri in services
    )
    return f'<rls-services xmlns="urn:ietf:params:xml:ns:rls-services">{body}</rls-services>'.encode()


def put_rls(client: Client, user: str, name: str, *services: str) -> None:
    resp = client.put(f"/xcap-root/rls-services/users/sip:{user}@example.com/{name}", data=rls(*services),
                      content_type=RLS_MIME)
    assert resp.status == "201 Created", resp.data


# -- xcap-caps (K1-K8) ---------------------------------------------------------------------------

def test_xcap_caps_lists_every_auid_and_validated_namespace(client: Client) -> None:
    resp = client.get(CAPS)
    assert resp.status == "200 OK"
    assert (resp.headers["Content-Type"], resp.headers["Cache-Control"]) == ("application/xcap-caps+xml", "no-cache")
    assert resp.headers["ETag"].startswith('"')
    root = etree.fromstring(resp.data)
    assert [c.tag for c in root] == [CAPS_NS + "auids", CAPS_NS + "namespaces"]
    assert [a.text for a in root.find(CAPS_NS + "auids")] == [
        "org.openmobilealliance.pres-content", "org.openmobilealliance.pres-rules",
        "org.openmobilealliance.user-profile", "org.openmobilealliance.xcap-directory",
        "org.openxcap.dialog-rules", "org.openxcap.watchers",
        "pidf-manipulation", "pres-rules", "resource-lists", "rls-services", "simservs.ngn.etsi.org", "xcap-caps"]
    namespaces = [n.text for n in root.find(CAPS_NS + "namespaces")]
    for ns in ("urn:ietf:params:xml:ns:xcap-caps", "urn:ietf:params:xml:ns:resource-lists",
               "urn:ietf:params:xml:ns:pres-rules", "urn:oma:xml:prs:pres-rules",
               "http://uri.etsi.org/ngn/params/xml/simservs/xcap"):
        assert ns in namespaces


def test_xcap_caps_conditional_get_is_304(client: Client) -> None:
    etag = client.get(CAPS).headers["ETag"]
    resp = client.get(CAPS, headers={"If-None-Match": etag})
    assert (resp.status, resp.headers["ETag"]) == ("304 Not Modified", etag)


def test_xcap_caps_node_selector(client: Client) -> None:
    resp = client.get(CAPS + "/~~/xcap-caps/auids/auid%5B12%5D")
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "200 OK", "application/xcap-el+xml", b"<auid>xcap-caps</auid>")


def test_xcap_caps_is_read_only(client: Client) -> None:
    for method in ("PUT", "DELETE"):
        resp = client.open(CAPS, method=method, data=b"<x/>")
        assert (resp.status, resp.headers["Allow"]) == ("405 Method Not Allowed", "GET, HEAD")


def test_xcap_caps_exists_only_in_the_global_tree(client: Client) -> None:
    resp = client.get("/xcap-root/xcap-caps/users/sip:alice@example.com/index")
    assert (resp.status, resp.data) == (
        "404 Not Found", b"the only xcap-caps document is /xcap-caps/global/index (RFC 4825 \xc2\xa712.7)\n")


# -- rls-services global index (RS6) -------------------------------------------------------------

def test_rls_global_index_is_the_union_of_users_index_documents(client: Client) -> None:
    put_rls(client, "alice", "index", "sip:alice-friends@example.com")
    put_rls(client, "bob", "index", "sip:bob-work@example.com", "sip:bob-home@example.com")
    put_rls(client, "carol", "other", "sip:carol-x@example.com")  # not named index: left out
    resp = client.get(RLS_INDEX)
    assert (resp.status, resp.headers["Content-Type"]) == ("200 OK", RLS_MIME)
    root = etree.fromstring(resp.data)
    assert [s.get("uri") for s in root] == [
        "sip:alice-friends@example.com", "sip:bob-work@example.com", "sip:bob-home@example.com"]


def test_rls_global_index_follows_every_change(client: Client) -> None:
    put_rls(client, "alice", "index", "sip:alice-friends@example.com")
    first = client.get(RLS_INDEX).headers["ETag"]
    client.delete("/xcap-root/rls-services/users/sip:alice@example.com/index")
    resp = client.get(RLS_INDEX)
    assert resp.headers["ETag"] != first
    assert resp.data == (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                         b'<rls-services xmlns="urn:ietf:params:xml:ns:rls-services">\n</rls-services>\n')


def test_rls_global_index_is_read_only(client: Client) -> None:
    resp = client.put(RLS_INDEX, data=rls("sip:x@example.com"), content_type=RLS_MIME)
    assert (resp.status, resp.headers["Allow"]) == ("405 Method Not Allowed", "GET, HEAD")


def test_rls_service_uri_taken_by_another_user_is_uniqueness_failure(client: Client) -> None:
    put_rls(client, "alice", "index", "sip:friends@example.com")
    resp = client.put("/xcap-root/rls-services/users/sip:bob@example.com/index", data=rls("sip:friends@example.com"),
                      content_type=RLS_MIME)
    assert (resp.status, resp.headers["Content-Type"]) == ("409 Conflict", "application/xcap-error+xml")
    error = etree.fromstring(resp.data)[0]
    assert error.tag == "{urn:ietf:params:xml:ns:xcap-error}uniqueness-failure"
    exists = error[0]
    assert exists.get("field") == "rls-services/service%5B1%5D/@uri"
    alternatives = [a.text for a in exists]
    assert alternatives and "sip:friends@example.com" not in alternatives


# -- OMA xcap-directory --------------------------------------------------------------------------

def test_directory_lists_the_users_documents_with_their_etags(client: Client) -> None:
    etag = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).headers["ETag"].strip('"')
    client.put(RL_URI.replace("alice", "bob"), data=RESOURCE_LISTS, content_type=RL_MIME)
    resp = client.get(DIRECTORY)
    assert (resp.status, resp.headers["Content-Type"]) == ("200 OK", "application/vnd.oma.xcap-directory+xml")
    assert (
        f'<folder auid="resource-lists">\n    <entry uri="http://localhost{RL_URI}" etag="{etag}" '
        f'size="{len(RESOURCE_LISTS)}"/>\n  </folder>'
    ).encode() in resp.data
    assert b"bob" not in resp.data


def test_directory_has_one_document_name(client: Client) -> None:
    assert client.get(DIRECTORY.replace("directory.xml", "index")).status == "404 Not Found"


def test_global_tree_is_readable_but_not_writable(client: Client) -> None:
    assert client.get("/xcap-root/resource-lists/global/index").status == "404 Not Found"
    resp = client.put("/xcap-root/resource-lists/global/index", data=RESOURCE_LISTS, content_type=RL_MIME)
    assert resp.status == "403 Forbidden"

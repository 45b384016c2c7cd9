"""An integrator's own application usage, registered as the README shows (issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.errors import ConstraintFailure
from xcap_wsgi.storage import Storage
from xcap_wsgi.usages import ApplicationUsage, register, unregister

MIME = "application/vnd.example.notes+xml"
URI = "/xcap-root/com.example.notes/users/sip:alice@example.com/index"
XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:example:notes"
  xmlns="urn:example:notes" elementFormDefault="qualified">
  <xs:element name="notes"><xs:complexType><xs:sequence>
    <xs:element name="note" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"""


def at_most_two_notes(root: Any, context: Any) -> None:
    if len(root) > 2:
        raise ConstraintFailure("at most 2 notes per document")


@pytest.fixture
def notes(tmp_path: Path, storage: Storage) -> Iterator[Client]:
    (tmp_path / "notes.xsd").write_text(XSD)
    register(ApplicationUsage(
        auid="com.example.notes", mime_type=MIME, namespace="urn:example:notes", doc_type=4096,
        root="{urn:example:notes}notes", schemas=(str(tmp_path / "notes.xsd"),), constraints=(at_most_two_notes,),
    ))
    yield Client(XCAPMiddleware(None, storage=storage))
    unregister("com.example.notes")


def notes_doc(*texts: str) -> bytes:
    return ('<notes xmlns="urn:example:notes">' + "".join(f"<note>{t}</note>" for t in texts) + "</notes>").encode()


def test_registered_usage_stores_serves_and_advertises(notes: Client) -> None:
    assert notes.put(URI, data=notes_doc("hi"), content_type=MIME).status == "201 Created"
    resp = notes.get(URI)
    assert (resp.headers["Content-Type"], resp.data) == (MIME, notes_doc("hi"))
    assert notes.get(URI + "/~~/notes/note").data == b"<note>hi</note>"
    assert b"<auid>com.example.notes</auid>" in notes.get("/xcap-root/xcap-caps/global/index").data


def test_registered_usage_schema_and_constraint_are_enforced(notes: Client) -> None:
    bad = notes.put(URI, data=b'<notes xmlns="urn:example:notes"><bad/></notes>', content_type=MIME)
    assert bad.status == "409 Conflict"
    assert b"<schema-validation-error phrase=\"line 1: Element '{urn:example:notes}bad'" in bad.data
    many = notes.put(URI, data=notes_doc("a", "b", "c"), content_type=MIME)
    assert (many.status, many.data) == ("409 Conflict", (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
        b'<constraint-failure phrase="at most 2 notes per document"/></xcap-error>\n'))


def test_re_registered_usage_takes_effect_on_a_running_server(notes: Client) -> None:
    notes.put(URI, data=notes_doc("hi"), content_type=MIME)
    assert notes.get(URI).headers["Content-Type"] == MIME  # the parsed URI is now cached
    register(ApplicationUsage(auid="com.example.notes", mime_type="application/xml", namespace="urn:example:notes",
                              doc_type=4096))
    assert notes.get(URI).headers["Content-Type"] == "application/xml"
    unregister("com.example.notes")
    assert notes.get(URI).status == "404 Not Found"

"""OMA pres-content icons: the same strict base64 check on every supported Python (issue 9).

``binascii.a2b_base64(strict_mode=...)`` does not exist on 3.10 (every PUT was a 500 there)
and on 3.11/3.12 accepts padding after a complete group; the usage checks the data itself.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from xcap_wsgi.errors import ConstraintFailure
from xcap_wsgi.usages import ValidationContext, get_usage

ICON = (Path(__file__).parent / "documents" / "pres-content-status-icon.xml").read_bytes()
ICON_URI = "/xcap-root/org.openmobilealliance.pres-content/users/sip:alice@example.com/oma_status-icon/index"
ICON_MIME = "application/vnd.oma.pres-content+xml"
PRES_CONTENT = "org.openmobilealliance.pres-content"


def icon(data: str) -> bytes:
    return (
        '<content xmlns="urn:oma:xml:prs:pres-content">'
        f"<mime-type>image/png</mime-type><encoding>base64</encoding><data>{data}</data></content>"
    ).encode()


def validate(document: bytes) -> None:
    usage = get_usage(PRES_CONTENT)
    assert usage is not None
    usage.validate(document, ValidationContext("/xcap-root/", PRES_CONTENT, "users", "sip:alice@example.com", ICON_URI))


def test_put_status_icon_is_created_and_read_back(client: Client) -> None:
    put = client.put(ICON_URI, data=ICON, content_type=ICON_MIME)
    assert put.status == "201 Created"
    get = client.get(ICON_URI)
    assert get.status == "200 OK"
    assert get.data == ICON


@pytest.mark.parametrize("data", [
    pytest.param("QUJD", id="one-group"),
    pytest.param("QUI=", id="one-pad"),
    pytest.param("QQ==", id="two-pads"),
    pytest.param("", id="empty"),
    pytest.param("QU\n  JD\tQQ==", id="whitespace-between-groups"),
])
def test_pres_content_accepts_canonical_base64(data: str) -> None:
    validate(icon(data))


@pytest.mark.parametrize("data", [
    pytest.param("QU-_", id="urlsafe-alphabet"),
    pytest.param("QUJD*", id="non-alphabet"),
    pytest.param("QUJDé===", id="non-ascii"),
    pytest.param("QQ", id="missing-padding"),
    pytest.param("QQ=", id="short-padding"),
    pytest.param("QUJD=", id="padding-after-complete-group"),
    pytest.param("QQ===", id="excess-padding"),
    pytest.param("QQ==QUJD", id="data-after-padding"),
    pytest.param("=QUJ", id="leading-padding"),
    pytest.param("Q=Q=", id="discontinuous-padding"),
])
def test_pres_content_refuses_what_strict_base64_refuses(data: str) -> None:
    with pytest.raises(ConstraintFailure) as info:
        validate(icon(data))
    assert info.value.phrase == "<data> is not valid base64"


@given(st.binary(max_size=64))
def test_pres_content_accepts_any_encoded_icon(raw: bytes) -> None:
    validate(icon(base64.b64encode(raw).decode()))

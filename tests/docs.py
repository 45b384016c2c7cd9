"""Test documents written for this project, reproducing what real clients send.

Quirks reproduced (see the client survey in the README of the shared fixtures):
single-quoted XML declaration and no final newline (sipsimple), prefixed elements with no
default namespace (sipsimple ``rl:``), tab indentation and CRLF line ends, non-ASCII
display names in several scripts, percent-encoded anyURI values.
"""

from __future__ import annotations

RL_URI = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
RL_MIME = "application/resource-lists+xml"

RESOURCE_LISTS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\n'
    '  <list name="friends">\n'
    '    <display-name>Friends</display-name>\n'
    '    <entry uri="sip:bob@example.com"><display-name>Bob Müller</display-name></entry>\n'
    "    <entry uri='sip:carol@example.com'><display-name>山田 花子</display-name></entry>\n"
    '    <entry-ref ref="resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list%5b@name=%22x%22%5d"/>\n'
    '    <external anchor="http://xcap.example.com/xcap-root/resource-lists/users/sip:bob@example.com/index"/>\n'
    "  </list>\n"
    "</resource-lists>\n"
).encode()

#: sipsimple style: single quotes, rl: prefix, one line, no final newline, encoded URIs.
RESOURCE_LISTS_PREFIXED = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    '<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists">'
    '<rl:list name="oma_buddylist"><rl:entry uri="sip%3Abob%40example.com">'
    "<rl:display-name>Σωκράτης</rl:display-name></rl:entry></rl:list></rl:resource-lists>"
).encode()

#: Kamailio tutorial style: declaration without encoding, tabs, CRLF line ends.
RESOURCE_LISTS_TABS = (
    b'<?xml version="1.0" ?>\r\n<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\r\n'
    b'\t<list name="work">\r\n\t\t<entry uri="sip:dave@example.com"/>\r\n\t</list>\r\n</resource-lists>\r\n'
)

PRES_RULES_URI = "/xcap-root/pres-rules/users/sip:alice@example.com/index"
PRES_RULES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules" xmlns:cr="urn:ietf:params:xml:ns:common-policy">\n'
    b'  <cr:rule id="a"><cr:conditions><cr:identity><cr:one id="sip:bob@example.com"/></cr:identity>'
    b"</cr:conditions><cr:actions><sub-handling>allow</sub-handling></cr:actions></cr:rule>\n"
    b"</cr:ruleset>\n"
)


def counter_doc(n: int) -> bytes:
    """A resource-lists document whose list name carries a counter (race tests)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="n{n}"/></resource-lists>\n'
    ).encode()


#: The smallest valid document of each writable usage, with its Kamailio doc_type.
MINIMAL = {
    "resource-lists": (4, b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>'),
    "rls-services": (8, b'<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"/>'),
    "pres-rules": (2, b'<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>'),
    "org.openmobilealliance.pres-rules": (2, b'<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>'),
    "pidf-manipulation": (16, b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com"/>'),
    "org.openmobilealliance.user-profile": (64, b'<user-profile xmlns="urn:oma:xml:xdm:user-profile"/>'),
    "org.openmobilealliance.pres-content": (128, (
        b'<content xmlns="urn:oma:xml:prs:pres-content"><mime-type>image/png</mime-type>'
        b"<encoding>base64</encoding><data>iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAE0lEQVR4nGMQaPgARAwfGgSACAAqDgYBpCQTYgAAAABJRU5ErkJggg==</data></content>")),
}

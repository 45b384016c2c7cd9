"""Application usages: schemas, constraints and generated documents (issue 4).

Requirement ids are those of reference/xcap-requirements.md. The project's own
documents live in tests/documents/; the real client documents are read from the
shared fixtures folder when it exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from lxml import etree

from xcap_wsgi.errors import (
    Conflict,
    ConstraintFailure,
    NotUTF8,
    NotWellFormed,
    SchemaValidationError,
    UniquenessFailure,
)
from xcap_wsgi.usages import (
    ApplicationUsage,
    DirectoryEntry,
    ValidationContext,
    all_usages,
    get_usage,
    register,
    rls_services_global_index,
    xcap_caps_document,
    xcap_directory_document,
)
from xcap_wsgi.usages.oma import ICON_MAX_BYTES
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS, compiled_schema, parse_document

DOCUMENTS = Path(__file__).parent / "documents"
def _fixtures() -> Path:
    """The shared client fixtures: $XCAP_CLIENT_FIXTURES, else ../shared beside the checkout."""
    given = os.environ.get("XCAP_CLIENT_FIXTURES")
    return Path(given) if given else Path(__file__).resolve().parents[2] / "shared/fixtures/clients"


FIXTURES = _fixtures()
#: beside the checkout, CI included; a developer without them skips, CI fails
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir() and not os.environ.get("CI"),
                                    reason=f"client fixtures not present at {FIXTURES}")

ME = "sip:me@example.org"
RL = "resource-lists"
RLS = "rls-services"
PRES_RULES = "pres-rules"
OMA_PRES_RULES = "org.openmobilealliance.pres-rules"
PIDF = "pidf-manipulation"
PRES_CONTENT = "org.openmobilealliance.pres-content"
USER_PROFILE = "org.openmobilealliance.user-profile"

Rows = Callable[[int], Iterable[tuple[str, bytes]]]


def context(
    auid: str, xui: str | None = ME, root: str = "/xcap-root/", documents: Rows | None = None,
) -> ValidationContext:
    tree = "users" if xui else "global"
    doc_uri = f"{root}{auid}/users/{xui}/index" if xui else f"{root}{auid}/global/index"
    if documents is None:
        return ValidationContext(root, auid, tree, xui, doc_uri)
    return ValidationContext(root, auid, tree, xui, doc_uri, documents)


def validate(auid: str, document: bytes | str, ctx: ValidationContext | None = None) -> None:
    usage = get_usage(auid)
    assert usage is not None
    body = document.encode("utf-8") if isinstance(document, str) else document
    usage.validate(body, ctx or context(auid))


def refused(auid: str, document: bytes | str, error: type[Conflict], ctx: ValidationContext | None = None) -> Conflict:
    with pytest.raises(error) as info:
        validate(auid, document, ctx)
    assert type(info.value) is error
    return info.value


def own(name: str) -> str:
    return (DOCUMENTS / name).read_text(encoding="utf-8")


def rl_doc(lists: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">{lists}</resource-lists>'
    )


def rls_doc(services: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"'
        f' xmlns:rl="urn:ietf:params:xml:ns:resource-lists">{services}</rls-services>'
    )


def rls_ref_service(uri: str, target: str) -> str:
    packages = "<packages><package>presence</package></packages>"
    return f'<service uri="{uri}"><resource-list>{target}</resource-list>{packages}</service>'


MY_LIST = "https://xcap.example.org/xcap-root/resource-lists/users/sip:me@example.org/index/~~/resource-lists/list%5B@name=%22a%22%5D"


def ruleset(rules: str, extra_ns: str = "") -> str:
    return (
        '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules"'
        ' xmlns:ocp="urn:oma:xml:xdm:common-policy" xmlns:op="urn:oma:xml:prs:pres-rules"'
        f'{extra_ns}>{rules}</cp:ruleset>'
    )


def presence(body: str, entity: str = 'entity="sip:kim@example.org"') -> str:
    return (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        f' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" {entity}>{body}</presence>'
    )


def pres_content(children: str) -> str:
    return f'<content xmlns="urn:oma:xml:prs:pres-content">{children}</content>'


PNG_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAE0lEQVR4nGMQaPgARAwfGgSACAAqDgYBpCQTYgAAAABJRU5ErkJggg=="


# --- registry ---------------------------------------------------------------------------


def test_registry_lists_every_builtin_auid() -> None:
    assert [u.auid for u in all_usages()] == [
        "org.openmobilealliance.pres-content", "org.openmobilealliance.pres-rules",
        "org.openmobilealliance.user-profile", "org.openmobilealliance.xcap-directory",
        "org.openxcap.dialog-rules", "org.openxcap.watchers",
        "pidf-manipulation", "pres-rules", "resource-lists", "rls-services", "simservs.ngn.etsi.org", "xcap-caps",
    ]


def test_registry_keeps_the_positional_constructor_for_integrators() -> None:
    mime = "application/vnd.example.notes+xml"
    usage = register(ApplicationUsage("com.example.notes", mime, "urn:example:notes", 1024))
    try:
        assert get_usage("com.example.notes") is usage
        assert usage.generated is False and usage.schemas == () and usage.root is None
        usage.validate(b"<notes xmlns='urn:example:notes'/>", context("com.example.notes"))
        with pytest.raises(NotWellFormed):
            usage.validate(b"<notes>", context("com.example.notes"))
    finally:
        from xcap_wsgi import usages

        usages._REGISTRY.pop("com.example.notes")


def test_unknown_auid_has_no_usage() -> None:
    assert get_usage("oma_status-icon") is None


def test_validation_context_is_frozen() -> None:
    ctx = context(RL)
    with pytest.raises(AttributeError):
        ctx.auid = "other"  # type: ignore[misc]


# --- parsing ----------------------------------------------------------------------------


def test_not_well_formed_document_is_refused() -> None:
    refused(RL, "<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list>", NotWellFormed)


def test_document_declared_in_another_encoding_is_not_utf8() -> None:
    body = rl_doc('<list name="caf\u00e9"/>').replace("UTF-8", "ISO-8859-1").encode("iso-8859-1")
    refused(RL, body, NotUTF8)


def test_external_entities_are_never_loaded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top-secret-value")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
        "<list><display-name>&x;</display-name></list></resource-lists>"
    ).encode()
    with pytest.raises(NotWellFormed) as exc:
        parse_document(body)
    assert exc.value.phrase == "DOCTYPE and entity declarations are not allowed in XCAP documents"


def test_schemas_are_compiled_once() -> None:
    validate(RL, own("resource-lists-nested-multiscript.xml"))
    before = compiled_schema.cache_info()
    validate(PIDF, own("pidf-tuples-notes-rpid.xml"))
    after = compiled_schema.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


# --- the project's own documents --------------------------------------------------------


@pytest.mark.parametrize(("name", "auid", "xui"), [
    pytest.param("resource-lists-prefixed-percent-encoded.xml", RL, ME, id="rl-prefixed-percent-encoded"),
    pytest.param("resource-lists-nested-multiscript.xml", RL, ME, id="rl-nested-multiscript"),
    pytest.param("resource-lists-redeclared-namespaces.xml", RL, ME, id="rl-redeclared-namespaces"),
    pytest.param("rls-services-reference-and-inline.xml", RLS, ME, id="rls-reference-and-inline"),
    pytest.param("pres-rules-oma-prefixed.xml", OMA_PRES_RULES, ME, id="oma-pres-rules-prefixed"),
    pytest.param("pres-rules-oma-prefixed.xml", PRES_RULES, ME, id="pres-rules-with-oma-extensions"),
    pytest.param("pres-rules-default-namespace-redeclared.xml", PRES_RULES, ME, id="pres-rules-default-ns"),
    pytest.param("pidf-tuples-notes-rpid.xml", PIDF, ME, id="pidf-rpid-caps-cipid"),
    pytest.param("pres-content-status-icon.xml", PRES_CONTENT, ME, id="pres-content-icon"),
    pytest.param("user-profile.xml", USER_PROFILE, ME, id="user-profile"),
])
def test_realistic_documents_are_accepted(name: str, auid: str, xui: str) -> None:
    validate(auid, own(name), context(auid, xui))


def test_document_of_another_usage_is_a_schema_error() -> None:
    error = refused(RL, own("pidf-tuples-notes-rpid.xml"), SchemaValidationError)
    assert error.phrase is not None and "resource-lists" in error.phrase


def test_namespace_less_root_is_a_schema_error() -> None:
    error = refused(RL, "<resource-lists><list name='a'/></resource-lists>", SchemaValidationError)
    assert error.phrase is not None and "no namespace" in error.phrase


def test_schema_error_phrase_is_the_validator_message() -> None:
    error = refused(RL, rl_doc('<list><entry/></list>'), SchemaValidationError)
    assert error.phrase == (
        "line 2: Element '{urn:ietf:params:xml:ns:resource-lists}entry': The attribute 'uri' is required but missing."
    )
    assert b"schema-validation-error phrase=" in error.body_bytes()


# --- resource-lists schema (RL2) --------------------------------------------------------


def test_resource_lists_may_hold_no_list() -> None:
    validate(RL, rl_doc(""))


def test_resource_lists_display_name_must_come_first() -> None:
    doc = rl_doc('<list><entry uri="sip:a@x"/><display-name>late</display-name></list>')
    error = refused(RL, doc, SchemaValidationError)
    assert error.phrase is not None and "display-name" in error.phrase


def test_resource_lists_text_inside_the_root_is_a_schema_error() -> None:
    refused(RL, rl_doc('stray text<list name="a"/>'), SchemaValidationError)


def test_resource_lists_foreign_elements_after_members_are_accepted() -> None:
    foreign = '<x:tag xmlns:x="urn:example:x" x:any="1"><x:deep/></x:tag>'
    validate(RL, rl_doc(f'<list><entry uri="sip:a@x"/>{foreign}</list>'))


def test_resource_lists_foreign_element_before_members_is_a_schema_error() -> None:
    refused(RL, rl_doc('<list><x:tag xmlns:x="urn:example:x"/><entry uri="sip:a@x"/></list>'), SchemaValidationError)


def test_resource_lists_unknown_element_in_own_namespace_is_a_schema_error() -> None:
    refused(RL, rl_doc('<list><contact uri="sip:a@x"/></list>'), SchemaValidationError)


def test_resource_lists_display_name_language_must_be_a_language_tag() -> None:
    refused(RL, rl_doc('<list><display-name xml:lang="not a tag">x</display-name></list>'), SchemaValidationError)


def test_known_namespace_in_a_wildcard_is_validated() -> None:
    """V3: an advertised namespace is checked wherever ##other lets it in."""
    bad = '<list><pr:sub-handling xmlns:pr="urn:ietf:params:xml:ns:pres-rules">maybe</pr:sub-handling></list>'
    refused(RL, rl_doc(bad), SchemaValidationError)


# --- resource-lists constraints (RL3-RL6) -----------------------------------------------


def test_duplicate_list_name_reports_positional_field() -> None:
    error = refused(RL, rl_doc('<list name="a"/><list name="b"/><list name="a"/>'), UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [("resource-lists/list%5B3%5D/@name", ())]
    assert b'<exists field="resource-lists/list%5B3%5D/@name"/>' in error.body_bytes()


def test_same_list_name_under_different_parents_is_fine() -> None:
    validate(RL, rl_doc('<list name="a"><list name="x"/></list><list name="b"><list name="x"/></list>'))


def test_duplicate_entry_uri_in_nested_list() -> None:
    doc = rl_doc('<list name="a"/><list name="b"><entry uri="sip:x@y"/><list name="c"><entry uri="sip:z@y"/>'
                 '<entry uri="sip:z@y"/></list></list>')
    error = refused(RL, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [("resource-lists/list%5B2%5D/list%5B1%5D/entry%5B2%5D/@uri", ())]


def test_same_entry_uri_in_two_lists_is_fine() -> None:
    validate(RL, rl_doc('<list name="a"><entry uri="sip:x@y"/></list><list name="b"><entry uri="sip:x@y"/></list>'))


def test_entry_uri_comparison_is_case_sensitive() -> None:
    validate(RL, rl_doc('<list><entry uri="sip:Bob@y"/><entry uri="sip:bob@y"/></list>'))


def test_percent_encoded_and_plain_spelling_of_a_uri_are_duplicates() -> None:
    error = refused(RL, rl_doc('<list><entry uri="sip:bob@y"/><entry uri="sip%3Abob%40y"/></list>'), UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [("resource-lists/list%5B1%5D/entry%5B2%5D/@uri", ())]


def test_every_duplicate_gets_its_own_exists_element() -> None:
    doc = rl_doc('<list name="l"><entry-ref ref="a/b"/><entry-ref ref="a/b"/>'
                 '<external anchor="http://x/a"/><external anchor="http://x/a"/></list><list name="l"/>')
    error = refused(RL, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert [field for field, _ in error.exists] == [
        "resource-lists/list%5B2%5D/@name",
        "resource-lists/list%5B1%5D/entry-ref%5B2%5D/@ref",
        "resource-lists/list%5B1%5D/external%5B2%5D/@anchor",
    ]


def test_uniqueness_field_never_holds_raw_quotes_brackets_or_spaces() -> None:
    doc = rl_doc('<list name="with space"><list name="x y"/><list name="x y"/></list>')
    error = refused(RL, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    field = error.exists[0][0]
    assert not set('"[] ') & set(field)


def test_prefixed_document_gets_unprefixed_field_in_the_default_namespace() -> None:
    doc = ('<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists"><rl:list name="a">'
           '<rl:entry uri="sip%3Ax%40y"/><rl:entry uri="sip%3Ax%40y"/></rl:list></rl:resource-lists>')
    error = refused(RL, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [("resource-lists/list%5B1%5D/entry%5B2%5D/@uri", ())]


@pytest.mark.parametrize("ref", [
    pytest.param("http://xcap.example.org/resource-lists/users/sip:a@x/index", id="absolute"),
    pytest.param("/xcap-root/resource-lists/users/sip:a@x/index", id="absolute-path"),
    pytest.param("https%3A//xcap.example.org/resource-lists/users/sip%3Aa%40x/index", id="percent-encoded-absolute"),
    pytest.param("", id="empty"),
])
def test_entry_ref_must_be_a_relative_path_reference(ref: str) -> None:
    error = refused(RL, rl_doc(f'<list><entry-ref ref="{ref}"/></list>'), ConstraintFailure)
    assert error.phrase is not None and "relative-path" in error.phrase


@pytest.mark.parametrize("anchor", [
    pytest.param("sip:list@example.org", id="sip"),
    pytest.param("resource-lists/users/sip:a@x/index", id="relative"),
    pytest.param("http:/no-authority", id="no-authority"),
])
def test_external_anchor_must_be_an_absolute_http_uri(anchor: str) -> None:
    error = refused(RL, rl_doc(f'<list><external anchor="{anchor}"/></list>'), ConstraintFailure)
    assert error.phrase is not None and "absolute HTTP URI" in error.phrase


def test_percent_encoded_https_anchor_is_accepted() -> None:
    validate(RL, rl_doc('<list><external anchor="https%3A//xcap.example.org/xcap-root/resource-lists/users/'
                        'sip%3Ame%40example.org/index"/></list>'))


def test_large_resource_list_validates_quickly() -> None:
    entries = "".join(f'<entry uri="sip:user{i}@example.org"><display-name>User {i} Ünïcødé</display-name></entry>'
                      for i in range(2600))
    body = rl_doc(f'<list name="big">{entries}</list>').encode()
    assert len(body) > 200_000
    validate(RL, body)
    started = time.perf_counter()
    validate(RL, body)
    assert time.perf_counter() - started < 0.5


# --- rls-services (RS2-RS5) -------------------------------------------------------------


def test_rls_service_needs_a_resource_list_or_a_list() -> None:
    refused(RLS, rls_doc('<service uri="sip:x@y"><packages><package>presence</package></packages></service>'),
            SchemaValidationError)


def test_rls_service_cannot_hold_both_a_reference_and_a_list() -> None:
    refused(RLS, rls_doc(f'<service uri="sip:x@y"><resource-list>{MY_LIST}</resource-list><list/></service>'),
            SchemaValidationError)


def test_rls_service_uri_is_required() -> None:
    refused(RLS, rls_doc(f'<service><resource-list>{MY_LIST}</resource-list></service>'), SchemaValidationError)


def other_users(*services: str) -> Rows:
    rows = [(f"/xcap-root/rls-services/users/sip:u{i}@example.org/index", rls_doc(s).encode())
            for i, s in enumerate(services)]

    def documents(doc_type: int) -> Iterable[tuple[str, bytes]]:
        assert doc_type == 8
        return rows
    return documents


def test_service_uri_taken_by_another_user_suggests_free_alternatives() -> None:
    taken = other_users(
        rls_ref_service("sip:friends@example.org", "x"),
        rls_ref_service("sip:friends-1@example.org", "x") + rls_ref_service("sip:friends-3@example.org", "x"),
    )
    doc = rls_doc(rls_ref_service("sip:mine@example.org", MY_LIST)
                  + rls_ref_service("sip:friends@example.org", MY_LIST))
    error = refused(RLS, doc, UniquenessFailure, context(RLS, documents=taken))
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [(
        "rls-services/service%5B2%5D/@uri",
        ["sip:friends-2@example.org", "sip:friends-4@example.org", "sip:friends-5@example.org"],
    )]
    assert b"<alt-value>sip:friends-2@example.org</alt-value>" in error.body_bytes()


def test_service_uri_compares_percent_decoded() -> None:
    taken = other_users(rls_ref_service("sip%3Aalice%2Bpresence%40example.com", "x"))
    doc = rls_doc(rls_ref_service("sip:alice+presence@example.com", MY_LIST))
    error = refused(RLS, doc, UniquenessFailure, context(RLS, documents=taken))
    assert isinstance(error, UniquenessFailure)
    assert error.exists[0][1] == ["sip:alice+presence-1@example.com", "sip:alice+presence-2@example.com",
                                  "sip:alice+presence-3@example.com"]


def test_service_uri_with_parameters_gets_alternatives_before_the_parameters() -> None:
    taken = other_users(rls_ref_service("sip:me@example.org;pres-list=rcs", "x"))
    doc = rls_doc(rls_ref_service("sip:me@example.org;pres-list=rcs", MY_LIST))
    error = refused(RLS, doc, UniquenessFailure, context(RLS, documents=taken))
    assert isinstance(error, UniquenessFailure)
    assert error.exists[0][1][0] == "sip:me-1@example.org;pres-list=rcs"


def test_service_uri_of_the_document_being_replaced_is_not_a_conflict() -> None:
    doc = rls_doc(rls_ref_service("sip:mine@example.org", MY_LIST))
    ctx = context(RLS)

    def documents(doc_type: int) -> Iterable[tuple[str, bytes]]:
        return [(ctx.doc_uri, doc.encode())]
    validate(RLS, doc, context(RLS, documents=documents))


def test_service_uri_repeated_within_one_document() -> None:
    doc = rls_doc(rls_ref_service("sip:a@example.org", MY_LIST) + rls_ref_service("sip:a@example.org", MY_LIST))
    error = refused(RLS, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [("rls-services/service%5B2%5D/@uri",
                             ["sip:a-1@example.org", "sip:a-2@example.org", "sip:a-3@example.org"])]


def test_generated_global_index_does_not_count_as_a_second_owner() -> None:
    doc = rls_doc(rls_ref_service("sip:mine@example.org", MY_LIST))

    def documents(doc_type: int) -> Iterable[tuple[str, bytes]]:
        return [("/xcap-root/rls-services/global/index", doc.encode())]
    validate(RLS, doc, context(RLS, documents=documents))


HOST = "https://xcap.example.org"


@pytest.mark.parametrize(("target", "reason"), [
    pytest.param("resource-lists/users/sip:me@example.org/index", "absolute HTTP URI", id="relative"),
    pytest.param(f"{HOST}/xcap-root/pres-rules/users/sip:me@example.org/index", "resource-lists", id="other-auid"),
    pytest.param(f"{HOST}/xcap-root/resource-lists/users/sip:you@example.org/index", "home directory", id="other-user"),
    pytest.param(f"{HOST}/other-root/resource-lists/users/sip:me@example.org/index", "XCAP root", id="other-root"),
    pytest.param(f"{HOST}/xcap-root/resource-lists/global/index", "home directory", id="global-tree"),
])
def test_resource_list_reference_must_point_into_own_resource_lists(target: str, reason: str) -> None:
    error = refused(RLS, rls_doc(rls_ref_service("sip:x@example.org", target)), ConstraintFailure)
    assert error.phrase is not None and reason in error.phrase


def test_resource_list_reference_is_checked_percent_decoded() -> None:
    encoded = ("https%3A//xcap.example.org/xcap-root/resource-lists/users/sip%3Ame%40example.org/index/~~/"
               "resource-lists/list%5B%40name%3D%22a%22%5D")
    validate(RLS, rls_doc(rls_ref_service("sip%3Ax%40example.org", encoded)))
    encoded_xui = "http://h:8080/xcap-root/resource-lists/users/sip%3Ame%40example.org/index"
    validate(RLS, rls_doc(rls_ref_service("sip:x@example.org", encoded_xui)))


def test_global_rls_document_may_reference_any_users_lists() -> None:
    target = "https://xcap.example.org/xcap-root/resource-lists/users/sip:you@example.org/index"
    validate(RLS, rls_doc(rls_ref_service("sip:x@example.org", target)), context(RLS, xui=None))


def test_inline_list_duplicates_report_a_prefixed_field_with_xmlns_query() -> None:
    entry = '<rl:entry uri="sip:a@y"/>'
    doc = rls_doc(f'<service uri="sip:x@example.org"><list>{entry}{entry}</list></service>')
    error = refused(RLS, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists == [(
        "rls-services/service%5B1%5D/list%5B1%5D/rl:entry%5B2%5D/@uri"
        "?xmlns(rl=urn:ietf:params:xml:ns:resource-lists)", (),
    )]


def test_inline_list_field_invents_a_prefix_for_default_namespaced_members() -> None:
    inner = '<list xmlns="urn:ietf:params:xml:ns:resource-lists" name="n"/>'
    doc = rls_doc(f'<service uri="sip:x@example.org"><list>{inner}{inner}</list></service>')
    error = refused(RLS, doc, UniquenessFailure)
    assert isinstance(error, UniquenessFailure)
    assert error.exists[0][0] == (
        "rls-services/service%5B1%5D/list%5B1%5D/ns1:list%5B2%5D/@name?xmlns(ns1=urn:ietf:params:xml:ns:resource-lists)"
    )


def test_inline_list_entry_ref_must_be_relative() -> None:
    doc = rls_doc('<service uri="sip:x@example.org"><list><rl:entry-ref ref="http://x/y"/></list></service>')
    refused(RLS, doc, ConstraintFailure)


# --- pres-rules (PR1-PR3) ---------------------------------------------------------------


def rule(rule_id: str, conditions: str = "", actions: str = "<pr:sub-handling>allow</pr:sub-handling>",
         transformations: str = "") -> str:
    return (f'<cp:rule id="{rule_id}"><cp:conditions>{conditions}</cp:conditions><cp:actions>{actions}</cp:actions>'
            f'<cp:transformations>{transformations}</cp:transformations></cp:rule>')


def test_empty_ruleset_is_valid() -> None:
    validate(PRES_RULES, ruleset(""))


def test_duplicate_rule_id_is_a_schema_error() -> None:
    error = refused(OMA_PRES_RULES, ruleset(rule("r1") + rule("r1")), SchemaValidationError)
    assert error.phrase is not None and "r1" in error.phrase


@pytest.mark.parametrize("actions", [
    pytest.param("<pr:sub-handling>maybe</pr:sub-handling>", id="sub-handling-value"),
    pytest.param("<pr:sub-handling>allow</pr:sub-handling><pr:provide-activities>yes</pr:provide-activities>",
                 id="boolean-permission"),
])
def test_pres_rules_values_are_checked(actions: str) -> None:
    refused(PRES_RULES, ruleset(rule("r", actions=actions)), SchemaValidationError)


@pytest.mark.parametrize("transformations", [
    pytest.param("<op:provide-geopriv>some</op:provide-geopriv>", id="oma-geopriv"),
    pytest.param("<op:provide-willingness>perhaps</op:provide-willingness>", id="oma-willingness"),
    pytest.param("<pr:provide-services><pr:all-services/><pr:service-uri-scheme>sip</pr:service-uri-scheme>"
                 "</pr:provide-services>", id="all-services-and-a-scheme"),
    pytest.param('<pr:provide-unknown-attribute name="x">true</pr:provide-unknown-attribute>', id="unknown-attr-ns"),
])
def test_pres_rules_transformations_are_checked(transformations: str) -> None:
    refused(OMA_PRES_RULES, ruleset(rule("r", transformations=transformations)), SchemaValidationError)


def test_oma_external_list_entry_needs_an_anchor() -> None:
    conditions = "<ocp:external-list><ocp:entry/></ocp:external-list>"
    refused(OMA_PRES_RULES, ruleset(rule("r", conditions=conditions)), SchemaValidationError)


def test_oma_anonymous_request_must_be_empty() -> None:
    conditions = "<ocp:anonymous-request>yes</ocp:anonymous-request>"
    refused(OMA_PRES_RULES, ruleset(rule("r", conditions=conditions)), SchemaValidationError)


def test_pre_rfc_identity_syntax_is_a_schema_error() -> None:
    conditions = "<cp:identity><cp:id>sip:a@example.org</cp:id></cp:identity>"
    refused(PRES_RULES, ruleset(rule("r", conditions=conditions)), SchemaValidationError)


def test_rule_without_id_is_a_schema_error() -> None:
    refused(PRES_RULES, ruleset("<cp:rule/>"), SchemaValidationError)


def test_vendor_actions_are_accepted() -> None:
    actions = '<v:record xmlns:v="urn:example:vendor">yes</v:record>'
    validate(PRES_RULES, ruleset(rule("r", actions=actions)))


# --- pidf-manipulation (PM1, PM2) -------------------------------------------------------


def test_pidf_needs_an_entity() -> None:
    refused(PIDF, presence("", entity=""), SchemaValidationError)


def test_pidf_tuple_needs_a_status() -> None:
    refused(PIDF, presence('<tuple id="t"><note>x</note></tuple>'), SchemaValidationError)


def test_pidf_basic_is_open_or_closed() -> None:
    refused(PIDF, presence('<tuple id="t"><status><basic>busy</basic></status></tuple>'), SchemaValidationError)


def test_pidf_tuple_ids_are_unique() -> None:
    tuples = '<tuple id="t"><status/></tuple><tuple id="t"><status/></tuple>'
    refused(PIDF, presence(tuples), SchemaValidationError)


def test_pidf_status_inside_a_device_is_a_schema_error() -> None:
    device = '<dm:device id="d"><status><basic>open</basic></status><dm:deviceID>urn:x:1</dm:deviceID></dm:device>'
    error = refused(PIDF, presence(device), SchemaValidationError)
    assert error.phrase is not None and "status" in error.phrase


def test_pidf_device_needs_a_device_id() -> None:
    refused(PIDF, presence('<dm:device id="d"/>'), SchemaValidationError)


def test_rpid_unknown_activity_in_the_rpid_namespace_is_a_schema_error() -> None:
    person = '<dm:person id="p"><rpid:activities><rpid:dancing/></rpid:activities></dm:person>'
    refused(PIDF, presence(person), SchemaValidationError)


def test_rpid_unknown_mood_with_other_is_accepted() -> None:
    person = '<dm:person id="p"><rpid:mood><rpid:other>meh</rpid:other></rpid:mood></dm:person>'
    validate(PIDF, presence(person))


def test_rpid_user_input_is_active_or_idle() -> None:
    person = '<dm:person id="p"><rpid:user-input>asleep</rpid:user-input></dm:person>'
    refused(PIDF, presence(person), SchemaValidationError)


def test_pidf_foreign_extension_elements_are_accepted() -> None:
    person = ('<dm:person id="p"><o:overriding-willingness xmlns:o="urn:oma:xml:prs:pidf:oma-pres">'
              '<o:basic>open</o:basic></o:overriding-willingness></dm:person>')
    validate(PIDF, presence(person))


def test_cipid_homepage_is_a_plain_uri() -> None:
    person = ('<dm:person id="p"><c:homepage xmlns:c="urn:ietf:params:xml:ns:pidf:cipid">'
              '<c:icon>http://x/</c:icon></c:homepage></dm:person>')
    refused(PIDF, presence(person), SchemaValidationError)


# --- pres-content -----------------------------------------------------------------------


def test_pres_content_children_follow_the_oma_order() -> None:
    doc = pres_content(f"<data>{PNG_DATA}</data><encoding>base64</encoding><mime-type>image/png</mime-type>")
    refused(PRES_CONTENT, doc, SchemaValidationError)


def test_pres_content_needs_data() -> None:
    refused(PRES_CONTENT, pres_content("<mime-type>image/png</mime-type>"), SchemaValidationError)


@pytest.mark.parametrize(("children", "phrase"), [
    pytest.param(f"<mime-type>image/svg+xml</mime-type><data>{PNG_DATA}</data>", "not allowed", id="svg"),
    pytest.param(f"<mime-type>text/html</mime-type><data>{PNG_DATA}</data>", "not allowed", id="html"),
    pytest.param(f"<data>{PNG_DATA}</data>", "needs a <mime-type>", id="no-mime-type"),
    pytest.param("<mime-type>image/png</mime-type><data>not*base64!</data>", "base64", id="bad-base64"),
    pytest.param("<mime-type>image/png</mime-type><data>abc</data>", "base64", id="truncated-base64"),
    pytest.param(f"<mime-type>image/png</mime-type><encoding>quoted-printable</encoding><data>{PNG_DATA}</data>",
                 "encoding", id="other-encoding"),
])
def test_pres_content_constraints(children: str, phrase: str) -> None:
    error = refused(PRES_CONTENT, pres_content(children), ConstraintFailure)
    assert error.phrase is not None and phrase in error.phrase


def test_pres_content_mime_type_is_case_insensitive_and_ignores_parameters() -> None:
    validate(PRES_CONTENT, pres_content(f"<mime-type>Image/JPEG; q=1</mime-type><data>{PNG_DATA}</data>"))


def test_pres_content_size_cap() -> None:
    import base64

    at_limit = base64.b64encode(b"\0" * ICON_MAX_BYTES).decode()
    validate(PRES_CONTENT, pres_content(f"<mime-type>image/gif</mime-type><data>{at_limit}</data>"))
    over = base64.b64encode(b"\0" * (ICON_MAX_BYTES + 1)).decode()
    doc = pres_content(f"<mime-type>image/gif</mime-type><data>{over}</data>")
    error = refused(PRES_CONTENT, doc, ConstraintFailure)
    assert error.phrase is not None and str(ICON_MAX_BYTES) in error.phrase


# --- user-profile -----------------------------------------------------------------------


def test_user_profile_birth_date_must_be_a_date() -> None:
    doc = own("user-profile.xml").replace("1990-04-01", "first of April")
    refused(USER_PROFILE, doc, SchemaValidationError)


# --- xcap-caps (K1-K8) ------------------------------------------------------------------

NS = {"c": "urn:ietf:params:xml:ns:xcap-caps", "d": "urn:oma:xml:xdm:xcap-directory"}


def test_xcap_caps_lists_every_auid_and_validated_namespace() -> None:
    body = xcap_caps_document(all_usages())
    root = etree.fromstring(body)
    assert [child.tag.split("}")[1] for child in root] == ["auids", "namespaces"]
    assert root.xpath("c:auids/c:auid/text()", namespaces=NS) == sorted(u.auid for u in all_usages())
    namespaces = root.xpath("c:namespaces/c:namespace/text()", namespaces=NS)
    for ns in ("urn:ietf:params:xml:ns:xcap-caps", "urn:ietf:params:xml:ns:resource-lists",
               "urn:ietf:params:xml:ns:rls-services", "urn:ietf:params:xml:ns:common-policy",
               "urn:ietf:params:xml:ns:pres-rules", "urn:oma:xml:xdm:common-policy", "urn:oma:xml:prs:pres-rules",
               "urn:ietf:params:xml:ns:pidf", "urn:ietf:params:xml:ns:pidf:data-model",
               "urn:ietf:params:xml:ns:pidf:rpid", "urn:ietf:params:xml:ns:pidf:caps",
               "urn:ietf:params:xml:ns:pidf:cipid", "urn:oma:xml:prs:pres-content",
               "urn:oma:xml:xdm:user-profile", "urn:oma:xml:xdm:xcap-directory",
               "http://uri.etsi.org/ngn/params/xml/simservs/xcap"):
        assert ns in namespaces
    assert "http://www.w3.org/XML/1998/namespace" not in namespaces
    validate("xcap-caps", body, context("xcap-caps", xui=None))


def test_xcap_caps_always_names_itself_and_is_deterministic() -> None:
    only = [u for u in all_usages() if u.auid == RL]
    body = xcap_caps_document(only)
    assert body == xcap_caps_document(list(reversed(only)))
    root = etree.fromstring(body)
    assert root.xpath("c:auids/c:auid/text()", namespaces=NS) == ["resource-lists", "xcap-caps"]
    assert "urn:ietf:params:xml:ns:xcap-caps" in root.xpath("c:namespaces/c:namespace/text()", namespaces=NS)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')


def test_every_advertised_namespace_has_a_schema() -> None:
    """V3: the server advertises only namespaces it can validate."""
    root = etree.fromstring(xcap_caps_document(all_usages()))
    advertised = set(root.xpath("c:namespaces/c:namespace/text()", namespaces=NS))
    schemas = Path(__file__).parent.parent / "xcap_wsgi" / "schemas"

    def namespaces(pattern: str) -> set[str | None]:
        return {etree.parse(str(p)).getroot().get("targetNamespace") for p in schemas.glob(pattern)}

    assert advertised <= namespaces("**/*.xsd")  # simservs/ holds one namespace in several files
    assert len(BUILTIN_SCHEMAS) == len(namespaces("*.xsd"))


# --- rls-services global index (RS6) ----------------------------------------------------


def test_global_index_is_the_union_of_every_users_index() -> None:
    alice = ("<?xml version='1.0' encoding='UTF-8'?>\n<r:rls-services xmlns:r=\"urn:ietf:params:xml:ns:rls-services\""
             " xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\"><r:service uri='sip:a@x'>"
             "<r:list><rl:entry uri=\"sip:b@x\"/><!-- keep me --></r:list></r:service>"
             "<r:service uri=\"sip:a2@x\"><r:resource-list>http://h/r/resource-lists/users/a/index</r:resource-list></r:service>"
             "</r:rls-services>")
    bob = rls_doc('\n  <service uri="sip:b@x"><resource-list>http://h/r/resource-lists/users/b/index</resource-list></service>')
    rows = [
        ("/xcap-root/rls-services/users/sip:bob@x/index", bob.encode()),
        ("/xcap-root/rls-services/users/sip:alice@x/index", alice.encode()),
        ("/xcap-root/rls-services/users/sip:alice@x/other",
         rls_doc('<service uri="sip:no@x"><list/></service>').encode()),
        ("/xcap-root/rls-services/global/index", rls_doc('<service uri="sip:no2@x"><list/></service>').encode()),
    ]
    body = rls_services_global_index(rows)
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<rls-services xmlns="urn:ietf:params:xml:ns:rls-services">\n'
        b'<r:service xmlns:r="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"'
        b" uri='sip:a@x'><r:list><rl:entry uri=\"sip:b@x\"/><!-- keep me --></r:list></r:service>\n"
        b'<r:service xmlns:r="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"'
        b' uri="sip:a2@x"><r:resource-list>http://h/r/resource-lists/users/a/index</r:resource-list></r:service>\n'
        b'<service xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"'
        b' uri="sip:b@x"><resource-list>http://h/r/resource-lists/users/b/index</resource-list></service>\n'
        b"</rls-services>\n"
    )
    validate(RLS, body, context(RLS, xui=None, root="/r/"))


def test_global_index_keeps_empty_services_and_own_declarations() -> None:
    doc = rls_doc('<service xmlns:v="urn:example:v" uri="sip:e@x"><list/><v:x/></service>')
    body = rls_services_global_index([("/xcap-root/rls-services/users/e/index", doc.encode())])
    assert b'<service xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"' \
           b' xmlns:v="urn:example:v" uri="sip:e@x"><list/><v:x/></service>' in body


def test_global_index_of_nothing_is_an_empty_document() -> None:
    body = rls_services_global_index([])
    assert etree.fromstring(body).tag == "{urn:ietf:params:xml:ns:rls-services}rls-services"
    assert len(etree.fromstring(body)) == 0


# --- OMA xcap-directory -----------------------------------------------------------------


def test_xcap_directory_groups_documents_by_auid() -> None:
    when = datetime(2024, 5, 2, 10, 15, tzinfo=timezone.utc)
    entries = [
        DirectoryEntry("resource-lists", "http://x/xcap-root/resource-lists/users/sip:me@x/index", "e1", when, 120),
        DirectoryEntry("pres-rules", "http://x/xcap-root/pres-rules/users/sip:me@x/index", 'e"2'),
        DirectoryEntry("resource-lists", "http://x/xcap-root/resource-lists/users/sip:me@x/archive", "e3"),
    ]
    body = xcap_directory_document(entries, auids=["rls-services"])
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-directory xmlns="urn:oma:xml:xdm:xcap-directory">\n'
        b'  <folder auid="pres-rules">\n'
        b'    <entry uri="http://x/xcap-root/pres-rules/users/sip:me@x/index" etag=\'e"2\'/>\n  </folder>\n'
        b'  <folder auid="resource-lists">\n'
        b'    <entry uri="http://x/xcap-root/resource-lists/users/sip:me@x/archive" etag="e3"/>\n'
        b'    <entry uri="http://x/xcap-root/resource-lists/users/sip:me@x/index" etag="e1"'
        b' last-modified="2024-05-02T10:15:00+00:00" size="120"/>\n  </folder>\n'
        b'  <folder auid="rls-services"/>\n</xcap-directory>\n'
    )
    validate("org.openmobilealliance.xcap-directory", body)
    assert body == xcap_directory_document(list(reversed(entries)), auids=["rls-services"])


# --- real client documents --------------------------------------------------------------

RCS_USER = "sip:+33612345678@sip.example.com"
DOUBANGO_USER = "sip:doubango@example.com"
ALICE = "sip:alice@example.com"
SIMSERVS = "simservs.ngn.etsi.org"
IMS_USER = "sip:+15551234567@ims.mnc001.mcc001.3gppnetwork.org"

#: (AUID from the README table, XUI, XCAP root, expected error or None for valid).
CLIENT_DOCUMENTS: dict[str, tuple[str, str | None, str, type[Conflict] | None]] = {
    "sipsimple/resource-lists-initial-oma-lists.xml": (RL, ALICE, "/xcap-root/", None),
    "sipsimple/resource-lists-addressbook.xml": (RL, ALICE, "/xcap-root/", None),
    "sipsimple/rls-services-resource-list-refs.xml": (RLS, ALICE, "/xcap-root/", None),
    "sipsimple/pres-rules-oma-external-lists.xml": (OMA_PRES_RULES, ALICE, "/xcap-root/", None),
    "sipsimple/pres-content-status-icon.xml": (PRES_CONTENT, ALICE, "/xcap-root/", None),
    "sipsimple/pidf-manipulation-offline-status.xml": (PIDF, ALICE, "/xcap-root/", None),
    "xcaplib/pres-rules-counterpath-whitelist-blacklist.xml": (PRES_RULES, ALICE, "/xcap-root/", None),
    "xcaplib/resource-lists-rfc4826-nested.xml": (RL, ALICE, "/xcap-root/", None),
    "xcaplib/rls-services-reference-and-inline.xml": (RLS, ALICE, "/xcap-root/", None),
    "jitsi/resource-lists-test-extension-attributes.xml": (RL, ALICE, "/xcap-root/", SchemaValidationError),
    "jitsi/pres-rules-rfc5025-example-cr-prefix.xml": (PRES_RULES, ALICE, "/xcap-root/", None),
    "jitsi/pres-content-test-description.xml": (PRES_CONTENT, ALICE, "/xcap-root/", None),
    "jitsi/resource-lists-contact-groups.xml": (RL, ALICE, "/xcap-root/", None),
    "jitsi/pres-rules-allow-block-polite-block.xml": (PRES_RULES, ALICE, "/xcap-root/", None),
    "jitsi/pres-content-account-image.xml": (PRES_CONTENT, ALICE, "/xcap-root/", SchemaValidationError),
    "rcsjta/resource-lists-rcs-default-lists.xml": (RL, RCS_USER, "/services/", None),
    "rcsjta/rls-services-rcs-pres-list.xml": (RLS, RCS_USER, "/services/", None),
    "rcsjta/pres-rules-oma-rcs-default-rules.xml": (OMA_PRES_RULES, RCS_USER, "/services/", None),
    "rcsjta/pres-content-rcs-status-icon.xml": (PRES_CONTENT, RCS_USER, "/services/", None),
    "rcsjta/pidf-manipulation-perm-presence.xml": (PIDF, RCS_USER, "/services/", None),
    "doubango/resource-lists-gsma-rcs-default-lists.xml": (RL, DOUBANGO_USER, "/services/", None),
    "doubango/rls-services-gsma-rcs-pres-lists.xml": (RLS, DOUBANGO_USER, "/services/", None),
    "doubango/pres-rules-oma-gsma-rcs.xml": (OMA_PRES_RULES, DOUBANGO_USER, "/services/", None),
    "doubango/pres-rules-ietf-default-namespace.xml": (PRES_RULES, DOUBANGO_USER, "/services/", None),
    "doubango/pidf-publish-person-device-mood.xml": (PIDF, DOUBANGO_USER, "/services/", SchemaValidationError),
    "kamailio/resource-lists-no-namespace-nested.xml": (RL, "smith", "/xcap-root/", SchemaValidationError),
    "kamailio/rls-services-no-namespace-inline-and-reference.xml": (RLS, None, "/xcap-root/", SchemaValidationError),
    "kamailio/pres-rules-draft-id-domain-identity.xml": (PRES_RULES, "smith", "/xcap-root/", SchemaValidationError),
    "ims-ut/documents/simservs-barring-acr-boic-ss-prefix.xml": (SIMSERVS, IMS_USER, "/", None),
    "ims-ut/documents/simservs-cdiv-four-rules-oir-restricted.xml": (SIMSERVS, IMS_USER, "/", None),
    "ims-ut/documents/simservs-default-new-subscriber.xml": (SIMSERVS, IMS_USER, "/", None),
    "ims-ut/invalid/simservs-cdiv-noreplytimer-out-of-range.xml": (SIMSERVS, IMS_USER, "/", SchemaValidationError),
    "ims-ut/invalid/simservs-oir-default-behaviour-bad-enum.xml": (SIMSERVS, IMS_USER, "/", SchemaValidationError),
}
DIALOG_RULES = "sipsimple/dialog-rules-oma-external-lists.xml"


@needs_fixtures
def test_every_client_document_has_a_verdict() -> None:
    # ims-ut keeps whole documents one level deeper (its README); fragments/ and odd/ are
    # element bodies, replayed in test_simservs.py
    found = {str(p.relative_to(FIXTURES)) for pattern in ("*/*.xml", "ims-ut/documents/*.xml", "ims-ut/invalid/*.xml")
             for p in FIXTURES.glob(pattern)}
    assert found == set(CLIENT_DOCUMENTS) | {DIALOG_RULES}


@needs_fixtures
@pytest.mark.parametrize("name", sorted(CLIENT_DOCUMENTS))
def test_client_document_verdict(name: str) -> None:
    auid, xui, root, expected = CLIENT_DOCUMENTS[name]
    body = (FIXTURES / name).read_bytes()
    ctx = context(auid, xui, root)
    if expected is None:
        validate(auid, body, ctx)
    else:
        refused(auid, body, expected, ctx)


@needs_fixtures
def test_client_dialog_rules_document_is_valid_dialog_rules() -> None:
    validate("org.openxcap.dialog-rules", (FIXTURES / DIALOG_RULES).read_bytes())


@needs_fixtures
def test_client_latin1_wire_bytes_are_not_utf8() -> None:
    # README: not-utf-8 or not-well-formed (requirements §10 item 13); we name the encoding
    body = (FIXTURES / "jitsi/not-well-formed/resource-lists-contact-groups-wire-latin1.xml").read_bytes()
    refused(RL, body, NotUTF8)


@needs_fixtures
def test_client_sipsimple_services_clash_with_the_same_uri_plainly_spelt() -> None:
    body = (FIXTURES / "sipsimple/rls-services-resource-list-refs.xml").read_bytes()
    taken = other_users(rls_ref_service("sip:alice+presence@example.com", "x"))
    error = refused(RLS, body, UniquenessFailure, context(RLS, ALICE, documents=taken))
    assert isinstance(error, UniquenessFailure)
    assert error.exists[0][0] == "rls-services/service%5B1%5D/@uri"


@needs_fixtures
def test_client_global_index_of_real_documents_is_valid() -> None:
    rows = [(f"/xcap-root/rls-services/users/u{i}/index", (FIXTURES / name).read_bytes())
            for i, name in enumerate(n for n, v in CLIENT_DOCUMENTS.items() if v[0] == RLS and v[3] is None)]
    body = rls_services_global_index(rows)
    root = etree.fromstring(body)
    assert len(root) == 7
    assert compiled_schema(BUILTIN_SCHEMAS).validate(root)

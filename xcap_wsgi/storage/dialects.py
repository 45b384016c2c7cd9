"""Whose ``xcap`` table this is: Kamailio's layout or OpenSIPS's (table-dialects.md).

::

    storage = MySQLStorage(url, "xcap", schema="opensips")   # create OpenSIPS's layout, or verify it
    storage = MySQLStorage(url, "xcap")                      # an existing table: detected at start
    storage.dialect.name                                     # "kamailio" or "opensips"

Both presence servers read the same columns; the layouts differ in the unique key and in what
OpenSIPS's reader asks for:

- **Kamailio** declares ``UNIQUE (doc_uri)``: a row is found and written by ``doc_uri``.
- **OpenSIPS** declares ``UNIQUE (username, domain, doc_type, doc_uri)`` and no index on
  ``doc_uri`` alone, so every statement names the whole key: a read or a ``SELECT ... FOR
  UPDATE`` by ``doc_uri`` alone would scan (and, in InnoDB, lock) the table. Its ``CHAR``
  columns come back without their padding (MySQL strips it, and its PAD SPACE collations
  compare ``'a'`` and ``'a '`` equal): rows are only ever found by the key in SQL, and no value
  read back is compared with one held elsewhere (the service index joins in SQL too). ETags
  are 32 hex digits, inside its ``etag CHAR(64)`` (PostgreSQL: ``VARCHAR(64)``).

The dialect of an existing table is read from the column set of its one unique key, never from
an index name (PostgreSQL's ``xcap_account_doc_type_idx`` is a plain index in Kamailio's layout
and the unique key in OpenSIPS's); anything else is refused at start.

doc_type codes are Kamailio's everywhere above storage (:mod:`xcap_wsgi.usages`); the one code
OpenSIPS gives otherwise is mapped here, and only here: OMA pres-rules are stored under 32
(OpenSIPS's ``OMA_PRES_RULES``) in OpenSIPS's layout and 2 in Kamailio's. 32 is Kamailio's
``xcap-caps``, which is generated and never stored, so a 32 read back from an OpenSIPS table
under the OMA AUID is OMA pres-rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from xcap_wsgi.storage.base import DocKey

KAMAILIO = "kamailio"
OPENSIPS = "opensips"
SCHEMAS = (KAMAILIO, OPENSIPS)

PRES_RULES = 2
OMA_PRES_RULES_AUID = "org.openmobilealliance.pres-rules"
#: OpenSIPS's ``OMA_PRES_RULES`` (modules/xcap/doc.h)
OPENSIPS_OMA_PRES_RULES = 32

#: the columns naming a document's owner, which OpenSIPS's key starts with
OWNER_COLUMNS = ("username", "domain")


def auid_of(doc_uri: str) -> str:
    """The AUID of a stored ``doc_uri`` (``<root><auid>/users/...`` or ``<root><auid>/global/...``):
    the segment before the first ``users`` or ``global`` one; "" when there is none."""
    segments = doc_uri.split("/")
    for i, segment in enumerate(segments[1:], 1):
        if segment in ("users", "global"):
            return segments[i - 1]
    return ""


@dataclass(frozen=True)
class Dialect:
    """One layout: its unique key and the doc_type codes it stores."""

    name: str
    #: whose layout, as the project spells its name
    project: str
    #: the columns of the table's unique key, in key order
    unique_key: tuple[str, ...]

    @property
    def where(self) -> str:
        """The condition naming one row by the whole unique key (``{p}`` placeholders)."""
        return " AND ".join(f"{column} = {{p}}" for column in self.unique_key)

    def key_params(self, key: DocKey) -> tuple[object, ...]:
        """:attr:`where`'s parameters for ``key`` (as :meth:`stored` gives it)."""
        return tuple(getattr(key, column) for column in self.unique_key)

    def join(self, alias: str, doc_type: int) -> str:
        """The condition joining rows of another table (``alias``, with ``doc_uri`` and, in a key
        of more columns, ``username`` and ``domain``) to the xcap row ``x`` of ``doc_type``,
        through the unique key, so each lookup is one index probe."""
        owner = "".join(f" AND x.{column} = {alias}.{column}" for column in OWNER_COLUMNS if self.keyed_by_owner)
        return f"x.doc_uri = {alias}.doc_uri AND x.doc_type = {int(doc_type)}{owner}"

    @property
    def keyed_by_owner(self) -> bool:
        """Whether rows that point at xcap rows must carry username and domain (OpenSIPS)."""
        return "username" in self.unique_key

    def stored(self, key: DocKey) -> DocKey:
        """``key`` with the doc_type this layout stores (OMA pres-rules: 32 in OpenSIPS's)."""
        if self.name == OPENSIPS and key.doc_type == PRES_RULES and auid_of(key.doc_uri) == OMA_PRES_RULES_AUID:
            return replace(key, doc_type=OPENSIPS_OMA_PRES_RULES)
        return key

    def canonical(self, doc_type: int, doc_uri: str) -> int:
        """A stored doc_type as the usages name it (Kamailio's codes): :meth:`stored` undone.
        Rows whose doc_uri names no AUID (OpenXCAP's, which use OpenSIPS's codes) keep theirs."""
        oma = doc_type == OPENSIPS_OMA_PRES_RULES and auid_of(doc_uri) == OMA_PRES_RULES_AUID
        return PRES_RULES if self.name == OPENSIPS and oma else doc_type


DIALECTS = {
    KAMAILIO: Dialect(KAMAILIO, "Kamailio", ("doc_uri",)),
    OPENSIPS: Dialect(OPENSIPS, "OpenSIPS", ("username", "domain", "doc_type", "doc_uri")),
}


def dialect_named(schema: str | None) -> Dialect | None:
    """The dialect ``schema`` names (None: detect it); ValueError for another name."""
    if schema is None:
        return None
    if schema not in DIALECTS:
        raise ValueError(f"schema must be one of {', '.join(SCHEMAS)}, got {schema!r}")
    return DIALECTS[schema]


def detect(table: str, unique_keys: Iterable[tuple[str, ...]]) -> Dialect:
    """The dialect of an existing table from the column sets of its unique, non-primary keys.
    ValueError naming the table and what was found when neither layout's key is there."""
    keys = [tuple(column.lower() for column in key) for key in unique_keys]
    found = [d for d in DIALECTS.values() if d.unique_key in keys]
    if len(found) == 1:
        return found[0]
    shown = "; ".join("(" + ", ".join(key) + ")" for key in keys) or "none"
    raise ValueError(
        f"table {table!r} is neither Kamailio's xcap layout (unique key on doc_uri) nor OpenSIPS's"
        f" (unique key on username, domain, doc_type, doc_uri): its unique keys are {shown}"
    )


def check(table: str, found: Dialect, wanted: Dialect | None) -> Dialect:
    """``found``, unless the configured schema is another: ValueError then (nothing is altered)."""
    if wanted is not None and wanted != found:
        raise ValueError(f"table {table!r} has {found.project}'s xcap layout, but the schema"
                         f" {wanted.name!r} was asked for; use --schema {found.name} or another table")
    return found

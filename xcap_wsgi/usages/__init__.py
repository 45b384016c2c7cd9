"""The registry of XCAP application usages (RFC 4825 §5, requirements M1, U13, U17).

Each usage family lives in its own module and declares its AUIDs with their default
document namespace, MIME type and the ``doc_type`` code Kamailio's presence and RLS
modules read from the ``xcap`` table (kamailio-compat.md). An integrator adds a usage
of their own with :func:`register`::

    from xcap_wsgi.usages import ApplicationUsage, register

    register(ApplicationUsage(
        auid="com.example.notes",
        mime_type="application/vnd.example.notes+xml",
        namespace="urn:example:notes",
        doc_type=1024,
    ))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class ApplicationUsage:
    """One AUID: what documents under it are and how they are stored.

    ``generated`` usages (xcap-caps, the OMA directory) are computed by the server
    and never written by clients.
    """

    auid: str
    mime_type: str
    namespace: str
    doc_type: int
    generated: bool = False

    def __post_init__(self) -> None:
        if not AUID_RE.match(self.auid):
            raise ValueError(f"invalid AUID {self.auid!r} (RFC 4825 §5.1: a token or a reverse-domain name)")
        if "/" not in self.mime_type:
            raise ValueError(f"invalid MIME type {self.mime_type!r} for AUID {self.auid!r}")


_REGISTRY: dict[str, ApplicationUsage] = {}


def register(usage: ApplicationUsage) -> ApplicationUsage:
    """Add (or replace) the usage for ``usage.auid``; returns it."""
    _REGISTRY[usage.auid] = usage
    return usage


def get_usage(auid: str) -> ApplicationUsage | None:
    """The usage registered for ``auid``, or None (the caller answers 404, U13)."""
    return _REGISTRY.get(auid)


def all_usages() -> list[ApplicationUsage]:
    return sorted(_REGISTRY.values(), key=lambda u: u.auid)


from xcap_wsgi.usages import caps, oma, pidf, pres_rules, resource_lists  # noqa: E402,F401  (registers)

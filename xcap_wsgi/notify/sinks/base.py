"""What every notifier target implements: deliver the pending changes of one document.

A sink is given the pending events of **one** document in commit order and either
returns (all delivered), or raises :class:`DeliveryError`. The delivery thread retries a
retryable failure with backoff and marks the events failed after the configured number
of attempts; a permanent one is marked failed at once. ``delivered`` says how many of the
leading events got through before the failure (they are not sent again).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from xcap_wsgi.notify.events import ChangeEvent


class DeliveryError(Exception):
    """A delivery failed.

    ``retry``: whether trying again can help (a target down or busy) or not (the
    target's module is not loaded). ``target_down``: the target could not be reached
    at all, so the other documents' events wait too instead of failing one by one.
    """

    def __init__(self, message: str, *, retry: bool = True, target_down: bool = False, delivered: int = 0) -> None:
        super().__init__(message)
        self.retry = retry
        self.target_down = target_down
        self.delivered = delivered


class Sink(ABC):
    """One notifier target. ``name`` is stable across restarts: it keys the outbox rows."""

    name: str
    #: how many documents' notifications may be in flight at once (deliver is then called
    #: from that many threads; one document's events are never split between them)
    parallel: int = 4

    @abstractmethod
    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        """Tell the target about these changes of one document (commit order)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections; called when delivery stops."""

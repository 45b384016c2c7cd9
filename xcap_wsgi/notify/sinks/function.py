"""A Python callable as a notifier target, for integrators who push changes elsewhere.

::

    def on_change(event: ChangeEvent) -> None:
        queue.publish(event.to_json())

    XCAPMiddleware(app, db_url=..., notify=[on_change])

The callable runs on the delivery thread, once per event in commit order; an exception
counts as a failed delivery of that event (retried with backoff, the events before it
are not sent again); raising ``DeliveryError(..., retry=False)`` marks it failed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink


def callable_name(function: Callable[..., object]) -> str:
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"callable:{module}.{qualname}"


class CallableSink(Sink):
    parallel = 1  # an integrator's callable sees one event at a time, in commit order

    def __init__(self, function: Callable[[ChangeEvent], object]) -> None:
        if not callable(function):
            raise ValueError(f"notify target {function!r} is neither a URL nor callable")
        self.function = function
        self.name = callable_name(function)

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        for done, event in enumerate(events):
            try:
                self.function(event)
            except DeliveryError as exc:  # the callable says whether retrying can help
                exc.delivered = done
                raise
            except Exception as exc:
                raise DeliveryError(f"{self.name} raised {exc.__class__.__name__}: {exc}", delivered=done) from exc

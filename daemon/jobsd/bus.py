"""The in-process bus: the journal publishes every fact it recorded; subscribers react.

Subscribers run on the event loop, synchronously, in the order they subscribed, right after the
fact's transaction committed and its run folder's files were queued. They must be quick and must
not record anything themselves through the publishing call (schedule work instead). A subscriber
that raises is logged and the others still run: a bug in one must not undo a recorded change.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from jobsd_lib.facts import Fact

__all__ = ["Bus"]

log = logging.getLogger("jobsd.bus")


class Bus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[tuple[type[Fact], ...], Callable[[Fact], None]]] = []

    def subscribe(self, callback: Callable[[Fact], None], *types: type[Fact]) -> None:
        """Call `callback(fact)` for every published fact of one of `types` (all facts when none given)."""
        self._subscribers.append((types or (Fact,), callback))

    def publish(self, fact: Fact) -> None:
        for types, callback in self._subscribers:
            if isinstance(fact, types):
                try:
                    callback(fact)
                except Exception:  # noqa: BLE001 - see the module's docstring
                    log.exception("subscriber %r failed on %s", callback, fact.TYPE)

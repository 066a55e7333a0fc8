"""Ctrl-C while dbt runs: dbt stops as always, without printing its traceback.

dbt reports the KeyboardInterrupt that ends an invocation as an empty "Encountered an
error:" and a traceback through its own code; the command says what happened instead
(exit 130, the jobs keep running and the next build resumes them).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

# dbt's own report of an exception that ended an invocation: for Ctrl-C it is an empty
# "Encountered an error:" and a traceback through dbt's code, which say nothing.
_ENDING_EVENTS = frozenset({"MainEncounteredError", "MainStackTrace"})


@contextlib.contextmanager
def interrupt_quietly() -> Any:
    """While dbt runs: Ctrl-C stops it as always (a KeyboardInterrupt, which dbt passes
    on after cancelling its queries), but dbt does not print its traceback. Yields the
    event set when Ctrl-C was pressed. Only in the main thread, and only where Ctrl-C
    has Python's default meaning (nobody else's handler is replaced)."""
    interrupted = threading.Event()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupted
        return
    from dbt_common.events.event_manager_client import get_event_manager

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.set()
        signal.default_int_handler(signum, frame)

    manager = get_event_manager()
    fire = manager.fire_event

    def fire_event(event: Any, *args: Any, **kwargs: Any) -> None:
        if interrupted.is_set() and type(event).__name__ in _ENDING_EVENTS:
            return
        fire(event, *args, **kwargs)

    signal.signal(signal.SIGINT, on_sigint)
    manager.fire_event = fire_event  # type: ignore[method-assign]
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(AttributeError):
            del manager.fire_event  # type: ignore[attr-defined]

"""SIGINT / SIGTERM: during training finish the current step, checkpoint, exit cleanly; during
work that has no steps to finish (the final evaluation) stop at once, cleanly."""

import contextlib
import signal
import threading

from pyro_mvae.errors import Interrupted


class StopRequest:
    """Set by SIGINT or SIGTERM while :func:`catch_stop_signals` is active."""

    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        self.signum = signum


@contextlib.contextmanager
def catch_stop_signals():
    """Within the block, SIGINT and SIGTERM only set the yielded :class:`StopRequest` (the loop
    checks it after every step); the previous handlers come back on exit. Outside the main
    thread (where Python cannot install handlers) the request is never set."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request._handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def interrupt_on_stop_signals(message: str):
    """Within the block, SIGINT and SIGTERM raise :class:`~pyro_mvae.errors.Interrupted` with
    ``message`` where the code stands (no traceback at the command line); the previous handlers
    come back on exit. Outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Interrupted(signum, message)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

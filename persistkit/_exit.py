"""Flush open stores at normal interpreter exit and on SIGTERM.

Every CheckpointStore registers itself here when it opens and unregisters when it
closes. At interpreter exit the registered stores are closed, which flushes pending
uploads and releases leases. On SIGTERM they are flushed but left open, then the
previous SIGTERM handler runs, or the default action ends the process with the usual
SIGTERM status.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from typing import Any, Protocol

from persistkit._urls import redact_text

__all__ = ["EXIT_FLUSH_TIMEOUT", "register_for_exit", "unregister_for_exit"]

logger = logging.getLogger(__name__)


class _Flushable(Protocol):
    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, *, timeout: float | None = None) -> None: ...


# Stores that are still open when the interpreter exits or receives SIGTERM.
_OPEN_STORES: weakref.WeakSet[Any] = weakref.WeakSet()
EXIT_FLUSH_TIMEOUT = 60.0
_exit_hooks_installed = False
_previous_sigterm_handler: Any = None


def register_for_exit(store: _Flushable) -> None:
    """Flush ``store`` on SIGTERM and close it at interpreter exit, unless closed before."""
    _OPEN_STORES.add(store)
    _install_exit_hooks()


def unregister_for_exit(store: _Flushable) -> None:
    """Undo :func:`register_for_exit`; called by ``close``."""
    _OPEN_STORES.discard(store)


def _flush_open_stores(*, close: bool) -> None:
    for store in list(_OPEN_STORES):
        try:
            if close:
                store.close(timeout=EXIT_FLUSH_TIMEOUT)
            else:
                store.flush(timeout=EXIT_FLUSH_TIMEOUT)
        except Exception as exc:
            logger.error("Checkpoints were not saved before exit: %s", redact_text(str(exc)))


def _close_open_stores() -> None:
    _flush_open_stores(close=True)


def _install_exit_hooks() -> None:
    global _exit_hooks_installed, _previous_sigterm_handler
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_close_open_stores)
    if threading.current_thread() is not threading.main_thread():
        # NOTE: signal handlers can only be installed from the main thread; a store
        # first created in another thread flushes at exit but not on SIGTERM.
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:
        return
    _previous_sigterm_handler = previous
    signal.signal(signal.SIGTERM, _flush_on_sigterm)


def _flush_on_sigterm(signum: int, frame: Any) -> None:
    # Flush without closing: a previous handler may let the program save a last
    # checkpoint before it exits.
    logger.warning("Received SIGTERM; flushing pending checkpoints")
    _flush_open_stores(close=False)
    previous = _previous_sigterm_handler
    if callable(previous):
        previous(signum, frame)
        return
    # Restore the default action and deliver the signal again, so that the process
    # ends with the status a SIGTERM normally gives.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)

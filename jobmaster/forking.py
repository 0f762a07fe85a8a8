"""One registry of what must be forgotten in a forked child.

Connections, pools, threads and locks inherited from a parent process must not be used in
a child: a socket shared by two processes interleaves their traffic. Every object that
holds such a resource registers a callback here once; ``os.register_at_fork`` runs them all
in the child, right after ``fork()``, whoever forked (the worker's pool, a handler, a web
server's pre-fork model).

Callbacks are held weakly through their object, so registering never keeps an agent or an
app alive, and a callback that fails is logged and skipped: a child always starts.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("jobmaster")

T = TypeVar("T")

_callbacks: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []
_lock = threading.Lock()


def after_fork(owner: T, forget: Callable[[T], None]) -> None:
    """Call ``forget(owner)`` in every child forked from now on, while ``owner`` lives.

    ``forget`` should drop (not close) what the parent still uses: a child closing a
    shared socket would close it for the parent too."""
    with _lock:
        _callbacks.append((weakref.ref(owner), forget))


def run_after_fork() -> None:
    """Run every registered callback (done by ``os.register_at_fork``; tests call it)."""
    global _lock
    _lock = threading.Lock()  # the parent's lock may have been held by another thread
    alive: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []
    for ref, forget in _callbacks:
        owner = ref()
        if owner is None:
            continue
        alive.append((ref, forget))
        try:
            forget(owner)
        except Exception:  # noqa: BLE001 - one bad callback must not stop a child starting
            log.exception("forgetting %r after fork failed", type(owner).__name__)
    _callbacks[:] = alive


os.register_at_fork(after_in_child=run_after_fork)

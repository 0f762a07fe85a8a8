"""Named locks across the cluster, with fencing tokens: ``app.lock("nightly-report")``.

A lock is a lease in the master (``jobmaster_leases``, the table beat's leadership uses):
one holder at a time until its ``ttl`` runs out, unless it extends it. Every new holder gets
a larger ``token`` than the one before, so a resource that remembers the largest token it
saw can refuse a holder whose ttl ran out while it was paused (a fencing token): see
``Lock.check``. Only the holder releases or extends its lock.
"""

from __future__ import annotations

import math
import time
import uuid
from types import TracebackType
from typing import Any

from jobmaster.exceptions import InvalidOptionError, LockLostError, LockNotAcquiredError
from jobmaster.host import AppResources
from jobmaster.options import MAX_SECONDS, check_name


class Lock:
    """A lock named ``name`` in the app's cluster; not held until ``acquire`` (or ``with``).

    ``ttl``: seconds the lock stays held without ``extend``; ``wait``: seconds ``with`` (and
    ``acquire()`` without a timeout) waits for it before ``LockNotAcquiredError`` (``None``:
    for ever, ``0``: not at all)."""

    def __init__(self, app: AppResources, name: str, *, ttl: float = 60.0,
                 wait: float | None = None) -> None:
        self.name = check_name(name, "name")
        self.ttl = _seconds(ttl, "ttl", allow_zero=False)
        self.wait = None if wait is None else _seconds(wait, "wait", allow_zero=True)
        self._app = app
        self._lease = f"lock:{app.name}:{name}"
        if len(self._lease) > 200:
            raise InvalidOptionError(f"name={name!r}: a lock name and its cluster id take at "
                                     "most 194 characters together")
        self._owner = uuid.uuid4().hex
        self._token: int | None = None

    def __repr__(self) -> str:
        state = f"token={self._token}" if self._token is not None else "not held"
        return f"<Lock {self.name!r} {state}>"

    @property
    def token(self) -> int:
        """The fencing token of this holding: larger than every holder's before it."""
        if self._token is None:
            raise LockNotAcquiredError(f"lock {self.name!r} is not held by this object")
        return self._token

    def locked(self) -> bool:
        """Whether this object holds the lock (as far as it knows: see ``check``)."""
        return self._token is not None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; wait for it (``blocking``) up to ``timeout`` seconds (default:
        the lock's ``wait``). Returns whether it is held now."""
        limit = self.wait if timeout is None else _seconds(timeout, "timeout", allow_zero=True)
        deadline = None if limit is None else time.monotonic() + limit
        pause = 0.02
        while True:
            epoch = self._app.master.acquire_lease(self._lease, self._owner, self.ttl)
            if epoch is not None:
                self._token = epoch
                return True
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            left = None if deadline is None else deadline - time.monotonic()
            time.sleep(pause if left is None else max(min(pause, left), 0.0))
            pause = min(pause * 2, 0.5)

    def extend(self, ttl: float | None = None) -> None:
        """Hold the lock ``ttl`` more seconds from now (default: the lock's ttl);
        ``LockLostError`` if it ran out and someone else took it meanwhile."""
        held = self.token
        seconds = self.ttl if ttl is None else _seconds(ttl, "ttl", allow_zero=False)
        epoch = self._app.master.acquire_lease(self._lease, self._owner, seconds)
        if epoch != held:
            self._token = None
            raise LockLostError(f"lock {self.name!r} was lost (token {held}): its ttl ran out "
                                "before it was extended")

    def check(self) -> None:
        """``LockLostError`` unless this object still holds the lock with its token:
        call it before a write that the lock protects."""
        held = self.token
        current = self._app.master.lease_holder(self._lease)
        if current is None or current[0] != self._owner or current[1] != held or \
                current[2].timestamp() <= time.time():
            raise LockLostError(f"lock {self.name!r} is no longer held with token {held}")

    def release(self) -> None:
        """Give the lock up now (only its holder can: a lock lost meanwhile stays with
        whoever holds it)."""
        held = self.token
        self._token = None
        self._app.master.release_lease(self._lease, self._owner, held)

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockNotAcquiredError(
                f"lock {self.name!r} is held by another holder; waited {self.wait:g} s"
                if self.wait is not None else f"lock {self.name!r} could not be acquired")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            self.release()


def _seconds(value: Any, argument: str, *, allow_zero: bool) -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero) or value > MAX_SECONDS):
        raise InvalidOptionError(f"{argument}={value!r} must be a number of seconds "
                                 f"{'from 0' if allow_zero else 'above 0'} up to {MAX_SECONDS:g}")
    return float(value)

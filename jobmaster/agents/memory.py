"""In-process agent for tests and single-process use (``memory://``).

Nothing leaves the process and nothing survives it; a ``--pool solo`` or ``threads``
worker and the producer must share the process. Agents with the same URL and namespace in
one process share their store (per agent name), so an app and its in-process worker see
the same jobs. A forked child keeps a copy of the store as it was at the fork, with a fresh
lock (the parent's may have been held by a thread that does not exist in the child).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    check_messages,
    storable_reason,
)
from jobmaster.forking import after_fork


@dataclass(slots=True)
class _Entry:
    message: AgentMessage
    seq: int
    lease_until: float | None = None
    deliveries: int = 0


class _Store:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.entries: dict[str, _Entry] = {}
        # per lane: heap of (-priority, due, seq, id); stale items are skipped lazily
        self.waiting: dict[str, list[tuple[int, float, int, str]]] = {}
        self.dead: list[DeadLetter] = []
        self.counter = itertools.count()


_STORES: dict[tuple[str, str, str], _Store] = {}
_STORES_LOCK = threading.Lock()


class MemoryAgent(Agent):
    """An agent held in this process's memory. Fast, shared by nothing, durable to nothing."""

    capabilities = Capabilities(notify=True, delayed=True, durable=False, shared=False)

    def __init__(self, url: str = "memory://", *, name: str = "main", namespace: str = "jobmaster"):
        super().__init__(url, name=name, namespace=namespace)
        with _STORES_LOCK:
            self._store = _STORES.setdefault((url, namespace, name), _Store())
        after_fork(self, MemoryAgent._forget)

    def _forget(self) -> None:
        """In a forked child: a fresh lock for the store copied from the parent."""
        self._store.cond = threading.Condition()

    def _enqueue(self, entry: _Entry) -> None:
        m = entry.message
        heap = self._store.waiting.setdefault(m.lane, [])
        heapq.heappush(heap, (-m.priority, m.due, entry.seq, m.id))

    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages in the process's memory; ids already held are ignored."""
        check_messages(messages)
        store = self._store
        with store.cond:
            for message in messages:
                if message.id in store.entries:
                    continue
                entry = _Entry(message, next(store.counter))
                store.entries[message.id] = entry
                self._enqueue(entry)
            store.cond.notify_all()

    def _requeue_expired(self, now: float) -> None:
        for entry in self._store.entries.values():
            if entry.lease_until is not None and entry.lease_until <= now:
                entry.lease_until = None
                entry.seq = next(self._store.counter)
                self._enqueue(entry)

    def _take(self, lanes: Sequence[str], limit: int, lease_seconds: float) -> list[Claimed]:
        store = self._store
        now = time.time()
        self._requeue_expired(now)
        taken: list[Claimed] = []
        while len(taken) < limit:
            best: tuple[int, float, int, str] | None = None
            best_lane = ""
            for lane in lanes:
                heap = store.waiting.get(lane)
                while heap:
                    top = heap[0]
                    entry = store.entries.get(top[3])
                    if entry is None or entry.seq != top[2] or entry.lease_until is not None:
                        heapq.heappop(heap)  # stale: acked, re-pushed or claimed
                        continue
                    break
                if heap and heap[0][1] <= now and (best is None or heap[0] < best):
                    best, best_lane = heap[0], lane
            if best is None:
                break
            heapq.heappop(store.waiting[best_lane])
            entry = store.entries[best[3]]
            entry.lease_until = now + lease_seconds
            entry.deliveries += 1
            taken.append(Claimed(entry.message, entry.seq, entry.deliveries))
        return taken

    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Take up to ``limit`` due messages; wait on a condition variable for pushes."""
        deadline = time.monotonic() + wait
        store = self._store
        with store.cond:
            while True:
                taken = self._take(lanes, limit, lease_seconds)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                store.cond.wait(min(remaining, 0.05))

    def _owned(self, claim: Claimed) -> _Entry | None:
        entry = self._store.entries.get(claim.message.id)
        if entry is None or entry.seq != claim.receipt:
            return None
        return entry

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Forget the claimed messages still held under these claims."""
        with self._store.cond:
            for claim in claims:
                if self._owned(claim) is not None:
                    del self._store.entries[claim.message.id]

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace claimed messages with new versions and make them wait again."""
        check_messages([m for _, m in items])
        store = self._store
        with store.cond:
            for claim, message in items:
                entry = self._owned(claim)
                if entry is None:
                    continue
                entry.message = message
                entry.lease_until = None
                entry.seq = next(store.counter)
                self._enqueue(entry)
            store.cond.notify_all()

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Renew the leases of the claims still held."""
        until = time.time() + lease_seconds
        with self._store.cond:
            for claim in claims:
                entry = self._owned(claim)
                if entry is not None and entry.lease_until is not None:
                    entry.lease_until = until

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed messages to the store's dead letters with their reasons."""
        store = self._store
        with store.cond:
            for claim, reason in items:
                if self._owned(claim) is None:
                    continue
                del store.entries[claim.message.id]
                kept = storable_reason(reason, self.reason_limit_bytes)
                store.dead.append(
                    DeadLetter(claim.message, kept, time.time(), next(store.counter))
                )

    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The latest dead letters, newest first (older than ``before`` if given)."""
        if limit <= 0:
            return []
        with self._store.cond:
            dead = self._store.dead
            if before is not None:
                dead = [d for d in dead if d.key < before.key]
            return list(reversed(dead[-limit:]))

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these message ids, newest first."""
        wanted = set(ids)
        with self._store.cond:
            return [d for d in reversed(self._store.dead) if d.message.id in wanted]

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (by key); return those that were still there."""
        keys = {d.key for d in letters}
        store = self._store
        with store.cond:
            gone = [d for d in store.dead if d.key in keys]
            store.dead = [d for d in store.dead if d.key not in keys]
        return gone

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete every dead letter, or those older than ``before``; return how many."""
        store = self._store
        with store.cond:
            kept = [] if before is None else [d for d in store.dead if d.at >= before]
            count = len(store.dead) - len(kept)
            store.dead = kept
            return count

    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of held messages, in push order."""
        start = int(after or -1)
        with self._store.cond:
            entries = sorted((e for e in self._store.entries.values() if e.seq > start),
                             key=lambda e: e.seq)[:limit]
        page = [(e.message.id, e.message.body) for e in entries]
        return page, (str(entries[-1].seq) if len(entries) == limit else None)

    def length(self, bucket: Bucket | None = None) -> int:
        """Messages held, waiting or claimed, in one bucket or in all."""
        with self._store.cond:
            if bucket is None:
                return len(self._store.entries)
            return sum(1 for e in self._store.entries.values() if e.message.bucket == bucket)

    def purge(self) -> int:
        """Drop every message and dead letter of the store."""
        store = self._store
        with store.cond:
            count = len(store.entries)
            store.entries.clear()
            store.waiting.clear()
            store.dead.clear()
            return count

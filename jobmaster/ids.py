"""Job ids: UUIDv7 strings, ordered by creation time (kind to database indexes)."""

from __future__ import annotations

import itertools
import os
import time

_state: tuple[int, int, itertools.count[int]] | None = None


def new_job_id() -> str:
    """A new UUIDv7 (RFC 9562) as a string: 48 bits of Unix milliseconds, then 74 bits
    made of a random per-process prefix and a counter (unique without a syscall per id;
    a forked child draws a new prefix)."""
    global _state
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        _state = (pid, int.from_bytes(os.urandom(6), "big") >> 6, itertools.count(
            int.from_bytes(os.urandom(4), "big")))
    _, prefix, counter = _state
    ms = time.time_ns() // 1_000_000
    tail = (prefix << 32 | (next(counter) & 0xFFFF_FFFF)) & ((1 << 74) - 1)
    rand_a, rand_b = tail >> 62, tail & ((1 << 62) - 1)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

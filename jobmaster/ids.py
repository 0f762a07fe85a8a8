"""Job ids: UUIDv7 strings, ordered by creation time (kind to database indexes)."""

from __future__ import annotations

import os
import time
import uuid


def new_job_id() -> str:
    """A new UUIDv7 (RFC 9562) as a string: 48 bits of Unix milliseconds, then random."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))

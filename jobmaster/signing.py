"""Signed envelopes: an HMAC over what makes a job that job — its id, cluster, definition,
lane, encoding and arguments — carried in the envelope's header as ``sig``.

A worker of an app that signs refuses (dead-letters) an envelope whose signature is
missing or does not verify, so arguments signed for one job cannot be replayed under
another id, definition or cluster, nor can anyone without the key put jobs on a shared
broker. Retries keep their signature (none of the signed fields changes); beat and
``app.jobs.retry`` sign what they push.

Keys rotate: ``secret=[new, old, ...]`` signs with the first and accepts any of them. Put
the new key first everywhere, wait until no envelope signed with the old key is left in
the agents (its jobs ran or were retried), then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobmaster.envelope import Envelope

_DOMAIN = b"jobmaster-envelope-v1\x00"


class Signer:
    """Signs envelopes with the first key and verifies them against every key."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or not all(keys):
            raise ValueError("signing needs at least one non-empty key")
        self._keys = tuple(keys)

    def __repr__(self) -> str:
        return f"Signer(<{len(self._keys)} key(s) hidden>)"

    def sign(self, env: Envelope) -> str:
        """The signature of ``env`` with the current key."""
        return _mac(self._keys[0], env)

    def verify(self, env: Envelope) -> bool:
        """Whether ``env`` carries a signature made with one of the keys."""
        given = env.signature
        if not given:
            return False
        return any(hmac.compare_digest(given, _mac(key, env)) for key in self._keys)


def _mac(key: bytes, env: Envelope) -> str:
    signed = b"\x00".join((env.id.encode(), env.cluster.encode(), env.definition_id.encode(),
                           env.lane.encode(), env.encoding.encode()))
    digest = hmac.new(key, _DOMAIN + signed + b"\x00" + env.payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def keys_of(secret: str | Sequence[str] | None) -> list[bytes]:
    """The keys a ``secret`` setting holds, newest first."""
    if not secret:
        return []
    values = [secret] if isinstance(secret, str) else list(secret)
    return [v.encode() for v in values]


__all__ = ["Signer", "keys_of"]

"""The envelope: how one job travels through an agent.

An envelope is a one-line JSON header, a newline, then the encoded arguments untouched::

    {"id":"...","definition_id":"add","lane":"default",...}\\n{"x":1,"y":2}

Workers read the header without decoding the arguments; agents never look inside at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from jobmaster.agents.base import AgentMessage

try:  # orjson is optional: faster headers where it is installed
    import orjson

    def _dumps(value: dict[str, Any]) -> bytes:
        return orjson.dumps(value)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


class EnvelopeError(ValueError):
    """Bytes that are not a jobmaster envelope (the worker dead-letters them)."""


@dataclass(slots=True)
class Envelope:
    """One job as it travels: identity, routing, retry policy and the encoded arguments.

    Treat it as immutable (``next_attempt`` makes a changed copy); it is not frozen only
    because frozen dataclasses are several times slower to build, and workers build one
    per job claimed.

    ``attempt`` is 1 on the first run and grows by one on each retry. Times are Unix
    timestamps. ``agent`` names the app agent the job was routed to.
    """

    id: str
    cluster: str
    definition_id: str
    lane: str
    priority: int
    encoding: str
    payload: bytes = field(repr=False)
    created_at: float
    due: float
    attempt: int = 1
    max_retries: int = 0
    timeout: float | None = None
    retry_delay: float = 10.0
    retry_backoff: float = 2.0
    metadata: dict[str, Any] = field(default_factory=dict)
    job_key: str | None = None
    agent: str = "main"
    schedule_name: str | None = None
    occurrence: float | None = None

    def to_bytes(self) -> bytes:
        """The wire form: header line + newline + payload."""
        header = {
            "id": self.id, "cluster": self.cluster, "definition_id": self.definition_id,
            "lane": self.lane, "priority": self.priority, "encoding": self.encoding,
            "created_at": self.created_at, "due": self.due, "attempt": self.attempt,
            "max_retries": self.max_retries, "timeout": self.timeout,
            "retry_delay": self.retry_delay, "retry_backoff": self.retry_backoff,
            "metadata": self.metadata, "job_key": self.job_key, "agent": self.agent,
            "schedule_name": self.schedule_name, "occurrence": self.occurrence,
        }
        return _dumps(header) + b"\n" + self.payload

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        """Parse the wire form; raise ``EnvelopeError`` if it is not one."""
        head, sep, payload = bytes(body).partition(b"\n")
        if not sep:
            raise EnvelopeError("not a jobmaster envelope: no header line")
        try:
            header = _loads(head)
            return cls(payload=payload, **header)
        except (ValueError, TypeError) as exc:
            raise EnvelopeError(f"not a jobmaster envelope: {exc}") from None

    def to_message(self) -> AgentMessage:
        """The agent message carrying this envelope."""
        return AgentMessage(self.id, self.lane, self.priority, self.due, self.to_bytes())

    def next_attempt(self, due: float) -> Envelope:
        """The envelope of the retry, due at ``due``."""
        return replace(self, attempt=self.attempt + 1, due=due)

"""Every error jobmaster raises on purpose.

The hierarchy, one root so ``except JobmasterError`` catches them all::

    JobmasterError
    ├── ConfigurationError          bad App(...) argument, env variable or -A target
    │   └── AppNotFoundError        ``-A`` names nothing importable / no App inside
    ├── DefinitionError             bad @app.job(...) usage, duplicate definition id
    ├── EnqueueError                refused at enqueue; nothing was stored
    │   ├── InvalidOptionError      a per-call option is invalid (also a ConfigurationError)
    │   ├── SerializationError      an argument cannot be encoded
    │   ├── PayloadTooLargeError    encoded arguments exceed ``max_payload_bytes``
    │   ├── ArgumentsError          arguments do not bind to the function's signature
    │   └── UnknownDefinitionError  ``app.enqueue`` with an id nothing registered
    ├── ScheduleError               a recurring schedule cannot be created or changed
    │   └── ScheduleExpressionError an expression does not parse (names the word)
    ├── JobNotFoundError            no job with that id in the master
    ├── ScheduleNotFoundError       no schedule with that name in the master
    ├── JobTimeoutError             ``JobHandle.wait`` gave up before the job finished
    ├── JobFailedError              ``JobHandle.get``/``result``: the job failed or was cancelled
    ├── SignatureError              a pickled payload is unsigned or its signature is wrong
    ├── AgentError                  an agent's backend failed (connection lost, ...)
    ├── LockNotAcquiredError        ``app.lock(...)`` was not acquired within its wait
    └── LockLostError               a lock's holder no longer holds it (its ttl ran out)

Messages say what was wrong, which argument, and what to do about it.
"""

from __future__ import annotations


class JobmasterError(Exception):
    """Root of every error jobmaster raises on purpose."""


class ConfigurationError(JobmasterError, ValueError):
    """An ``App(...)`` argument, environment variable or command-line target is invalid."""


class AppNotFoundError(ConfigurationError):
    """The ``-A``/``JOBMASTER_APP`` target names no importable module or no ``App`` in it."""


class DefinitionError(JobmasterError, ValueError):
    """``@app.job(...)`` was used wrongly, e.g. a definition id registered twice."""


class EnqueueError(JobmasterError, ValueError):
    """A job was refused at enqueue; nothing was stored."""


class InvalidOptionError(EnqueueError, ConfigurationError):
    """A per-call option (lane, priority, timeout, metadata, agent, cluster...) is invalid."""


class SerializationError(EnqueueError, TypeError):
    """An argument (or result) cannot be encoded by the app's serializer."""


class PayloadTooLargeError(EnqueueError):
    """The encoded arguments are larger than the app's ``max_payload_bytes``."""


class ArgumentsError(EnqueueError, TypeError):
    """The arguments do not bind to the job function's signature."""


class UnknownDefinitionError(EnqueueError, LookupError):
    """``app.enqueue`` named a definition id that no ``@app.job`` registered."""


class ScheduleError(JobmasterError, ValueError):
    """A recurring schedule cannot be created or changed."""


class ScheduleExpressionError(ScheduleError):
    """A schedule expression does not parse.

    ``expression`` is the text given, ``position`` the index of the word that could not be
    read (or ``None`` when the whole expression is at fault) and ``word`` that word.
    """

    def __init__(
        self,
        message: str,
        *,
        expression: str = "",
        position: int | None = None,
        word: str | None = None,
    ) -> None:
        super().__init__(message)
        self.expression = expression
        self.position = position
        self.word = word


class JobNotFoundError(JobmasterError, LookupError):
    """No job with the given id exists in the master."""


class ScheduleNotFoundError(JobmasterError, LookupError):
    """No recurring schedule with the given name exists in the master."""


class JobTimeoutError(JobmasterError, TimeoutError):
    """``JobHandle.wait`` gave up before the job reached a final status."""


class SignatureError(JobmasterError):
    """A pickled payload is unsigned, or its HMAC signature does not match the app's secret."""


class MasterUnreachableError(JobmasterError):
    """The master database could not be reached (down, restarting, or not there)."""


class AgentError(JobmasterError):
    """An agent's backend failed: connection lost, protocol error, server refused."""


class AgentUnreachableError(AgentError):
    """The agent's server could not be reached, or the connection broke mid-call: what
    was being done may or may not have happened there."""


class EnqueueUncertainError(AgentUnreachableError):
    """A push failed at the connection level, again after retries: the job(s) in
    ``job_ids`` may exist on the agent (the push may have landed before the connection
    broke). Pushes are idempotent by job id, so the producer retried with the same ids;
    the master learns of a job that did land when a worker runs it."""

    def __init__(self, message: str, job_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.job_ids = job_ids


class JobFailedError(JobmasterError):
    """``JobHandle.get``/``result`` found the job failed or cancelled; ``job`` is its
    record and ``error`` its error (a ``JobError``: type, message, traceback)."""

    def __init__(self, message: str, *, job: object = None) -> None:
        super().__init__(message)
        self.job = job
        self.error = getattr(job, "error", None)


class LockNotAcquiredError(JobmasterError):
    """``app.lock(name, wait=...)`` was held by someone else for the whole wait."""


class LockLostError(JobmasterError):
    """A lock's holder no longer holds it: its ttl ran out (and someone else may hold it,
    with a higher token) before it extended or released it."""

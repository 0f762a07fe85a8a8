"""jobmaster: distributed background jobs for Python.

A master database is the source of truth for every job; agents carry due jobs to workers;
workers run them in a prefork pool; beat turns recurring schedules into jobs::

    from jobmaster import App

    app = App("billing")

    @app.job(max_retries=3)
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(x=1, y=2).wait(timeout=10).result   # 3, once `jobmaster worker -A ...` runs
"""

from jobmaster.app import App, SharedJob, current_app, job
from jobmaster.canvas import Signature, chain, chord, group, signature
from jobmaster.config import Config
from jobmaster.context import JobContext, Reject, Retry, SoftTimeLimitExceeded
from jobmaster.definitions import JobDefinition, JobHandle
from jobmaster.exceptions import (
    AgentError,
    AgentUnreachableError,
    AppNotFoundError,
    ArgumentsError,
    ConfigurationError,
    DefinitionError,
    EnqueueError,
    EnqueueUncertainError,
    InvalidOptionError,
    JobFailedError,
    JobmasterError,
    JobNotFoundError,
    JobTimeoutError,
    LockLostError,
    LockNotAcquiredError,
    PayloadTooLargeError,
    ScheduleError,
    ScheduleExpressionError,
    ScheduleNotFoundError,
    SerializationError,
    SignatureError,
    UnknownDefinitionError,
)
from jobmaster.models import Job, JobError, JobEvent, JobResult, JobStatus, Priority

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "AgentUnreachableError",
    "App",
    "AppNotFoundError",
    "ArgumentsError",
    "Config",
    "ConfigurationError",
    "DefinitionError",
    "EnqueueError",
    "EnqueueUncertainError",
    "InvalidOptionError",
    "Job",
    "JobContext",
    "JobDefinition",
    "JobError",
    "JobEvent",
    "JobResult",
    "JobFailedError",
    "JobHandle",
    "JobNotFoundError",
    "JobStatus",
    "JobTimeoutError",
    "JobmasterError",
    "LockLostError",
    "LockNotAcquiredError",
    "PayloadTooLargeError",
    "Priority",
    "Reject",
    "Retry",
    "Schedule",
    "ScheduleError",
    "ScheduleExpressionError",
    "ScheduleNotFoundError",
    "SerializationError",
    "SharedJob",
    "Signature",
    "SoftTimeLimitExceeded",
    "SignatureError",
    "UnknownDefinitionError",
    "__version__",
    "chain",
    "chord",
    "crontab",
    "current_app",
    "group",
    "job",
    "signature",
]


def __getattr__(name: str) -> object:
    if name in ("Schedule", "crontab"):  # lazily: croniter loads only when schedules are used
        from jobmaster import schedules

        return getattr(schedules, name)
    raise AttributeError(f"module 'jobmaster' has no attribute {name!r}")

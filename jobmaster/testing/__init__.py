"""Testing support: apps for tests, eager mode, in-process workers, and the pytest plugin.

- ``memory_app(name="test", eager=False, **config)``: a fresh app with a SQLite master in
  a temporary directory and a ``memory://`` agent (``jobmaster.testing.apps``);
  ``memory_environ(directory)`` gives the same as ``JOBMASTER_*`` variables, for an app
  made at import.
- Eager mode, ``App(..., eager=True)`` (or ``JOBMASTER_EAGER=1``): jobs run inline at
  enqueue, the way a worker runs them (``jobmaster.testing.eager``).
- ``drain(app)``: run what is queued, with real workers in threads, until nothing is due;
  ``WorkerThread(app)``: one such worker, started and stopped by the test
  (``jobmaster.testing.workers``).
- ``JobRecorder`` / ``EnqueuedJobs``: what an app enqueued (``jobmaster.testing.recorder``).
- The pytest plugin (``jobmaster.testing.pytest_plugin``, loaded by pytest on its own):
  fixtures ``jobmaster_app``, ``jobmaster_worker``, ``enqueued_jobs``.
- ``jobmaster.testing.agent_conformance``: the contract every agent backend keeps, as a
  pytest test class to subclass (see ``docs/agents.md``).

See ``docs/testing.md``. Importing this package imports none of its modules (nor pytest):
the names above load on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobmaster.testing.apps import close_app, lanes_of, memory_app, memory_environ
    from jobmaster.testing.recorder import EnqueuedJob, EnqueuedJobs, JobRecorder
    from jobmaster.testing.workers import WorkerThread, drain

__all__ = ["EnqueuedJob", "EnqueuedJobs", "JobRecorder", "WorkerThread", "close_app",
           "drain", "lanes_of", "memory_app", "memory_environ"]

_LAZY = {
    "close_app": "apps", "lanes_of": "apps", "memory_app": "apps", "memory_environ": "apps",
    "EnqueuedJob": "recorder", "EnqueuedJobs": "recorder", "JobRecorder": "recorder",
    "WorkerThread": "workers", "drain": "workers",
}

if "pytest" in sys.modules:  # under pytest: show the values behind a failed ``assert``
    sys.modules["pytest"].register_assert_rewrite("jobmaster.testing.agent_conformance")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobmaster.testing' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"jobmaster.testing.{module}"), name)

"""Apps for tests: a SQLite master in a temporary directory and a ``memory://`` agent.

``memory_app()`` builds one, ignoring ``JOBMASTER_*`` variables (a test's app should not
follow the shell it runs in); ``memory_environ()`` gives the same setup as ``JOBMASTER_*``
variables, for a project whose app is made at import (``app = App("proj")``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobmaster.app import App

__all__ = ["TEST_HEARTBEAT", "close_app", "lanes_of", "memory_app", "memory_environ"]

TEST_HEARTBEAT = 0.25
"""Seconds between lease renewals of a test app's workers: an idle worker waits for jobs
at most that long at a time, so stopping one in a thread takes no longer."""


def _memory_url() -> str:
    """A ``memory://`` URL no other app of this process uses (memory agents with the same
    URL share their store)."""
    return f"memory://test-{uuid.uuid4().hex[:12]}"


def memory_app(
    name: str = "test",
    *,
    directory: str | os.PathLike[str] | None = None,
    eager: bool = False,
    environ: Mapping[str, str] | None = None,
    **config: Any,
) -> App:
    """A fresh app for a test: a SQLite master in ``directory`` (default: a temporary
    directory removed with the app) and a ``memory://`` agent of its own, so nothing is
    shared with other apps or tests. ``eager=True`` runs jobs inline at enqueue. Every
    other ``App`` keyword is accepted (``middleware=``, ``max_payload_bytes=``,
    ``default_max_retries=``...); ``JOBMASTER_*`` variables are ignored unless ``environ``
    is given. Workers of the app renew leases every ``TEST_HEARTBEAT`` seconds unless
    ``heartbeat_seconds`` says otherwise, so one in a thread stops that fast. Close it
    with ``close_app`` (or ``app.close()``)."""
    if directory is None:
        made = tempfile.mkdtemp(prefix="jobmaster-test-")
        path = Path(made)
    else:
        made = None
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
    config.setdefault("master", f"sqlite:///{path / 'master.db'}")
    config.setdefault("agents", {"main": _memory_url()})
    config.setdefault("heartbeat_seconds", TEST_HEARTBEAT)
    app = App(name, eager=eager, environ={} if environ is None else environ, **config)
    if made is not None:
        weakref.finalize(app, shutil.rmtree, made, ignore_errors=True)
    return app


def memory_environ(directory: str | os.PathLike[str], *, name: str | None = None,
                   eager: bool = False) -> dict[str, str]:
    """``JOBMASTER_*`` variables that give an app made at import the setup of
    ``memory_app``: a SQLite master in ``directory``, a ``memory://`` agent of its own,
    ``TEST_HEARTBEAT`` and, with ``eager=True``, eager mode. Set them
    (``monkeypatch.setenv``) before the module that makes the app is imported."""
    env = {
        "JOBMASTER_MASTER_URL": f"sqlite:///{Path(directory) / 'master.db'}",
        "JOBMASTER_AGENT_URL": _memory_url(),
        "JOBMASTER_AUTO_MIGRATE": "true",
        "JOBMASTER_HEARTBEAT_SECONDS": str(TEST_HEARTBEAT),
        "JOBMASTER_EAGER": "true" if eager else "false",
    }
    if name is not None:
        env["JOBMASTER_NAME"] = name
    return env


def close_app(app: App) -> None:
    """Close a test's app: write what is pending, drop what its ``memory://`` agents still
    hold (their stores live as long as the process), close its connections."""
    try:
        app.flush()
    finally:
        for agent_name, url in app.config.agents.items():
            if url.startswith("memory://"):
                app.agent(agent_name).purge()
        app.close()


def lanes_of(app: App) -> list[str]:
    """Every lane the app's jobs go to as far as the app knows: its default lane, its
    definitions' lanes, and the lanes of its routes (a lane given only at enqueue, with
    ``lane=``/``queue=``, is not known here)."""
    cfg = app.config
    lanes = {cfg.default_lane, *cfg.task_routes.values(), *cfg.routes}
    lanes.update(d.options.lane for d in app.definitions.values() if d.options.lane)
    return sorted(str(lane) for lane in lanes)

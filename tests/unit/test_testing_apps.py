"""``memory_app``, ``memory_environ``, ``close_app``, ``lanes_of`` and ``JobRecorder``; and
that jobmaster (eager mode included) never imports pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobmaster import App
from jobmaster.testing import (
    JobRecorder,
    close_app,
    lanes_of,
    memory_app,
    memory_environ,
)
from jobmaster.testing.apps import TEST_HEARTBEAT


def test_memory_apps_share_nothing(tmp_path: Path) -> None:
    a = memory_app(directory=tmp_path / "a")
    b = memory_app(directory=tmp_path / "b")
    try:
        assert a.config.agents["main"] != b.config.agents["main"]
        assert a.config.master_url != b.config.master_url

        @a.job(definition_id="ping")
        def ping() -> str:
            return "pong"

        ping.delay()
        assert a.agent().length() == 1 and b.agent().length() == 0
    finally:
        close_app(a)
        close_app(b)


def test_memory_app_ignores_the_environment(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_MASTER_URL", "postgresql+psycopg://nowhere/db")
    monkeypatch.setenv("JOBMASTER_EAGER", "1")
    app = memory_app(directory=tmp_path)
    try:
        assert app.config.master_url.startswith("sqlite:///")
        assert app.config.eager is False
        assert app.config.heartbeat == TEST_HEARTBEAT
    finally:
        close_app(app)


def test_memory_app_without_a_directory_removes_its_own(tmp_path: Path) -> None:
    app = memory_app(max_payload_bytes=2048)
    master = Path(app.config.master_url.removeprefix("sqlite:///"))
    app.migrate()
    assert master.exists() and app.config.max_payload_bytes == 2048
    close_app(app)
    del app
    import gc

    gc.collect()
    assert not master.parent.exists()


def test_close_app_purges_its_memory_agent(tmp_path: Path) -> None:
    app = memory_app(directory=tmp_path)

    @app.job(definition_id="left-over")
    def left_over() -> None:
        pass

    left_over.delay()
    agent = app.agent()
    assert agent.length() == 1
    close_app(app)
    assert agent.length() == 0


def test_memory_environ_sets_up_an_app_made_from_the_environment(tmp_path: Path) -> None:
    env = memory_environ(tmp_path, name="shop", eager=True)
    app = App("ignored", environ=env)
    try:
        assert app.name == "shop" and app.config.eager is True
        assert app.config.agents["main"].startswith("memory://")
        assert app.config.master_url == f"sqlite:///{tmp_path / 'master.db'}"

        @app.job(definition_id="double")
        def double(n: int) -> int:
            return 2 * n

        assert double.delay(n=4).get() == 8
    finally:
        close_app(app)
    assert memory_environ(tmp_path)["JOBMASTER_AGENT_URL"] != env["JOBMASTER_AGENT_URL"]


def test_lanes_of_an_app(tmp_path: Path) -> None:
    app = memory_app(directory=tmp_path, task_routes={"billing.*": "billing"},
                     agents={"main": "memory://lanes-a", "bulk": "memory://lanes-b"},
                     routes={"exports": "bulk"})
    try:
        @app.job(lane="emails")
        def send() -> None:
            pass

        assert lanes_of(app) == ["billing", "default", "emails", "exports"]
    finally:
        close_app(app)


def test_the_recorder_decodes_arguments_and_stops(tmp_path: Path) -> None:
    app = memory_app(directory=tmp_path)
    try:
        recorder = JobRecorder.install(app)

        @app.job(definition_id="greet", priority="HIGH", metadata={"team": "web"})
        def greet(name: str, times: tuple[int, ...] = (1,)) -> None:
            pass

        h = greet.apply(kwargs={"name": "ada", "times": (1, 2)}, job_key="greet-ada")
        [job] = recorder.jobs
        assert job.id == h.id and job.definition_id == "greet"
        assert job.kwargs == {"name": "ada", "times": [1, 2]}  # as a worker will see them
        assert job.priority == 3 and job.metadata == {"team": "web"}
        assert job.job_key == "greet-ada"
        assert "greet" in repr(recorder.jobs)
        assert recorder.jobs.ids == [h.id]
        recorder.stop()
        greet.delay(name="bob")
        assert len(recorder.jobs) == 1
    finally:
        close_app(app)


@pytest.mark.parametrize("code", [
    "import jobmaster",
    "import jobmaster.testing",
    # eager mode imports its runner from jobmaster.testing: still no pytest
    "from jobmaster.testing import memory_app\n"
    "app = memory_app(eager=True)\n"
    "@app.job(definition_id='one')\n"
    "def one() -> int:\n"
    "    return 1\n"
    "assert one.delay().get() == 1\n"
    "app.close()",
])
def test_jobmaster_does_not_import_pytest(code: str) -> None:
    check = code + "\nimport sys\nassert 'pytest' not in sys.modules, 'pytest was imported'"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr

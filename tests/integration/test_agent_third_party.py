"""A third-party agent, installed through the ``jobmaster.agents`` entry point, runs the
conformance suite in its own project with plain pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_AGENT = '''
from jobmaster.agents.base import DeadLetter
from jobmaster.agents.memory import MemoryAgent


class MyQueueAgent(MemoryAgent):
    """A third-party agent: the memory agent under the myq:// scheme."""


class SloppyAgent(MemoryAgent):
    """An agent that stores dead-letter reasons as given: the suite must catch it."""

    def dead_letter(self, items):
        store = self._store
        with store.cond:
            for claim, reason in items:
                if self._owned(claim) is not None:
                    del store.entries[claim.message.id]
                    store.dead.append(DeadLetter(claim.message, reason, 0.0))
'''

_TESTS = '''
import pytest

from jobmaster.agents import resolve_agent
from jobmaster.testing.agent_conformance import AgentConformance


class TestMyQueueAgent(AgentConformance):
    @pytest.fixture
    def make_agent(self):
        return lambda namespace: resolve_agent("myq://local", name="conformance",
                                               namespace=namespace)


class TestSloppyAgent(AgentConformance):
    @pytest.fixture
    def make_agent(self):
        return lambda namespace: resolve_agent("sloppy://local", name="conformance",
                                               namespace=namespace)
'''


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "myq-project"
    (project / "tests").mkdir(parents=True)
    (project / "myq_agent.py").write_text(textwrap.dedent(_AGENT))
    (project / "tests" / "test_myq_conformance.py").write_text(textwrap.dedent(_TESTS))
    info = project / "myq_agent-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myq-agent\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[jobmaster.agents]\nmyq = myq_agent:MyQueueAgent\nsloppy = myq_agent:SloppyAgent\n"
    )
    return project


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)])}
    return subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_third_party_agent_passes_the_suite_in_its_own_project(tmp_path: Path) -> None:
    project = _project(tmp_path)
    out = _pytest(project, "tests", "-k", "TestMyQueueAgent")
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout and "failed" not in out.stdout
    assert "skipped" in out.stdout  # store_malformed not given: those checks are skipped


def test_the_suite_fails_an_agent_that_breaks_the_contract(tmp_path: Path) -> None:
    project = _project(tmp_path)
    out = _pytest(project, "tests", "-k", "TestSloppyAgent and any_reason")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failed" in out.stdout
    assert "test_any_reason_can_be_dead_lettered[nul]" in out.stdout
    assert "storable_reason" in out.stdout  # assertions are rewritten: the failing line shows

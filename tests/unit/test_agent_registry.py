"""Finding an agent by URL scheme: the built-ins, then the ``jobmaster.agents`` entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobmaster.agents import agent_class, resolve_agent
from jobmaster.agents.memory import MemoryAgent
from jobmaster.exceptions import ConfigurationError

_MODULE = '''
from jobmaster.agents.memory import MemoryAgent


class MyQueueAgent(MemoryAgent):
    """A third-party agent (for the test: the memory agent under another scheme)."""


not_an_agent = object()
'''

_ENTRY_POINTS = """
[jobmaster.agents]
myq = myq_agent:MyQueueAgent
memory = myq_agent:MyQueueAgent
notanagent = myq_agent:not_an_agent
broken = myq_missing_module:Thing
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution ``fakeagents`` installed on ``sys.path`` with agent entry points."""
    (tmp_path / "myq_agent.py").write_text(textwrap.dedent(_MODULE))
    info = tmp_path / "fakeagents-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeagents\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("myq_agent", None)


def test_an_entry_point_names_a_third_party_agent_imported_only_when_used(
    installed: Path,
) -> None:
    assert "myq_agent" not in sys.modules
    cls = agent_class("myq://somewhere:7000")
    assert "myq_agent" in sys.modules
    assert cls.__name__ == "MyQueueAgent" and issubclass(cls, MemoryAgent)
    agent = resolve_agent("MYQ://somewhere:7000", name="n", namespace="ns")
    assert type(agent) is cls
    assert (agent.name, agent.namespace) == ("n", "ns")


def test_built_in_schemes_come_before_entry_points(installed: Path) -> None:
    assert agent_class("memory://x") is MemoryAgent


def test_an_unknown_scheme_lists_built_ins_and_installed_agents(installed: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        agent_class("kafka://user:s3cret@broker:9092")
    text = str(info.value)
    assert "kafka://user:***@broker:9092" in text and "s3cret" not in text
    assert "redis://" in text and "sqlite://" in text and "memory://" in text
    assert "myq:// (myq_agent:MyQueueAgent)" in text
    assert "'jobmaster.agents'" in text


def test_an_unknown_scheme_without_third_party_agents_says_none_are_installed() -> None:
    with pytest.raises(ConfigurationError, match="entry points: none"):
        agent_class("kafka://broker:9092")
    with pytest.raises(ConfigurationError, match="no known scheme"):
        agent_class("no scheme at all")


def test_an_entry_point_that_is_not_an_agent_is_refused(installed: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a subclass of jobmaster.agents.Agent"):
        agent_class("notanagent://x")


def test_an_entry_point_that_cannot_be_imported_says_so(installed: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be loaded: ModuleNotFoundError"):
        agent_class("broken://x")

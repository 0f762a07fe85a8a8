"""Clusters and named agents never share queues; bad options are refused up front."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobmaster import App, EnqueueError, InvalidOptionError, ScheduleError
from jobmaster.agents import AgentMessage, resolve_agent


def test_agent_namespaces_differ_for_clusters_that_slug_alike(tmp_path: Path) -> None:
    master = f"sqlite:///{tmp_path}/m.db"
    names = ["Shop", "shop", "my-app", "my_app", "x" * 90, "x" * 91]
    spaces = {App(n, master=master).config.agent_namespace for n in names}
    assert len(spaces) == len(names)
    assert all(len(s) <= 40 and s.replace("_", "").isalnum() for s in spaces)
    assert App("billing", master=master).config.agent_namespace == "jobmaster_billing"


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_two_named_agents_on_one_store_do_not_share_a_queue(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db" if kind == "sqlite" else f"memory://{tmp_path}"
    a = resolve_agent(url, name="a")
    b = resolve_agent(url, name="b")
    a.push([AgentMessage("j1", "default", 2, time.time(), b"x")])
    assert b.claim(["default"], 10, lease_seconds=5, consumer="w") == []
    assert [c.message.id for c in a.claim(["default"], 10, lease_seconds=5, consumer="w")] == [
        "j1"]


def test_unknown_cluster_is_an_invalid_option(tmp_path: Path) -> None:
    app = App("home", master=f"sqlite:///{tmp_path}/m.db", agents={"main": "memory://iso"})

    @app.job(definition_id="f")
    def f() -> None: ...

    with pytest.raises(InvalidOptionError, match="cluster='mail' is not configured"):
        f.apply(cluster="mail")
    with pytest.raises(EnqueueError):
        app.enqueue("x", cluster="mail")


def test_schedule_with_a_bad_backoff_is_refused_when_created(tmp_path: Path) -> None:
    app = App("home", master=f"sqlite:///{tmp_path}/m.db", agents={"main": "memory://iso2"})

    @app.job(definition_id="f")
    def f() -> None: ...

    with pytest.raises((ScheduleError, InvalidOptionError, ValueError), match="retry_backoff"):
        app.schedules.create("every second", f, name="bad", retry_backoff=0.5)
    assert app.schedules.list() == []

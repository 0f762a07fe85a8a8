"""Configuration: App(...) arguments, JOBMASTER_* overrides, validation and defaults."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest

from jobmaster import App, Config, ConfigurationError
from jobmaster.config import DEFAULT_MASTER_URL, default_agent_url, env_overrides, seconds

MASTER = "sqlite:///unit-config.db"
MEM = {"main": "memory://unit-config"}


@pytest.fixture(autouse=True)
def _no_jobmaster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)


def make(**options: Any) -> App:
    name = options.pop("name", "cfg")
    options.setdefault("master", MASTER)
    options.setdefault("agents", MEM)
    return App(name, **options)


# -- defaults ---------------------------------------------------------------------------


def test_defaults() -> None:
    app = App()
    cfg = app.config
    assert app.name == "default"
    assert cfg.master_url == DEFAULT_MASTER_URL == "sqlite:///jobmaster.db"
    assert cfg.agents == {"main": "sqlite:///jobmaster.agent.db"}
    assert cfg.default_agent == "main"
    assert cfg.lease_seconds == 30.0
    assert cfg.max_payload_bytes == 128 * 1024
    assert cfg.serializer == "json"
    assert cfg.default_lane == "default"
    assert cfg.default_max_retries == 0
    assert cfg.heartbeat == pytest.approx(10.0)
    assert cfg.migrates_itself is True


@pytest.mark.parametrize(
    ("master", "agent"),
    [
        ("sqlite:///x.db", "sqlite:///x.agent.db"),
        ("sqlite:////var/lib/jm/master.db", "sqlite:////var/lib/jm/master.agent.db"),
        ("sqlite:///x.db?timeout=5", "sqlite:///x.agent.db"),
        ("sqlite:///data/master", "sqlite:///data/master.agent.db"),
        ("sqlite:///:memory:", "sqlite:///jobmaster.agent.db"),
        ("postgresql+psycopg://localhost/db", "sqlite:///jobmaster.agent.db"),
    ],
)
def test_default_agent_sits_beside_a_sqlite_master(master: str, agent: str) -> None:
    assert default_agent_url(master) == agent
    assert App("x", master=master).config.agents == {"main": agent}


def test_default_agent_beside_env_master(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("JOBMASTER_MASTER_URL", f"sqlite:///{tmp_path}/m.db")
    assert App("x").config.agents == {"main": f"sqlite:///{tmp_path}/m.agent.db"}


def test_agents_as_a_single_url_is_the_main_agent() -> None:
    app = App("x", master=MASTER, agents="memory://one")
    assert app.config.agents == {"main": "memory://one"}


def test_first_agent_is_default_when_none_is_called_main() -> None:
    app = App("x", master=MASTER, agents={"fast": "memory://a", "slow": "memory://b"})
    assert app.config.default_agent == "fast"


def test_postgres_master_does_not_migrate_itself_unless_asked() -> None:
    assert make(master="postgresql+psycopg://h/db").config.migrates_itself is False
    assert make(master="postgresql+psycopg://h/db", auto_migrate=True).config.migrates_itself
    assert make(auto_migrate=False).config.migrates_itself is False


# -- durations --------------------------------------------------------------------------


def test_timedelta_accepted_for_durations() -> None:
    cfg = make(lease_seconds=timedelta(seconds=5), default_timeout=timedelta(minutes=2),
               default_retry_delay=timedelta(milliseconds=500),
               heartbeat_seconds=timedelta(seconds=1), shutdown_grace=timedelta(0, 7),
               retention=timedelta(days=1), agent_horizon=timedelta(minutes=1)).config
    assert cfg.lease_seconds == 5.0
    assert cfg.default_timeout == 120.0
    assert cfg.default_retry_delay == 0.5
    assert cfg.heartbeat_seconds == 1.0
    assert cfg.heartbeat == 1.0
    assert cfg.shutdown_grace == 7.0
    assert cfg.retention == {"succeeded": 86400.0, "failed": 86400.0, "cancelled": 86400.0}
    assert cfg.agent_horizon == 60.0


def test_int_durations_become_floats() -> None:
    cfg = make(lease_seconds=7).config
    assert cfg.lease_seconds == 7.0 and isinstance(cfg.lease_seconds, float)


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, None),
        (3, {}, 3.0),
        (2.5, {}, 2.5),
        (timedelta(minutes=1), {}, 60.0),
        (0, {"allow_zero": True}, 0.0),
    ],
)
def test_seconds(value: Any, kwargs: dict[str, Any], expected: float | None) -> None:
    assert seconds(value, "d", **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [(None, {"allow_none": False}), (0, {}), (-1, {}), (timedelta(seconds=-1), {}),
     (float("nan"), {}), ("5", {}), (True, {}), ([1], {})],
    ids=["none", "zero", "negative", "negative-td", "nan", "str", "bool", "list"],
)
def test_seconds_refuses(value: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="my_delay"):
        seconds(value, "my_delay", **kwargs)


# -- validation of App(...) arguments ---------------------------------------------------


def test_unknown_app_option_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        make(lease=5, colour="blue")
    assert "'colour'" in str(info.value) and "'lease'" in str(info.value)
    assert "Config" in str(info.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"lease_seconds": 0}, "lease_seconds=0"),
        ({"lease_seconds": -5}, "lease_seconds=-5"),
        ({"lease_seconds": "30"}, "lease_seconds='30'"),
        ({"lease_seconds": None}, "lease_seconds"),
        ({"heartbeat_seconds": -1}, "heartbeat_seconds=-1"),
        ({"default_timeout": 0}, "default_timeout=0"),
        ({"default_retry_delay": -1}, "default_retry_delay=-1"),
        ({"beat_interval": 0}, "beat_interval=0"),
        ({"master_sync_seconds": -0.1}, "master_sync_seconds=-0.1"),
        ({"shutdown_grace": "long"}, "shutdown_grace='long'"),
        ({"retention": -1}, "retention=-1"),
        ({"retention": "a week"}, "retention='a week'"),
        ({"retention": {"done": "7d"}}, "retention names 'done'"),
        ({"retention": {"failed": "-1d"}}, "retention['failed']='-1d'"),
        ({"max_payload_bytes": 0}, "max_payload_bytes"),
        ({"max_payload_bytes": 1.5}, "max_payload_bytes=1.5"),
        ({"max_payload_bytes": -1}, "max_payload_bytes=-1"),
        ({"default_max_retries": -1}, "default_max_retries=-1"),
        ({"prefetch": 0}, "prefetch"),
        ({"concurrency": 0}, "concurrency=0"),
        ({"default_retry_backoff": 0.5}, "default_retry_backoff=0.5"),
        ({"retry_jitter": -0.1}, "retry_jitter=-0.1"),
        ({"serializer": "yaml"}, "serializer='yaml'"),
        ({"namespace": "a-b"}, "namespace='a-b'"),
        ({"name": ""}, "name=''"),
        ({"name": "   "}, "name="),
        ({"master": "jobmaster.db"}, "master='jobmaster.db'"),
        ({"agents": {"main": "localhost:6379"}}, "agents['main']='localhost:6379'"),
        ({"agents": {"main": 5}}, "agents['main']=5"),
        ({"default_agent": "nope"}, "default_agent='nope'"),
        ({"routes": {"emails": "nope"}}, "routes['emails']='nope'"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_app_arguments_refused(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make(**options)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"default_retry_backoff": "2"}, "default_retry_backoff"),
        ({"retry_jitter": "x"}, "retry_jitter"),
        ({"namespace": 5}, "namespace"),
        ({"concurrency": True}, "concurrency"),
        ({"serializer": None}, "serializer"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_wrongly_typed_app_arguments_refused_with_configuration_error(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        make(**options)


def test_routes_to_an_unknown_agent_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        make(agents={"a": "memory://a", "b": "memory://b"}, routes={"emails": "c"})
    message = str(info.value)
    assert "'emails'" in message and "'c'" in message
    assert "'a'" in message and "'b'" in message


def test_routes_to_a_known_agent() -> None:
    app = make(agents={"a": "memory://a", "b": "memory://b"}, routes={"emails": "b"})
    assert app.config.routes == {"emails": "b"}


def test_unknown_agent_scheme_refused_on_first_use() -> None:
    app = make(agents={"main": "carrierpigeon://roof"})
    with pytest.raises(ConfigurationError, match="carrierpigeon"):
        app.agent()


def test_unknown_agent_name_refused() -> None:
    with pytest.raises(ConfigurationError, match="'other'"):
        make().agent("other")


def test_config_is_usable_on_its_own() -> None:
    cfg = Config(name="c", master_url=MASTER)
    assert cfg.agents == {"main": "sqlite:///unit-config.agent.db"}
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        Config(lease_seconds=-1)


# -- environment overrides --------------------------------------------------------------


def test_env_lease_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_LEASE_SECONDS", "5")
    assert make().config.lease_seconds == 5.0


def test_env_master_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_MASTER_URL", "postgresql+psycopg://db.example/jobs")
    app = App("x")
    assert app.config.master_url == "postgresql+psycopg://db.example/jobs"
    assert App("x", master="sqlite:///other.db").config.master_url == \
        "postgresql+psycopg://db.example/jobs"


def test_env_agent_url_replaces_main_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_AGENT_URL", " memory://from-env ")
    assert App("x", master=MASTER).config.agents == {"main": "memory://from-env"}
    app = App("x", master=MASTER, agents={"main": "memory://code", "bulk": "memory://bulk"})
    assert app.config.agents == {"main": "memory://from-env", "bulk": "memory://bulk"}


def test_env_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_AGENTS", "a=memory://x, b=memory://y")
    app = App("x", master=MASTER, agents={"main": "memory://code"})
    assert app.config.agents == {"a": "memory://x", "b": "memory://y"}
    assert app.config.default_agent == "a"


def test_env_agent_url_replaces_the_default_agents_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBMASTER_AGENTS", "a=memory://x,b=memory://y")
    monkeypatch.setenv("JOBMASTER_AGENT_URL", "memory://z")
    app = App("x", master=MASTER)
    assert app.config.agents == {"a": "memory://z", "b": "memory://y"}
    assert app.config.default_agent == "a"


def test_env_agent_url_sets_main(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_AGENT_URL", "memory://z")
    app = App("x", master=MASTER, agents={"main": "memory://a", "other": "memory://b"})
    assert app.config.agents == {"main": "memory://z", "other": "memory://b"}


def test_env_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_AGENTS", "a=memory://x,b=memory://y")
    monkeypatch.setenv("JOBMASTER_ROUTES", "emails=b")
    assert App("x", master=MASTER).config.routes == {"emails": "b"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False),
     ("0", False), ("no", False), ("Off", False), ("none", None), ("", None)],
)
def test_env_bool(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool | None) -> None:
    monkeypatch.setenv("JOBMASTER_AUTO_MIGRATE", raw)
    assert make().config.auto_migrate is expected


def test_env_float_and_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_RETRY_JITTER", "0.25")
    monkeypatch.setenv("JOBMASTER_DEFAULT_RETRY_BACKOFF", "1.5")
    monkeypatch.setenv("JOBMASTER_MAX_PAYLOAD_BYTES", "2048")
    monkeypatch.setenv("JOBMASTER_CONCURRENCY", "3")
    monkeypatch.setenv("JOBMASTER_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("JOBMASTER_DEFAULT_TIMEOUT", "none")
    cfg = make(default_timeout=9).config
    assert cfg.retry_jitter == 0.25
    assert cfg.default_retry_backoff == 1.5
    assert cfg.max_payload_bytes == 2048
    assert cfg.concurrency == 3
    assert cfg.heartbeat_seconds == 0.5
    assert cfg.default_timeout is None


def test_env_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_NAME", "from-env")
    monkeypatch.setenv("JOBMASTER_SERIALIZER", "pickle")
    monkeypatch.setenv("JOBMASTER_SECRET", "s3cret")
    monkeypatch.setenv("JOBMASTER_NAMESPACE", "ns1")
    app = make()
    assert app.name == "from-env"
    assert app.config.serializer == "pickle"
    assert app.config.secret == "s3cret"
    assert app.config.namespace == "ns1"
    assert app.serializer.name == "pickle"


def test_env_beats_app_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_LEASE_SECONDS", "5")
    monkeypatch.setenv("JOBMASTER_MAX_PAYLOAD_BYTES", "100")
    app = make(lease_seconds=60, max_payload_bytes=5000)
    assert app.config.lease_seconds == 5.0
    assert app.config.max_payload_bytes == 100


def test_env_overrides_reads_a_given_mapping() -> None:
    assert env_overrides({"JOBMASTER_LEASE_SECONDS": "4", "OTHER": "x"}) == {
        "lease_seconds": 4.0}
    assert env_overrides({}) == {}
    assert env_overrides({"JOBMASTER_CLUSTERS": "x"}) == {}  # not settable from env


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("JOBMASTER_LEASE_SECONDS", "abc"),
        ("JOBMASTER_LEASE_SECONDS", "5s"),
        ("JOBMASTER_MAX_PAYLOAD_BYTES", "1.5"),
        ("JOBMASTER_MAX_PAYLOAD_BYTES", "lots"),
        ("JOBMASTER_AUTO_MIGRATE", "maybe"),
        ("JOBMASTER_CONCURRENCY", "many"),
        ("JOBMASTER_AGENTS", "memory://x"),
        ("JOBMASTER_ROUTES", "emails"),
    ],
)
def test_bad_env_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                          raw: str) -> None:
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigurationError) as info:
        make()
    assert variable in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("JOBMASTER_LEASE_SECONDS", "-5"),
        ("JOBMASTER_LEASE_SECONDS", "0"),
        ("JOBMASTER_MAX_PAYLOAD_BYTES", "0"),
        ("JOBMASTER_SERIALIZER", "yaml"),
        ("JOBMASTER_MASTER_URL", "not-a-url"),
    ],
)
def test_out_of_range_env_values_name_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                   variable: str, raw: str) -> None:
    """A value that parses but is not allowed came from the environment: say so."""
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ConfigurationError) as info:
        make()
    assert variable in str(info.value)


def test_unset_env_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_UNRELATED_THING", "1")
    assert make(lease_seconds=12).config.lease_seconds == 12.0


def test_retention_per_status_with_durations() -> None:
    cfg = make(retention={"succeeded": "7d", "failed": "1w2d", "cancelled": 0}).config
    assert cfg.retention == {"succeeded": 7 * 86400.0, "failed": 9 * 86400.0,
                             "cancelled": 0.0}
    partial = make(retention={"succeeded": "12h"}).config
    assert partial.retention == {"succeeded": 43200.0, "failed": 30 * 86400.0,
                                 "cancelled": 30 * 86400.0}


def test_retention_from_the_environment() -> None:
    assert env_overrides({"JOBMASTER_RETENTION": "7d"})["retention"] == "7d"
    assert env_overrides({"JOBMASTER_RETENTION": "succeeded=1d,failed=30d"})["retention"] \
        == {"succeeded": "1d", "failed": "30d"}

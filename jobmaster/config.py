"""One place for every setting: ``App(...)`` arguments, overridden by ``JOBMASTER_*``
environment variables, overridden by command-line flags.

Each field is documented once, here; ``docs/configuration.md`` is written from this.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jobmaster.exceptions import ConfigurationError, InvalidOptionError
from jobmaster.options import OPTIONS, check_lane

DEFAULT_MASTER_URL = "sqlite:///jobmaster.db"
ENV_PREFIX = "JOBMASTER_"


_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> float | None:
    """Seconds of a duration written ``90s``, ``5m``, ``12h``, ``7d``, ``1w2d`` or as a
    plain number of seconds; ``None`` if ``text`` is neither."""
    text = text.strip().lower()
    match = _DURATION.fullmatch(text)
    if text and match is not None:
        weeks, days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        return float((((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs)
    try:
        return float(text)
    except ValueError:
        return None


def seconds(value: float | int | timedelta | str | None, argument: str, *,
            allow_none: bool = True, allow_zero: bool = False) -> float | None:
    """Seconds from an int, float, ``timedelta`` or duration text (``7d``); refuse
    negatives and other types."""
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{argument} is required (seconds or a timedelta)")
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str) and value.strip()[-1:].isalpha() and \
            parse_duration(value) is not None:  # "7d", not "7": a unit says it is a duration
        result = parse_duration(value) or 0.0
    else:
        raise ConfigurationError(
            f"{argument}={value!r} must be seconds (int or float), a timedelta or a "
            f"duration such as '90s', '12h' or '7d', not {type(value).__name__}"
            + (" text" if isinstance(value, str) else "")
        )
    if result < 0 or (result == 0 and not allow_zero) or not math.isfinite(result):
        raise ConfigurationError(f"{argument}={value!r} must be a finite, positive duration")
    return result


@dataclass(slots=True)
class Config:
    """Every setting of an app. Build it with ``App(...)``; read it as ``app.config``."""

    name: str = "default"
    """Cluster id: jobs, schedules and workers are recorded under it in the master."""
    master_url: str = DEFAULT_MASTER_URL
    """SQLAlchemy URL of the master database (env ``JOBMASTER_MASTER_URL``)."""
    agents: dict[str, str] = field(default_factory=dict)
    """Agent name → URL. Default: one embedded SQLite agent ``main`` beside a SQLite master,
    ``JOBMASTER_AGENT_URL`` replaces the ``main`` agent's URL."""
    default_agent: str = "main"
    """The agent jobs go to unless their lane or call says otherwise."""
    routes: dict[str, str] = field(default_factory=dict)
    """Lane → agent name, for lanes that live on another agent than ``default_agent``."""
    task_routes: dict[str, Any] = field(default_factory=dict)
    """Definition-id pattern → lane, as Celery's ``task_routes``: ``{"billing.*":
    "billing"}`` (``fnmatch`` patterns, the first match wins; a value may also be
    ``{"queue": "billing"}``). A definition or call that names its lane keeps it."""
    include: list[str] = field(default_factory=list)
    """Modules imported when the app is loaded by ``jobmaster ... -A``, so the jobs they
    define (``@jobmaster.job``) are registered, as Celery's ``include``."""
    clusters: dict[str, Any] = field(default_factory=dict)
    """Other cluster id → ``App`` (or dict of App arguments) reachable with ``cluster=...``."""
    namespace: str = "jobmaster"
    """Prefix of agent keys, tables and streams, so several apps can share one server; the
    cluster id is added to it (``agent_namespace``), so clusters never share agent queues."""
    lease_seconds: float = 30.0
    """How long a claimed job stays invisible to other workers without a heartbeat from
    its worker: the time after which a dead worker's job runs again."""
    heartbeat_seconds: float | None = None
    """How often a worker renews its leases (default: a third of ``lease_seconds``)."""
    max_payload_bytes: int = 128 * 1024
    """Largest encoded arguments accepted at enqueue."""
    serializer: str = "json"
    """``json`` (default) or ``pickle`` (cloudpickle, HMAC-signed with ``secret``)."""
    secret: str | list[str] | None = None
    """Key that signs envelopes and pickled payloads, or several for a rotation
    (``[new, old, ...]``: the first signs, any verifies). Env ``JOBMASTER_SECRET``, several
    keys separated by spaces."""
    sign_envelopes: bool | None = None
    """Sign every envelope (its id, cluster, definition, lane and arguments) with
    ``secret``; workers refuse envelopes whose signature is missing or wrong. Default: on
    with ``serializer="pickle"``, off otherwise. Turn it on wherever others can write to
    your broker."""
    default_lane: str = "default"
    """Lane of jobs that name none."""
    default_timeout: float | None = None
    """Hard time limit of jobs that name none (``None``: no limit)."""
    default_max_retries: int = 0
    """Retries of jobs that name none (a failed job is retried this many times)."""
    default_retry_delay: float = 10.0
    """Seconds before the first retry; each later one waits ``retry_backoff`` times longer."""
    default_retry_backoff: float = 2.0
    """Multiplier of the retry delay per attempt."""
    retry_jitter: float = 0.1
    """Each retry delay is stretched by a random 0..jitter fraction, to spread retries."""
    agent_horizon: float = 60.0
    """Jobs due further ahead than this many seconds wait in the master (``scheduled``)
    instead of an agent; beat promotes them shortly before they are due."""
    master_sync_seconds: float = 0.2
    """How often a producer writes the jobs it pushed to agents into the master."""
    auto_migrate: bool | None = None
    """Create or upgrade the master schema on first use (default: only for SQLite)."""
    concurrency: int | None = None
    """Worker processes (or threads) per worker; default: the number of CPUs."""
    async_slots: int = 100
    """``async def`` jobs a worker process (prefork pool) runs at once on its event loop."""
    prefetch: int = 4
    """Jobs a worker holds claimed per execution slot (running plus waiting): more makes
    short jobs faster, fewer spreads long jobs more evenly between workers."""
    shutdown_grace: float = 30.0
    """Seconds a warm shutdown waits for running jobs before stopping them."""
    timezone: str = "UTC"
    """Default time zone of recurring schedules."""
    beat_interval: float = 1.0
    """How often beat looks for due schedules and future jobs."""
    beat_lease_seconds: float = 10.0
    """How long beat's leadership lasts without renewal: the longest a dead leader's
    schedules wait before another beat takes over."""
    retention: float | dict[str, float] = 30 * 86400.0
    """How long finished jobs, with their audit trail, are kept in the master before beat
    deletes them: seconds (or ``"7d"``, a ``timedelta``) for every final status, or per
    status (``{"succeeded": "7d", "failed": "90d"}``; a status not named keeps 30 days).
    ``0`` keeps them for ever. Read back as a dict of seconds per final status."""
    max_jobs_per_child: int | None = None
    """A worker process is replaced by a fresh one after running this many jobs
    (``None``: never), like Celery's ``worker_max_tasks_per_child``."""
    max_memory_per_child: int | None = None
    """A worker process whose resident memory grew past this many KiB is replaced after
    the job it is running (``None``: never), like Celery's ``worker_max_memory_per_child``."""
    eager: bool = False
    """Run every job inline when it is enqueued, in the caller's process and thread, as a
    worker would (for tests; env ``JOBMASTER_EAGER``): arguments and results go through
    the serializer, middleware and retries apply, the job is recorded in the master.
    Retries run at once, without their delay; ``countdown``/``at`` are not waited for.
    See ``docs/testing.md``."""

    def __repr__(self) -> str:
        from jobmaster.agents.base import redact_url

        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "secret":
                value = None if value is None else "***"
            elif f.name == "master_url":
                value = redact_url(value)
            elif f.name == "agents":
                value = {k: redact_url(v) for k, v in value.items()}
            elif f.name == "clusters":
                value = sorted(value)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def signs(self) -> bool:
        """Whether this app signs envelopes and requires their signatures."""
        if self.sign_envelopes is not None:
            return self.sign_envelopes
        return self.serializer == "pickle"

    def validate(self) -> None:
        """Check every field; raise ``ConfigurationError`` naming the first bad one."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"name={self.name!r}: the cluster id must be a non-empty str")
        if not isinstance(self.master_url, str) or "://" not in self.master_url:
            raise ConfigurationError(
                f"master={self.master_url!r} is not a database URL; use e.g. "
                "'sqlite:///jobmaster.db' or 'postgresql+psycopg://host/db'"
            )
        for fname in ("lease_seconds", "master_sync_seconds", "shutdown_grace",
                      "beat_interval", "agent_horizon", "beat_lease_seconds"):
            setattr(self, fname, seconds(getattr(self, fname), fname, allow_none=False))
        self.heartbeat_seconds = seconds(self.heartbeat_seconds, "heartbeat_seconds")
        for spec in OPTIONS.values():  # app-wide defaults of job options: checked as such
            if spec.config is not None:
                value = getattr(self, spec.config)
                if value is not None:
                    try:
                        setattr(self, spec.config, spec.check(value, spec.config))
                    except InvalidOptionError as exc:
                        raise ConfigurationError(str(exc)) from None
                elif not spec.nullable:
                    raise ConfigurationError(f"{spec.config} is required")
        self.retention = retention_by_status(self.retention)
        for fname in ("max_jobs_per_child", "max_memory_per_child"):
            value = getattr(self, fname)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ConfigurationError(f"{fname}={value!r} must be an int >= 1 (or None)")
        for fname in ("max_payload_bytes", "prefetch", "async_slots"):
            value = getattr(self, fname)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"{fname}={value!r} must be a non-negative int")
        for fname in ("max_payload_bytes", "prefetch", "async_slots"):
            if getattr(self, fname) == 0:
                raise ConfigurationError(f"{fname}=0 must be at least 1")
        if self.concurrency is not None and (
            not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool)
            or self.concurrency < 1
        ):
            raise ConfigurationError(f"concurrency={self.concurrency!r} must be an int >= 1")
        value = self.retry_jitter
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not 0 <= value <= 10):
            raise ConfigurationError(f"retry_jitter={value!r} must be a number from 0 to 10")
        if not isinstance(self.eager, bool):
            raise ConfigurationError(f"eager={self.eager!r} must be True or False")
        if not isinstance(self.namespace, str):
            raise ConfigurationError(f"namespace={self.namespace!r} must be a str")
        secret = self.secret
        if secret is not None and not (
                (isinstance(secret, str) and secret)
                or (isinstance(secret, list) and secret
                    and all(isinstance(k, str) and k for k in secret))):
            raise ConfigurationError(
                "secret must be a non-empty str, or a non-empty list of them (newest first) "
                f"to rotate keys; got a {type(secret).__name__}")
        if self.sign_envelopes is not None and not isinstance(self.sign_envelopes, bool):
            raise ConfigurationError(f"sign_envelopes={self.sign_envelopes!r} must be True, "
                                     "False or None")
        if self.sign_envelopes and not self.secret:
            raise ConfigurationError(
                "sign_envelopes=True needs secret=...: envelopes are signed with it (set "
                "App(secret=...) or JOBMASTER_SECRET)")
        if self.serializer == "pickle" and not self.secret:
            raise ConfigurationError(
                "serializer='pickle' needs secret=...: pickled payloads are signed with it "
                "and refused unsigned (set App(secret=...) or JOBMASTER_SECRET)"
            )
        if self.serializer not in {"json", "pickle"}:
            raise ConfigurationError(
                f"serializer={self.serializer!r} is unknown; use 'json' or 'pickle'"
            )
        if not self.namespace.replace("_", "").isalnum():
            raise ConfigurationError(
                f"namespace={self.namespace!r} must hold only letters, digits and _"
            )
        if not self.agents:
            self.agents = {"main": default_agent_url(self.master_url)}
        for agent_name, url in self.agents.items():
            if not isinstance(url, str) or "://" not in url:
                raise ConfigurationError(
                    f"agents[{agent_name!r}]={url!r} is not an agent URL; use e.g. "
                    "'redis://localhost:6379/0' or 'sqlite:///agent.db'"
                )
        if self.default_agent not in self.agents:
            if self.default_agent == "main" and len(self.agents) >= 1:
                self.default_agent = next(iter(self.agents))
            else:
                raise ConfigurationError(
                    f"default_agent={self.default_agent!r} is not one of the agents "
                    f"{sorted(self.agents)}"
                )
        routes: dict[str, Any] = dict(self.task_routes)
        for pattern, value in routes.items():
            lane = value.get("queue") if isinstance(value, Mapping) else value
            if not isinstance(pattern, str) or not isinstance(lane, str):
                raise ConfigurationError(
                    f"task_routes[{pattern!r}]={value!r}: routes map a definition-id pattern "
                    "to a lane name (or {'queue': lane})")
            try:
                check_lane(lane, f"task_routes[{pattern!r}]")
            except InvalidOptionError as exc:
                raise ConfigurationError(str(exc)) from None
            self.task_routes[pattern] = lane
        if isinstance(self.include, str) or not all(isinstance(m, str) for m in self.include):
            raise ConfigurationError(f"include={self.include!r} must be a list of module names")
        self.include = list(self.include)
        for lane, agent_name in self.routes.items():
            if agent_name not in self.agents:
                raise ConfigurationError(
                    f"routes[{lane!r}]={agent_name!r} names no agent; agents are "
                    f"{sorted(self.agents)}"
                )

    @property
    def agent_namespace(self) -> str:
        """The namespace of this cluster's agent keys, tables and streams:
        ``<namespace>_<cluster>``, made identifier-safe and at most 40 characters."""
        import hashlib

        slug = "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_") or "c"
        text = f"{self.namespace}_{slug}"
        if slug != self.name or len(text) > 40:
            # the slug lost something (case, punctuation) or is too long: a digest of the
            # exact id keeps "Shop" and "shop", "my-app" and "my_app" apart
            digest = hashlib.sha1(self.name.encode(), usedforsecurity=False).hexdigest()[:6]
            text = f"{text[:33]}_{digest}"
        return text

    @property
    def heartbeat(self) -> float:
        """Seconds between a worker's lease renewals."""
        return self.heartbeat_seconds or max(self.lease_seconds / 3.0, 0.05)

    @property
    def migrates_itself(self) -> bool:
        """Whether the master schema is created on first use."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.master_url.startswith("sqlite")


def default_agent_url(master_url: str) -> str:
    """The embedded agent beside a SQLite master (``x.db`` → ``x.agent.db``); a file
    ``jobmaster.agent.db`` in the working directory otherwise."""
    if master_url.startswith("sqlite:///") and not master_url.endswith(":memory:"):
        path = master_url[len("sqlite:///") :].split("?", 1)[0]
        stem = path[:-3] if path.endswith(".db") else path
        return f"sqlite:///{stem}.agent.db"
    return "sqlite:///jobmaster.agent.db"


_BOOL = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}


DEFAULT_RETENTION = 30 * 86400.0
_FINAL = ("succeeded", "failed", "cancelled")


def retention_by_status(value: Any) -> dict[str, float]:
    """``Config.retention`` as seconds per final status (``0``: kept for ever)."""
    if not isinstance(value, Mapping):
        every = seconds(value, "retention", allow_none=False, allow_zero=True) or 0.0
        return dict.fromkeys(_FINAL, every)
    unknown = sorted(str(k) for k in value if k not in _FINAL)
    if unknown:
        raise ConfigurationError(
            f"retention names {', '.join(map(repr, unknown))}: only final statuses are "
            f"deleted; use {', '.join(map(repr, _FINAL))}")
    return {status: (seconds(value[status], f"retention[{status!r}]", allow_none=False,
                             allow_zero=True) or 0.0) if status in value else DEFAULT_RETENTION
            for status in _FINAL}


def _parse_env(name: str, raw: str, current: Any, ftype: Any) -> Any:
    text = raw.strip()
    kind = str(ftype)
    try:
        if "dict" in kind and "float" in kind and "=" not in text:
            return text  # one duration for every status (JOBMASTER_RETENTION=7d)
        if kind.startswith("list"):
            return [part.strip() for part in text.split(",") if part.strip()]
        if "dict" in kind:
            pairs = [p for p in text.split(",") if p.strip()]
            return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)}
        if "bool" in kind:
            if text.lower() in {"", "none"}:
                return None
            return _BOOL[text.lower()]
        if "float" in kind:
            return None if text.lower() in {"", "none"} else float(text)
        if "int" in kind:
            return None if text.lower() in {"", "none"} else int(text)
    except (ValueError, KeyError):
        raise ConfigurationError(
            f"environment variable {name}={raw!r} is not a valid {kind}"
        ) from None
    return text


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from ``JOBMASTER_*`` variables, by field name.

    ``JOBMASTER_AGENT_URL`` sets the URL of the default agent (``main``);
    ``JOBMASTER_AGENTS`` takes
    ``name=url,name=url``; every other field is ``JOBMASTER_<FIELD>``.
    """
    env = os.environ if environ is None else environ
    result: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        key = ENV_PREFIX + f.name.upper()
        if f.name == "clusters":
            continue
        if key in env and f.name == "secret":  # keys never hold spaces: several rotate
            keys = env[key].split()
            result[f.name] = keys[0] if len(keys) == 1 else keys or None
        elif key in env:
            result[f.name] = _parse_env(key, env[key], None, f.type)
    if ENV_PREFIX + "AGENT_URL" in env:
        agents = dict(result.get("agents") or {})
        agents["main"] = env[ENV_PREFIX + "AGENT_URL"].strip()
        result["agents_main"] = agents["main"]
    return result

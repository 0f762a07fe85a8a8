"""The registry of job definitions: what workers registered in the master.

A worker registers every definition of its app when it starts (``definition_rows``, one
upsert batch) and refreshes them every few minutes. A producer that does not have a
definition's code enqueues it by id through the registry: the stored options are the
definition's defaults and the stored parameters check the keyword arguments
(``RegisteredDefinition.bind``). ``app.definitions`` is a ``Definitions``: the dict of this
process's definitions, plus ``list()`` and ``get_registered(id)`` over the registry.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobmaster.definitions import JobDefinition
from jobmaster.exceptions import ArgumentsError, InvalidOptionError, UnknownDefinitionError
from jobmaster.host import AppResources
from jobmaster.options import JobOptions

CACHE_SECONDS = 10.0
"""How long a producer trusts a registered definition it looked up before asking again."""

_KEYWORD = ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a registered definition (the ``JobContext`` one is left out)."""

    name: str
    kind: str
    """``inspect.Parameter`` kind name: ``POSITIONAL_OR_KEYWORD``, ``KEYWORD_ONLY``..."""
    required: bool
    annotation: str | None = None
    default: Any = None
    has_default: bool = False
    """Whether the default was stored (defaults that are not JSON are not)."""

    def __str__(self) -> str:
        prefix = "**" if self.kind == "VAR_KEYWORD" else ""
        text = prefix + self.name
        if self.annotation:
            text += f": {self.annotation}"
        if not self.required and self.kind != "VAR_KEYWORD":
            default = repr(self.default) if self.has_default else "..."
            text += f" = {default}" if self.annotation else f"={default}"
        return text


@dataclass(frozen=True, slots=True)
class RegisteredDefinition:
    """A definition as a worker registered it in the master: its parameters, its options
    (those set on the definition), the lanes, host and worker that registered it last."""

    id: str
    parameters: tuple[Parameter, ...]
    options: dict[str, Any]
    lanes: tuple[str, ...]
    hostname: str
    worker: str
    registered_at: datetime
    last_seen: datetime

    @property
    def signature(self) -> str:
        """The parameters as Python writes them: ``(to: str, subject: str = '')``."""
        return "(" + ", ".join(map(str, self.parameters)) + ")"

    @property
    def hosts(self) -> tuple[str, ...]:
        """Hosts that registered it (the last one: the registry keeps one row per id)."""
        return (self.hostname,)

    @property
    def workers(self) -> tuple[str, ...]:
        """Workers that registered it (the last one)."""
        return (self.worker,)

    def to_dict(self) -> dict[str, Any]:
        """As JSON: parameters as stored, times as ISO 8601."""
        return {
            "id": self.id, "signature": self.signature,
            "parameters": [{"name": p.name, "kind": p.kind, "required": p.required,
                            "annotation": p.annotation,
                            **({"default": p.default} if p.has_default else {})}
                           for p in self.parameters],
            "options": dict(self.options), "lanes": builtins.list(self.lanes),
            "hostname": self.hostname, "worker": self.worker,
            "registered_at": self.registered_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }

    def job_options(self) -> JobOptions:
        """The stored options as the definition's ``JobOptions``, checked as strictly as
        options given in code (``InvalidOptionError`` naming a bad one)."""
        values = dict(self.options)
        expires = values.get("expires")
        if isinstance(expires, str):
            try:
                values["expires"] = datetime.fromisoformat(expires)
            except ValueError:
                pass  # refused by the check below, with its name
        try:
            return JobOptions.build(values)
        except InvalidOptionError as exc:
            raise InvalidOptionError(
                f"the registered options of job {self.id!r} are invalid ({exc}); restart "
                "its workers to register it again") from None

    def bind(self, kwargs: Mapping[str, Any] | None, *, args: Sequence[Any] = ()
             ) -> dict[str, Any]:
        """Check arguments against the registered parameters: ``ArgumentsError`` naming
        every missing required and every unexpected argument. Positional ``args`` are
        matched to the positional parameters in order."""
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ArgumentsError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        values = dict(kwargs or {})
        positional = [p.name for p in self.parameters
                      if p.kind in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
        if len(args) > len(positional):
            raise ArgumentsError(
                f"job {self.id!r}{self.signature} takes {len(positional)} positional "
                f"argument(s), {len(args)} given")
        for name, value in zip(positional, args, strict=False):
            if name in values:
                raise ArgumentsError(f"job {self.id!r} got argument {name!r} twice "
                                     "(positionally and by name)")
            values[name] = value
        named = {p.name for p in self.parameters if p.kind in _KEYWORD}
        any_name = any(p.kind == "VAR_KEYWORD" for p in self.parameters)
        missing = [p.name for p in self.parameters if p.required and p.name not in values]
        unexpected = [] if any_name else [k for k in values if k not in named]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append("missing required argument(s) " + ", ".join(map(repr, missing)))
            if unexpected:
                parts.append("unexpected argument(s) " + ", ".join(map(repr, unexpected)))
            raise ArgumentsError(
                f"arguments do not fit job {self.id!r}{self.signature} (as its workers "
                f"registered it): {'; '.join(parts)}")
        return values


# -- what a worker registers -------------------------------------------------------------
def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return False
    return True


def _annotation(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def parameters_json(definition: JobDefinition[Any, Any]) -> list[dict[str, Any]]:
    """A definition's parameters as stored: name, kind, required, annotation as text and
    the default when it is JSON."""
    result = []
    for p in definition.signature.parameters.values():
        item: dict[str, Any] = {
            "name": p.name, "kind": p.kind.name,
            "required": p.default is p.empty and p.kind not in (p.VAR_KEYWORD,),
            "annotation": _annotation(p.annotation),
        }
        if p.default is not p.empty and _jsonable(p.default):
            item["default"] = p.default
        result.append(item)
    return result


def options_json(options: JobOptions) -> dict[str, Any]:
    """The options set on a definition, as JSON (a fixed ``expires`` as ISO 8601)."""
    result = {}
    for name, value in options.given().items():
        if isinstance(value, datetime):
            value = value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if _jsonable(value):
            result[name] = value
    return result


def definition_lane(definition: JobDefinition[Any, Any], default_lane: str) -> str:
    """The lane a definition's jobs go to unless a call says otherwise."""
    return definition.options.lane or default_lane


def definition_rows(definitions: Iterable[JobDefinition[Any, Any]], *, cluster: str,
                    lanes: Sequence[str], hostname: str, worker: str, at: datetime
                    ) -> list[dict[str, Any]]:
    """The registry rows a worker writes for the definitions of its app."""
    return [{
        "cluster": cluster, "definition_id": d.definition_id,
        "parameters": parameters_json(d), "options": options_json(d.options),
        "lanes": list(lanes), "hostname": hostname, "worker": worker,
        "registered_at": at, "last_seen": at,
    } for d in definitions]


def lanes_banner(definitions: Iterable[JobDefinition[Any, Any]], lanes: Sequence[str],
                 default_lane: str) -> list[str]:
    """Lines naming the definitions a worker serves, per lane, and those whose lane it
    does not serve."""
    by_lane: dict[str, list[str]] = {}
    for d in definitions:
        by_lane.setdefault(definition_lane(d, default_lane), []).append(d.definition_id)
    lines = [f"lane {lane}: {', '.join(sorted(by_lane.get(lane, []))) or '(none by default)'}"
             for lane in lanes]
    others = sorted(i for lane, ids in by_lane.items() if lane not in lanes for i in ids)
    if others:
        lines.append(f"not served here (their lane is not one of this worker's): "
                     f"{', '.join(others)}")
    return lines


# -- reading it back --------------------------------------------------------------------
def _parameter(item: Any) -> Parameter:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ValueError(f"a parameter should be an object with a name, got {item!r}")
    annotation = item.get("annotation")
    return Parameter(
        name=item["name"], kind=str(item.get("kind", "POSITIONAL_OR_KEYWORD")),
        required=bool(item.get("required", False)),
        annotation=annotation if isinstance(annotation, str) else None,
        default=item.get("default"), has_default="default" in item)


def registered_from_row(row: Mapping[Any, Any]) -> RegisteredDefinition:
    """A registry row as a ``RegisteredDefinition`` (``ValueError`` if it is malformed)."""
    parameters = row["parameters"]
    options = row["options"]
    lanes = row["lanes"]
    if not isinstance(parameters, list) or not isinstance(options, dict) \
            or not isinstance(lanes, list):
        raise ValueError(f"registered definition {row['definition_id']!r} is malformed")
    return RegisteredDefinition(
        id=str(row["definition_id"]), parameters=tuple(map(_parameter, parameters)),
        options=dict(options), lanes=tuple(str(lane) for lane in lanes),
        hostname=str(row["hostname"]), worker=str(row["worker"]),
        registered_at=row["registered_at"], last_seen=row["last_seen"])


class Definitions(dict[str, JobDefinition[Any, Any]]):
    """``app.definitions``: this process's definitions by id (a dict), and the master's
    registry of the definitions workers registered (``list``, ``get_registered``)."""

    def __init__(self, app: AppResources) -> None:
        super().__init__()
        self._app = app
        self._cache: dict[str, tuple[float, RegisteredDefinition]] = {}

    def list(self) -> builtins.list[RegisteredDefinition]:
        """Every definition workers of this cluster registered in the master, by id."""
        result = []
        for row in self._app.master.definitions(self._app.name):
            try:
                result.append(registered_from_row(row))
            except (KeyError, TypeError, ValueError):
                continue  # trust nothing read back: a malformed row is left out
        return result

    def get_registered(self, definition_id: str) -> RegisteredDefinition | None:
        """The definition as workers registered it in the master, or ``None``."""
        row = self._app.master.definition(self._app.name, definition_id)
        if row is None:
            return None
        try:
            registered = registered_from_row(row)
        except (KeyError, TypeError, ValueError):
            return None
        self._cache[definition_id] = (time.monotonic() + CACHE_SECONDS, registered)
        return registered

    def registered(self, definition_id: str) -> RegisteredDefinition:
        """The registered definition (looked up at most every ``CACHE_SECONDS``), or
        ``UnknownDefinitionError`` naming the close matches."""
        cached = self._cache.get(definition_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = self.get_registered(definition_id)
        if found is not None:
            return found
        known = {d.id for d in self.list()} | set(self)
        close = difflib.get_close_matches(definition_id, sorted(known), n=3, cutoff=0.6)
        hint = ("did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
        raise UnknownDefinitionError(
            f"no job definition {definition_id!r} in app {self._app.name!r} nor in its "
            f"master's registry (what its workers registered); {hint}"
            "register it with @app.job here, start a worker whose app registers it, or pass "
            "cluster=... to enqueue it on another cluster")

"""``app.lanes``: the lanes of a cluster, their queue depths, and pausing them.

A paused lane keeps its jobs: enqueueing still works, and workers claim nothing from it
until it is resumed (they learn of a pause at their next heartbeat). Jobs already claimed
finish.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jobmaster.exceptions import ConfigurationError, InvalidOptionError
from jobmaster.host import AppResources
from jobmaster.options import check_lane


class LanesHost(AppResources, Protocol):
    """What ``app.lanes`` needs from its app."""

    @property
    def definitions(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class LaneDepth:
    """How many jobs one agent holds for one lane at one priority."""

    agent: str
    lane: str
    priority: int
    depth: int
    paused: bool


class LanesAPI:
    """The lanes of one app's cluster."""

    def __init__(self, app: LanesHost) -> None:
        self._app = app

    def pause(self, lane: str) -> None:
        """Stop workers claiming from ``lane`` (enqueueing still works)."""
        self._app.master.set_lane_paused(self._app.name, _lane(lane), True)

    def resume(self, lane: str) -> None:
        """Let workers claim from ``lane`` again."""
        self._app.master.set_lane_paused(self._app.name, _lane(lane), False)

    def paused(self) -> set[str]:
        """The lanes paused now."""
        return self._app.master.paused_lanes(self._app.name)

    def buckets(self, served: Iterable[tuple[str, Iterable[str]]] = ()
                ) -> builtins.list[tuple[str, str]]:
        """``(agent, lane)`` pairs the app knows of: its default lane, its routes, its
        definitions' lanes, and the ``(agent, lanes)`` that workers serve."""
        config = self._app.config
        pairs = dict.fromkeys((config.routes.get(lane) or config.default_agent, lane)
                              for lane in [config.default_lane, *config.routes])
        for definition in self._app.definitions.values():
            options = definition.options
            lane = options.lane or config.default_lane
            pairs[(options.agent or config.routes.get(lane) or config.default_agent,
                   lane)] = None
        for agent, lanes in served:
            if agent in config.agents:
                pairs.update(dict.fromkeys((agent, lane) for lane in lanes))
        return list(pairs)

    def depths(self, served: Iterable[tuple[str, Iterable[str]]] = ()
               ) -> builtins.list[LaneDepth]:
        """Queue depth of every known bucket (lane × priority) on its agent."""
        from jobmaster.agents.base import Bucket
        from jobmaster.priority import Priority

        paused = self.paused()
        out = []
        for agent_name, lane in self.buckets(served):
            agent = self._app.agent(agent_name)
            for priority in Priority:
                out.append(LaneDepth(agent_name, lane, int(priority),
                                     agent.length(Bucket(lane, int(priority))),
                                     lane in paused))
        return out


def _lane(name: str) -> str:
    try:
        return check_lane(name, "lane")
    except InvalidOptionError as exc:
        raise ConfigurationError(str(exc)) from None


__all__ = ["LaneDepth", "LanesAPI"]

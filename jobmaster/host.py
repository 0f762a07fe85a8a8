"""What the parts of an app (producer, ``app.jobs``, ``app.schedules``, definitions) need
from the ``App`` that holds them, as a Protocol: they depend on this, not on ``App``, so
no module imports the one that imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from jobmaster.agents.base import Agent
from jobmaster.config import Config
from jobmaster.middleware import Pipeline
from jobmaster.serialization import Serializer

if TYPE_CHECKING:  # the master (and SQLAlchemy) is imported when it is first used
    from jobmaster.master.repository import Master


class AppResources(Protocol):
    """An app's configuration and the resources it opens on first use."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Config: ...

    @property
    def master(self) -> Master: ...

    @property
    def serializer(self) -> Serializer: ...

    @property
    def serializers(self) -> dict[str, Serializer]: ...

    @property
    def pipeline(self) -> Pipeline: ...

    def agent(self, name: str | None = None) -> Agent: ...

"""jobmaster in a Starlette (or FastAPI) application: the ``App`` checked on start-up and
closed on shutdown by the application's lifespan, and reachable from every request.

::

    from starlette.applications import Starlette
    from jobmaster.contrib.starlette import get_jobmaster, lifespan

    web = Starlette(routes=[...], lifespan=lifespan(app))

    async def enqueue(request):
        handle = await add.delay_async(x=1, y=2)       # one shared push per loop tick
        jobs = get_jobmaster(request).jobs             # the App, from the lifespan state
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import HTTPConnection

from jobmaster.app import App
from jobmaster.exceptions import ConfigurationError

STATE_KEY = "jobmaster"
"""The name of the ``App`` in the lifespan state (``request.state.jobmaster``) and in
``web_app.state``."""

Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
"""A Starlette lifespan: called with the web application, an async context manager
yielding the lifespan state (or ``None``)."""


def open_app(app: App) -> None:
    """Open what enqueueing needs, so a wrong URL fails the start-up rather than the first
    request: the master reached and its schema checked (migrated if the app migrates
    itself, as SQLite masters do), the default agent made."""
    app.master.ensure_ready()
    app.agent()


def lifespan(app: App, *, check: bool = True, inner: Lifespan | None = None) -> Lifespan:
    """A lifespan for ``Starlette(lifespan=...)`` / ``FastAPI(lifespan=...)``: on start-up
    it opens ``app`` (``open_app``, unless ``check=False``) and publishes it as
    ``request.state.jobmaster`` and ``web_app.state.jobmaster``; on shutdown it calls
    ``app.close()``, which writes the jobs pushed but not yet recorded in the master and
    closes the connections. ``inner``, the application's own lifespan, runs inside it
    and its state is kept."""

    @asynccontextmanager
    async def run(web_app: Any) -> AsyncIterator[dict[str, Any]]:
        if check:
            await asyncio.to_thread(open_app, app)
        state = getattr(web_app, "state", None)
        if state is not None:
            setattr(state, STATE_KEY, app)
        try:
            if inner is None:
                yield {STATE_KEY: app}
            else:
                async with inner(web_app) as own:
                    yield {**(own or {}), STATE_KEY: app}
        finally:
            await asyncio.to_thread(app.close)

    return run


def get_jobmaster(connection: HTTPConnection) -> App:
    """The ``App`` of the running application (set by ``lifespan``), from a request or a
    websocket; also a FastAPI dependency (``Depends(get_jobmaster)``)."""
    app = getattr(connection.state, STATE_KEY, None)
    if app is None:
        app = getattr(getattr(connection.app, "state", None), STATE_KEY, None)
    if not isinstance(app, App):
        raise ConfigurationError(
            "no jobmaster App in this application: create it with "
            "lifespan=jobmaster.contrib.starlette.lifespan(app)")
    return app

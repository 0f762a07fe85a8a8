"""``jobmaster.contrib.starlette`` in process, through
Starlette's test client (which runs the lifespan): the App is opened on start-up, given
to endpoints, used with ``delay_async`` and closed on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from jobmaster import App, ConfigurationError, JobmasterError  # noqa: E402
from jobmaster.contrib.starlette import get_jobmaster, lifespan  # noqa: E402


def _app(tmp_path: Path, **options: Any) -> App:
    return App("web", master=f"sqlite:///{tmp_path}/master.db",
               agents={"main": "memory://"}, environ={}, default=False, **options)


def _closes(app: App) -> list[str]:
    calls: list[str] = []
    close = app.close

    def recording_close() -> None:
        calls.append("close")
        close()

    app.close = recording_close  # type: ignore[method-assign]
    return calls


def test_lifespan_opens_the_app_gives_it_to_requests_and_closes_it(tmp_path: Path) -> None:
    app = _app(tmp_path)

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    async def enqueue(request: Request) -> JSONResponse:
        handle = await add.delay_async(x=1, y=int(request.query_params["y"]))
        return JSONResponse({"id": handle.id, "same": get_jobmaster(request) is app})

    closed = _closes(app)
    web = Starlette(routes=[Route("/add", enqueue, methods=["POST"])], lifespan=lifespan(app))
    with TestClient(web) as client:
        assert web.state.jobmaster is app
        assert app.master._ready  # opened (and migrated: a SQLite master) on start-up
        first = client.post("/add", params={"y": 2}).json()
        second = client.post("/add", params={"y": 3}).json()
        assert first["same"] and second["same"]
        assert closed == []
    assert closed == ["close"]
    jobs = {job.id: job.kwargs for job in app.jobs.list(definition_id="add")}
    assert jobs == {first["id"]: {"x": 1, "y": 2}, second["id"]: {"x": 1, "y": 3}}


def test_the_applications_own_lifespan_runs_inside(tmp_path: Path) -> None:
    app = _app(tmp_path)
    events: list[str] = []

    @asynccontextmanager
    async def own(web: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"greeting": "hi"}
        events.append("stop")

    async def show(request: Request) -> JSONResponse:
        return JSONResponse({"greeting": request.state.greeting,
                             "cluster": get_jobmaster(request).name})

    web = Starlette(routes=[Route("/", show)], lifespan=lifespan(app, inner=own))
    with TestClient(web) as client:
        assert client.get("/").json() == {"greeting": "hi", "cluster": "web"}
    assert events == ["start", "stop"]


def test_a_master_without_its_schema_fails_the_start_up(tmp_path: Path) -> None:
    app = _app(tmp_path, auto_migrate=False)  # and nobody ran jobmaster migrate
    web = Starlette(lifespan=lifespan(app))
    with pytest.raises(JobmasterError, match="schema"), TestClient(web):
        pass
    unchecked = Starlette(lifespan=lifespan(app, check=False))
    with TestClient(unchecked):
        pass  # check=False: nothing is opened on start-up


def test_get_jobmaster_without_the_lifespan_says_what_to_do() -> None:
    async def show(request: Request) -> JSONResponse:
        get_jobmaster(request)
        return JSONResponse({})

    web = Starlette(routes=[Route("/", show)])
    with TestClient(web) as client, pytest.raises(ConfigurationError, match="lifespan="):
        client.get("/")

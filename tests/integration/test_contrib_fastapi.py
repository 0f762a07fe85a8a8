"""``jobmaster.contrib.fastapi`` in process: the ``JobmasterApp`` dependency gives the
lifespan's App to an endpoint enqueueing with ``delay_async``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from fastapi import FastAPI  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from jobmaster import App  # noqa: E402
from jobmaster.contrib.fastapi import JobmasterApp, lifespan  # noqa: E402


def test_the_dependency_gives_the_lifespans_app(tmp_path: Path) -> None:
    app = App("web", master=f"sqlite:///{tmp_path}/master.db",
              agents={"main": "memory://"}, environ={}, default=False)

    @app.job(definition_id="greet")
    async def greet(name: str) -> str:
        return f"hello {name}"

    api = FastAPI(lifespan=lifespan(app))

    @api.post("/greet")
    async def enqueue(name: str, jobmaster: JobmasterApp) -> dict[str, Any]:
        handle = await greet.delay_async(name=name)
        return {"id": handle.id, "cluster": jobmaster.name, "same": jobmaster is app}

    with TestClient(api) as client:
        response = client.post("/greet", params={"name": "ada"})
        assert response.status_code == 200, response.text
        body = response.json()
    assert (body["cluster"], body["same"]) == ("web", True)
    assert app.jobs.get(body["id"]).kwargs == {"name": "ada"}

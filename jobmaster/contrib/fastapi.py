"""jobmaster in a FastAPI application: ``lifespan(app)`` opens the ``App`` on start-up
and closes it on shutdown; ``JobmasterApp`` is a dependency giving it to an endpoint.

::

    from fastapi import FastAPI
    from jobmaster.contrib.fastapi import JobmasterApp, lifespan

    api = FastAPI(lifespan=lifespan(app))

    @api.post("/add")
    async def enqueue_add(x: int, y: int) -> dict[str, str]:
        handle = await add.delay_async(x=x, y=y)     # durable once the await returns
        return {"id": handle.id}

    @api.get("/jobs/{job_id}")
    def show(job_id: str, jobmaster: JobmasterApp) -> dict[str, str]:
        return {"status": jobmaster.jobs.get(job_id).status}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from jobmaster.app import App
from jobmaster.contrib.starlette import STATE_KEY, Lifespan, get_jobmaster, lifespan, open_app

__all__ = ["STATE_KEY", "JobmasterApp", "Lifespan", "get_jobmaster", "lifespan", "open_app"]

JobmasterApp = Annotated[App, Depends(get_jobmaster)]
"""An endpoint parameter annotated ``JobmasterApp`` receives the application's ``App``."""

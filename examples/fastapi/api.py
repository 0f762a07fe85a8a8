"""A FastAPI application enqueueing jobs with ``await job.delay_async(...)``:
``uvicorn api:api`` (and ``jobmaster worker -A tasks`` to run them)."""

from fastapi import FastAPI, HTTPException
from tasks import add, app, greet

from jobmaster import JobNotFoundError
from jobmaster.contrib.fastapi import JobmasterApp, lifespan

api = FastAPI(title="webshop", lifespan=lifespan(app))


@api.post("/add", status_code=202)
async def enqueue_add(x: int, y: int) -> dict[str, str]:
    """Enqueue ``add``: durable on its agent once the await returns; the enqueues of
    requests handled meanwhile share one push."""
    handle = await add.delay_async(x=x, y=y)
    return {"id": handle.id}


@api.post("/greet", status_code=202)
async def enqueue_greet(name: str) -> dict[str, str]:
    """Enqueue the ``async def`` job ``greet``."""
    handle = await greet.delay_async(name=name)
    return {"id": handle.id}


@api.get("/jobs/{job_id}")
def show_job(job_id: str, jobmaster: JobmasterApp) -> dict[str, object]:
    """A job as the master records it (a plain ``def``: FastAPI runs it in a thread, so
    the master's query does not block the event loop)."""
    try:
        job = jobmaster.jobs.get(job_id)
    except JobNotFoundError:
        raise HTTPException(status_code=404, detail=f"no job {job_id}") from None
    return {"id": job.id, "definition": job.definition_id, "status": str(job.status),
            "result": job.result}

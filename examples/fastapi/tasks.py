"""The jobs of the FastAPI example, on the embedded default (a SQLite master and agent in
``./jobmaster.db``; ``JOBMASTER_MASTER_URL`` and ``JOBMASTER_AGENT_URL`` move them).
Workers load this module: ``jobmaster worker -A tasks``."""

import asyncio

from jobmaster import App

app = App("webshop")


@app.job(definition_id="add")
def add(x: int, y: int) -> int:
    """A plain job: a prefork worker process runs it."""
    return x + y


@app.job(definition_id="greet")
async def greet(name: str) -> str:
    """An ``async def`` job: a worker process runs many at once on its event loop."""
    await asyncio.sleep(0.01)
    return f"hello {name}"

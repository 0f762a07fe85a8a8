"""The app ``bench/fan_out.py`` runs: a fan-out query of N items on lane ``fanout``, its
items on lane ``items`` (not served, so only the enqueueing is measured)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

from jobmaster import App

app = App(os.environ.get("JOBMASTER_NAME", "bench"))


@app.job(definition_id="item", lane="items")
def item(n: int) -> int:
    return n


@app.fan_out(None, job=item, name="items-query", lane="fanout", batch_size=1000)
def items_query(count: int) -> Iterator[dict[str, int]]:
    for n in range(count):
        yield {"n": n}
    path = os.environ.get("JM_BENCH_RSS")
    if path:  # the peak resident memory of the process that ran the query, in KiB
        with open(path, "w") as f:
            f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))

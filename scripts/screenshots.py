"""Regenerate the dashboard's screenshots (docs/img/dashboard-*.png) from the real UI.

It makes a throw-away cluster in a temporary directory (SQLite master and agent), fills it
by running real workers (the ``jobmaster worker`` command) over a few hundred jobs of a
small shop (some fail, some retry, one workflow, two schedules and a paused one), serves
the dashboard and photographs five pages with headless Chromium at 1280×900::

    .venv/bin/python scripts/screenshots.py              # a few seconds of work
    .venv/bin/python scripts/screenshots.py --minutes 3  # fuller per-minute charts

It needs ``jobmaster[dashboard]``, selenium, and Chromium with its driver
(Debian: ``apt-get install chromium chromium-driver``).

The workers import this file as the module ``screenshots`` for the shop's job definitions;
where jobs are stored comes from the ``JOBMASTER_*`` environment variables it sets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobmaster import App, JobContext, JobStatus, Priority

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1280, 900)


class CardDeclinedError(Exception):
    """The bank said no."""


def make_app() -> App:
    """The shop: its job definitions, on the master and agent the environment names."""
    app = App(os.environ.get("JOBMASTER_NAME", "shop"))

    def work(low: float, high: float) -> None:
        time.sleep(random.uniform(low, high))  # noqa: S311 - a pretend workload

    @app.job(definition_id="send-invoice", lane="billing")
    def send_invoice(order: int, email: str) -> dict[str, Any]:
        work(0.01, 0.08)
        return {"order": order, "sent_to": email}

    @app.job(definition_id="charge-card", lane="billing", priority=Priority.HIGH,
             max_retries=2, retry_delay=0.3)
    def charge_card(ctx: JobContext, order: int, amount_cents: int) -> str:
        work(0.02, 0.1)
        if order % 17 == 0 or (order % 5 == 0 and ctx.attempt == 1):
            raise CardDeclinedError(f"card declined for order {order} "
                                    f"({amount_cents / 100:.2f} EUR): insufficient funds")
        return f"ch_{order:06d}"

    @app.job(definition_id="resize-image", lane="media")
    def resize_image(image: str, width: int) -> str:
        work(0.05, 0.25)
        return f"{image.rsplit('.', 1)[0]}-{width}w.webp"

    @app.job(definition_id="sync-crm")
    def sync_crm(account: str) -> int:
        work(0.02, 0.12)
        return len(account) * 7

    @app.job(definition_id="export-csv", max_retries=2, retry_delay=0.2)
    def export_csv(report: str, api_token: str) -> str:
        rows = _load_rows(report)
        return f"{report}.csv: {len(rows)} rows"

    @app.job(definition_id="nightly-report")
    def nightly_report(day: str) -> str:
        work(0.05, 0.1)
        return f"report for {day}"

    @app.job(definition_id="crawl-catalog", lane="media")
    def crawl_catalog(ctx: JobContext, pages: int) -> int:
        for page in range(pages):
            if ctx.should_stop():
                return page
            ctx.report_progress(100 * page // pages, f"page {page} of {pages}")
            time.sleep(0.5)
        return pages

    return app


def _load_rows(report: str) -> list[dict[str, Any]]:
    with _warehouse() as rows:
        return [row for row in rows if row["report"] == report]


def _warehouse() -> Any:
    raise ConnectionError("warehouse.internal:5432 refused the connection (3 tries)")


app = make_app()
"""The shop as the workers load it (``-A screenshots:app``)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img",
                        help="where the PNG files go (default: docs/img)")
    parser.add_argument("--minutes", type=int, default=0,
                        help="keep the workers busy across this many minute boundaries, "
                             "for fuller per-minute charts (default: 0, a few seconds)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jobmaster-screenshots-") as tmp:
        directory = Path(tmp)
        os.environ.update({
            "JOBMASTER_NAME": "shop",
            "JOBMASTER_MASTER_URL": f"sqlite:///{directory}/master.db",
            "JOBMASTER_AGENT_URL": f"sqlite:///{directory}/agent.db",
            "JOBMASTER_AUTO_MIGRATE": "true",
            "JOBMASTER_SHUTDOWN_GRACE": "3",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "scripts"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        })
        shop = make_app()
        workers: list[subprocess.Popen[bytes]] = []
        try:
            failed = fill(shop, directory, workers, options.minutes)
            web = Server(shop)
            try:
                photograph(web.url, {
                    "overview": "/", "jobs": "/jobs", "job": f"/jobs/{failed}",
                    "schedules": "/schedules", "workers": "/workers"}, options)
            finally:
                web.stop()
        finally:
            for worker in workers:
                stop(worker)
            shop.close()


def fill(shop: App, directory: Path, workers: list[subprocess.Popen[bytes]],
         minutes: int) -> str:
    """Give the shop a history: jobs run by real workers, schedules, a workflow. Return the
    id of a job that failed for good."""
    from jobmaster.canvas import chain

    rng = random.Random(7)  # noqa: S311 - made-up orders
    enqueue_wave(shop, rng, 0)
    broken = shop.definition("export-csv").delay(
        report="orders", api_token="tok_live_4242")  # noqa: S106 - shown redacted
    for n in range(2):
        shop.definition("export-csv").delay(report="orders", api_token=f"tok_test_{n}")
    chain(shop.definition("resize-image").si(image="hero.png", width=1600),
          shop.definition("send-invoice").si(order=9001, email="ops@example.com")
          ).apply_async()
    later = [shop.definition("nightly-report").apply_after(3600 * (h + 1), day="tomorrow")
             for h in range(12)]
    for handle in later[:3]:
        handle.cancel()
    shop.definition("sync-crm").delay_many([{"account": f"acct-{n}"} for n in range(40)],
                                          after=600)
    shop.jobs.flush()

    # a worker that did its share and was stopped (a deploy), then the two that serve now
    workers.append(start_worker(directory, "early", "-Q", "default,billing", "-c", "2"))
    wait_for(lambda: shop.jobs.count(status="succeeded") >= 60, "the first jobs to run")
    stop(workers.pop())
    workers.append(start_worker(directory, "main", "-Q", "default,billing", "-c", "3",
                                "--beat"))
    workers.append(start_worker(directory, "media", "-Q", "media", "-c", "2"))
    wait_for(lambda: shop.jobs.status(broken.id) is JobStatus.FAILED, "the export to fail")
    deadline_minute = _minute() + minutes
    wave = 1
    while _minute() < deadline_minute:
        enqueue_wave(shop, rng, wave)
        wave += 1
        time.sleep(8)
    wait_for(lambda: not shop.jobs.count(status=["queued", "running", "retrying"]),
             "the jobs to finish")

    shop.schedules.create("every day at 02:00", "nightly-report", name="nightly-report",
                          kwargs={"day": "yesterday"})
    shop.schedules.create("every 15 minutes", "sync-crm", name="sync-crm",
                          kwargs={"account": "all"})
    shop.schedules.create("every monday at 06:00", "export-csv", name="weekly-export",
                          kwargs={"report": "orders", "api_token": "tok_live_4242"})
    shop.schedules.pause("weekly-export")
    report = shop.schedules.trigger("nightly-report")
    report.wait(timeout=30)

    # something in flight: a long crawl with progress, and a backlog on the media lane
    shop.definition("crawl-catalog").delay(pages=600)
    shop.definition("resize-image").delay_many(
        [{"image": f"upload-{n}.jpg", "width": 640} for n in range(160)])
    shop.jobs.flush()
    wait_for(lambda: shop.jobs.count(status="running", definition_id="crawl-catalog") == 1,
             "the crawl to start")
    # and the newest jobs, mostly done by now
    enqueue_wave(shop, rng, wave)
    wait_for(lambda: not shop.jobs.count(status=["queued", "running"], lane="billing"),
             "the last orders to be charged and invoiced")
    return broken.id


def enqueue_wave(shop: App, rng: random.Random, wave: int) -> None:
    """A few hundred orders' worth of jobs (a tenth of that after the first wave)."""
    size = 120 if wave == 0 else 12
    base = wave * 1000
    for n in range(base, base + size):
        tenant = rng.choice(["acme", "globex", "initech"])
        shop.definition("charge-card").apply(
            kwargs={"order": n, "amount_cents": rng.randrange(500, 25000)},
            metadata={"tenant": tenant})
        shop.definition("send-invoice").apply(
            kwargs={"order": n, "email": f"buyer{n}@example.com"}, metadata={"tenant": tenant})
        if n % 2 == 0:
            shop.definition("resize-image").delay(image=f"product-{n}.jpg",
                                                  width=rng.choice([320, 640, 1280]))
        if n % 4 == 0:
            shop.definition("sync-crm").delay(account=f"acct-{n % 37}")
    shop.jobs.flush()


def start_worker(directory: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = open(directory / f"worker-{name}.log", "wb")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "jobmaster", "worker", "-A",
                             "screenshots:app", *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_for(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _minute() -> int:
    return int(datetime.now(UTC).timestamp() // 60)


class Server:
    """The shop's dashboard, served by uvicorn in a background thread."""

    def __init__(self, shop: App) -> None:
        import uvicorn

        from jobmaster.dashboard import asgi_app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(
            asgi_app(shop), log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])), daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, "the dashboard to start", 10)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def photograph(url: str, pages: dict[str, str], options: argparse.Namespace) -> None:
    """Save the page at ``url + path`` as ``dashboard-{name}.png``, for each of ``pages``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome = webdriver.ChromeOptions()
    chrome.binary_location = options.chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--window-size={SIZE[0]},{SIZE[1]}"):
        chrome.add_argument(argument)
    driver = webdriver.Chrome(options=chrome, service=Service(options.chromedriver))
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False})
        for page, path in pages.items():
            driver.get(url + path)
            deadline = time.monotonic() + 10
            while driver.execute_script("return document.readyState") != "complete":
                if time.monotonic() > deadline:
                    raise SystemExit(f"the {page} page did not load")
                time.sleep(0.05)
            target = options.out / f"dashboard-{page}.png"
            driver.save_screenshot(str(target))
            print(target)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

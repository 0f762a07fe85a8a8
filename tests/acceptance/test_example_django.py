"""The Django example over HTTP: ``manage.py runserver`` and a real ``manage.py jobmaster
worker`` in subprocesses, on a temporary SQLite database (Django's) and a temporary
SQLite master and agent (jobmaster's). An order created in a committed transaction is
confirmed by its job; one whose transaction rolled back leaves no job at all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django"
DEFINITION = "shop.confirm-order"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Site:
    """The example's processes and the HTTP calls the test makes to its server."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.port = _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=EXAMPLE,
                                    env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, data=data, timeout=10) as response:  # noqa: S310
                body = response.read()
                if response.headers.get_content_type() == "text/html":
                    return response.status, body.decode()
                return response.status, json.loads(body)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBMASTER_", "DJANGO_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "SHOP_DB": str(tmp_path / "shop.sqlite3"),
        "JOBMASTER_MASTER_URL": f"sqlite:///{tmp_path}/master.db",
        "JOBMASTER_AGENT_URL": f"sqlite:///{tmp_path}/agent.db",
        "PYTHONUNBUFFERED": "1",
    })
    site = Site(tmp_path, env)
    try:
        yield site
    finally:
        for proc in site.procs.values():
            _stop(proc)
    worker = site.procs.get("worker")
    if worker is not None and worker.returncode != 0:
        print(site.log("worker")[-5000:])
        pytest.fail(f"the worker exited with {worker.returncode} (its log is printed above)")


def _server_up(site: Site) -> bool:
    try:
        return site.request("/orders/")[0] == 200
    except OSError:
        return False


def test_orders_are_confirmed_only_when_their_transaction_commits(site: Site) -> None:
    migrated = site.manage("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    master = site.manage("jobmaster", "migrate")
    assert master.returncode == 0, master.stdout + master.stderr
    assert "master schema" in master.stdout

    site.start("server", "runserver", f"127.0.0.1:{site.port}", "--noreload")
    worker = site.start("worker", "jobmaster", "worker", "-c", "1", "-l", "INFO")
    wait_for(lambda: _server_up(site), 60, "the Django server")
    wait_for(lambda: "prefork slot(s)" in site.log("worker"), 60, "the worker to be ready")

    status, body = site.request("/orders/", {"item": "anvil", "out_of_stock": "1"})
    assert (status, body) == (409, {"error": "out of stock", "rolled_back": True})
    status, order = site.request("/orders/", {"item": "widget", "quantity": "3"})
    assert status == 201, order
    assert order["confirmed"] is False and order["item"] == "widget"

    def confirmed() -> bool:
        return bool(site.request(f"/orders/{order['id']}/")[1]["confirmed"])

    wait_for(confirmed, 30, "the worker to confirm the committed order")

    def finished_jobs() -> list[dict[str, Any]]:
        jobs = site.request(f"/jobs/?definition={DEFINITION}")[1]["jobs"]
        final = ("succeeded", "failed", "cancelled")
        return jobs if jobs and all(j["status"] in final for j in jobs) else []

    jobs = wait_for(finished_jobs, 30, "the master to record the job")
    # the rolled-back request came first: had it enqueued, its job would be here too
    assert [(j["status"], j["kwargs"], j["result"]) for j in jobs] == [
        ("succeeded", {"order_id": order["id"]}, f"order {order['id']} confirmed")]
    assert [o["item"] for o in site.request("/orders/")[1]["orders"]] == ["widget"]

    # the dashboard, mounted at /ops/jobs/ through the contrib URL patterns
    status, page = site.request(f"/ops/jobs/jobs?definition={DEFINITION}")
    assert status == 200 and jobs[0]["id"] in page
    assert 'href="/ops/jobs/static/dashboard.css"' in page
    status, detail = site.request(f"/ops/jobs/jobs/{jobs[0]['id']}")
    assert status == 200 and "succeeded" in detail and "Timeline" in detail
    status, refused = site.request(f"/ops/jobs/jobs/{jobs[0]['id']}/delete", {"csrf": "x"})
    assert status == 403 and "CSRF" in refused  # the dashboard's own token, not Django's
    assert worker.poll() is None, site.log("worker")


def test_manage_py_jobmaster_is_jobmasters_command_line(site: Site) -> None:
    shown = site.manage("jobmaster", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "Usage: manage.py jobmaster" in shown.stdout
    for command in ("worker", "beat", "migrate", "jobs"):
        assert command in shown.stdout
    definitions = site.manage("jobmaster", "status")
    assert definitions.returncode == 0, definitions.stdout + definitions.stderr
    assert "shop" in definitions.stdout  # the cluster named in settings.JOBMASTER

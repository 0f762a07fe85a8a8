"""The dashboard served in process over real masters: every page, every action and every
guard (CSRF, read-only, authorize, basic auth), mounted in a FastAPI app and behind WSGI.
The browser tests (tests/browser) drive the same pages in Chromium."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient  # noqa: E402

from jobmaster import App, JobStatus  # noqa: E402
from jobmaster.dashboard import asgi_app, wsgi_app  # noqa: E402
from jobmaster.testing import drain  # noqa: E402
from tests.conftest import Stack, wait_until  # noqa: E402

PAGES = ["/", "/jobs", "/schedules", "/workers", "/lanes", "/dead-letters", "/definitions"]


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Iterator[App]:
    stack = stack_factory(request.param)
    made: App = stack.app()
    made.migrate()
    yield made
    made.close()


def _client(web: Any, **kwargs: Any) -> TestClient:
    return TestClient(web, follow_redirects=False, **kwargs)


def _csrf(client: TestClient, path: str = "/jobs") -> str:
    page = client.get(path)
    assert page.status_code == 200
    token = client.cookies.get("jobmaster_csrf")
    assert token and f'value="{token}"' in page.text
    return token


def _settle(app: App, *handles: Any) -> None:
    """Run jobs in process until every one of ``handles`` ended (retries included)."""
    wait_until(lambda: drain(app) >= 0 and all(h.status().is_final for h in handles),
               what="the jobs ended")


def _ran(app: App) -> tuple[str, str]:
    """One succeeded and one failed job, run in process."""
    ok = app.definition("add").delay(x=1, y=2)
    bad = app.definition("always-fails").delay()
    _settle(app, ok, bad)
    assert ok.status() is JobStatus.SUCCEEDED and bad.status() is JobStatus.FAILED
    return ok.id, bad.id


def test_every_page_answers_with_a_strict_policy(app: App) -> None:
    app.schedules.create("every 5 minutes", "add", name="five", kwargs={"x": 1, "y": 2})
    client = _client(asgi_app(app))
    for path in [*PAGES, "/schedules/five"]:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in page.text and " style=" not in page.text, path
    assert client.get("/jobs/no-such-job").status_code == 404
    assert client.get("/static/dashboard.js").status_code == 200


def test_job_page_shows_outcome_and_hides_secrets(app: App) -> None:
    @app.job(definition_id="login")
    def login(user: str, password: str) -> str:
        return user

    handle = login.delay(user="ann", password="hunter2")
    failed = app.definition("always-fails").delay()
    _settle(app, handle, failed)
    client = _client(asgi_app(app))
    page = client.get(f"/jobs/{handle.id}").text
    assert "ann" in page and "hunter2" not in page and "•••" in page
    page = client.get(f"/jobs/{failed.id}").text
    assert "this job always fails" in page and "Traceback" in page
    assert page.count('class="status-') >= 3  # queued, running, failed... in the timeline
    shown = _client(asgi_app(app, redact=lambda job, kwargs: {"all": "hidden"}))
    arguments = shown.get(f"/jobs/{handle.id}").text.split('id="job-arguments">')[1]
    assert arguments.split("</pre>")[0].count("hidden") == 1 and "ann" not in arguments[:60]


def test_jobs_filters_search_and_keyset_paging(app: App) -> None:
    handles = [app.definition("add").delay(x=i, y=0) for i in range(120)]
    failed = app.definition("always-fails").delay()
    app.flush()
    client = _client(asgi_app(app))
    first = client.get("/jobs").text
    ids = re.findall(r'name="ids" value="([^"]+)"', first)
    assert len(ids) == 50 and ids[0] == failed.id  # newest first
    cursor = re.search(r'id="next-page" href="[^"]*cursor=([^"&]+)', first)
    assert cursor is not None
    second = client.get(f"/jobs?cursor={cursor.group(1)}").text
    more = re.findall(r'name="ids" value="([^"]+)"', second)
    assert len(more) == 50 and not set(more) & set(ids)
    only = client.get("/jobs?definition=always-fails").text
    assert re.findall(r'name="ids" value="([^"]+)"', only) == [failed.id]
    assert "121" in client.get("/jobs").text.replace(",", "")  # the (estimated) count
    found = client.get(f"/jobs?q={handles[7].id}")
    assert found.status_code == 303 and found.headers["location"].endswith(handles[7].id)
    assert "no job" in client.get("/jobs?q=nope").text
    assert "KEY=VALUE" in client.get("/jobs?meta=oops").text  # a bad filter says why


def test_actions_need_the_csrf_token(app: App) -> None:
    _, failed = _ran(app)
    client = _client(asgi_app(app))
    assert client.post(f"/jobs/{failed}/retry", data={}).status_code == 403
    _csrf(client)
    assert client.post(f"/jobs/{failed}/retry", data={"csrf": "x" * 43}).status_code == 403
    assert app.jobs.status(failed) is JobStatus.FAILED
    token = _csrf(client)
    done = client.post(f"/jobs/{failed}/retry", data={"csrf": token, "next": f"/jobs/{failed}"})
    assert done.status_code == 303 and "queued+again" in done.headers["location"]
    assert app.jobs.status(failed) is JobStatus.QUEUED


def test_read_only_refuses_every_action(app: App) -> None:
    _, failed = _ran(app)
    client = _client(asgi_app(app, read_only=True))
    token = _csrf(client)
    assert "<button" not in client.get(f"/jobs/{failed}").text.split("<main>")[1].split(
        'id="timeline"')[0]
    for path in (f"/jobs/{failed}/retry", f"/jobs/{failed}/delete", "/jobs/bulk",
                 "/lanes/default/pause", "/dead-letters/requeue"):
        assert client.post(path, data={"csrf": token, "action": "retry",
                                       "ids": failed}).status_code == 403, path
    assert app.jobs.status(failed) is JobStatus.FAILED
    assert app.lanes.paused() == set()


def test_authorize_decides_each_page_and_action(app: App) -> None:
    _, failed = _ran(app)
    asked: list[tuple[str, str]] = []

    def authorize(request: Any, action: str, target: str) -> bool:
        asked.append((action, target))
        return action in ("view", "cancel")

    client = _client(asgi_app(app, authorize=authorize))
    token = _csrf(client)
    assert client.post(f"/jobs/{failed}/retry", data={"csrf": token}).status_code == 403
    assert ("retry", failed) in asked and ("view", "jobs") in asked
    nobody = _client(asgi_app(app, authorize=lambda *_: False))
    assert nobody.get("/").status_code == 403


def test_bulk_on_a_selection_and_on_the_whole_filter(app: App) -> None:
    failed = [app.definition("always-fails").delay() for _ in range(3)]
    ok = app.definition("add").delay(x=1, y=1)
    _settle(app, ok, *failed)
    client = _client(asgi_app(app))
    token = _csrf(client)
    picked = client.post("/jobs/bulk", data={"csrf": token, "action": "retry",
                                             "scope": "selection", "ids": [failed[0].id],
                                             "next": "/jobs"})
    assert picked.status_code == 303 and "1+job" in picked.headers["location"]
    assert failed[0].status() is JobStatus.QUEUED
    form = {"csrf": token, "action": "delete", "scope": "filter", "status": "failed",
            "next": "/jobs?status=failed"}
    confirm = client.post("/jobs/bulk", data=form)
    assert confirm.status_code == 200 and "Delete 2 job(s)?" in confirm.text
    assert failed[1].status() is JobStatus.FAILED  # nothing happens before the confirmation
    done = client.post("/jobs/bulk", data={**form, "confirmed": "yes"})
    assert done.status_code == 303 and "2+job" in done.headers["location"]
    assert app.jobs.find(failed[1].id) is None and app.jobs.find(failed[2].id) is None
    assert ok.status() is JobStatus.SUCCEEDED
    refused = client.post(f"/jobs/{failed[0].id}/delete", data={"csrf": token})
    assert "was+not+deleted" in refused.headers["location"]  # queued: cancel it first


def test_lane_pause_and_schedule_actions(app: App) -> None:
    app.schedules.create("every 5 minutes", "add", name="five", kwargs={"x": 2, "y": 3})
    client = _client(asgi_app(app))
    token = _csrf(client, "/lanes")
    assert client.post("/lanes/default/pause", data={"csrf": token}).status_code == 303
    assert app.lanes.paused() == {"default"}
    assert "paused" in client.get("/lanes").text
    client.post("/lanes/default/resume", data={"csrf": token})
    assert app.lanes.paused() == set()
    client.post("/schedules/five/pause", data={"csrf": token})
    assert app.schedules.get("five").paused
    client.post("/schedules/five/resume", data={"csrf": token})
    assert not app.schedules.get("five").paused
    ran = client.post("/schedules/five/trigger", data={"csrf": token})
    job_id = re.search(r"job\+([0-9a-f-]{36})", ran.headers["location"])
    assert job_id is not None
    job = app.jobs.get(job_id.group(1))
    assert job.kwargs == {"x": 2, "y": 3} and job.metadata == {"schedule": "five"}
    assert job.schedule_name == "five" and job.occurrence is None
    assert job.id in client.get("/schedules/five").text  # among the schedule's last runs


def test_a_schedules_secret_arguments_are_hidden(app: App) -> None:
    @app.job(definition_id="call-api")
    def call_api(url: str, api_token: str) -> None: ...

    app.schedules.create("every 5 minutes", call_api, name="tokened",
                         kwargs={"url": "https://example.com", "api_token": "tok_live_4242"})
    page = _client(asgi_app(app)).get("/schedules/tokened").text
    assert "tok_live_4242" not in page and "•••" in page


def test_basic_auth(app: App) -> None:
    web = asgi_app(app, auth="ops:s3cret")
    assert "s3cret" not in repr(web)
    client = _client(web)
    assert client.get("/").status_code == 401
    wrong = base64.b64encode(b"ops:nope").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"ops:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {right}"}).status_code == 200
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        asgi_app(app, auth="nopassword")


def test_mounted_under_a_sub_path_of_a_fastapi_app(app: App) -> None:
    fastapi = pytest.importorskip("fastapi")
    api = fastapi.FastAPI()
    api.mount("/ops/jobs", asgi_app(app))
    _, failed = _ran(app)
    client = _client(api)
    page = client.get("/ops/jobs/jobs")
    assert page.status_code == 200
    links = re.findall(r'(?:href|action|src)="(/[^"]*)"', page.text)
    assert links and all(link.startswith("/ops/jobs/") for link in links), links
    assert client.get("/ops/jobs/static/dashboard.css").status_code == 200
    token = client.cookies.get("jobmaster_csrf")
    done = client.post(f"/ops/jobs/jobs/{failed}/retry",
                       data={"csrf": token, "next": f"/jobs/{failed}"})
    assert done.headers["location"].startswith(f"/ops/jobs/jobs/{failed}?")
    assert app.jobs.status(failed) is JobStatus.QUEUED


def test_behind_wsgi(app: App) -> None:
    from werkzeug.test import Client

    client = Client(wsgi_app(app, read_only=True))
    response = client.get("/jobs")
    assert response.status_code == 200 and "jobmaster" in response.get_data(as_text=True)

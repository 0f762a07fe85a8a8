"""The dashboard's guards in the browser: a read-only dashboard refuses every action, and
every action needs this browser's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from jobmaster import JobStatus
from tests.browser.conftest import Browser
from tests.conftest import Stack

pytestmark = pytest.mark.timeout(60)

POST_BUTTONS = ("return document.querySelectorAll('form[method=post] button,"
                " form[method=post] input[type=checkbox]').length")


def page_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found[1]


def test_a_read_only_dashboard_offers_no_action_and_refuses_a_forged_one(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    job = app.definition("add").delay(x=1, y=2)
    other = app.definition("add").delay(x=2, y=2)
    app.schedules.create("every 5 minutes", "add", name="tally", kwargs={"x": 1, "y": 1})
    app.jobs.flush()
    trail = app.jobs.history(job.id)
    read_only = dashboard(stack, read_only=True)
    writable = dashboard(stack)

    for path in ("/", "/jobs", f"/jobs/{job.id}", "/schedules", "/schedules/tally", "/lanes",
                 "/dead-letters"):
        browser.open(read_only + path)
        assert browser.js(POST_BUTTONS) == 0, path
        assert browser.text(".top .badge") == "read-only"

    # a POST made by the page's own script, with the page's valid token
    browser.open(f"{read_only}/jobs")
    token = browser.js("return document.querySelector('#bulk [name=csrf]').value")
    forged = {"csrf": token, "next": "/jobs"}
    assert browser.post(f"{read_only}/jobs/{job.id}/cancel", forged) == 403
    assert browser.post(f"{read_only}/jobs/bulk",
                        {**forged, "action": "delete", "scope": "selection",
                         "ids": job.id}) == 403
    assert browser.post(f"{read_only}/schedules/tally/pause", forged) == 403
    # and one from outside a browser, with the cookie and the token that go together
    with httpx.Client(base_url=read_only) as client:
        token = page_token(client.get("/jobs").text)
        refused = client.post(f"/jobs/{job.id}/cancel", data={"csrf": token})
        assert refused.status_code == 403
        assert "this dashboard is read-only" in refused.text

    assert app.jobs.status(job.id) is JobStatus.QUEUED
    assert app.jobs.history(job.id) == trail
    assert not app.schedules.get("tally").paused
    # the very same request is obeyed by a dashboard that is not read-only
    browser.open(f"{writable}/jobs")
    token = browser.js("return document.querySelector('#bulk [name=csrf]').value")
    assert browser.post(f"{writable}/jobs/{other.id}/cancel",
                        {"csrf": token, "next": "/jobs"}) == 200
    assert app.jobs.status(other.id) is JobStatus.CANCELLED


def test_an_action_needs_this_browser_s_csrf_token(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    job = app.definition("add").delay(x=1, y=2)
    app.jobs.flush()
    trail = app.jobs.history(job.id)
    url = dashboard(stack)
    cancel = f"{url}/jobs/{job.id}/cancel"

    browser.open(f"{url}/jobs/{job.id}")
    token = browser.js("return document.querySelector("
                       "'form[action$=\"/cancel\"] [name=csrf]').value")
    assert len(token) == 43
    assert browser.post(cancel, {"next": f"/jobs/{job.id}"}) == 403
    assert browser.post(cancel, {"csrf": ""}) == 403
    assert browser.post(cancel, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}) \
        == 403
    # a token without its cookie (a form on another site) and a cookie without its token
    with httpx.Client() as stranger:
        refused = stranger.post(cancel, data={"csrf": token})
        assert refused.status_code == 403
        assert "missing or wrong CSRF token" in refused.text
    with httpx.Client(base_url=url) as client:
        page_token(client.get("/jobs").text)
        assert client.cookies.get("jobmaster_csrf")
        assert client.post(cancel, data={"next": "/jobs"}).status_code == 403
    assert app.jobs.status(job.id) is JobStatus.QUEUED
    assert app.jobs.history(job.id) == trail

    # the page's own form carries the token
    browser.click(".actions form[action$='/cancel'] button")
    browser.accept_confirm()
    browser.arrive("location.search.indexOf('flash=') >= 0", what="the cancel's answer")
    assert browser.text(".flash") == f"job {job.id} is cancelled"
    assert app.jobs.status(job.id) is JobStatus.CANCELLED

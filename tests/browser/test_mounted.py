"""The dashboard mounted under a path of a FastAPI application: what it links to, loads and
posts to stays under that path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jobmaster import JobStatus
from jobmaster.dashboard import asgi_app
from tests.browser.conftest import Browser
from tests.conftest import Stack

pytestmark = pytest.mark.timeout(60)

URLS = """return [].concat(
  Array.from(document.querySelectorAll("a[href]"), function (a) { return a.href; }),
  Array.from(document.querySelectorAll("form"), function (f) {
    return new URL(f.getAttribute("action"), location.href).href; }),
  Array.from(document.querySelectorAll("link[rel=stylesheet]"), function (l) { return l.href; }),
  Array.from(document.querySelectorAll("script[src]"), function (s) { return s.src; }));"""


def test_mounted_in_fastapi_every_url_stays_under_the_mount(
        browser: Browser, stack_factory: Callable[..., Stack],
        serve: Callable[[Any], str]) -> None:
    from fastapi import FastAPI

    stack = stack_factory("sqlite")
    app = stack.app()
    job = app.definition("add").delay(x=1, y=2)
    done = app.definition("add").delay(x=2, y=2)
    app.jobs.cancel(done.id)
    app.schedules.create("every 5 minutes", "add", name="tally", kwargs={"x": 1, "y": 1})
    api = FastAPI()

    @api.get("/")
    def home() -> dict[str, str]:
        return {"shop": "open"}

    api.mount("/ops/jobs", asgi_app(stack.app(), poll_seconds=1))
    root = serve(api) + "/ops/jobs"

    for path in ("/", "/jobs", f"/jobs/{job.id}", f"/jobs/{done.id}", "/schedules",
                 "/schedules/tally", "/workers", "/lanes", "/dead-letters", "/definitions"):
        browser.open(root + path)
        urls = browser.js(URLS)
        assert urls and [u for u in urls if not u.startswith(root + "/")] == [], path
        sheet = browser.js("var s = document.styleSheets[0];"
                           "return s ? [s.href, s.cssRules.length] : null;")
        assert sheet is not None and sheet[0] == f"{root}/static/dashboard.css", path
        assert sheet[1] > 0, path
        assert browser.js("return getComputedStyle(document.body).backgroundColor") == \
            "rgb(247, 248, 250)"
        # its script runs there too: live regions refresh through the mount
        if browser.js("return document.querySelector('[data-live]') !== null"):
            browser.refresh_now()
        assert browser.page_violations() == [], path

    # the mount itself, without its slash, leads to the overview
    browser.open(root)
    assert browser.driver.current_url == root + "/"
    assert browser.text("nav a.active") == "Overview"
    for label in ("Jobs", "Schedules", "Workers", "Lanes", "Dead letters", "Definitions",
                  "Overview"):
        browser.driver.find_element("link text", label).click()
        browser.arrive("document.querySelector('nav a.active') &&"
                       " document.querySelector('nav a.active').textContent === arguments[0]",
                       label, what=f"the {label} page")
        assert browser.driver.current_url.startswith(root + "/")

    # filter, open a job, and act on it, all through the mount
    browser.open(f"{root}/jobs")
    browser.choose("#filters [name=status]", "queued")
    browser.click("#filters button[type=submit]")
    browser.arrive("location.search.indexOf('status=queued') >= 0", what="the filtered page")
    assert browser.driver.current_url.startswith(f"{root}/jobs?")
    assert browser.row_status(job.id) == "queued" and browser.row_status(done.id) is None
    browser.click(f"#jobs-table a[href$='/jobs/{job.id}']")
    browser.arrive("location.pathname === arguments[0]", f"/ops/jobs/jobs/{job.id}",
                   what="the job's page")
    browser.click(".actions form[action$='/cancel'] button")
    browser.accept_confirm()
    browser.arrive("location.search.indexOf('flash=') >= 0", what="the cancel's answer")
    assert browser.driver.current_url.startswith(f"{root}/jobs/{job.id}?")
    assert browser.text("#job-status") == "cancelled"
    assert app.jobs.status(job.id) is JobStatus.CANCELLED

"""Finding jobs in the browser: the filter form, paging, and every page under the
Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.browser.conftest import Browser
from tests.conftest import Stack

pytestmark = pytest.mark.timeout(60)

ID, DEFINITION, STATUS = 2, 3, 4
"""Columns of the jobs table (the first holds the selection boxes)."""


def test_the_filter_form_shows_only_the_matching_jobs(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    adds = [app.definition("add").delay(x=i, y=1).id for i in range(4)]
    echoes = [app.definition("echo").delay(value=i).id for i in range(3)]
    for job_id in (adds[0], adds[1], echoes[0]):
        app.jobs.cancel(job_id)
    url = dashboard(stack)

    browser.open(f"{url}/jobs")
    assert len(browser.column(ID)) == 7

    def filter_by(status: str, definition: str) -> None:
        browser.choose("#filters [name=status]", status)
        browser.type("#filters [name=definition]", definition)
        browser.click("#filters button[type=submit]")
        browser.arrive("location.search.indexOf(arguments[0]) >= 0",
                       f"status={status}&definition={definition}", what="the filtered page")

    filter_by("cancelled", "add")
    assert sorted(browser.column(ID)) == sorted(adds[:2])
    assert set(browser.column(DEFINITION)) == {"add"}
    assert set(browser.column(STATUS)) == {"cancelled"}
    assert browser.text("#match-count") == "2"

    filter_by("queued", "echo")
    assert sorted(browser.column(ID)) == sorted(echoes[1:])
    assert set(browser.column(STATUS)) == {"queued"}
    # the form shows what it filters by
    assert browser.js("return document.querySelector('#filters [name=status]').value") == \
        "queued"

    filter_by("failed", "echo")
    assert browser.column(ID) == []
    assert browser.text("#jobs-table tbody td.empty") == "No job matches."


def test_the_next_page_shows_the_older_jobs_after_the_first_fifty(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    ids = [app.definition("add").delay(x=i, y=0).id for i in range(62)]
    app.jobs.flush()
    created = {i: app.jobs.get(i).created_at for i in ids}
    url = dashboard(stack)

    browser.open(f"{url}/jobs?definition=add")
    first = browser.column(ID)
    assert len(first) == 50
    assert browser.text("#match-count") == "62"
    assert browser.driver.find_elements("link text", "first page") == []
    browser.click("#next-page")
    browser.arrive("location.search.indexOf('cursor=') >= 0", what="the second page")
    second = browser.column(ID)

    assert len(second) == 12
    assert not set(first) & set(second)
    assert set(first) | set(second) == set(ids)
    newest_first = sorted(ids, key=lambda i: (created[i], i), reverse=True)
    assert first + second == newest_first
    assert max(created[i] for i in second) <= min(created[i] for i in first)
    # the filter carries over, there is no third page, and the first page is one click away
    assert "definition=add" in browser.driver.current_url
    assert browser.driver.find_elements("css selector", "#next-page") == []
    browser.driver.find_element("link text", "first page").click()
    browser.arrive("location.search.indexOf('cursor=') < 0", what="the first page")
    assert browser.column(ID) == first


def test_no_page_breaks_the_content_security_policy(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    job = app.definition("add").delay(x=1, y=2)
    app.definition("echo").delay(value={"api_token": "s3cret", "n": 1})
    app.jobs.cancel(job.id)
    app.schedules.create("every 5 minutes", "add", name="tally", kwargs={"x": 1, "y": 1})
    url = dashboard(stack)

    pages = ["/", "/jobs", f"/jobs/{job.id}", "/schedules", "/schedules/tally", "/workers",
             "/lanes", "/dead-letters", "/definitions", "/jobs/no-such-job"]
    for path in pages:
        browser.open(url + path)
        assert browser.page_violations() == [], path
        # the stylesheet and the script were loaded and run
        assert browser.js("return document.styleSheets.length === 1 && "
                          "document.styleSheets[0].cssRules.length > 0"), path
        if browser.js("return document.querySelector('[data-live]') !== null"):
            browser.refresh_now()
        assert browser.page_violations() == [], path
    assert browser.text("h1") == "404"
    # the confirmation a bulk action on a whole filter asks for
    browser.open(f"{url}/jobs?status=queued")
    browser.click("#bulk button[name=scope][value=filter]")
    browser.arrive("document.getElementById('confirm') !== null", what="the confirmation")
    assert browser.text("h1") == "Retry 1 job(s)?"
    assert browser.page_violations() == []
    # the only console error is the missing job's answer
    assert [m for m in browser.severe() if "no-such-job" not in m] == []

    # the check sees a violation when there is one
    browser.js("var i = document.createElement('img');"
               "i.src = 'https://example.invalid/pixel.png'; document.body.append(i);")
    browser.wait_for("window.__cspViolations.length > 0", what="the violation")
    assert browser.page_violations() == ["img-src https://example.invalid/pixel.png"]
    assert any("example.invalid" in m for m in browser.csp_errors())
    browser.console.clear()

"""The dashboard over real workers: what a failure looks like, and retry and cancel from
the browser reaching the workers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobmaster import JobStatus
from tests.browser.conftest import Browser
from tests.conftest import Stack, wait_until

pytestmark = pytest.mark.timeout(60)


def failed_job(stack: Stack) -> str:
    """The id of an ``always-fails`` job a real worker ran to failure (three attempts)."""
    app = stack.app()
    handle = app.definition("always-fails").delay()
    stack.worker("-c", "1")
    assert handle.wait(timeout=30).status is JobStatus.FAILED
    return handle.id


def test_a_failed_job_shows_its_error_traceback_and_timeline(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("postgres")
    job_id = failed_job(stack)
    url = dashboard(stack)

    browser.open(f"{url}/jobs/{job_id}")
    assert browser.text("#job-status") == "failed"
    assert browser.text("p.error-line") == "ValueError: this job always fails"
    traceback = browser.text("#traceback") or ""
    assert traceback.startswith("Traceback (most recent call last)")
    assert "in always_fails" in traceback
    assert traceback.endswith("ValueError: this job always fails")
    assert browser.texts("#timeline li .pill") == [
        "queued", "running", "retrying", "running", "retrying", "running", "failed"]
    assert browser.texts("#timeline li .error-line") == \
        ["ValueError: this job always fails"] * 3
    assert "all 3 attempts used" in browser.texts("#timeline li .reason")[-1]
    assert browser.texts(".actions button") == ["Retry", "Delete"]
    assert browser.text("#job-attempts") == "3 of 3"
    assert len(browser.texts("ol.errors li")) == 3


def test_retry_from_the_browser_runs_the_job_again_on_a_worker(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("postgres")
    job_id = failed_job(stack)
    app = stack.app()
    url = dashboard(stack)

    browser.open(f"{url}/jobs/{job_id}")
    assert len(browser.texts("#timeline li")) == 7
    browser.click(".actions form[action$='/retry'] button")
    browser.arrive("location.search.indexOf('flash=') >= 0", what="the retry's answer")
    assert browser.text(".flash") == f"job {job_id} queued again"
    # the running worker takes it: three more attempts appear without a reload
    browser.wait_for("document.querySelectorAll('#timeline li').length === 14",
                     what="the second round of attempts")
    browser.wait_for("document.getElementById('job-status').textContent === 'failed'",
                     what="the job to fail again")
    pills = browser.texts("#timeline li .pill")
    assert pills[7:] == ["queued", "running", "retrying", "running", "retrying", "running",
                         "failed"]
    assert browser.text("#timeline li:nth-child(8) .reason") == "retried by request"
    assert browser.text("#job-attempts") == "6 in all (3 allowed per run)"
    job = app.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 6
    assert {e.worker for e in app.jobs.history(job_id)[8:]} == {job.worker}


def test_cancel_from_the_browser_stops_a_job_running_on_a_worker(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("postgres")
    app = stack.app()
    handle = app.definition("patient").delay(seconds=60)
    stack.worker("-c", "1")
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="the job to run")
    url = dashboard(stack)

    browser.open(f"{url}/jobs/{handle.id}")
    assert browser.text("#job-status") == "running"
    assert browser.texts(".actions button") == ["Cancel"]
    browser.click(".actions form[action$='/cancel'] button")
    assert browser.accept_confirm() == f"Cancel job {handle.id}?"
    browser.arrive("location.search.indexOf('flash=') >= 0", what="the cancel's answer")
    assert browser.text(".flash") == f"job {handle.id} is cancelled"
    assert browser.text("#job-status") == "cancelled"

    # the worker's job saw ctx.should_stop(), and the worker let go of it
    wait_until(lambda: f"patient stopped {handle.id}" in stack.lines(),
               what="the job to stop")
    wait_until(lambda: all(not w.running for w in app.workers.list()),
               what="the worker to settle the job")
    assert app.jobs.get(handle.id).status is JobStatus.CANCELLED
    browser.refresh_now()
    assert browser.text("#job-status") == "cancelled"
    assert browser.texts("#timeline li .pill")[:3] == ["queued", "running", "cancelled"]
    assert browser.text("#timeline li:nth-child(3) .reason") == "cancelled by request"
    assert browser.texts(".actions button") == ["Retry", "Delete"]


def test_pages_refresh_themselves_and_show_new_outcomes_without_a_reload(
        browser: Browser, stack_factory: Callable[..., Stack],
        dashboard: Callable[..., str]) -> None:
    stack = stack_factory("redis")
    app = stack.app()
    stack.worker("-c", "1")
    wait_until(lambda: any(w.alive for w in app.workers.list()), what="the worker to start")
    url = dashboard(stack, poll_seconds=1)

    browser.open(f"{url}/")
    browser.js("window.sameDocument = true;")
    assert browser.js("return document.getElementById('poll').selectedOptions[0].text") == \
        "1 s"
    first = browser.wait_for("document.body.dataset.refreshed", what="a first refresh")
    browser.wait_for("document.body.dataset.refreshed !== arguments[0]", first,
                     what="a second refresh")
    assert browser.text("#workers-alive") == "1"
    assert browser.text(".card.status-failed .value") == "0"
    failing = app.definition("always-fails").delay()
    app.jobs.flush()
    browser.wait_for("document.querySelector('.card.status-failed .value').textContent"
                     " === '1'", what="the failed job to be counted")
    assert app.jobs.status(failing.id) is JobStatus.FAILED
    assert browser.js("return window.sameDocument === true"), "the page was reloaded"

    browser.open(f"{url}/jobs?definition=add")
    browser.js("window.sameDocument = true;")
    assert browser.texts("#jobs-table tbody tr td.empty") == ["No job matches."]
    handle = app.definition("add").delay(x=2, y=3)
    app.jobs.flush()
    browser.until(lambda: browser.row_status(handle.id) == "succeeded",
                  what="the finished job to appear")
    assert browser.js("return window.sameDocument === true"), "the page was reloaded"
    assert handle.wait(timeout=5).result == 5

"""Browser tests of the dashboard: headless Chromium (Selenium) against the dashboard served
by uvicorn over a real app.

Chromium and ChromeDriver are Debian's (``apt-get install chromium chromium-driver``).
Without them these tests skip locally and fail in CI (``CI=true``), like a missing service.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.services import in_ci

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20.0
"""Seconds a browser wait may take before the test fails."""

# Recorded in every page before its own scripts run (DevTools injects it, so the page's
# Content-Security-Policy does not apply to it): what the page's CSP refused.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def _missing(what: str) -> None:
    if in_ci():
        pytest.fail(f"{what}; CI needs it to run the browser tests")
    pytest.skip(f"{what} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    """One headless Chromium for the whole session."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            _missing(f"{path} is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                           {"source": RECORD_VIOLATIONS})
    try:
        yield driver
    finally:
        driver.quit()


class Browser:
    """The session's browser, for one test: console messages are kept as they arrive."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.console: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, css: str) -> str | None:
        """The text of the first element matching ``css`` (read in one step, so a live
        refresh replacing it cannot get in between), or ``None``."""
        return self.js("var e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent.trim() : null;", css)

    def texts(self, css: str) -> list[str]:
        return self.js("return Array.from(document.querySelectorAll(arguments[0]),"
                       " function (e) { return e.textContent.trim(); });", css)

    def column(self, index: int, table: str = "#jobs-table") -> list[str]:
        """Cell ``index`` (from 1) of every row of ``table``."""
        return self.texts(f"{table} tbody tr td:nth-child({index})")

    def wait_for(self, script: str, *args: Any, what: str = "", timeout: float = WAIT) -> Any:
        """Poll the JavaScript expression ``script`` until it is truthy; return its value."""
        return self.until(lambda: self.js("return " + script, *args), what or script,
                          timeout)

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Poll ``predicate`` (Python, reading the page) until it is truthy."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                lambda d: predicate())
        except TimeoutException:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}; "
                        f"page {self.driver.current_url}")

    def row_status(self, job_id: str) -> str | None:
        """The status the jobs table shows for ``job_id`` (``None``: not listed)."""
        return self.js("var a = document.querySelector("
                       "'#jobs-table a[href$=\"/jobs/' + arguments[0] + '\"]');"
                       "return a ? a.closest('tr').querySelector('.pill').textContent : null;",
                       job_id)

    def arrive(self, condition: str, *args: Any, what: str = "") -> None:
        """Wait until the page the browser is on satisfies ``condition`` (a JavaScript
        expression, such as one on ``location``) and has loaded."""
        self.wait_for(f"({condition}) && document.readyState === 'complete'", *args,
                      what=what or condition)

    def refresh_now(self) -> None:
        """Have the page refresh its live regions now (as when its tab is shown again) and
        wait until it did."""
        before = self.js("return document.body.dataset.refreshed || '';")
        self.js("document.dispatchEvent(new Event('visibilitychange'));")
        self.wait_for("(document.body.dataset.refreshed || '') !== arguments[0]", before,
                      what="the page to refresh itself")

    def click(self, css: str) -> None:
        self.driver.find_element("css selector", css).click()

    def choose(self, css: str, value: str) -> None:
        """Pick the option of value ``value`` in the select ``css``."""
        from selenium.webdriver.support.ui import Select

        Select(self.driver.find_element("css selector", css)).select_by_value(value)

    def type(self, css: str, text: str) -> None:
        """Replace what the field ``css`` holds with ``text``, typed."""
        field = self.driver.find_element("css selector", css)
        field.clear()
        field.send_keys(text)

    def accept_confirm(self) -> str:
        """Accept the page's ``confirm()`` dialog; return its message."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        alert = WebDriverWait(self.driver, WAIT).until(expected_conditions.alert_is_present())
        message = str(alert.text)
        alert.accept()
        return message

    def post(self, url: str, fields: dict[str, str]) -> int:
        """POST ``fields`` as a form to ``url`` from the current page's own JavaScript
        (its origin, its cookies); the answer's status."""
        return int(self.driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
            " body: new URLSearchParams(arguments[1])})"
            ".then(function (r) { done(r.status); }, function (e) { done(-1); });",
            url, fields))

    def page_violations(self) -> list[str]:
        """What the current page's Content-Security-Policy refused so far."""
        return list(self.js("return window.__cspViolations || [];"))

    def csp_errors(self) -> list[str]:
        """Console messages of this test that are about the Content-Security-Policy."""
        self.console += self.driver.get_log("browser")
        return [e["message"] for e in self.console if "Content Security Policy" in
                e["message"] or "Content-Security-Policy" in e["message"]]

    def severe(self) -> list[str]:
        """Console errors of this test."""
        self.csp_errors()
        return [e["message"] for e in self.console if e["level"] == "SEVERE"]


@pytest.fixture
def browser(chrome: Any) -> Iterator[Browser]:
    """The browser, fresh for this test (no cookies, no dialog open); at the end, no page
    it showed may have logged a Content-Security-Policy error."""
    chrome.get("about:blank")
    chrome.delete_all_cookies()
    chrome.get_log("browser")
    one = Browser(chrome)
    yield one
    try:
        chrome.switch_to.alert.dismiss()
    except Exception:  # noqa: BLE001 - usually there is no dialog to dismiss
        pass
    errors = one.csp_errors()
    chrome.get("about:blank")  # stop live refreshes before the servers stop
    assert not errors, f"Content-Security-Policy errors in the console: {errors}"


class Server:
    """An ASGI application served by uvicorn in a background thread."""

    def __init__(self, asgi: Any) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(asgi, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            name=f"dashboard {self.url}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"the dashboard server at {self.url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """``serve(asgi_app) -> base URL``; every server is stopped at the end of the test."""
    servers: list[Server] = []

    def start(asgi: Any) -> str:
        servers.append(Server(asgi))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dashboard(serve: Callable[[Any], str]) -> Callable[..., str]:
    """``dashboard(stack, **asgi_app_options) -> base URL``: the dashboard of a fresh app
    of ``stack`` (its own connections, as a separate process would have), served."""
    from jobmaster.dashboard import asgi_app

    def start(stack: Stack, **options: Any) -> str:
        return serve(asgi_app(stack.app(), **{"poll_seconds": 1, **options}))

    return start

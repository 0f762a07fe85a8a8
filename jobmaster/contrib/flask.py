"""jobmaster in a Flask application: an extension with app-factory support.

::

    from flask import Flask
    from jobmaster.contrib.flask import JobMaster, get_app

    jobmaster_ext = JobMaster()

    def create_app() -> Flask:
        web = Flask(__name__)
        web.config["JOBMASTER"] = {"name": "shop", "master": "postgresql+psycopg://db/shop"}
        jobmaster_ext.init_app(web)        # App(**web.config["JOBMASTER"], default=True)
        return web

    # in a view: get_app().enqueue("send-email", {...}), or send_email.delay(...)

Jobs run inside an application context of the Flask app (``current_app``, ``g``), one
fresh context per job, except ``async def`` jobs. ``flask jobmaster worker|beat|migrate
...`` runs jobmaster's command line with the application's ``App``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from jobmaster.app import App
from jobmaster.contrib import app_from_settings, app_target
from jobmaster.envelope import Envelope
from jobmaster.exceptions import ConfigurationError
from jobmaster.middleware import Middleware
from jobmaster.outcomes import Outcome

EXTENSION = "jobmaster"
"""The key of the ``App`` in ``flask_app.extensions``."""
APP_TARGET = "jobmaster.contrib.flask:app"


class FlaskAppContext(Middleware):
    """Runs every job inside a fresh application context of ``flask_app`` (pushed in
    ``before_run``, popped in ``after_run``, in the thread running the job). ``async def``
    jobs share an event loop and get none: use ``with flask_app.app_context():``."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self._local = threading.local()

    def before_run(self, envelope: Envelope) -> None:
        """Push a new application context (first popping one a failed run left)."""
        if _in_event_loop():
            return
        self._pop()
        ctx = self.flask_app.app_context()
        ctx.push()
        self._local.ctx = ctx

    def after_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """Pop the job's application context."""
        self._pop()

    def _pop(self) -> None:
        ctx = getattr(self._local, "ctx", None)
        if ctx is not None:
            self._local.ctx = None
            ctx.pop()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class JobMaster:
    """The Flask extension: ``JobMaster(flask_app)`` or ``ext = JobMaster()`` then
    ``ext.init_app(flask_app)`` in an app factory. Each Flask application gets its own
    ``App``, made from ``flask_app.config[config_key]`` (every ``App(...)`` keyword;
    ``default=True`` unless given), or ``jobmaster_app`` when one is passed."""

    def __init__(self, flask_app: Flask | None = None, *, jobmaster_app: App | None = None,
                 config_key: str = "JOBMASTER", app_context: bool = True) -> None:
        self.jobmaster_app = jobmaster_app
        self.config_key = config_key
        self.app_context = app_context
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Flask) -> App:
        """Make (or take) the ``App`` of ``flask_app``, store it in
        ``flask_app.extensions["jobmaster"]``, run jobs in its application context (unless
        ``app_context=False``) and add the ``flask jobmaster`` command. Returns the App."""
        app = self.jobmaster_app
        if app is None:
            app = app_from_settings(flask_app.config.get(self.config_key),
                                    f"app.config[{self.config_key!r}]")
        if self.app_context:
            app.add_middleware(FlaskAppContext(flask_app))
        flask_app.extensions[EXTENSION] = app
        flask_app.cli.add_command(command)
        return app

    @property
    def app(self) -> App:
        """The ``App`` of the current Flask application."""
        return get_app()


def get_app(flask_app: Flask | None = None) -> App:
    """The ``App`` of ``flask_app`` (default: ``flask.current_app``)."""
    if flask_app is None:
        try:
            flask_app = current_app._get_current_object()  # type: ignore[attr-defined]
        except RuntimeError as exc:
            raise ConfigurationError(
                "no Flask application context: call get_app(flask_app), or use it inside "
                "a request or `with flask_app.app_context():`") from exc
    app = flask_app.extensions.get(EXTENSION) if flask_app is not None else None
    if not isinstance(app, App):
        raise ConfigurationError(
            f"Flask application {getattr(flask_app, 'name', '?')!r} has no jobmaster App: "
            "call JobMaster(flask_app) or JobMaster().init_app(flask_app)")
    return app


def __getattr__(name: str) -> Any:
    """``jobmaster.contrib.flask.app``: the current Flask application's ``App`` (what
    ``flask jobmaster ...`` hands to jobmaster's command line)."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")




@click.command("jobmaster", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def command(args: tuple[str, ...]) -> None:
    """jobmaster's command line with this application's App: worker, beat, migrate,
    jobs, schedules, status... (flask jobmaster --help lists them)."""
    from jobmaster.cli import main

    get_app()  # a clear error now if the extension is missing
    with app_target(APP_TARGET):
        main.main(args=list(args), prog_name="flask jobmaster")

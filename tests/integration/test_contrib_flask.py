"""``jobmaster.contrib.flask``: the extension with an app factory, jobs run by a real
worker (threads pool, in this process) inside the Flask application's context, and
``flask jobmaster ...`` through Flask's CLI runner."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")

import flask  # noqa: E402

from jobmaster import App, ConfigurationError  # noqa: E402
from jobmaster.contrib.flask import FlaskAppContext, JobMaster, get_app  # noqa: E402

jobmaster_ext = JobMaster()


def create_app(tmp_path: Path, name: str, **settings: Any) -> flask.Flask:
    """An app factory as Flask documents it, registering one job and one view."""
    web = flask.Flask(name)
    web.config["JOBMASTER"] = {"name": name, "master": f"sqlite:///{tmp_path}/{name}.db",
                               "agents": {"main": "memory://"}, "environ": {},
                               "default": False, **settings}
    app = jobmaster_ext.init_app(web)

    @app.job(definition_id="where")
    def where(tag: str) -> dict[str, str]:
        flask.g.tag = tag  # g belongs to this job's own application context
        return {"app": flask.current_app.name, "tag": flask.g.tag}

    @web.post("/where")
    def enqueue() -> dict[str, str]:
        handle = get_app().enqueue("where", {"tag": flask.request.form["tag"]})
        return {"id": handle.id}

    return web


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.close()


def test_each_application_of_the_factory_gets_its_own_app(tmp_path: Path,
                                                          apps: list[App]) -> None:
    first, second = create_app(tmp_path, "first"), create_app(tmp_path, "second")
    apps += [first.extensions["jobmaster"], second.extensions["jobmaster"]]
    assert [a.name for a in apps] == ["first", "second"]
    with first.app_context():
        assert get_app() is apps[0] and jobmaster_ext.app is apps[0]
    with second.app_context():
        assert get_app() is apps[1]
    assert get_app(second) is apps[1]
    assert any(isinstance(m, FlaskAppContext) for m in apps[0].middleware)
    with pytest.raises(ConfigurationError, match="no Flask application context"):
        get_app()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    web = flask.Flask("bad")
    web.config["JOBMASTER"] = {"nmae": "typo"}
    with pytest.raises(ConfigurationError, match=r"app.config\['JOBMASTER'\]: .*nmae"):
        JobMaster(web)
    with pytest.raises(ConfigurationError, match="has no jobmaster App"):
        get_app(flask.Flask("bare"))


def test_a_worker_runs_the_views_jobs_in_the_application_context(tmp_path: Path,
                                                                 apps: list[App]) -> None:
    from jobmaster.worker import Worker

    web = create_app(tmp_path, "shop")
    app = web.extensions["jobmaster"]
    apps.append(app)
    client = web.test_client()
    ids = [client.post("/where", data={"tag": tag}).get_json()["id"] for tag in "abc"]

    worker = Worker(app, pool="threads", concurrency=2, install_signals=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        results = [app.handle(job_id).get(timeout=30) for job_id in ids]
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert results == [{"app": "shop", "tag": tag} for tag in "abc"]
    assert not flask.has_app_context()  # nothing left pushed in this thread


def test_flask_jobmaster_runs_jobmasters_command_line(tmp_path: Path,
                                                      apps: list[App]) -> None:
    web = create_app(tmp_path, "cli")
    apps.append(web.extensions["jobmaster"])
    runner = web.test_cli_runner()
    shown = runner.invoke(args=["jobmaster", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Usage: flask jobmaster" in shown.output and "worker" in shown.output
    migrated = runner.invoke(args=["jobmaster", "migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert "master schema" in migrated.output
    listed = runner.invoke(args=["jobmaster", "definitions"])
    assert listed.exit_code == 0, listed.output

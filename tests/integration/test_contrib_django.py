"""``jobmaster.contrib.django`` in this process: the App built from ``settings.JOBMASTER``,
``jobs.py`` autodiscovery, ``delay_on_commit``, the connection hooks and
``call_command("jobmaster", ...)``. Django is configured once for the module, on a
temporary SQLite database, a temporary SQLite master and a memory agent."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest

pytest.importorskip("django")

from jobmaster import App, ArgumentsError  # noqa: E402
from jobmaster.app import current_app  # noqa: E402

PACKAGE = "jmdjango_fixture_shop"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Django set up with the jobmaster app and a small app of our own holding a
    ``jobs.py``; the App is taken out of ``current_app()`` afterwards."""
    import django
    from django.conf import settings

    if settings.configured:
        pytest.skip("Django was configured by something else in this process")
    root = tmp_path_factory.mktemp("django")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(textwrap.dedent("""
        from jobmaster.contrib.django import app

        @app.job(definition_id="djtest.double")
        def double(x: int) -> int:
            return 2 * x
    """))
    sys.path.insert(0, str(root))
    settings.configure(
        INSTALLED_APPS=["jobmaster.contrib.django", PACKAGE],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(root / "django.sqlite3")}},
        USE_TZ=True,
        JOBMASTER={"name": "djtest", "master": f"sqlite:///{root}/master.db",
                   "agents": {"main": "memory://"}, "environ": {}},
    )
    django.setup()
    import jobmaster.contrib.django as contrib

    made = contrib.get_app()
    try:
        yield made
    finally:
        made.close()
        made.default = False  # out of current_app() for later tests
        sys.path.remove(str(root))


def _count(app: App) -> int:
    app.flush()
    return app.jobs.count(definition_id="djtest.double")


def test_the_app_is_built_from_settings_and_is_the_default(app: App) -> None:
    import jobmaster.contrib.django as contrib
    from jobmaster.contrib.django import DjangoConnections, close_inherited_connections

    assert contrib.app is app and contrib.get_app() is app
    assert app.name == "djtest"
    assert app.config.agents == {"main": "memory://"}
    assert app.default is True and current_app() is app
    assert any(isinstance(m, DjangoConnections) for m in app.middleware)
    assert close_inherited_connections in app.child_init_hooks
    with pytest.raises(AttributeError):
        contrib.nothing_here  # noqa: B018


def test_jobs_modules_of_installed_apps_are_imported(app: App) -> None:
    from jobmaster.contrib.django import autodiscover

    assert "djtest.double" in app.definitions
    assert f"{PACKAGE}.jobs" in sys.modules
    assert autodiscover() == [f"{PACKAGE}.jobs"]
    assert autodiscover(["no_such_module"]) == []


def test_delay_on_commit_enqueues_only_when_the_transaction_commits(app: App) -> None:
    from django.db import transaction

    from jobmaster.contrib.django import apply_on_commit, delay_on_commit

    double = app.definition("djtest.double")
    before = _count(app)
    with pytest.raises(RuntimeError), transaction.atomic():
        delay_on_commit(double, x=1)
        raise RuntimeError("roll back")
    assert _count(app) == before

    with transaction.atomic():
        delay_on_commit(double, x=2)
        assert _count(app) == before  # not before the commit
    assert _count(app) == before + 1

    with transaction.atomic():
        apply_on_commit(double, kwargs={"x": 3}, lane="batch")
    delay_on_commit(double, x=4)  # autocommit: at once
    jobs = {j.kwargs["x"]: j for j in app.jobs.list(definition_id="djtest.double")
            if j.kwargs is not None}
    assert set(jobs) == {2, 3, 4}
    assert jobs[3].lane == "batch"


def test_delay_on_commit_refuses_bad_arguments_in_the_request(app: App) -> None:
    from django.db import transaction

    from jobmaster.contrib.django import delay_on_commit

    double = app.definition("djtest.double")
    before = _count(app)
    with pytest.raises(ArgumentsError), transaction.atomic():
        delay_on_commit(double, y=1)  # type: ignore[call-arg]
    assert _count(app) == before


def test_connections_are_closed_around_jobs_and_after_fork(app: App) -> None:
    from django.db import connection

    from jobmaster.contrib.django import DjangoConnections, close_inherited_connections

    def open_connection() -> Any:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
        assert connection.connection is not None
        return connection.connection

    middleware = DjangoConnections()
    open_connection()
    middleware.after_run(None, None)  # type: ignore[arg-type]  # CONN_MAX_AGE=0: closed
    assert connection.connection is None
    open_connection()
    middleware.before_run(None)  # type: ignore[arg-type]
    assert connection.connection is None

    first = open_connection()
    close_inherited_connections()
    assert connection.connection is None
    assert open_connection() is not first  # a new one on next use


def test_call_command_runs_jobmasters_command_line(app: App) -> None:
    from django.core.management import CommandError, call_command

    out = StringIO()
    sys_stdout = sys.stdout
    sys.stdout = out  # click writes to sys.stdout
    try:
        call_command("jobmaster", "migrate")
    finally:
        sys.stdout = sys_stdout
    assert "master schema" in out.getvalue()
    with pytest.raises(CommandError, match="No such command"):
        call_command("jobmaster", "no-such-command")


def test_a_bad_setting_names_the_setting(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from jobmaster.contrib.django import config

    monkeypatch.setattr(settings, "JOBMASTER", {"nmae": "typo"})
    with pytest.raises(ImproperlyConfigured, match=r"settings\.JOBMASTER: .*nmae"):
        config._build()
    monkeypatch.setattr(settings, "JOBMASTER", ["not", "a", "dict"])
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        config._build()
    assert config.get_app() is app  # the built app is kept

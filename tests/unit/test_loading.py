"""Finding the user's App from a ``-A`` / ``JOBMASTER_APP`` target."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from jobmaster import App, AppNotFoundError, ConfigurationError
from jobmaster.loading import load_app


@pytest.fixture(autouse=True)
def _no_jobmaster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)


def test_module_colon_attr() -> None:
    from tests.fixtures import twoapps

    assert load_app("tests.fixtures.twoapps:second") is twoapps.second
    assert load_app("tests.fixtures.twoapps:first") is twoapps.first


def test_module_dot_attr() -> None:
    from tests.fixtures import oneapp, twoapps

    assert load_app("tests.fixtures.twoapps.first") is twoapps.first
    assert load_app("tests.fixtures.oneapp.service") is oneapp.service


def test_plain_module_with_app() -> None:
    from tests.fixtures import namedapp, workapp

    assert load_app("tests.fixtures.workapp") is workapp.app
    assert load_app("tests.fixtures.namedapp") is namedapp.app  # `app` wins over others


def test_module_with_a_single_app_under_another_name() -> None:
    from tests.fixtures import oneapp

    app = load_app("tests.fixtures.oneapp")
    assert app is oneapp.service
    assert "oneapp-ping" in app.definitions


def test_target_is_stripped() -> None:
    from tests.fixtures import oneapp

    assert load_app("  tests.fixtures.oneapp  ") is oneapp.service


def test_module_with_two_apps_lists_them() -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app("tests.fixtures.twoapps")
    message = str(info.value)
    assert "first" in message and "second" in message
    assert "tests.fixtures.twoapps:NAME" in message


@pytest.mark.parametrize(
    "target",
    ["jm_no_such_module_xyz", "jm_no_such_module_xyz:app", "jm_no_such_pkg.sub",
     "jm_no_such_pkg.sub:app", "jm_no_such_pkg.sub.app"],
)
def test_no_module_names_it(target: str) -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app(target)
    message = str(info.value)
    assert "no module named" in message.lower()
    assert target.split(":")[0].split(".")[0] in message
    assert isinstance(info.value, ConfigurationError)


def test_missing_module_inside_an_existing_package() -> None:
    with pytest.raises(AppNotFoundError, match="nosuchmodule"):
        load_app("tests.fixtures.nosuchmodule")
    with pytest.raises(AppNotFoundError, match="tests.fixtures.nosuchmodule"):
        load_app("tests.fixtures.nosuchmodule:app")


@pytest.mark.parametrize("target", ["tests.fixtures.brokenimport",
                                    "tests.fixtures.brokenimport:app",
                                    "tests.fixtures.brokenimport.app"])
def test_module_importing_something_missing_says_importing_failed(target: str) -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app(target)
    message = str(info.value)
    assert "importing 'tests.fixtures.brokenimport" in message
    assert "failed" in message
    assert "jobmaster_fixture_missing_dependency" in message
    assert "no module named 'tests.fixtures.brokenimport'" not in message.lower()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize("target", ["tests.fixtures.raisesatimport",
                                    "tests.fixtures.raisesatimport:app"])
def test_module_raising_at_import_says_importing_failed(target: str) -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app(target)
    message = str(info.value)
    assert "importing 'tests.fixtures.raisesatimport" in message
    assert "failed" in message
    assert "RuntimeError: boom while importing raisesatimport" in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("tests.fixtures.noapp:value", "tests.fixtures.noapp:value is int, not an App"),
        ("tests.fixtures.noapp:helper", "is function, not an App"),
        ("tests.fixtures.noapp:missing", "tests.fixtures.noapp:missing is nothing"),
        ("tests.fixtures.noapp.text", "tests.fixtures.noapp.text is a str, not an App"),
        ("tests.fixtures.oneapp.not_an_app", "not an App"),
        ("tests.fixtures.noapp.missing", "has no attribute 'missing'"),
    ],
)
def test_attr_that_is_not_an_app(target: str, expected: str) -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app(target)
    assert expected in str(info.value)


def test_module_without_any_app() -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app("tests.fixtures.noapp")
    message = str(info.value)
    assert "'tests.fixtures.noapp'" in message
    assert "holds no App" in message
    assert "module:attribute" in message


@pytest.mark.parametrize("target", [None, "", "   "], ids=["none", "empty", "blank"])
def test_empty_target_and_no_env(target: str | None) -> None:
    with pytest.raises(AppNotFoundError) as info:
        load_app(target)
    assert "-A" in str(info.value)
    assert "JOBMASTER_APP" in str(info.value)


def test_env_names_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures import oneapp, twoapps

    monkeypatch.setenv("JOBMASTER_APP", "tests.fixtures.oneapp")
    assert load_app(None) is oneapp.service
    assert load_app("") is oneapp.service
    assert load_app("tests.fixtures.twoapps:first") is twoapps.first  # -A wins over env


def test_bad_env_target_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMASTER_APP", "jm_env_no_such_module")
    with pytest.raises(AppNotFoundError, match="jm_env_no_such_module"):
        load_app(None)


def test_working_directory_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = f"jmproj_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "app.py").write_text(
        "from jobmaster import App\n"
        "billing = App('cwdapp', master='sqlite:///cwd.db', agents={'main': 'memory://cwd'})\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        app = load_app(f"{package}.app")
        assert isinstance(app, App)
        assert app.name == "cwdapp"
        assert load_app(f"{package}.app:billing") is app
        assert load_app(f"{package}.app.billing") is app
        assert str(tmp_path) in sys.path
    finally:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def test_a_package_is_searched_for_its_celery_or_app_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for inner in ("celery", "app"):
        name = f"proj_{inner}_{uuid.uuid4().hex[:8]}"
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / f"{inner}.py").write_text(
            "from jobmaster import App\n"
            f"service = App({name!r}, master='sqlite:///:memory:', agents={{'main': "
            f"'memory://{name}'}})\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        found = load_app(name)
        assert found.name == name
        assert found is sys.modules[f"{name}.{inner}"].service
    empty = tmp_path / "emptypkg_x"
    empty.mkdir()
    (empty / "__init__.py").write_text("")
    with pytest.raises(AppNotFoundError, match="holds no App"):
        load_app("emptypkg_x")

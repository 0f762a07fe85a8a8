"""The built wheel installs in a fresh venv and its ``jobmaster migrate`` works there."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.services import POSTGRES_URL, require

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("JOBMASTER_", "PYTHON", "VIRTUAL_ENV"))}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600, env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("jobmaster-*.whl")
    return built


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    require("postgres")
    import psycopg

    base = sa.make_url(POSTGRES_URL)
    name = f"jm_wheel_{uuid.uuid4().hex[:12]}"
    admin = {"host": base.host or "127.0.0.1", "port": base.port or 5432,
             "user": base.username or "postgres", "password": base.password or None,
             "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_wheel_contains_migrations_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "jobmaster/_alembic/env.py" in names
    assert "jobmaster/_alembic/script.py.mako" in names
    assert any(n.startswith("jobmaster/_alembic/versions/") and n.endswith(".py")
               for n in names)
    assert "jobmaster/py.typed" in names
    assert "jobmaster/__init__.py" in names
    assert "jobmaster/cli.py" in names
    assert not any(n.startswith("tests/") for n in names)
    entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert entry_points
    text = zipfile.ZipFile(wheel).read(entry_points[0]).decode()
    assert "jobmaster = jobmaster.cli:main" in text


def test_installed_wheel_migrates_fresh_postgres(wheel: Path, fresh_postgres: str,
                                                 tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel), "psycopg[binary]"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(python), "-c", "import jobmaster, sys; print(jobmaster.__file__)"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout

    command = [str(venv / "bin" / "jobmaster"), "migrate", "--url", fresh_postgres]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                           cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migrated from nothing to" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                            cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already at revision" in second.stdout

    engine = sa.create_engine(fresh_postgres)
    try:
        found = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"jobmaster_jobs", "jobmaster_attempts", "jobmaster_schedules", "jobmaster_leases",
            "jobmaster_workers", "jobmaster_alembic_version"} <= found
    from jobmaster.master.schema import metadata

    assert set(metadata.tables) <= found

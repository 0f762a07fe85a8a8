"""Running the master's Alembic migrations from code (``jobmaster migrate``, auto-migrate)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from jobmaster.master.schema import VERSION_TABLE


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed package, or the source tree."""
    packaged = Path(__file__).resolve().parent.parent / "_alembic"
    if (packaged / "env.py").exists():
        return packaged
    source = Path(__file__).resolve().parents[2] / "alembic"
    if (source / "env.py").exists():
        return source
    raise FileNotFoundError(f"jobmaster's migrations are missing (looked in {packaged}, {source})")


def _head_revision() -> str:
    """The newest migration: scripts are named ``NNNN_what.py`` with ``revision = "NNNN"``,
    so adding a migration is adding one file (a test checks this equals Alembic's head)."""
    names = sorted(p.name for p in (migrations_dir() / "versions").glob("[0-9]*_*.py"))
    return names[-1].split("_", 1)[0]


HEAD_REVISION = _head_revision()
"""The newest migration."""


def alembic_config(connection: sa.Connection | None = None, url: str | None = None):  # type: ignore[no-untyped-def]
    """An Alembic ``Config`` pointing at jobmaster's migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    cfg.attributes["version_table"] = VERSION_TABLE
    return cfg


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the master is at, or ``None`` if it has no jobmaster schema."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    row = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


def upgrade(connection: sa.Connection, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on an open connection (inside its transaction)."""
    from alembic import command

    command.upgrade(alembic_config(connection), revision)

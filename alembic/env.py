"""Alembic environment for jobmaster's master schema.

Run by ``jobmaster migrate`` (which passes an open connection), or by hand with
``alembic -c alembic.ini -x url=postgresql+psycopg://host/db upgrade head``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from jobmaster.master.schema import VERSION_TABLE, include_object, metadata

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url") or os.environ.get(
        "JOBMASTER_MASTER_URL"
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set JOBMASTER_MASTER_URL")
    from jobmaster.master.repository import normalise_url

    return normalise_url(url)


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )


def run_offline() -> None:
    context.configure(
        url=_url(), target_metadata=metadata, version_table=VERSION_TABLE, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

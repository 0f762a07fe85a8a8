"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s bench``,
``nox -s docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (needs the services listed in tests/services.py)."""
    session.install("-e", ".[all,test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def unit(session: nox.Session) -> None:
    """Pure unit tests only: no services, a few seconds."""
    session.install("-e", ".[all,test]")
    session.run("pytest", "-q", "tests/unit", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, examples and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "jobmaster", "tests", "examples", "alembic")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) over the package."""
    session.install("-e", ".[all,test]")
    session.run("mypy", "jobmaster")


# The peers the bench measures jobmaster against, and what they need (bench/peers/). Kept
# in step with bench/systems.py's PEER_PACKAGES, which `bench/run.py --install-peers` uses.
BENCH_PEERS = ("celery[redis]", "dramatiq[redis]", "rq", "arq", "taskiq", "taskiq-redis",
               "huey", "procrastinate", "pgqueuer[asyncpg]", "gevent")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark against Celery, Dramatiq, RQ, arq, taskiq, huey, procrastinate and
    PgQueuer (see docs/benchmarks.md); posargs go to bench/run.py, e.g.
    ``nox -s bench -- --quick``."""
    session.install("-e", ".[all]", *BENCH_PEERS, "redis", "py-spy")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into ``site/`` (mkdocs, API reference from the
    docstrings); any warning fails the build."""
    session.install("-e", ".[docs]", "ruff")  # ruff lays out the reference's signatures
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The chaos harness (tests/chaos): jobs through real workers, beats and producers on
    private servers while they, the agent's server and the master are killed; prints the
    ok / lost / duplicated / unexpected table and fails if a job is lost or the master
    disagrees with what ran. posargs go to ``python -m tests.chaos``, e.g.
    ``nox -s chaos -- --agent redis,nats --scenario all``."""
    session.install("-e", ".[all,test]")
    session.run("python", "-m", "tests.chaos", *session.posargs)

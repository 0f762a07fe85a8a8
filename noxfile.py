"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s bench``."""

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


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark against Celery and Dramatiq (see docs/benchmarks.md); posargs go to
    bench/run.py, e.g. ``nox -s bench -- --quick``."""
    session.install("-e", ".[all]", "celery[redis]", "dramatiq[redis]", "redis", "py-spy")
    session.run("python", "bench/run.py", *session.posargs)

"""``manage.py jobmaster ...``: jobmaster's command line (``worker``, ``beat``,
``migrate``, ``jobs``, ``schedules``, ...) with the project's app, Django set up."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobmaster.contrib import app_target
from jobmaster.contrib.django.config import get_app

APP_TARGET = "jobmaster.contrib.django:app"
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


def _without_django_options(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--settings``/``--pythonpath`` (Django applied them already)."""
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(o + "=" for o in _DJANGO_OPTIONS)):
            result.append(arg)
    return result




class Command(BaseCommand):  # type: ignore[misc, unused-ignore]  # Django: no hints
    """Delegates every argument to the ``jobmaster`` command."""

    help = ("jobmaster's command line with this project's app: worker, beat, migrate, "
            "jobs, schedules, status... (manage.py jobmaster --help lists them)")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Everything goes to jobmaster (``call_command("jobmaster", "migrate")``)."""
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run_from_argv(self, argv: list[str]) -> None:
        """``manage.py jobmaster ARGS``: jobmaster's click command takes ARGS as they are
        (its own ``--help``, exit codes and errors)."""
        from django.db import connections

        from jobmaster.cli import main

        get_app()
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        try:
            with app_target(APP_TARGET):
                main.main(args=_without_django_options(argv[2:]), prog_name=prog)
        finally:
            connections.close_all()

    def handle(self, *args: str, **options: Any) -> None:
        """``call_command("jobmaster", "worker", "-c", "2")``: errors become
        ``CommandError``."""
        import click

        from jobmaster.cli import main

        get_app()
        try:
            with app_target(APP_TARGET):
                code = main.main(args=list(args), prog_name="manage.py jobmaster",
                                 standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from exc
        except click.Abort as exc:
            raise CommandError("aborted") from exc
        if isinstance(code, int) and code != 0:
            sys.exit(code)

"""Glue between jobmaster and web frameworks, each in its own module and imported only
when used: ``jobmaster.contrib.django`` (a Django app), ``jobmaster.contrib.starlette`` and
``jobmaster.contrib.fastapi`` (lifespan and dependency), ``jobmaster.contrib.flask`` (an
extension). Importing ``jobmaster`` imports none of them, nor their frameworks."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jobmaster.app import App
from jobmaster.exceptions import ConfigurationError


def app_from_settings(options: Any, where: str) -> App:
    """The ``App`` a framework's settings describe (a dict of ``App(...)`` keywords), the
    app in use for ``@jobmaster.job`` definitions unless they say ``default=False``;
    ``ConfigurationError`` naming ``where`` (the setting) otherwise."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where} must be a dict of App(...) keywords, not "
                                 f"{type(options).__name__}")
    values = dict(options)
    values.setdefault("default", True)
    try:
        return App(**values)
    except (ConfigurationError, TypeError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


@contextmanager
def app_target(target: str) -> Iterator[None]:
    """``JOBMASTER_APP`` names ``target`` while a ``jobmaster`` command runs from a
    framework's own command line (an explicit ``-A`` still wins); restored afterwards."""
    saved = os.environ.get("JOBMASTER_APP")
    os.environ["JOBMASTER_APP"] = target
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("JOBMASTER_APP", None)
        else:
            os.environ["JOBMASTER_APP"] = saved

"""Finding the user's ``App`` from a ``-A`` / ``JOBMASTER_APP`` target, like Celery does."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from jobmaster.app import App
from jobmaster.exceptions import AppNotFoundError


def _import(name: str) -> ModuleType | None:
    """Import a module; ``None`` if that very module does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise AppNotFoundError(f"importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppNotFoundError(
            f"importing {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _app_in(module: ModuleType, target: str) -> App:
    candidate = getattr(module, "app", None)
    if isinstance(candidate, App):
        return candidate
    apps = {id(v): v for v in vars(module).values() if isinstance(v, App)}
    if len(apps) == 1:
        return next(iter(apps.values()))
    if not apps:
        if hasattr(module, "__path__"):  # a package: its app module, as Celery looks for it
            for name in ("celery", "app"):
                inner = _import(f"{module.__name__}.{name}")
                if inner is not None and any(isinstance(v, App) for v in vars(inner).values()):
                    return _app_in(inner, target)
        raise AppNotFoundError(f"module {module.__name__!r} (from -A {target}) holds no App; "
                               "name one with -A module:attribute")
    names = sorted(k for k, v in vars(module).items() if isinstance(v, App))
    raise AppNotFoundError(f"module {module.__name__!r} holds several apps ({', '.join(names)});"
                           f" pick one with -A {module.__name__}:NAME")


def load_app(target: str | None) -> App:
    """The ``App`` named by ``module:attr``, ``module.attr`` or ``module``, with the
    modules of its ``include`` setting imported (their ``@jobmaster.job`` definitions
    registered).

    The working directory is put on ``sys.path`` first, so ``-A proj.app`` finds
    ``./proj/app.py``."""
    app = _find_app(target)
    for name in app.config.include:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise AppNotFoundError(f"include={name!r} of app {app.name!r} cannot be imported: "
                                   f"{exc}") from None
    return app


def _find_app(target: str | None) -> App:
    target = (target or os.environ.get("JOBMASTER_APP") or "").strip()
    if not target:
        raise AppNotFoundError("no app given: pass -A module.attr (or set JOBMASTER_APP)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if ":" in target:
        module_name, _, attr = target.partition(":")
        module = _import(module_name)
        if module is None:
            raise AppNotFoundError(f"no module named {module_name!r} (from -A {target})")
        value = getattr(module, attr, None)
        if not isinstance(value, App):
            what = "nothing" if value is None else type(value).__name__
            raise AppNotFoundError(f"{module_name}:{attr} is {what}, not an App")
        return value
    module = _import(target)
    if module is not None:
        return _app_in(module, target)
    if "." in target:
        module_name, _, attr = target.rpartition(".")
        module = _import(module_name)
        if module is not None:
            value = getattr(module, attr, None)
            if isinstance(value, App):
                return value
            if value is None:
                raise AppNotFoundError(f"module {module_name!r} has no attribute {attr!r} "
                                       f"(from -A {target})")
            raise AppNotFoundError(f"{target} is a {type(value).__name__}, not an App")
    raise AppNotFoundError(f"no module named {target!r} (from -A {target}); is the working "
                           "directory the project's root?")

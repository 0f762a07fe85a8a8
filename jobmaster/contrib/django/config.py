"""The project's jobmaster ``App``, built once from ``settings.JOBMASTER``."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

from jobmaster.app import App
from jobmaster.contrib import app_from_settings
from jobmaster.contrib.django.connections import DjangoConnections, close_inherited_connections
from jobmaster.exceptions import ConfigurationError

DEFAULT_MODULES = ("jobs",)
"""The modules looked for in every installed app (Celery looks for ``tasks``)."""

_app: App | None = None
_lock = threading.Lock()


def _django_ready() -> None:
    """Set Django up if nothing did yet (``jobmaster worker -A jobmaster.contrib.django``
    with ``DJANGO_SETTINGS_MODULE`` set); nothing while Django is setting itself up."""
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if apps.ready or apps.loading:
        return
    import django

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise ConfigurationError(
            f"Django is not configured ({exc}); set DJANGO_SETTINGS_MODULE, or run "
            "jobmaster through manage.py jobmaster") from exc


def get_app() -> App:
    """The project's ``App``: ``App(**settings.JOBMASTER, default=True)`` (``default``
    may be set in the dict), with ``DjangoConnections`` middleware and
    ``close_inherited_connections`` run in every worker process. Built on first call."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = _build()
    return _app


def _build() -> App:
    _django_ready()
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        app = app_from_settings(getattr(settings, "JOBMASTER", None), "settings.JOBMASTER")
    except ConfigurationError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    app.add_middleware(DjangoConnections())
    app.on_worker_process_start(close_inherited_connections)
    return app


def autodiscover(modules: Iterable[str] | None = None) -> list[str]:
    """Import the ``jobs`` module (or ``modules``, else ``settings.JOBMASTER_AUTODISCOVER``)
    of every installed app that has one; return the names imported. An error inside such
    a module propagates: a broken job module is not silently skipped."""
    from django.apps import apps
    from django.conf import settings
    from django.utils.module_loading import module_has_submodule

    if modules is None:
        setting = getattr(settings, "JOBMASTER_AUTODISCOVER", DEFAULT_MODULES)
        modules = () if setting is False or setting is None else setting
    if isinstance(modules, str):
        modules = (modules,)
    imported = []
    for config in apps.get_app_configs():
        for module in modules:
            if module_has_submodule(config.module, module):
                name = f"{config.name}.{module}"
                importlib.import_module(name)
                imported.append(name)
    return imported

"""The Django app config: builds the jobmaster ``App`` and imports the project's job
modules once Django's app registry is ready."""

from __future__ import annotations

from django.apps import AppConfig

from jobmaster.contrib.django.config import autodiscover, get_app


class JobmasterConfig(AppConfig):  # type: ignore[misc, unused-ignore]  # Django: no hints
    """``INSTALLED_APPS += ["jobmaster.contrib.django"]``."""

    name = "jobmaster.contrib.django"
    label = "jobmaster"
    verbose_name = "jobmaster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Build the ``App`` from ``settings.JOBMASTER`` (no I/O), then import every
        installed app's ``jobs`` module so their definitions are registered."""
        get_app()
        autodiscover()

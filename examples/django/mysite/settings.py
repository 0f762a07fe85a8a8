"""Settings of the example shop: Django's own database is SQLite (``SHOP_DB``, default
``./db.sqlite3``), and jobmaster runs on its embedded default, a SQLite master and agent
(``./jobmaster.db``); ``JOBMASTER_*`` environment variables override ``JOBMASTER``."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "jobmaster.contrib.django",  # the App below, jobs.py autodiscovery, manage.py jobmaster
    "shop",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "mysite.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# Every App(...) keyword; JOBMASTER_MASTER_URL, JOBMASTER_AGENT_URL... override them.
JOBMASTER = {
    "name": "shop",
    "master": f"sqlite:///{BASE_DIR / 'jobmaster.db'}",
    "default_max_retries": 0,
}

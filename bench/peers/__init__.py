"""The peers' app modules: the same handler as bench/jm_app.py, on Celery and Dramatiq."""

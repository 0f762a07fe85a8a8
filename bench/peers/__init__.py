"""The peers' app modules: the same handlers as bench/jm_app.py, on Celery, Dramatiq, RQ,
arq, taskiq, huey, procrastinate and PgQueuer. Each reads where its broker is, and the
prefix of its keys or the database it owns, from ``BENCH_*`` environment variables that
bench/run.py sets, and tunes its worker from ``BENCH_<PEER>_*`` variables the bench sets
per scenario."""

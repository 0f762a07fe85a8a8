"""jobmaster's benchmark suite against Celery and Dramatiq: see docs/benchmarks.md."""

"""The chaos harness: a Jepsen-style ledger run of real producers, workers and beats
against private servers, with faults injected while jobs flow.

Every job carries a unique token. The producer writes a ledger line before each
``delay()`` and another once it returned (with the job id); the handler appends one fsync'd
line per run to a side-effect log (token, job id, attempt, worker pid, start, end). Once
everything drained and no worker runs, each token is classified, as Jepsen's total-queue
checker does: **ok** (acknowledged, ran once), **lost** (acknowledged, never ran),
**duplicated** (ran more than once, each with the reason: a killed worker whose lease
ran out, a partition, an agent restart...), **unexpected** (ran, never acknowledged:
allowed only when the producer died or ``delay()`` raised mid-call). The master's final
status of every job is compared with its side effects.

``python -m tests.chaos --help`` runs it (``nox -s chaos``); ``test_chaos_short.py`` is a
short version for the test suite. Modules: ``app`` (the jobs), ``producer`` (the
producer process), ``ledger`` (reading logs, classifying: pure), ``servers`` (private
Redis, NATS, PostgreSQL, MariaDB instances), ``proxy`` (a TCP proxy that partitions a
worker from its agent), ``faults`` (the fault injectors), ``run`` (one run of a stack under
a mix of faults), ``__main__`` (the runner).
"""

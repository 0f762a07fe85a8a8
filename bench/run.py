"""Run jobmaster's benchmark against its peers and print the table.

    python bench/run.py [--quick] [--scenarios enqueue,bulk,drain,...] [--n N]
                        [--peers celery,dramatiq,rq,arq,taskiq,huey,procrastinate,pgqueuer|none]
                        [--install-peers] [--agents redis,postgres,...]
                        [--out bench/results/latest.md] [--profile DIR]

Needs Redis, PostgreSQL and (for the NATS agent) NATS JetStream already running; starts
nothing but the worker and beat processes it measures, and stops every one of them. See
docs/benchmarks.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# run as a script: import the bench as the package ``bench`` from the repository root, and
# keep bench/ itself off the path (its module names must not shadow the standard library's)
sys.path[:1] = [str(Path(__file__).resolve().parent.parent)]

from bench.harness import BenchDatabase, BenchError, Context, Services, delete_keys  # noqa: E402
from bench.report import render, targets  # noqa: E402
from bench.scenarios import (  # noqa: E402
    Outcome,
    async_producer,
    bulk,
    cpu_bound,
    drain,
    drain_startup,
    enqueue,
    first_job,
    future,
    io_bound,
    latency,
    postgres,
    scaleout,
)
from bench.systems import (  # noqa: E402
    PEER_MODULES,
    PEER_PACKAGES,
    PEERS,
    POSTGRES_PEERS,
    Jobmaster,
    System,
)

SCENARIOS = ("enqueue", "bulk", "drain", "latency", "scaleout", "future", "drain-startup",
             "first-job", "async-producer", "io", "cpu", "postgres")

# Sizes: the full run, and --quick (the smoke test's: seconds per scenario).
FULL = {"enqueue": 50_000, "bulk": 100_000, "drain": 20_000, "scaleout": 20_000,
        "samples": 300, "future": 1_000_000, "peer_future": 100_000, "watch": 15.0,
        "startup_small": 10_000, "startup_large": 100_000, "first_trials": 3,
        "import_runs": 5, "async": 20_000, "io": 2_000, "cpu": 2_000, "pg_single": 10_000,
        "pg_bulk": 100_000, "pg_drain": 10_000}
QUICK = {"enqueue": 1_000, "bulk": 2_000, "drain": 1_000, "scaleout": 1_000,
         "samples": 30, "future": 20_000, "peer_future": 5_000, "watch": 2.0,
         "startup_small": 500, "startup_large": 1_000, "first_trials": 1, "import_runs": 1,
         "async": 1_000, "io": 200, "cpu": 100, "pg_single": 500, "pg_bulk": 2_000,
         "pg_drain": 500}


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a few seconds per scenario (what the smoke test runs)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated, from {','.join(SCENARIOS)} (default: all); none "
                   "with --profile: only the profiles")
    p.add_argument("--n", type=int, default=None,
                   help="jobs for enqueue, bulk, drain and scale-out (default: per scenario)")
    p.add_argument("--future-n", type=int, default=None,
                   help="future jobs for jobmaster (default 1,000,000; --quick 20,000)")
    p.add_argument("--peer-future-n", type=int, default=None,
                   help="delayed tasks for the peers (default 100,000; --quick 5,000)")
    p.add_argument("--samples", type=int, default=None, help="latency samples (default 300)")
    p.add_argument("--peers", default="all",
                   help=f"comma-separated, from {','.join(PEERS)}; all (the default) or none "
                   "(the smoke test: none)")
    p.add_argument("--install-peers", action="store_true",
                   help="pip-install the peers that are missing into this interpreter's "
                   "environment first (`nox -s bench` installs them all)")
    p.add_argument("--agents", default="redis,postgres,nats,sqlite",
                   help="jobmaster agents to measure (redis always leads the ratios)")
    p.add_argument("--out", default="bench/results/latest.md", help="markdown table file")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                         "redis://127.0.0.1:6379/11"))
    p.add_argument("--peer-redis-url", default=os.environ.get(
        "BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/12"),
        help="a Redis database for RQ's and arq's keys, which take no prefix")
    p.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a database to connect to for creating (and dropping) the run's own databases")
    p.add_argument("--nats-url", default=os.environ.get("BENCH_NATS_URL",
                                                        "nats://127.0.0.1:4222"))
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="also drain jobmaster·redis once under py-spy and summarise the profile")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.scenarios = [] if args.scenarios.strip().lower() == "none" \
        else _csv(args.scenarios)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; use {','.join(SCENARIOS)}")
    choice = args.peers.strip().lower()
    args.peers = [] if choice in {"", "none"} else list(PEERS) if choice == "all" \
        else _csv(args.peers)
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peer(s) {sorted(unknown)}; use {','.join(PEERS)}, all or none")
    args.agents = _csv(args.agents)
    return args


def missing_peers(peers: Sequence[str]) -> list[str]:
    """The peers whose library this interpreter cannot import."""
    import importlib.util

    return [p for p in peers if importlib.util.find_spec(PEER_MODULES[p]) is None]


def install_peers(peers: Sequence[str]) -> int:
    """``pip install`` the packages of ``peers`` into this interpreter's environment."""
    import subprocess

    packages = sorted({pkg for p in peers for pkg in PEER_PACKAGES[p]})
    print(f"bench: installing {' '.join(packages)} into {sys.prefix}", file=sys.stderr)
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages],
                          check=False).returncode


def machine() -> list[str]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for dist in ("jobmaster", "celery", "kombu", "billiard", "dramatiq", "rq", "arq", "taskiq",
                 "taskiq-redis", "huey", "procrastinate", "pgqueuer", "gevent", "redis",
                 "hiredis", "psycopg", "asyncpg", "SQLAlchemy", "nats-py", "orjson"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return [
        f"CPU: {os.cpu_count()} × {model or platform.processor() or 'unknown'}; "
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({sys.executable})",
        "Libraries: " + ", ".join(versions),
    ]


def server_versions(ctx: Context) -> str:
    parts = []
    try:
        parts.append("Redis " + str(ctx.redis().info("server").get("redis_version")))
    except Exception:  # noqa: BLE001
        pass
    try:
        import psycopg

        with psycopg.connect(ctx.services.postgres_url, connect_timeout=3) as conn:
            row = conn.execute("show server_version").fetchone()
            parts.append(f"PostgreSQL {row[0] if row else '?'}")
    except Exception:  # noqa: BLE001
        pass
    return "Servers: " + ", ".join(parts)


def source_state() -> str:
    """The jobmaster source measured: commit, and whether jobmaster/ had local changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "jobmaster"],
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not head:  # not a git checkout (a copy of one commit): say what the copy is of
        source = os.environ.get("BENCH_SOURCE", "")
        return f"jobmaster source: {source}" if source else ""
    extra = f" plus uncommitted changes to {len(dirty)} file(s) under jobmaster/" if dirty else ""
    return f"jobmaster source: commit {head}{extra}"


def run_profile(ctx: Context, systems: Sequence[System], sizes: dict[str, Any],
                folder: Path, postgres_system: System | None = None) -> str:
    """py-spy of jobmaster's worker — a no-op drain, its start-up, the I/O-bound drain of
    ``async def`` jobs, and with the PostgreSQL agent a no-op drain — and cProfile of
    ``delay`` and ``delay_many``; written to ``folder/profile.md``. A failure here is
    reported, never fatal to the run."""
    from bench.profiling import profile_calls, profile_drain, profile_startup

    system = systems[0]
    parts = []
    steps: list[tuple[str, Any]] = [
        ("drain", lambda: profile_drain(ctx, system, sizes["drain"], folder)),
        ("start-up", lambda: profile_startup(ctx, system, folder)),
        ("I/O-bound drain", lambda: profile_drain(ctx, system, sizes["io"], folder, mode="io",
                                                  concurrency=100, kind="io", arg=0.1,
                                                  label="io")),
        ("delay", lambda: profile_calls(ctx, system, min(sizes["enqueue"], 20_000), False)),
        ("delay_many", lambda: profile_calls(ctx, system, sizes["bulk"], True)),
    ]
    if postgres_system is not None:
        steps.append(("PostgreSQL drain", lambda: profile_drain(
            ctx, postgres_system, sizes["pg_drain"], folder, label="pg-drain")))
    for what, make in steps:
        try:
            parts.append(make())
        except Exception as exc:  # noqa: BLE001 - a profile is extra information
            parts.append(f"## Profile of {what} failed: {type(exc).__name__}: {exc}\n")
        finally:
            ctx.stop_all(grace=5.0)
    text = "\n".join(parts)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.md").write_text(text)
    return text


def prepare_peer_databases(ctx: Context, peers: Sequence[str]) -> None:
    """Create the PostgreSQL peers' databases and their schemas, with their own tools."""
    import asyncio

    for peer in peers:
        db = BenchDatabase(ctx.services.postgres_url, ctx.run_id, prefix=peer)
        db.create()
        ctx.peer_dbs[peer] = db
        if peer == "procrastinate":
            from bench.peers.procrastinate_app import app

            with app.open():
                app.schema_manager.apply_schema()
        elif peer == "pgqueuer":
            import asyncpg
            from pgqueuer.db import AsyncpgDriver
            from pgqueuer.queries import Queries

            async def install(dsn: str = db.url) -> None:
                connection = await asyncpg.connect(dsn)
                try:
                    await Queries(AsyncpgDriver(connection)).install()
                finally:
                    await connection.close()

            asyncio.run(install())


def _compile_sources() -> None:
    """Byte-compile jobmaster's package and the bench's modules, as ``pip install`` does
    for an installed package. The peers come from wheels, compiled at install; jobmaster
    is installed editable from this checkout, so with ``PYTHONDONTWRITEBYTECODE`` set (or
    a read-only checkout) every worker launch would compile its modules again, and the
    start-up rows would time that instead of jobmaster."""
    import compileall

    import jobmaster

    for folder in (Path(jobmaster.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(folder, quiet=1, workers=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.n is not None:
        for k in ("enqueue", "bulk", "drain", "scaleout"):
            sizes[k] = args.n
    if args.future_n is not None:
        sizes["future"] = args.future_n
    if args.peer_future_n is not None:
        sizes["peer_future"] = args.peer_future_n
    if args.samples is not None:
        sizes["samples"] = args.samples

    for k in ("startup_small", "startup_large", "async", "io", "cpu", "pg_single", "pg_drain"):
        if args.n is not None and args.n < sizes[k]:
            sizes[k] = args.n
    if args.peers and args.install_peers and missing_peers(args.peers):
        if install_peers(missing_peers(args.peers)) != 0:
            print("bench: pip could not install the peers", file=sys.stderr)
            return 2
    if missing_peers(args.peers):
        print(f"bench: peer(s) not installed: {', '.join(missing_peers(args.peers))}; run "
              "`nox -s bench`, pass --install-peers, or leave them out with --peers",
              file=sys.stderr)
        return 2
    services = Services(args.redis_url, args.postgres_url, args.nats_url, args.peer_redis_url)
    problems = services.check()
    for name in ("redis", "postgres"):
        if problems.get(name):
            print(f"bench: {problems[name]}; start it and run again.", file=sys.stderr)
            return 2
    agents = list(args.agents)
    skipped: list[str] = []
    if "nats" in agents and problems.get("nats"):
        agents.remove("nats")
        skipped.append(f"jobmaster·nats skipped: {problems['nats']}")
        print(f"bench: {skipped[-1]}", file=sys.stderr)

    _compile_sources()
    os.environ.pop("JOBMASTER_APP", None)
    for var in [v for v in os.environ if v.startswith("JOBMASTER_")]:
        del os.environ[var]  # the bench's own apps take their settings from arguments only
    run_id = f"{datetime.now(UTC):%m%d%H%M%S}{os.getpid() % 1000:03d}"
    ctx = Context(run_id, services, args.quick, verbose=args.verbose)
    os.environ.update(ctx.bench_env())  # read by the peers' app modules at import

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)

    from bench.systems import make_systems

    try:
        systems = make_systems(ctx, agents, args.peers)
    except ImportError as exc:
        print(f"bench: a peer is not installed ({exc}); run `nox -s bench`, or pass "
              "--peers none", file=sys.stderr)
        return 2
    outcomes: dict[str, Outcome] = {}
    started = time.perf_counter()
    print("\n".join(machine()), file=sys.stderr)
    print(f"run {run_id}: scenarios {','.join(args.scenarios)}; logs in {ctx.workdir}",
          file=sys.stderr)
    try:
        ctx.db = BenchDatabase(services.postgres_url, run_id)
        ctx.db.create()
        from bench.jm_app import make_app

        migrator = make_app("migrate", master=ctx.db.sqlalchemy_url)
        migrator.migrate()
        migrator.close()
        prepare_peer_databases(ctx, [p for p in args.peers if p in POSTGRES_PEERS])
        jm = [s for s in systems.values() if s.is_jobmaster]
        jm_redis = [s for s in jm if s.key == "jm-redis"]
        jm_pg = [s for s in jm if s.key == "jm-postgres"] or [Jobmaster(ctx, "postgres")]
        peers = [s for s in systems.values() if not s.is_jobmaster]
        pg_peers = [s for s in peers if s.key in POSTGRES_PEERS]
        future_peers = [s for s in peers if s.key in ("celery", "dramatiq")]
        everyone = [*jm, *peers]
        order = [s for s in args.scenarios if s != "future"]
        if args.profile:
            order.append("profile")  # before the future scenario fills the master
        order += [s for s in args.scenarios if s == "future"]
        for scenario in order:
            t = time.perf_counter()
            print(f"== {scenario}", file=sys.stderr)
            if scenario == "enqueue":
                outcomes[scenario] = enqueue(ctx, everyone, sizes["enqueue"],
                                             5.0 if args.quick else 20.0)
            elif scenario == "bulk":
                outcomes[scenario] = bulk(ctx, everyone, sizes["bulk"])
            elif scenario == "drain":
                outcomes[scenario] = drain(ctx, everyone, sizes["drain"])
            elif scenario == "latency":
                outcomes[scenario] = latency(ctx, everyone, sizes["samples"])
            elif scenario == "scaleout":
                outcomes[scenario] = scaleout(ctx, jm_redis or jm[:1], sizes["scaleout"])
            elif scenario == "future":
                outcomes[scenario] = future(ctx, [*(jm_redis or jm[:1]), *future_peers],
                                            sizes["future"], sizes["peer_future"],
                                            sizes["watch"])
            elif scenario == "drain-startup":
                outcomes[scenario] = drain_startup(
                    ctx, everyone, sorted({sizes["startup_small"], sizes["startup_large"]}))
            elif scenario == "first-job":
                outcomes[scenario] = first_job(ctx, everyone, sizes["first_trials"],
                                               sizes["import_runs"])
            elif scenario == "async-producer":
                outcomes[scenario] = async_producer(ctx, everyone, sizes["async"])
            elif scenario == "io":
                outcomes[scenario] = io_bound(ctx, everyone, sizes["io"])
            elif scenario == "cpu":
                outcomes[scenario] = cpu_bound(ctx, everyone, sizes["cpu"])
            elif scenario == "postgres":
                outcomes[scenario] = postgres(ctx, [*jm_pg, *pg_peers], sizes["pg_single"],
                                              sizes["pg_bulk"], sizes["pg_drain"])
            elif scenario == "profile":
                profile_text = run_profile(ctx, jm_redis or jm[:1], sizes, Path(args.profile),
                                           jm_pg[0])
                print(profile_text)
                continue
            for error in outcomes[scenario].errors:
                print(f"   ERROR {error}", file=sys.stderr)
            print(f"   {time.perf_counter() - t:.1f} s", file=sys.stderr)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    finally:
        ctx.stop_all(grace=5.0)
        try:
            delete_keys(ctx.redis(), ctx.prefix + "*")
        except Exception as exc:  # noqa: BLE001
            print(f"bench: could not delete the run's Redis keys: {exc}", file=sys.stderr)
        try:
            delete_keys(ctx.redis_at(services.peer_redis_url), "rq:*")
            delete_keys(ctx.redis_at(services.peer_redis_url), "arq:*")
            delete_keys(ctx.redis_at(services.peer_redis_url), ctx.prefix + "*")
        except Exception as exc:  # noqa: BLE001
            print(f"bench: could not delete RQ's and arq's Redis keys: {exc}", file=sys.stderr)
        for db in [*([ctx.db] if ctx.db is not None else []), *ctx.peer_dbs.values()]:
            try:
                db.drop()
            except Exception as exc:  # noqa: BLE001
                print(f"bench: could not drop database {db.name}: {exc}", file=sys.stderr)

    header = [
        f"Run {run_id}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.perf_counter() - started:.0f} s; command: "
        f"`{' '.join(['python bench/run.py', *(sys.argv[1:] if argv is None else argv)])}`",
        *machine(),
        server_versions(ctx),
        source_state(),
        "Sizes: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items() if k != "watch"),
        *skipped,
    ]
    shown = [*systems.values()]
    if "postgres" in outcomes and "jm-postgres" not in systems:
        shown.insert(len(jm), jm_pg[0])
    text = render(header, outcomes, shown, targets(outcomes, shown))
    print(text)
    out = Path(args.out)
    if not out.is_absolute():
        out = Path(__file__).resolve().parent.parent / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"\nwritten to {out}", file=sys.stderr)
    failed = [e for o in outcomes.values() for e in o.errors]
    if failed:
        print(f"bench: {len(failed)} measurement(s) failed; worker logs kept in {ctx.workdir}",
              file=sys.stderr)
        return 1
    shutil.rmtree(ctx.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from None

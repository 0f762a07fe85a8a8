"""The deployment files in ``contrib/`` parse, run only commands and options that
``jobmaster --help`` lists, and give running jobs longer to stop than
``shutdown_grace``; the worker's ``--metrics-port`` endpoint the probes use answers."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
DEFAULT_GRACE = 30.0  # Config.shutdown_grace


def _yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the YAML files")


@cache
def _help(*command: str) -> str:
    result = subprocess.run([sys.executable, "-m", "jobmaster", *command, "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, f"jobmaster {' '.join(command)} --help: {result.stderr}"
    return result.stdout


def _commands() -> set[str]:
    text = _help().split("Commands:", 1)[1]
    return {line.split()[0] for line in text.splitlines() if line.startswith("  ")}


def check_command(args: list[str], where: str) -> None:
    """``jobmaster ARGS`` names a command of ``jobmaster --help`` and only options its own
    ``--help`` lists."""
    assert args, f"{where}: no jobmaster command"
    assert args[0] in _commands(), f"{where}: `jobmaster {args[0]}` is not a jobmaster command"
    text = _help(args[0])
    for arg in args[1:]:
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), \
                f"{where}: jobmaster {args[0]} has no option {flag}"


def _seconds(value: str | int | float) -> float:
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|min|h)?", value.strip())
    assert match, f"not a duration: {value!r}"
    unit = {"ms": 0.001, None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * unit


# -- systemd -------------------------------------------------------------------------------
def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (systemd allows a key several times)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _environment(service: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in service.get("Environment", []):
        for item in shlex.split(value):
            key, _, val = item.partition("=")
            env[key] = val
    return env


@pytest.mark.parametrize("name", ["jobmaster-worker.service", "jobmaster-beat.service"])
def test_systemd_units(name: str) -> None:
    unit = _unit(CONTRIB / "systemd" / name)
    assert {"Unit", "Service", "Install"} <= set(unit)
    service = unit["Service"]
    [exec_start] = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "jobmaster" and Path(argv[0]).is_absolute()
    check_command(argv[1:], name)
    assert argv[1] == name.removeprefix("jobmaster-").removesuffix(".service")
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["KillMode"] == ["mixed"]
    grace = float(_environment(service).get("JOBMASTER_SHUTDOWN_GRACE", DEFAULT_GRACE))
    [timeout] = service["TimeoutStopSec"]
    if argv[1] == "worker":
        assert _seconds(timeout) > grace, "SIGKILL would come before the shutdown grace ends"


# -- compose -------------------------------------------------------------------------------
def _compose() -> dict[str, Any]:
    yaml = _yaml()
    return dict(yaml.safe_load((CONTRIB / "compose" / "docker-compose.yml").read_text()))


def test_compose_file() -> None:
    compose = _compose()
    services = compose["services"]
    for needed in ("postgres", "redis", "nats", "beat", "migrate"):
        assert needed in services
    images = {s.get("image") for s in services.values()}
    assert any(str(i).startswith("postgres") for i in images)
    ours = {name: s for name, s in services.items() if s.get("image") == "jobmaster-app:latest"}
    workers = [name for name, s in ours.items() if s["command"][0] == "worker"]
    assert len(workers) == 2
    built = [s for s in ours.values() if "build" in s]
    assert built and all((CONTRIB / "compose" / b["build"]["context"] /
                          b["build"]["dockerfile"]).resolve()
                         == (CONTRIB / "compose" / "Dockerfile").resolve() for b in built)
    for name, service in ours.items():
        check_command(list(service["command"]), f"compose service {name}")
        env = service["environment"]
        assert env["JOBMASTER_MASTER_URL"].startswith("postgresql+psycopg://")
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        if name in workers:
            grace = float(env.get("JOBMASTER_SHUTDOWN_GRACE", DEFAULT_GRACE))
            assert _seconds(service["stop_grace_period"]) > grace, name
    agents = dict(item.split("=", 1) for item in
                  ours["beat"]["environment"]["JOBMASTER_AGENTS"].split(","))
    assert agents["main"].startswith("redis://") and agents["bulk"].startswith("nats://")
    for name in workers:
        command = ours[name]["command"]
        assert command[command.index("--agent") + 1] in agents


def test_dockerfile_copies_what_exists_and_runs_jobmaster() -> None:
    text = (CONTRIB / "compose" / "Dockerfile").read_text()
    app_dir = re.search(r"ARG APP_DIR=(\S+)", text)
    assert app_dir and (ROOT / app_dir.group(1) / "tasks.py").exists()
    for line in text.splitlines():
        if line.startswith("COPY ") and "${" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert 'ENTRYPOINT ["jobmaster"]' in text


# -- Kubernetes ----------------------------------------------------------------------------
def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    yaml = _yaml()
    paths = sorted((CONTRIB / "kubernetes").glob("*.yaml"))
    assert paths
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def test_kubernetes_manifests() -> None:
    docs = list(_manifests())
    by_name = {doc["metadata"]["name"] + "/" + doc["kind"]: doc for _, doc in docs}
    for file, doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), file
    config = by_name["jobmaster/ConfigMap"]["data"]
    grace = float(config.get("JOBMASTER_SHUTDOWN_GRACE", DEFAULT_GRACE))
    assert "JOBMASTER_MASTER_URL" in by_name["jobmaster/Secret"]["stringData"]

    ran: set[str] = set()
    for file, doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in _containers(doc):
            command = list(container["command"]) + list(container.get("args", []))
            assert command[0] == "jobmaster", file
            check_command(command[1:], f"{file} container {container['name']}")
            ran.add(command[1])
            refs = {ref.get("configMapRef", ref.get("secretRef", {})).get("name")
                    for ref in container["envFrom"]}
            assert refs == {"jobmaster"}
    assert ran == {"worker", "beat", "migrate"}

    worker = by_name["jobmaster-worker/Deployment"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
    [container] = _containers(worker)
    command = container["command"]
    health_port = int(command[command.index("--health-port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == health_port, probe

    beat = by_name["jobmaster-beat/Deployment"]
    assert beat["spec"]["replicas"] >= 2  # leadership is a lease: several are safe
    for doc in (worker, beat):
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


# -- the probe's endpoint ------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_workers_metrics_port_answers_the_probe(
        stack_factory: Callable[..., Stack]) -> None:
    pytest.importorskip("prometheus_client")
    stack = stack_factory("sqlite")
    port = _free_port()
    proc = stack.worker("-c", "1", "--metrics-port", str(port))

    def answers() -> bool:
        assert proc.poll() is None, stack.worker_log()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",  # noqa: S310
                                        timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answers, 60, "the worker's /metrics endpoint")

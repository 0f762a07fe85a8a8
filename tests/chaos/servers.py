"""Private server instances for chaos runs, on ports of their own, with their data in
temporary directories: the harness kills and restarts them at will, so it never touches
the servers other tests share.

``RedisServer`` (AOF on), ``NatsServer`` (JetStream, file store), ``PostgresServer``
(``initdb`` + ``postgres``), ``MariaDBServer`` (``mariadb-install-db`` + ``mariadbd``) and
``RabbitMQServer`` (its own node on the machine's ``epmd``).
A binary that is not installed raises ``Missing``. ``Services`` starts each on first use
and stops them all at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

_START_TIMEOUT = 60.0


class Missing(RuntimeError):
    """A server binary the harness needs is not installed."""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str, *globs: str) -> str:
    found = shutil.which(name)
    for pattern in globs:
        matches = sorted(glob.glob(pattern), key=_version_key)
        if matches:
            found = matches[-1]
    if found is None:
        raise Missing(f"{name} is not installed")
    return found


def _version_key(path: str) -> list[int]:
    return [int(p) for p in path.split("/") if p.isdigit()]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(entry.name))
    return kids


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children, and so on."""
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def kill_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` and all its descendants at once; wait until they are gone."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(v) for v in victims) and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {_START_TIMEOUT:g} s")


class Server:
    """One private server: ``start``, ``crash`` (SIGKILL), ``stop``."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        raise NotImplementedError

    def crash(self) -> None:
        """Kill the server (every process of it) with SIGKILL, as a crash would."""
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        """Stop the server for good (SIGTERM, SIGKILL if it lingers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.crash()
        self.proc = None

    def _log(self) -> int:
        return os.open(self.dir / f"{self.name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                       0o644)


class RedisServer(Server):
    """redis-server with ``appendonly yes`` and ``appendfsync`` as asked."""

    name = "redis"

    def __init__(self, directory: Path, *, fsync: str = "always") -> None:
        self.binary = _binary("redis-server")
        super().__init__(directory)
        self.fsync = fsync

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        log = self._log()
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--appendonly", "yes", "--appendfsync", self.fsync,
             "--save", ""], stdout=log, stderr=log)
        os.close(log)
        deadline = time.monotonic() + _START_TIMEOUT
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if client.ping():  # LOADING (replaying the AOF) raises: wait for it
                    client.close()
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")


class NatsServer(Server):
    """nats-server with JetStream, its store in the directory."""

    name = "nats"

    def __init__(self, directory: Path) -> None:
        self.binary = _binary("nats-server")
        super().__init__(directory)
        self.monitor = free_port()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self._log()
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
             str(self.dir / "store"), "-m", str(self.monitor)], stdout=log, stderr=log)
        os.close(log)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:  # 200 once JetStream has recovered its streams
                url = f"http://127.0.0.1:{self.monitor}/healthz"
                with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private nats-server did not become healthy")


class PostgresServer(Server):
    """A PostgreSQL cluster of its own (``initdb``), its postmaster a child of the harness
    (so a killed one is reaped at once); as root, both run as the ``postgres`` user, which
    PostgreSQL requires."""

    name = "postgres"

    def __init__(self, directory: Path) -> None:
        pattern = "/usr/lib/postgresql/*/bin/{}"
        self.initdb = _binary("initdb", pattern.format("initdb"))
        self.postgres = _binary("postgres", pattern.format("postgres"))
        super().__init__(directory)
        self.data = self.dir / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            shutil.chown(self.dir, "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            result = subprocess.run(
                [self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                 "UTF8", "--no-sync"], capture_output=True, timeout=120, user=self._user,
                check=False)
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed: {result.stdout!r} {result.stderr!r}")
        log = self._log()
        if self._user is not None:
            shutil.chown(self.dir / f"{self.name}.log", self._user)
        self.proc = subprocess.Popen(
            [self.postgres, "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
             "-c", "shared_buffers=32MB", "-c", "fsync=on"],
            stdout=log, stderr=log, user=self._user)
        os.close(log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"postgres exited with {code} while starting; see "
                                   f"{self.dir / 'postgres.log'}")
            try:  # refused while it replays its WAL after a crash
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                     dbname="postgres", connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error:
                time.sleep(0.05)
        raise RuntimeError("private postgres did not accept connections")

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend at once."""
        super().crash()

    def restart_immediate(self) -> None:
        """An immediate shutdown (SIGQUIT: no checkpoint, recovery at start), then start."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                self.proc.wait(10)
            self.proc = None
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.crash()
        self.proc = None

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class MariaDBServer(Server):
    """A MariaDB server of its own (``mariadb-install-db`` + ``mariadbd``)."""

    name = "mariadb"

    def __init__(self, directory: Path) -> None:
        self.install = _binary("mariadb-install-db", "/usr/bin/mysql_install_db")
        self.binary = _binary("mariadbd", "/usr/sbin/mysqld")
        super().__init__(directory)
        self.data = self.dir / "data"

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        user = ["--user=root"] if os.geteuid() == 0 else []
        if not (self.data / "mysql").exists():
            subprocess.run([self.install, "--no-defaults", f"--datadir={self.data}",
                            "--auth-root-authentication-method=normal", "--skip-test-db",
                            *user], check=True, capture_output=True, timeout=120)
        log = self._log()
        self.proc = subprocess.Popen(
            [self.binary, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.dir / 'mysqld.sock'}",
             f"--pid-file={self.dir / 'mysqld.pid'}", "--skip-name-resolve",
             "--innodb-flush-log-at-trx-commit=1", "--max-connections=300", *user],
            stdout=log, stderr=log)
        os.close(log)
        _wait_port(self.port, self.proc, "mariadbd")

    def create_database(self, name: str) -> str:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
        return self.url(name)


class RabbitMQServer(Server):
    """A RabbitMQ node of its own (``rabbitmq-server`` with its own node name, ports and
    data directory; the machine's ``epmd`` is shared). It takes seconds to start."""

    name = "rabbitmq"

    def __init__(self, directory: Path) -> None:
        self.binary = _binary("rabbitmq-server")
        super().__init__(directory)
        self.dist_port = free_port()
        self._user: str | None = None
        self._home: str | None = None
        (self.dir / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            import pwd

            self._user = "rabbitmq"
            self._home = pwd.getpwnam("rabbitmq").pw_dir  # its Erlang cookie lives there
            for path in (self.dir, self.dir / "enabled_plugins"):
                shutil.chown(path, "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        env = {**os.environ,
               "RABBITMQ_NODENAME": f"jmchaos{self.port}@localhost",
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(self.dist_port),
               "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.dir / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
               "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid")}
        if self._home is not None:
            env["HOME"] = self._home
        log = self._log()
        self.proc = subprocess.Popen([self.binary], stdout=log, stderr=log, env=env,
                                     user=self._user)
        os.close(log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import pika

        parameters = pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited while starting")
            try:  # the AMQP handshake, not just the port: it opens before it is ready
                pika.BlockingConnection(parameters).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.2)
        raise RuntimeError("private rabbitmq-server did not accept AMQP connections")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kids = descendants(self.proc.pid)
            for pid in [self.proc.pid, *kids]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 30
            while any(_alive(k) for k in kids) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.crash()
        self.proc = None


class Services:
    """Private servers of one harness process, each started on first use."""

    def __init__(self, base: Path | None = None, *, redis_fsync: str = "always") -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="jm-chaos-servers-"))
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)  # PostgreSQL runs as its own user: it must get through
        self.redis_fsync = redis_fsync
        self._servers: dict[str, Server] = {}

    def _get(self, kind: str) -> Server:
        server = self._servers.get(kind)
        if server is None:
            directory = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.base))
            os.chmod(directory, 0o755)
            made: Server
            if kind == "redis":
                made = RedisServer(directory, fsync=self.redis_fsync)
            elif kind == "nats":
                made = NatsServer(directory)
            elif kind == "postgres":
                made = PostgresServer(directory)
            elif kind == "mariadb":
                made = MariaDBServer(directory)
            elif kind == "rabbitmq":
                made = RabbitMQServer(directory)
            else:
                raise ValueError(kind)
            self._servers[kind] = made  # stopped by close() even if it fails to start
            made.start()
            server = made
        return server

    def redis(self) -> RedisServer:
        server = self._get("redis")
        assert isinstance(server, RedisServer)
        return server

    def nats(self) -> NatsServer:
        server = self._get("nats")
        assert isinstance(server, NatsServer)
        return server

    def postgres(self) -> PostgresServer:
        server = self._get("postgres")
        assert isinstance(server, PostgresServer)
        return server

    def mariadb(self) -> MariaDBServer:
        server = self._get("mariadb")
        assert isinstance(server, MariaDBServer)
        return server

    def rabbitmq(self) -> RabbitMQServer:
        server = self._get("rabbitmq")
        assert isinstance(server, RabbitMQServer)
        return server

    def close(self, *, keep: bool = False) -> None:
        """Stop every server; delete their data unless ``keep``."""
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()
        if not keep:
            for _ in range(3):  # a server's last writes may race the first try
                shutil.rmtree(self.base, ignore_errors=True)
                if not self.base.exists():
                    break
                time.sleep(1.0)

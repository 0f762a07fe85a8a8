"""TLS and credentials against real servers configured for them: private nats-server,
redis-server, PostgreSQL, MariaDB and RabbitMQ instances with certificates from a test CA,
each requiring credentials. Jobs travel over TLS; a wrong password says the server refused
the credentials (distinct from "cannot reach"); an untrusted certificate is refused; no
password shows in an error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import quote

import pytest

from jobmaster import AgentError, App
from jobmaster.agents.base import Bucket, resolve_agent
from jobmaster.exceptions import AgentUnreachableError
from jobmaster.testing.agent_conformance import message as msg
from tests.chaos.servers import MariaDBServer, Missing, RabbitMQServer, kill_tree
from tests.conftest import wait_until
from tests.services import in_ci

_S = TypeVar("_S")
_START_SECONDS = 60.0  # a private server's start, cold caches included


def _missing(what: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


def _need(binary: str) -> str:
    found = shutil.which(binary) or next(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{binary}")), None)
    if found is None:
        _missing(binary)
    return found


def _server(make: Callable[[], _S]) -> _S:
    """``make()``, a ``tests.chaos.servers`` server: skipped (failed in CI) if its binaries
    are missing."""
    try:
        return make()
    except Missing as exc:
        _missing(str(exc).removesuffix(" is not installed"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    openssl = _need("openssl")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=jobmaster test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
        "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    os.chmod(d / "server.key", 0o600)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=someone else", "-keyout", "other.key", "-out", "other.pem")
    return d


def _round_trip(url: str, namespace: str) -> None:
    agent = resolve_agent(url, namespace=namespace)
    try:
        agent.push([msg(lane="secure")])
        [claim] = agent.claim(["secure"], 1, lease_seconds=5, consumer="t", wait=2.0)
        agent.ack([claim])
        assert agent.length(Bucket("secure", 2)) == 0
    finally:
        agent.close()


def _refused(url: str, namespace: str) -> AgentError:
    agent = resolve_agent(url, namespace=namespace)
    try:
        with pytest.raises(AgentError) as info:
            agent.push([msg()])
        return info.value
    finally:
        agent.close()


# -- NATS -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nats_tls(certs: Path) -> Iterator[tuple[int, Path]]:
    nkeys = pytest.importorskip("nkeys")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key.decode()
    (certs / "user.nk").write_bytes(seed)
    port = _free_port()
    store = certs / "js"
    (certs / "nats.conf").write_text(f"""
listen: 127.0.0.1:{port}
jetstream {{ store_dir: "{store}" }}
tls {{ cert_file: "{certs}/server.pem", key_file: "{certs}/server.key", timeout: 2 }}
authorization {{ users: [ {{ user: jm, password: s3cret }}, {{ nkey: {public} }} ] }}
""")
    proc = subprocess.Popen([_need("nats-server"), "-c", str(certs / "nats.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 15, "the private nats-server")
        yield port, certs
    finally:
        proc.terminate()
        proc.wait(10)


def test_nats_over_tls_with_a_password_or_an_nkey(nats_tls: tuple[int, Path]) -> None:
    port, certs = nats_tls
    ca = certs / "ca.pem"
    _round_trip(f"tls://jm:s3cret@127.0.0.1:{port}?ca={ca}", "jmtls1")
    _round_trip(f"tls://127.0.0.1:{port}?ca={ca}&nkey={certs / 'user.nk'}", "jmtls2")
    wrong = _refused(f"tls://jm:nope@127.0.0.1:{port}?ca={ca}&timeout=2", "jmtls3")
    assert not isinstance(wrong, AgentUnreachableError)
    assert "refused the credentials" in str(wrong) and "nope" not in str(wrong)
    untrusted = _refused(f"tls://jm:s3cret@127.0.0.1:{port}?ca={certs / 'other.pem'}"
                         "&timeout=2", "jmtls4")
    assert "certificate" in str(untrusted).lower() or "ssl" in str(untrusted).lower()
    assert "s3cret" not in str(untrusted)


# -- Redis ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_tls(certs: Path) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [_need("redis-server"), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certs / "server.pem"), "--tls-key-file",
         str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.pem"),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--user", "default", "off", "--user", "jm", "on", ">s3cret", "~*", "&*", "+@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), 15, "the private redis-server")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_over_tls_with_an_acl_user(redis_tls: int, certs: Path) -> None:
    ca = certs / "ca.pem"
    _round_trip(f"rediss://jm:s3cret@127.0.0.1:{redis_tls}/0?ssl_ca_certs={ca}", "jmtls5")
    wrong = _refused(f"rediss://jm:nope@127.0.0.1:{redis_tls}/0?ssl_ca_certs={ca}", "jmtls6")
    assert not isinstance(wrong, AgentUnreachableError)
    assert "refused" in str(wrong) and "nope" not in str(wrong)


# -- PostgreSQL -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_ssl(certs: Path) -> Iterator[int]:
    """A private PostgreSQL taking TLS connections only; run as the ``postgres`` user when
    the tests run as root (PostgreSQL refuses root)."""
    import pwd
    import tempfile

    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="jm-pg-ssl-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        as_user = [_need("runuser"), "-u", "postgres", "--"]
        os.chown(data, owner.pw_uid, owner.pw_gid)
    subprocess.run([*as_user, _need("initdb"), "-D", str(data / "db"), "-U", "postgres",
                    "--auth=trust"], check=True, capture_output=True)
    db = data / "db"
    for name in ("server.pem", "server.key"):
        shutil.copy(certs / name, db / name)
        if as_user:
            os.chown(db / name, owner.pw_uid, owner.pw_gid)
    os.chmod(db / "server.key", 0o600)
    (db / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n"
                                    "local all all trust\n")
    port = _free_port()
    ctl = _need("pg_ctl")
    subprocess.run([*as_user, ctl, "-D", str(db), "-l", str(db / "log"), "-w", "-o",
                    f"-p {port} -k {db} -c listen_addresses=127.0.0.1 -c ssl=on "
                    "-c ssl_cert_file=server.pem -c ssl_key_file=server.key -c fsync=off",
                    "start"], check=True, capture_output=True)
    try:
        yield port
    finally:
        subprocess.run([*as_user, ctl, "-D", str(db), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_postgres_master_and_agent_over_verified_tls(postgres_ssl: int, certs: Path) -> None:
    tls = f"sslmode=verify-full&sslrootcert={certs / 'ca.pem'}"
    url = f"postgresql://postgres@127.0.0.1:{postgres_ssl}/postgres?{tls}"
    app = App("tls", master=url, agents={"main": url}, namespace="jmtls7")
    app.migrate()

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    from jobmaster.testing import drain

    handle = add.delay(x=2, y=3)
    drain(app)
    assert handle.result(timeout=10) == 5
    import sqlalchemy as sa

    with app.master.engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar() is True
    app.close()
    plain = f"postgresql://postgres@127.0.0.1:{postgres_ssl}/postgres?sslmode=disable"
    refused = _refused(plain, "jmtls8")  # the server takes TLS connections only
    assert "pg_hba" in str(refused) or "encryption" in str(refused)
    untrusted = _refused(f"postgresql://postgres@127.0.0.1:{postgres_ssl}/postgres?"
                         f"sslmode=verify-full&sslrootcert={certs / 'other.pem'}", "jmtls9")
    assert "certificate" in str(untrusted).lower()


def test_nats_security_options_are_checked_when_the_agent_is_made(certs: Path) -> None:
    from jobmaster import ConfigurationError

    with pytest.raises(ConfigurationError, match="not a readable file"):
        resolve_agent("tls://127.0.0.1:4222?ca=/nowhere/ca.pem")
    with pytest.raises(ConfigurationError, match="both"):
        resolve_agent(f"tls://127.0.0.1:4222?cert={certs / 'server.pem'}")


def _start(server: MariaDBServer | RabbitMQServer) -> None:
    """Start a private server; if it fails, fail with the end of its log (its directory is
    deleted at teardown)."""
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported with the log
        try:
            log = (server.dir / f"{server.name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            log = "(no log)"
        pytest.fail(f"the private {server.name} did not start: {exc}\n{log}")


def _kill(server: MariaDBServer | RabbitMQServer | None) -> None:
    """SIGKILL a private server and every process of it (its data is thrown away)."""
    if server is not None and server.proc is not None:
        kill_tree(server.proc.pid)
        server.proc.wait(10)


def _no_secret(error: BaseException, *secrets: str) -> str:
    """``error``'s text, after checking that none of ``secrets`` is in it."""
    text = str(error)
    for secret in secrets:
        assert secret not in text, f"a password shows in: {text}"
    return text


# -- MySQL / MariaDB ------------------------------------------------------------------------
_MYSQL_PASSWORD = "Tls-My-Pw-41c7"
_WRONG_PASSWORD = "Not-The-Pw-9d2e"


class _SecureMariaDB(MariaDBServer):
    """``MariaDBServer`` with the test CA's certificate, taking TCP connections over TLS only
    (``require_secure_transport``), with database ``jmtls`` and its user ``jm``, who must
    use TLS (``REQUIRE SSL``). Root sets them up through the Unix socket."""

    name = "mariadb-ssl"

    def __init__(self, directory: Path, certs: Path) -> None:
        super().__init__(directory)
        self.certs = certs
        self.socket = self.dir / "mysqld.sock"

    def start(self) -> None:
        import pymysql

        user = ["--user=root"] if os.geteuid() == 0 else []
        made = subprocess.run([self.install, "--no-defaults", f"--datadir={self.data}",
                               "--auth-root-authentication-method=normal", "--skip-test-db",
                               *user], capture_output=True, timeout=120, check=False)
        if made.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {made.stderr.decode()[-2000:]}")
        log = self._log()
        self.proc = subprocess.Popen(
            [self.binary, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}",
             f"--pid-file={self.dir / 'mysqld.pid'}", "--skip-name-resolve",
             "--innodb-flush-log-at-trx-commit=0", f"--ssl-ca={self.certs / 'ca.pem'}",
             f"--ssl-cert={self.certs / 'server.pem'}",
             f"--ssl-key={self.certs / 'server.key'}", "--require-secure-transport=ON", *user],
            stdout=log, stderr=log)
        os.close(log)
        deadline = time.monotonic() + _START_SECONDS
        while True:  # the socket answers once mariadbd takes connections
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}")
            try:
                conn = pymysql.connect(unix_socket=str(self.socket), user="root",
                                       autocommit=True, connect_timeout=1)
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT @@require_secure_transport")
                assert cursor.fetchone() == (1,)
                cursor.execute("CREATE DATABASE jmtls")
                cursor.execute("CREATE USER 'jm'@'%%' IDENTIFIED BY %s REQUIRE SSL",
                               (_MYSQL_PASSWORD,))
                cursor.execute("GRANT ALL ON jmtls.* TO 'jm'@'%'")
        finally:
            conn.close()


@pytest.fixture(scope="module")
def mariadb_ssl(certs: Path) -> Iterator[int]:
    """A private MariaDB taking TLS connections only, user ``jm``; its port."""
    import pymysql

    directory = Path(tempfile.mkdtemp(prefix="jm-mariadb-ssl-"))  # short: a socket lives there
    server: _SecureMariaDB | None = None
    try:
        server = _server(lambda: _SecureMariaDB(directory, certs))
        _start(server)
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(host="127.0.0.1", port=server.port, user="jm",  # no TLS: no entry
                            password=_MYSQL_PASSWORD, ssl_disabled=True, connect_timeout=5)
        yield server.port
    finally:
        _kill(server)
        shutil.rmtree(directory, ignore_errors=True)


def test_mysql_master_and_agent_over_verified_tls(mariadb_ssl: int, certs: Path) -> None:
    where = f"127.0.0.1:{mariadb_ssl}/jmtls"
    agent = f"mysql://jm:{_MYSQL_PASSWORD}@{where}?ssl_ca={certs / 'ca.pem'}&ssl_verify_cert=true"
    _round_trip(agent, "jmtls10")
    # SQLAlchemy turns ssl_ca into PyMySQL's ssl={"ca": ...}, which checks the certificate
    # and the host name. Not with ssl_verify_cert=true: PyMySQL then builds its TLS
    # settings from its ssl_* arguments alone, without the CA SQLAlchemy moved away.
    master = f"mysql+pymysql://jm:{_MYSQL_PASSWORD}@{where}?ssl_ca={certs / 'ca.pem'}"
    app = App("tls", master=master, agents={"main": agent}, namespace="jmtls11")
    try:
        app.migrate()

        @app.job(definition_id="add")
        def add(x: int, y: int) -> int:
            return x + y

        from jobmaster.testing import drain

        handle = add.delay(x=2, y=3)
        drain(app)  # real workers, in threads of this process
        assert handle.result(timeout=10) == 5
        import sqlalchemy as sa

        with app.master.engine.connect() as conn:
            cipher = conn.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1]
        assert cipher, "the master's connection is not encrypted"
    finally:
        app.close()


def test_mysql_refuses_a_wrong_password_and_an_untrusted_certificate(
        mariadb_ssl: int, certs: Path) -> None:
    from jobmaster.exceptions import ConfigurationError, MasterUnreachableError
    from jobmaster.master.repository import Master

    where = f"127.0.0.1:{mariadb_ssl}/jmtls"
    trusted = f"ssl_ca={certs / 'ca.pem'}&ssl_verify_cert=true"
    wrong = _refused(f"mysql://jm:{_WRONG_PASSWORD}@{where}?{trusted}", "jmtls12")
    assert not isinstance(wrong, AgentUnreachableError)
    assert "refused the credentials" in _no_secret(wrong, _WRONG_PASSWORD)
    # another CA (checked whether or not ssl_verify_cert says so), or the system's CAs
    for tls in (f"ssl_ca={certs / 'other.pem'}&ssl_verify_cert=true",
                f"ssl_ca={certs / 'other.pem'}", "ssl_verify_cert=true"):
        untrusted = _refused(f"mysql://jm:{_MYSQL_PASSWORD}@{where}?{tls}", "jmtls13")
        assert "certificate verify failed" in _no_secret(untrusted, _MYSQL_PASSWORD)

    def master_error(password: str, ca: str, error: type[Exception]) -> str:
        master = Master(f"mysql+pymysql://jm:{password}@{where}?ssl_ca={certs / ca}")
        try:
            with pytest.raises(error) as info:
                master.ensure_ready()
        finally:
            master.engine.dispose()
        return _no_secret(info.value, _MYSQL_PASSWORD, _WRONG_PASSWORD)

    # refused credentials are a configuration error (nothing to wait for), an untrusted
    # certificate a master that cannot be reached
    refused = master_error(_WRONG_PASSWORD, "ca.pem", ConfigurationError)
    assert "refused the credentials" in refused and "Access denied for user 'jm'" in refused
    assert "certificate verify failed" in master_error(_MYSQL_PASSWORD, "other.pem",
                                                       MasterUnreachableError)


# -- RabbitMQ -------------------------------------------------------------------------------
_RABBIT_PASSWORD = "Tls-Rabbit-Pw-6b03"


class _SecureRabbitMQ(RabbitMQServer):
    """``RabbitMQServer`` with one listener, TLS with the test CA's certificate on
    ``tls_port`` (no plain AMQP listener), and user ``jm`` in place of ``guest``."""

    name = "rabbitmq-tls"

    def __init__(self, directory: Path, certs: Path) -> None:
        super().__init__(directory)
        self.tls_port = _free_port()
        self.ca = certs / "ca.pem"
        for name in ("ca.pem", "server.pem", "server.key"):  # readable by its own user
            shutil.copy(certs / name, self.dir / name)
            if self._user is not None:
                shutil.chown(self.dir / name, self._user)
        (self.dir / "rabbitmq.conf").write_text(f"""
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:{self.tls_port}
ssl_options.cacertfile = {self.dir / 'ca.pem'}
ssl_options.certfile = {self.dir / 'server.pem'}
ssl_options.keyfile = {self.dir / 'server.key'}
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
default_user = jm
default_pass = {_RABBIT_PASSWORD}
""")

    def _wait_ready(self) -> None:
        import ssl

        import pika

        parameters = pika.ConnectionParameters(
            "127.0.0.1", self.tls_port, credentials=pika.PlainCredentials("jm", _RABBIT_PASSWORD),
            ssl_options=pika.SSLOptions(ssl.create_default_context(cafile=str(self.ca))),
            connection_attempts=1, socket_timeout=2)
        deadline = time.monotonic() + _START_SECONDS
        while True:  # the AMQP handshake, not just the port: it opens before it is ready
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}")
            try:
                pika.BlockingConnection(parameters).close()
                return
            except pika.exceptions.AMQPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="module")
def rabbitmq_tls(certs: Path) -> Iterator[int]:
    """A private RabbitMQ node taking AMQP over TLS only, user ``jm``; its TLS port."""
    directory = Path(tempfile.mkdtemp(prefix="jm-rabbitmq-tls-"))
    server: _SecureRabbitMQ | None = None
    try:
        server = _server(lambda: _SecureRabbitMQ(directory, certs))
        _start(server)
        yield server.tls_port
    finally:
        _kill(server)
        shutil.rmtree(directory, ignore_errors=True)


def _ssl_options(ca: Path) -> str:
    """pika's ``ssl_options`` URL parameter trusting ``ca``."""
    return quote(repr({"ca_certs": str(ca)}), safe="")


def test_rabbitmq_over_tls_with_a_user_of_its_own(rabbitmq_tls: int, certs: Path) -> None:
    where = f"127.0.0.1:{rabbitmq_tls}/%2F?timeout=5"
    trusted = f"ssl_options={_ssl_options(certs / 'ca.pem')}"
    _round_trip(f"amqps://jm:{_RABBIT_PASSWORD}@{where}&{trusted}", "jmtls14")
    wrong = _refused(f"amqps://jm:{_WRONG_PASSWORD}@{where}&{trusted}", "jmtls15")
    assert not isinstance(wrong, AgentUnreachableError)
    assert "refused the credentials" in _no_secret(wrong, _WRONG_PASSWORD)
    # a CA that did not sign the server's certificate, and the system's CAs (amqps:// alone)
    for tls in (f"&ssl_options={_ssl_options(certs / 'other.pem')}", ""):
        untrusted = _refused(f"amqps://jm:{_RABBIT_PASSWORD}@{where}{tls}", "jmtls16")
        assert "certificate verify failed" in _no_secret(untrusted, _RABBIT_PASSWORD)

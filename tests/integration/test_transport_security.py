"""TLS and credentials against real servers configured for them: private nats-server,
redis-server and PostgreSQL instances with certificates from a test CA, each requiring
credentials. Jobs travel over TLS; a wrong password says the server refused the
credentials (distinct from "cannot reach"); an untrusted certificate is refused."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobmaster import AgentError, App
from jobmaster.agents.base import Bucket, resolve_agent
from jobmaster.exceptions import AgentUnreachableError
from jobmaster.testing.agent_conformance import message as msg
from tests.conftest import wait_until
from tests.services import in_ci


def _need(binary: str) -> str:
    found = shutil.which(binary) or next(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{binary}")), None)
    if found is None:
        if in_ci():
            pytest.fail(f"{binary} is not installed")
        pytest.skip(f"{binary} is not installed")
    return found


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

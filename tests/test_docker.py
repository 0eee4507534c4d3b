"""The Docker files, read as text: CI has no Docker engine to build or run them."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from bot.config import Settings
from bot.health import HealthServer, HealthSources

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
IMAGE = "spaces-bridge-bot:local"
SETTINGS = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def bot_image_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == IMAGE or "build" in s}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


# -- compose -------------------------------------------------------------------------------------


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"bot", "migrate", "postgres", "redis", "bot-pg", "migrate-pg"} <= set(services)


def test_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert "profiles" not in services["bot"]
    assert "profiles" not in services["migrate"]
    for name in ("postgres", "redis", "bot-pg", "migrate-pg"):
        assert services[name].get("profiles") == ["postgres"], name


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/", "~"))
    }
    assert used <= declared
    assert "bot-data:/data" in services["bot"]["volumes"]
    assert "bot-data:/data" in services["bot-pg"]["volumes"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


@pytest.mark.parametrize("name", ["bot", "bot-pg", "postgres", "redis"])
def test_long_running_services_have_a_healthcheck(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test and test[0] in ("CMD", "CMD-SHELL")


def test_healthchecks_ask_the_right_thing(services: dict[str, dict[str, Any]]) -> None:
    assert "/app/docker/healthcheck.py" in services["bot"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_conversations_survive_a_restart(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    # SQLite variant: conversation state is in the database, in the named volume.
    bot = environment(services["bot"])
    assert "DATABASE_URL" not in bot and "REDIS_URL" not in bot
    assert bot["DATA_DIR"] == "/data" and "bot-data:/data" in services["bot"]["volumes"]
    # PostgreSQL variant: conversation state is in Redis, which writes it to its volume
    # as it changes (append-only file), not only in an hourly snapshot.
    redis = services["redis"]
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize(("ready", "expected"), [(200, 0), (503, 1)])
def test_the_container_healthcheck_asks_readyz(ready: int, expected: int) -> None:
    """/healthz always says 200 here: only /readyz decides."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(ready if self.path == "/readyz" else 200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            [sys.executable, str(DOCKER / "healthcheck.py")],
            env={"HEALTH_PORT": str(server.server_address[1]), "HEALTH_HOST": "0.0.0.0"},
            capture_output=True,
            timeout=20,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == expected, result.stderr


def test_bot_runs_after_migrations(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == "migrate"
    assert services["migrate-pg"]["command"] == "migrate"
    assert services["bot"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["bot-pg"]["depends_on"]["migrate-pg"] == {
        "condition": "service_completed_successfully"
    }


def test_postgres_variants_wait_for_healthy_databases(
    services: dict[str, dict[str, Any]],
) -> None:
    healthy = {"condition": "service_healthy"}
    assert services["migrate-pg"]["depends_on"]["postgres"] == healthy
    assert services["bot-pg"]["depends_on"]["postgres"] == healthy
    assert services["bot-pg"]["depends_on"]["redis"] == healthy
    for name in ("bot-pg", "migrate-pg"):
        env = environment(services[name])
        assert env["DATABASE_URL"] == "postgresql+asyncpg://bot:bot@postgres:5432/bot"
        assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_bot_services_build_the_image_and_read_the_optional_env_file(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("bot", "migrate", "bot-pg", "migrate-pg"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert service["env_file"] == [{"path": "../.env", "required": False}]
        assert environment(service)["DATA_DIR"] == "/data"
    for name in ("bot", "bot-pg"):
        service = services[name]
        assert service["restart"] == "unless-stopped"
        assert "stop_grace_period" in service
        assert environment(service)["HEALTH_PORT"] == "8080"
        assert environment(service)["HEALTH_HOST"] == "0.0.0.0"


def test_compose_uses_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    used = {key for s in bot_image_services(services).values() for key in environment(s)}
    assert used, "no environment found"
    assert used <= SETTINGS, sorted(used - SETTINGS)


def test_env_example_lists_only_real_settings() -> None:
    keys = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.add(line.split("=", 1)[0].strip())
    assert keys
    assert keys <= SETTINGS, sorted(keys - SETTINGS)


def test_every_setting_is_documented_in_env_example_and_readme() -> None:
    listed = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" in line
    }
    readme = (ROOT / "README.md").read_text()
    assert sorted(SETTINGS - listed) == []
    assert sorted(k for k in SETTINGS if f"`{k}`" not in readme) == []


def test_compose_config_when_docker_compose_is_available() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose is not installed")
    for args in ([], ["--profile", "postgres"]):
        result = subprocess.run(
            [docker, "compose", "-f", str(DOCKER / "compose.yaml"), *args, "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


# -- Dockerfile ----------------------------------------------------------------------------------


def test_every_stage_starts_from_python_slim() -> None:
    bases = [args.split()[0] for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)


def test_runs_as_a_fixed_non_root_user() -> None:
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any("useradd" in args and "--uid 10001" in args for k, args in stage if k == "RUN")


def test_no_download_tools_or_compilers_in_the_image() -> None:
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    for tool in ("curl", "wget", "build-essential", "gcc"):
        assert not re.search(rf"\b{tool}\b", runs), tool


def test_installs_the_project_with_its_extras() -> None:
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert "pip install --no-cache-dir -e '.[postgres,redis]'" in runs
    copied = " ".join(args for keyword, args in final_stage() if keyword == "COPY")
    for part in ("pyproject.toml", "alembic.ini", "README.md", "bot/", "migrations/"):
        assert part in copied, part


def test_healthcheck_and_entrypoint() -> None:
    stage = dict(final_stage())
    assert "healthcheck.py" in stage["HEALTHCHECK"]
    assert stage["ENTRYPOINT"] == '["/app/docker/entrypoint.sh"]'
    assert stage["WORKDIR"] == "/app"
    assert "DATA_DIR=/data" in stage["ENV"]


@pytest.mark.parametrize(("ready", "exit_code"), [(True, 0), (False, 1)])
async def test_the_health_check_asks_readiness_not_liveness(ready: bool, exit_code: int) -> None:
    """A bot that is alive but not ready (here: its database takes no writes) is unhealthy."""
    sources = HealthSources(
        database_ok=lambda: _answer(ready),
        telegram_ok=lambda: _answer(True),
        loops={},
        counters=dict,
        sessions_by_state=lambda: _answer({}),
        version="test",
    )
    server = HealthServer(sources, port=0)
    await server.start()
    try:
        check = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DOCKER / "healthcheck.py"),
            env={"HEALTH_PORT": str(server.port), "PATH": os.environ.get("PATH", "")},
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(check.communicate(), 20)
    finally:
        await server.stop()
    assert check.returncode == exit_code, stderr
    if not ready:
        assert b"database" in stderr


async def _answer(value: T) -> T:
    return value


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".env", ".git", "data", "tests", "bench"} <= ignored
    for needed in ("bot", "migrations", "docker", "alembic.ini", "pyproject.toml", "README.md"):
        assert needed not in ignored


# -- entrypoint ----------------------------------------------------------------------------------


def test_entrypoint_is_valid_shell() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    subprocess.run([bash, "-n", str(DOCKER / "entrypoint.sh")], check=True)


def test_entrypoint_text() -> None:
    text = (DOCKER / "entrypoint.sh").read_text()
    assert "set -eu" in text
    assert "exec python -m bot run" in text
    assert "alembic upgrade head" in text
    assert (DOCKER / "entrypoint.sh").stat().st_mode & 0o111


@pytest.fixture
def stub_path(tmp_path: Path) -> str:
    """`python` and `alembic` that print their arguments and their process id."""
    for name in ("python", "alembic"):
        stub = tmp_path / name
        stub.write_text(f'#!/bin/sh\necho "$$ {name} $*"\necho "cwd $(pwd)"\n')
        stub.chmod(0o755)
    return f"{tmp_path}:/usr/bin:/bin"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "python -m bot run"),
        (["run"], "python -m bot run"),
        (["migrate"], "alembic upgrade head"),
        (["genkey"], "python -m bot genkey"),
    ],
)
def test_entrypoint_execs_the_command(stub_path: str, args: list[str], expected: str) -> None:
    proc = subprocess.Popen(
        ["/bin/sh", str(DOCKER / "entrypoint.sh"), *args],
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": stub_path},
    )
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    first, cwd = out.splitlines()
    pid, command = first.split(" ", 1)
    assert command == expected
    # exec: the command replaced the shell, so it is the process `docker stop` signals.
    assert int(pid) == proc.pid
    assert Path(cwd.removeprefix("cwd ")) == ROOT

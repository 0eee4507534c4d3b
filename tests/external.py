"""PostgreSQL and Redis for the tests that exercise those paths (skipped when absent).

Override with TEST_POSTGRES_URL (an asyncpg DSN to a database the tests may create
databases from) and TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

POSTGRES_DSN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is not installed")
    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_DSN}: {exc}")
    name = f"bot_test_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _hold_lock(path: Path) -> IO[str]:
    """Wait for an exclusive lock on `path`; it is released when the returned file closes."""
    file = path.open("a")
    fcntl.flock(file, fcntl.LOCK_EX)
    return file


@pytest.fixture
async def redis_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A Redis database (number 15) emptied before and after the test, used by one test at a
    time: parallel workers (`-n`) and other test sessions of this user wait on a file lock."""
    redis = pytest.importorskip("redis.asyncio", reason="redis is not installed")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    # The parent of the session's base temp is shared by xdist workers and by other sessions.
    name = hashlib.sha256(REDIS_URL.encode()).hexdigest()[:16]
    lock = await asyncio.to_thread(
        _hold_lock, tmp_path_factory.getbasetemp().parent / f"redis-{name}.lock"
    )
    try:
        await client.flushdb()
        yield REDIS_URL
    finally:
        try:
            await client.flushdb()
            await client.aclose()
        finally:
            lock.close()

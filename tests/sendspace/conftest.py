from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.sendspace import SendspaceClient, SendspaceService
from tests.fakes.sendspace_server import API_KEY, FakeSendspace


@pytest.fixture
async def fake() -> AsyncIterator[FakeSendspace]:
    """A fake sendspace REST API, in process, on 127.0.0.1."""
    async with FakeSendspace() as fake:
        fake.state.timeout_seconds = 5.0
        yield fake


@pytest.fixture
async def transport() -> AsyncIterator[httpx.AsyncBaseTransport]:
    async with httpx.AsyncHTTPTransport() as transport:
        yield transport


@pytest.fixture
def client(fake: FakeSendspace, transport: httpx.AsyncBaseTransport) -> SendspaceClient:
    return SendspaceClient(transport, API_KEY, fake.url, timeout=1.0)


@pytest.fixture
def service(client: SendspaceClient) -> SendspaceService:
    return SendspaceService(client)

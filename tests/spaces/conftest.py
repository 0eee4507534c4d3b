from __future__ import annotations

import pytest

from tests.fakes.spaces_server import FakeSpaces


@pytest.fixture
def fake(fake_spaces: FakeSpaces) -> FakeSpaces:
    """The shared fake Spaces, by the short name these tests use."""
    return fake_spaces

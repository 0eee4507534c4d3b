"""A magic filter (`F...`) resolved in the event loop.

aiogram runs a filter that is not a coroutine function through `asyncio.to_thread`, and a
bare `F...` filter is not one (nor is a bare `State`): every update it looks at would hop
to a worker thread and back. Handlers wrap each `F...` in `InLoop` and each state in
`StateFilter`; tests/conversation/test_hot_path.py proves none is left bare.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from magic_filter import MagicFilter


class InLoop(Filter):
    def __init__(self, magic: MagicFilter) -> None:
        self._magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        # As aiogram treats a magic filter's result: a dict is handed on, else its truth.
        return self._magic.resolve(event)

    def __str__(self) -> str:
        return f"InLoop({self._magic!r})"

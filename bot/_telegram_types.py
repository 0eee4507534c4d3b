"""Load aiogram with its Telegram types built on first use, not all at import.

aiogram declares its ~400 types with pydantic's `defer_build`, then `aiogram.types` forces
every one of them to build at import (`model_rebuild` in a loop, to resolve the forward
references between them). Each type's validator carries its own copy of every nested
type's validator: about 110 MB and 3 s before the bot has read a single update (aiogram
issue #1513). This bot uses a few dozen of those types.

So while aiogram is first imported, that loop's calls are held back. Once the import is
done, each held type's module gets, as plain globals, the names its annotations refer to
(the same names aiogram's loop would have passed, most of them imported there only under
TYPE_CHECKING). From then on a type, or a method that nests it, resolves its references the
ordinary way and builds the first time it validates, serialises or is constructed. Any other
`model_rebuild` call goes to pydantic unchanged. tests/test_telegram_types.py builds every
aiogram type and method from this state and feeds updates through it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_NAME = re.compile(r"[A-Za-z_]\w*")
# The answer types built up front. pydantic keeps `Response[X]` only weakly, so without a
# reference here the next garbage collection drops it and an update rebuilds it (~7 ms).
_KEPT: list[type[Any]] = []


def defer_aiogram_types() -> None:
    """Have the first `import aiogram` from now on leave its types to build on first use.

    Cheap to call: nothing is imported until something imports aiogram. A no-op when aiogram
    is already imported (its types are built then) or the hook is already in place.
    """
    if "aiogram" in sys.modules or any(isinstance(f, _AiogramFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AiogramFinder())


class _AiogramFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname != "aiogram":
            return None
        sys.meta_path.remove(self)  # once, and the real finders locate the package
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _HoldingLoader(spec.loader)
        return spec


class _HoldingLoader(importlib.abc.Loader):
    """Runs aiogram's package import with its rebuild loop held back."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from pydantic import BaseModel

        original = BaseModel.__dict__["model_rebuild"]
        held: list[tuple[type[BaseModel], Mapping[str, Any]]] = []

        def model_rebuild(
            cls: type[BaseModel], /, *, _types_namespace: Any = None, **kwargs: Any
        ) -> Any:
            if (
                _types_namespace is not None
                and not kwargs.get("force")
                and cls.__module__.startswith("aiogram.")
                and cls.model_config.get("defer_build")
                and not cls.__pydantic_complete__
            ):
                held.append((cls, _types_namespace))
                return None
            if _types_namespace is not None:
                kwargs["_types_namespace"] = _types_namespace
            return original.__func__(cls, **kwargs)

        BaseModel.model_rebuild = classmethod(model_rebuild)  # type: ignore[method-assign,assignment]
        try:
            self._loader.exec_module(module)
        finally:
            BaseModel.model_rebuild = original  # type: ignore[method-assign]
        for cls, namespace in held:
            try:
                _publish_referenced_names(cls, namespace)
            except Exception:  # never leave a type unbuildable: build it now, as aiogram would
                cls.model_rebuild(_types_namespace=namespace)


def _publish_referenced_names(cls: type, namespace: Mapping[str, Any]) -> None:
    """Make the names in `cls`'s annotations globals of its module, never replacing one."""
    module = vars(sys.modules[cls.__module__])
    for klass in cls.__mro__:
        if not klass.__module__.startswith("aiogram."):
            continue
        try:
            annotations = inspect.get_annotations(klass)
        except Exception:  # an annotation that cannot be read: publish every name
            names: Any = namespace
        else:
            names = {
                name
                for annotation in annotations.values()
                for name in _NAME.findall(
                    annotation if isinstance(annotation, str) else repr(annotation)
                )
            }
        for name in names:
            if name in namespace and name not in module:
                module[name] = namespace[name]


def build_types_in_use() -> None:
    """Build now what every update and every message the bot sends needs, rather than
    inside the event loop when the first person writes (about 0.5 s of CPU in all, during
    which nothing else would run: no answers, and a gap in the paced notice queue)."""
    from aiogram import methods, types
    from aiogram.methods.base import Response

    types.Update.model_rebuild()
    used: tuple[type[methods.TelegramMethod[Any]], ...] = (
        methods.GetUpdates,
        methods.GetMe,
        methods.SetMyCommands,
        methods.SendMessage,
        methods.SendPhoto,
        methods.SendChatAction,
        methods.EditMessageText,
        methods.EditMessageReplyMarkup,
        methods.AnswerCallbackQuery,
        methods.DeleteMessage,
    )
    for method in used:
        method.model_rebuild()
        answer = Response[method.__returning__]  # type: ignore[name-defined]
        answer.model_rebuild()
        _KEPT.append(answer)

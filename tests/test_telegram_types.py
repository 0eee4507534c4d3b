"""aiogram loaded with its types deferred (bot/_telegram_types.py) behaves like aiogram loaded
the usual way: same parsed updates, same serialised requests, every type and method buildable.
`TELEGRAM_TYPES_DEFERRED=false` (environment or `.env`) gives the usual way back.

Each side runs in a fresh interpreter, since an import can only happen once per process, in an
empty working directory with the switch set only as each test says (CI runs the whole suite
once more with it off in the environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SWITCH = "TELEGRAM_TYPES_DEFERRED"

UPDATES: list[dict[str, Any]] = [
    {
        "update_id": 1,
        "message": {
            "message_id": 10,
            "date": 1700000000,
            "chat": {"id": 5001, "type": "private", "first_name": "Ann"},
            "from": {"id": 5001, "is_bot": False, "first_name": "Ann", "language_code": "ru"},
            "text": "/start hello",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    },
    {
        "update_id": 2,
        "callback_query": {
            "id": "77",
            "from": {"id": 5001, "is_bot": False, "first_name": "Ann"},
            "chat_instance": "ci",
            "data": "relogin",
            "message": {"message_id": 11, "date": 0, "chat": {"id": 5001, "type": "private"}},
        },
    },
    {
        "update_id": 3,
        "callback_query": {
            "id": "78",
            "from": {"id": 5001, "is_bot": False, "first_name": "Ann"},
            "chat_instance": "ci",
            "data": "lang:en",
            "message": {
                "message_id": 12,
                "date": 1700000001,
                "chat": {"id": 5001, "type": "private"},
                "text": "Choose",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "English", "callback_data": "lang:en"}]]
                },
            },
        },
    },
    {
        "update_id": 4,
        "my_chat_member": {
            "chat": {"id": 5001, "type": "private"},
            "from": {"id": 5001, "is_bot": False, "first_name": "Ann"},
            "date": 1700000002,
            "old_chat_member": {
                "status": "member",
                "user": {"id": 1, "is_bot": True, "first_name": "B"},
            },
            "new_chat_member": {
                "status": "kicked",
                "user": {"id": 1, "is_bot": True, "first_name": "B"},
                "until_date": 0,
            },
        },
    },
    {
        "update_id": 5,
        "message": {
            "message_id": 13,
            "date": 1700000003,
            "chat": {"id": -100, "type": "supergroup", "title": "G"},
            "from": {"id": 5002, "is_bot": False, "first_name": "Bo"},
            "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
            "caption": "pic",
            "reply_to_message": {
                "message_id": 9,
                "date": 1700000000,
                "chat": {"id": -100, "type": "supergroup", "title": "G"},
                "sticker": {
                    "file_id": "s",
                    "file_unique_id": "su",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            },
        },
    },
]

# Parse every update, build the requests this bot sends, then build every type and method
# with no names other than those their own modules hold (depth 0: nothing from the caller).
PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] != "eager":
        import bot  # noqa: F401  (installs the deferral, when switched on, before aiogram)
    import aiogram
    from aiogram import methods, types
    from pydantic import BaseModel

    out = {"complete_after_import": types.Message.__pydantic_complete__}
    out["updates"] = [
        types.Update.model_validate(u).model_dump(mode="json", exclude_none=True)
        for u in json.loads(sys.stdin.read())
    ]
    keyboard = types.InlineKeyboardMarkup(
        inline_keyboard=[[types.InlineKeyboardButton(text="Log in", callback_data="relogin")]]
    )
    requests = [
        methods.SendMessage(chat_id=5001, text="hi", reply_markup=keyboard),
        methods.SetMyCommands(
            commands=[types.BotCommand(command="status", description="Status")],
            scope=types.BotCommandScopeChat(chat_id=4242),
            language_code="ru",
        ),
        methods.SendPhoto(chat_id=5001, photo="file-id", caption="captcha"),
        methods.EditMessageText(chat_id=5001, message_id=3, text="done"),
        methods.AnswerCallbackQuery(callback_query_id="77"),
        methods.DeleteMessage(chat_id=5001, message_id=4),
    ]
    # Defaults (parse_mode and the like) are filled in by the session later: compared by repr.
    out["requests"] = [
        json.loads(json.dumps(r.model_dump(exclude_none=True), default=repr)) for r in requests
    ]
    unbuilt = []
    for module in (types, methods):
        for name in module.__all__:
            cls = getattr(module, name)
            model = isinstance(cls, type) and issubclass(cls, BaseModel)
            if model and not cls.__pydantic_complete__:
                try:
                    cls.model_rebuild(raise_errors=True, _parent_namespace_depth=0)
                except Exception as exc:
                    unbuilt.append(f"{name}: {exc}")
    out["unbuilt"] = unbuilt
    print(json.dumps(out))
    """
)


def run_python(code: str, *args: str, cwd: Path, switch: str | None = None, stdin: str = "") -> str:
    """Run `code` in a fresh interpreter in `cwd`, with `TELEGRAM_TYPES_DEFERRED` set to
    `switch` in its environment (absent when None); returns what it printed."""
    env = {k: v for k, v in os.environ.items() if k.upper() != SWITCH}
    if switch is not None:
        env[SWITCH] = switch
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def probe(mode: str, cwd: Path, switch: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        run_python(PROBE, mode, cwd=cwd, switch=switch, stdin=json.dumps(UPDATES))
    )
    return result


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return probe("eager", tmp_path_factory.mktemp("eager"))


@pytest.fixture(scope="module")
def deferred(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return probe("bot", tmp_path_factory.mktemp("deferred"))


@pytest.fixture(scope="module")
def switched_off(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return probe("bot", tmp_path_factory.mktemp("switched_off"), switch="false")


def test_importing_the_bot_leaves_aiogram_types_unbuilt(
    eager: dict[str, Any], deferred: dict[str, Any]
) -> None:
    assert eager["complete_after_import"] is True
    assert deferred["complete_after_import"] is False


def test_deferred_types_parse_updates_like_aiogram(
    eager: dict[str, Any], deferred: dict[str, Any]
) -> None:
    assert len(deferred["updates"]) == len(UPDATES)
    assert deferred["updates"] == eager["updates"]
    assert deferred["updates"][2]["callback_query"]["message"]["reply_markup"]["inline_keyboard"]


def test_deferred_types_serialise_requests_like_aiogram(
    eager: dict[str, Any], deferred: dict[str, Any]
) -> None:
    assert deferred["requests"] == eager["requests"]
    assert (
        deferred["requests"][0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        == "relogin"
    )


def test_every_aiogram_type_and_method_builds_from_the_deferred_state(
    deferred: dict[str, Any],
) -> None:
    assert deferred["unbuilt"] == []


def test_switched_off_the_bot_imports_aiogram_the_usual_way(
    eager: dict[str, Any], switched_off: dict[str, Any]
) -> None:
    assert switched_off["complete_after_import"] is True
    assert switched_off["updates"] == eager["updates"]
    assert switched_off["requests"] == eager["requests"]
    assert switched_off["unbuilt"] == []


# Whether importing the bot put the deferral in place (without paying for aiogram's import).
IMPORT_STATE = textwrap.dedent(
    """
    import sys
    import bot
    from bot._telegram_types import _AiogramFinder
    hooked = any(isinstance(f, _AiogramFinder) for f in sys.meta_path)
    print("deferred" if hooked else "built")
    """
)


@pytest.mark.parametrize(
    ("dotenv", "switch", "expected"),
    [
        ("TELEGRAM_TYPES_DEFERRED=off\n", None, "built"),  # `.env` is read, like every setting
        ("telegram_types_deferred=0\n", None, "built"),  # names case-insensitive, as Settings
        ("TELEGRAM_TYPES_DEFERRED=off\n", "true", "deferred"),  # the environment wins
        ("TELEGRAM_TYPES_DEFERRED=\n", None, "deferred"),  # empty = the default
        ("TELEGRAM_TYPES_DEFERRED=maybe\n", None, "deferred"),  # bad: default, no crash here
    ],
)
def test_the_switch_is_read_before_aiogram_from_the_environment_and_dotenv(
    tmp_path: Path, dotenv: str, switch: str | None, expected: str
) -> None:
    (tmp_path / ".env").write_text(dotenv)
    assert run_python(IMPORT_STATE, cwd=tmp_path, switch=switch).strip() == expected


def test_a_bad_switch_value_is_named_in_one_line_when_the_bot_starts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() != SWITCH}
    env.update({SWITCH: "maybe", "BOT_TOKEN": "123456:" + "A" * 35, "DATA_DIR": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f'{SWITCH} must be true or false (it is "maybe")']


def test_deferral_is_a_no_op_once_aiogram_is_imported() -> None:
    import aiogram  # noqa: F401

    from bot._telegram_types import _AiogramFinder, defer_aiogram_types

    defer_aiogram_types()
    assert not any(isinstance(f, _AiogramFinder) for f in sys.meta_path)


def test_types_in_use_are_built_before_the_first_update(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json
        from bot._telegram_types import build_types_in_use
        from aiogram import methods, types
        before = types.Update.__pydantic_complete__
        build_types_in_use()
        print(json.dumps([before, types.Update.__pydantic_complete__,
                          methods.SendMessage.__pydantic_complete__,
                          types.Message.__pydantic_complete__]))
        """
    )
    before, update, send_message, message = json.loads(run_python(code, cwd=tmp_path))
    assert before is False and update is True and send_message is True
    assert message is False  # what is not needed up front still waits for its first use


def test_answer_types_built_up_front_outlive_a_garbage_collection(tmp_path: Path) -> None:
    # pydantic holds `Response[X]` weakly: dropped, it is rebuilt inside an update.
    code = textwrap.dedent(
        """
        import gc, json, weakref
        from bot._telegram_types import build_types_in_use
        from aiogram import methods
        from aiogram.methods.base import Response
        build_types_in_use()
        answer = weakref.ref(Response[methods.SendMessage.__returning__])
        gc.collect()
        print(json.dumps(answer() is not None))
        """
    )
    assert json.loads(run_python(code, cwd=tmp_path)) is True

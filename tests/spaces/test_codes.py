"""The code catalogue holds every code of the published doc and of the site's own client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.spaces import codes

# Counted by hand: the doc's "Response Codes" tables plus the site's `Codes` object.
EXPECTED_PER_SECTION = {
    "common": 38,
    "auth": 9,
    "mail": 15,
    "reg": 8,
    "friends": 13,
    "chat": 14,
    "forum": 5,
    "trash": 2,
    "voting": 2,
    "files": 18,
    "search": 1,
    "lenta": 3,
    "gifts": 1,
    "services": 9,
    "complaints": 6,
    "blacklist": 3,
    "polls": 11,
    "attaches": 7,
    "comm": 2,
    "comments": 3,
    "journal": 1,
}

# The codes the site's own client knows beyond the published doc.
SITE_ONLY = {
    "00036",
    "00037",
    "01009",
    "02015",
    "03005",
    "03006",
    "03007",
    "03008",
    "04011",
    "04012",
    "04013",
    "05014",
    "06005",
    "08002",
    "09007",
    "09014",
    "09018",
    "13009",
    "20001",
}

SPOT_CHECKS = [
    ("00000", "SUCCESS", "common"),
    ("00001", "ERR_NEED_CAPTCHA", "common"),
    ("00030", "ERR_SPAM_CONTROL", "common"),
    ("00035", "ERR_YOU_ARE_BANNED", "common"),
    ("01001", "ERR_AUTH_REQUIRED", "auth"),
    ("01008", "ERR_ACTIVATION_REQUIRED", "auth"),
    ("02003", "ERR_SPAM_CONTROL", "mail"),
    ("02014", "ERR_TALK_NOT_FOUND", "mail"),
    ("03004", "ERR_IP_LIMIT_EXCEEDED", "reg"),
    ("04010", "ERR_INVITE_EXISTS", "friends"),
    ("05006", "ERR_FORBIDDEN", "chat"),
    ("05013", "ERR_USER_ISNT_FRIEND", "chat"),
    ("06004", "ERR_FORUM_IN_GARBAGE", "forum"),
    ("07002", "ERR_OBJ_RESTORED", "trash"),
    ("08001", "ERR_VOTE_NOT_FOUND", "voting"),
    ("09001", "ERR_DIR_ACCESS_DENIED", "files"),
    ("09006", "ERR_UPLOAD_ERROR", "files"),
    ("09008", "ERR_WRONG_TYPE", "files"),
    ("09013", "ERR_CANT_LOAD_PIC", "files"),
    ("09015", "ERR_COLLECTION_NOT_FOUND", "files"),
    ("09017", "ERR_YOUR_COLLECTION", "files"),
    ("10001", "ERR_BAD_QUERY", "search"),
    ("11003", "ERR_SUBSCR_ALREADY_EXISTS", "lenta"),
    ("12001", "ERR_GIFT_NOT_FOUND", "gifts"),
    ("13008", "ERR_GHOST_UNCHANGED", "services"),
    ("14001", "ERR_WRONG_TYPE", "complaints"),
    ("14006", "ERR_CNT_EXCEED", "complaints"),
    ("15003", "ERR_SPAM_CONTROL", "blacklist"),
    ("16010", "ALREADY_VOTED", "polls"),
    ("16011", "ERR_VOTING", "polls"),
    ("17007", "ERR_CHECK_ATTACH", "attaches"),
    ("18002", "ERR_ACCESS_DENIED", "comm"),
    ("19003", "ERR_EDIT_TIME", "comments"),
]


def test_count_per_section() -> None:
    counted: dict[str, int] = {}
    for info in codes.CODES.values():
        counted[info.section] = counted.get(info.section, 0) + 1
    assert counted == EXPECTED_PER_SECTION
    assert len(codes.CODES) == sum(EXPECTED_PER_SECTION.values()) == 152 + len(SITE_ONLY)
    assert codes.SECTIONS == tuple(EXPECTED_PER_SECTION)


@pytest.mark.parametrize(("code", "name", "section"), SPOT_CHECKS)
def test_spot_values(code: str, name: str, section: str) -> None:
    assert codes.describe(code) == codes.CodeInfo(code=code, name=name, section=section)


def test_keys_are_five_digit_strings_matching_entries() -> None:
    for key, info in codes.CODES.items():
        assert re.fullmatch(r"\d{5}", key)
        assert info.code == key


def test_codes_beyond_the_doc_are_known() -> None:
    assert len(SITE_ONLY) == 19
    assert codes.describe("09007") == codes.CodeInfo("09007", "ERR_FILE_IS_BLOCKED", "files")
    assert codes.describe("20001") == codes.CodeInfo("20001", "ERR_RECORD_NOT_FOUND", "journal")
    assert SITE_ONLY <= set(codes.CODES)


def test_named_constants() -> None:
    assert codes.SUCCESS == "00000"
    assert codes.SESSION_GONE_CODES == frozenset({"01001", "01004", "01005"})
    named = {
        codes.NEED_CAPTCHA: "ERR_NEED_CAPTCHA",
        codes.USER_NOT_FOUND: "ERR_USER_NOT_FOUND",
        codes.WRONG_CAPTCHA: "ERR_WRONG_CAPTCHA_CODE",
        codes.OFTEN_OPERATION: "ERR_OFTEN_OPERATION",
        codes.AUTH_REQUIRED: "ERR_AUTH_REQUIRED",
        codes.EMPTY_LOGIN_OR_PASSWORD: "ERR_EMPTY_LOGIN_OR_PASSWORD",
        codes.WRONG_LOGIN_OR_PASSWORD: "ERR_WRONG_LOGIN_OR_PASSWORD",
        codes.SESSION_NOT_FOUND: "ERR_SESSION_NOT_FOUND",
        codes.USER_MODEL_NOT_CONSTRUCTED: "ERR_USER_MODEL_NOT_CONSTRUCTED",
        codes.ALREADY_LOGGED_IN: "ERR_ALREADY_LOGGED_IN",
    }
    for code, name in named.items():
        info = codes.describe(code)
        assert info is not None and info.name == name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0, "00000"), (1001, "01001"), ("1001", "01001"), ("00007", "00007"), (" 7 ", "00007")],
)
def test_normalize_code_accepts_ints_and_short_strings(raw: object, expected: str) -> None:
    assert codes.normalize_code(raw) == expected


@pytest.mark.parametrize("raw", [None, True, -1, 123456, "abc", "", "1e3", 1.0, "١٢"])
def test_normalize_code_rejects_non_codes(raw: object) -> None:
    assert codes.normalize_code(raw) is None


def test_catalogue_matches_the_doc_when_it_is_beside_the_clone() -> None:
    """A cross-check only: CI may not have ../shared, the counts above do not need it."""
    doc = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "spaces-neoapi.md"
    if not doc.is_file():
        pytest.skip("the API doc is not beside the clone")
    found = dict(
        (code, name)
        for name, code in re.findall(r"`([A-Z_]+)`\s*[:|]\s*`(\d{5})`", doc.read_text("utf-8"))
    )
    doc_codes = {code: info.name for code, info in codes.CODES.items() if code not in SITE_ONLY}
    assert found == doc_codes

"""Every code of the doc's error table is known and has a sentence in both languages."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bot.locales import SUPPORTED, build_i18n, read_catalog
from bot.remote import RefusalReason, Sentence
from bot.sendspace import codes
from bot.sendspace.errors import UNAVAILABLE_REASONS, SendspaceAPIError, SendspaceUnavailable

PREFIX = "sendspace-"


def catalogue(locale: str) -> dict[str, str]:
    return {str(m.id): str(m.string) for m in read_catalog(locale) if m.id}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_table_is_the_docs() -> None:
    # Counted by hand from the doc's "Errors" table: 1 to 33, none missing.
    assert sorted(codes.CODES) == list(range(1, 34))
    assert codes.CODES[6] == "API_ERROR_SESSION_BAD"
    assert codes.CODES[7] == "API_ERROR_SESSION_NOT_AUTH"
    assert codes.CODES[8] == "API_ERROR_AUTHENTICATION_FAILURE"
    assert codes.CODES[33] == "API_ERROR_FOLDER_IS_PRIVATE"
    assert codes.SESSION_GONE_CODES == {6, 7}


def test_the_table_matches_the_doc_when_it_is_beside_the_clone() -> None:
    """A cross-check only: CI may not have ../shared, the test above does not need it."""
    doc = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "sendspace-api.txt"
    if not doc.is_file():
        pytest.skip("the API doc is not beside the clone")
    errors = doc.read_text("utf-8").rsplit("\nErrors\n", 1)[1]
    found = {int(n): name for n, name in re.findall(r"^(\d+) (API_ERROR_[A-Z_]+)", errors, re.M)}
    assert found == dict(codes.CODES)


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_code_has_a_plain_sentence(locale: str) -> None:
    texts = catalogue(locale)
    for code in codes.CODES:
        key = codes.sentence(code).key
        assert key == f"sendspace-code-{code}"
        text = texts[key]
        assert "API_ERROR" not in text and not re.search(r"[<>&]", text), key
        assert text[0].isupper() and text.endswith("."), key
        assert placeholders(text) == set(), key


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_sentence_the_adapter_can_pick_exists(locale: str) -> None:
    texts = catalogue(locale)
    picked = [SendspaceUnavailable(reason).text for reason in UNAVAILABLE_REASONS]
    picked += [SendspaceAPIError(code).text for code in (*codes.CODES, 0, 34, 999)]
    picked += [
        Sentence(f"sendspace-status-{kind}-{amount}")
        for kind in ("disk", "bandwidth")
        for amount in ("left", "unlimited")
    ]
    for sentence in picked:
        assert sentence.key in texts, sentence.key
        assert placeholders(texts[sentence.key]) <= set(sentence.params) | {"megabytes"}
    # Nothing else is under the prefix: no sentence without a way to be shown.
    assert {key for key in texts if key.startswith(PREFIX)} == {s.key for s in picked}


def test_an_unknown_code_is_told_with_its_number() -> None:
    i18n = build_i18n()
    for locale in SUPPORTED:
        sentence = codes.sentence(4242)
        assert sentence == Sentence("sendspace-code-unknown", {"code": 4242})
        assert "4242" in i18n.text(sentence.key, locale, **sentence.params)


def test_login_refusals() -> None:
    assert codes.login_refusal(8) is RefusalReason.BAD_CREDENTIALS
    assert codes.login_refusal(18) is RefusalReason.MISCONFIGURED
    assert codes.login_refusal(30) is RefusalReason.REFUSED
    assert codes.login_refusal(12345) is RefusalReason.REFUSED

"""Both languages speak every key, every Spaces code has a sentence, the code uses known keys."""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from bot.locales import SUPPORTED, build_i18n, read_catalog
from bot.spaces.codes import CODES, SUCCESS

BOT_DIR = Path(__file__).resolve().parents[2] / "bot"
CODE_PREFIX = "spaces-code-"
UNKNOWN_KEY = "spaces-code-unknown"

# i18n.text("key" ...) (or .plain / .ntext / .nplain), possibly across lines, and
# i18n.text("a" if cond else "b").
_LITERAL_KEY = re.compile(r'\.n?(?:text|plain)\(\s*"([a-z0-9_-]+)"')
_ELSE_KEY = re.compile(
    r'\.(?:text|plain)\(\s*"[a-z0-9_-]+"\s+if\s+[^()]*?\s+else\s+"([a-z0-9_-]+)"'
)
# How many plural forms each language's grammar has (gettext's nplurals).
PLURAL_FORMS = {"en": 2, "ru": 3}
# Ways to dodge a plural that read badly: "chat(s)", "чат(ов)", "сессия(и)".
_FAKE_PLURAL = re.compile(r"\w\((?:s|es|а|я|и|ы|ов|ев|ей)\)")  # noqa: RUF001
# f"prefix-{...}" keys, passed to i18n.text directly or through a variable
# (key = f"spaces-code-{code}"): only the prefix is known statically.
_FSTRING_PREFIX = re.compile(r'\bf"([a-z0-9_]+(?:-[a-z0-9_]+)*-)\{')


@cache
def forms(locale: str) -> dict[str, tuple[str, ...]]:
    """Every key with its texts: one, or one per plural form."""
    catalog: Catalog = read_catalog(locale)
    out: dict[str, tuple[str, ...]] = {}
    for m in catalog:
        if not m.id:
            continue
        key = m.id[0] if isinstance(m.id, tuple) else m.id
        out[str(key)] = tuple(m.string) if isinstance(m.string, tuple) else (str(m.string),)
    return out


@cache
def catalogue(locale: str) -> dict[str, str]:
    """Every key with its (first) text."""
    return {key: texts[0] for key, texts in forms(locale).items()}


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def code_keys(locale: str) -> set[str]:
    return {key for key in catalogue(locale) if key.startswith(CODE_PREFIX)}


def keys_used_in_source() -> tuple[set[str], set[str]]:
    literals: set[str] = set()
    prefixes: set[str] = set()
    for path in sorted(BOT_DIR.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        literals.update(_LITERAL_KEY.findall(source))
        literals.update(_ELSE_KEY.findall(source))
        prefixes.update(_FSTRING_PREFIX.findall(source))
    return literals, prefixes


def test_there_are_two_languages() -> None:
    assert set(SUPPORTED) == {"en", "ru"}


def test_both_languages_have_the_same_keys() -> None:
    first, *others = SUPPORTED
    for other in others:
        missing_in_other = set(catalogue(first)) - set(catalogue(other))
        missing_in_first = set(catalogue(other)) - set(catalogue(first))
        assert not missing_in_other, f"missing in {other}: {sorted(missing_in_other)}"
        assert not missing_in_first, f"missing in {first}: {sorted(missing_in_first)}"


def test_placeholders_match_across_languages() -> None:
    first, *others = SUPPORTED
    mismatched = [
        (key, other)
        for other in others
        for key, texts in forms(first).items()
        for text in (*texts, *forms(other).get(key, ("",)))
        if placeholders(text) != placeholders(texts[0])
    ]
    assert not mismatched


@pytest.mark.parametrize("locale", SUPPORTED)
def test_plural_keys_have_every_form_of_the_language(locale: str) -> None:
    plural = {key: texts for key, texts in forms(locale).items() if len(texts) > 1}
    assert len(plural) >= 2  # button-broadcast-send, admin-banned: the check must bite
    for key, texts in plural.items():
        assert len(texts) == PLURAL_FORMS[locale], key
        assert all(t.strip() for t in texts), key
        assert len(set(texts)) == len(texts), f"{key}: forms that do not differ"
    others = [other for other in SUPPORTED if other != locale]
    for other in others:
        other_plural = {key for key, texts in forms(other).items() if len(texts) > 1}
        assert set(plural) == other_plural


@pytest.mark.parametrize("locale", SUPPORTED)
def test_no_text_dodges_a_plural(locale: str) -> None:
    dodged = [key for key, texts in forms(locale).items() for t in texts if _FAKE_PLURAL.search(t)]
    assert not dodged


@pytest.mark.parametrize(
    ("locale", "n", "word"),
    [
        ("ru", 1, "чат"),
        ("ru", 4, "чата"),
        ("ru", 5, "чатов"),
        ("ru", 21, "чат"),
        ("en", 1, "chat"),
        ("en", 4, "chats"),
    ],
)
def test_plural_form_follows_the_number(locale: str, n: int, word: str) -> None:
    text = build_i18n().nplain("button-broadcast-send", n, locale, count=n)
    assert text.endswith(f" {n} {word}")


@pytest.mark.parametrize("locale", SUPPORTED)
def test_no_translation_is_empty_or_the_key(locale: str) -> None:
    bad = [key for key, text in catalogue(locale).items() if not text.strip() or text == key]
    assert not bad


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_documented_code_has_a_sentence(locale: str) -> None:
    expected = {CODE_PREFIX + code for code in CODES if code != SUCCESS}
    assert len(expected) == len(CODES) - 1
    assert expected - code_keys(locale) == set()


@pytest.mark.parametrize("locale", SUPPORTED)
def test_no_sentence_for_an_undocumented_code(locale: str) -> None:
    documented = {CODE_PREFIX + code for code in CODES if code != SUCCESS} | {UNKNOWN_KEY}
    assert code_keys(locale) - documented == set()


@pytest.mark.parametrize("locale", SUPPORTED)
def test_code_sentences_are_plain_sentences(locale: str) -> None:
    for key in sorted(code_keys(locale)):
        text = catalogue(locale)[key]
        assert not re.search(r"\d{5}", text) or key == UNKNOWN_KEY, key
        assert "ERR_" not in text, key
        assert not re.search(r"[<>&]", text), f"{key}: HTML parse mode"
        assert text[0].isupper() and text.endswith("."), key
        if key != UNKNOWN_KEY:
            assert placeholders(text) == set(), key
            assert not re.search(r"\d{5}", text), key


def test_unknown_code_names_the_code_and_points_to_support() -> None:
    for locale in SUPPORTED:
        assert placeholders(catalogue(locale)[UNKNOWN_KEY]) == {"code"}
    assert "support" in catalogue("en")[UNKNOWN_KEY]
    assert "поддержк" in catalogue("ru")[UNKNOWN_KEY]


def test_unknown_code_sentence_names_the_code() -> None:
    text = build_i18n().text(UNKNOWN_KEY, "ru", code="12345")
    assert "12345" in text
    assert "{" not in text


def test_every_key_used_in_the_code_exists() -> None:
    literals, prefixes = keys_used_in_source()
    # The scan must find something, or this test proves nothing.
    assert len(literals) >= 20
    assert {CODE_PREFIX, "spaces-unavailable-", "command-"} <= prefixes
    for locale in SUPPORTED:
        keys = catalogue(locale)
        assert literals - set(keys) == set(), locale
        for prefix in prefixes:
            assert any(key.startswith(prefix) for key in keys), (locale, prefix)


@pytest.mark.parametrize("locale", SUPPORTED)
def test_catalogue_formats_with_its_placeholders(locale: str) -> None:
    i18n = build_i18n()
    for key, texts in forms(locale).items():
        params = {name: "v" for name in placeholders(texts[0])}
        if len(texts) == 1:
            assert i18n.text(key, locale, **params), key
        for n in range(len(texts) * 10):
            assert i18n.ntext(key, n, locale, **params), key

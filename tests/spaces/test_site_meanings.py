"""Every code's sentence says what the site itself says the code means (site_meanings.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from bot.locales import SUPPORTED, build_i18n
from bot.spaces import codes

TABLE = Path(__file__).with_name("site_meanings.toml")
ORIGINS = {"text", "server", "name"}


@dataclass(frozen=True)
class Meaning:
    code: str
    section: str
    name: str
    origin: str
    meaning: str
    must: dict[str, tuple[str, ...]]
    must_not: dict[str, tuple[str, ...]]


@cache
def meanings() -> dict[str, Meaning]:
    raw = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    table: dict[str, Meaning] = {}
    for section, rows in raw.items():
        for code, row in rows.items():
            assert code not in table, f"{code} is listed twice"
            table[code] = Meaning(
                code=code,
                section=section,
                name=row["name"],
                origin=row["from"],
                meaning=row["meaning"],
                must={lang: tuple(row[lang]) for lang in SUPPORTED},
                must_not={lang: tuple(row.get(f"{lang}_not", ())) for lang in SUPPORTED},
            )
    return table


def disagreements(meaning: Meaning, locale: str, sentence: str) -> list[str]:
    """What in `sentence` does not follow the site's meaning (empty when it does)."""
    text = sentence.casefold()
    problems = [
        f"lacks {group!r}"
        for group in meaning.must[locale]
        if not any(stem.casefold() in text for stem in group.split("|"))
    ]
    problems += [f"says {word!r}" for word in meaning.must_not[locale] if word.casefold() in text]
    return problems


def test_the_table_is_well_formed() -> None:
    for meaning in meanings().values():
        assert meaning.origin in ORIGINS, meaning.code
        assert meaning.meaning.strip(), meaning.code
        for locale in SUPPORTED:
            assert meaning.must[locale], f"{meaning.code}: nothing to check in {locale}"
            assert all(stem.strip() for g in meaning.must[locale] for stem in g.split("|"))


def test_the_catalogue_holds_exactly_the_codes_the_site_knows() -> None:
    known = {code: (m.name, m.section) for code, m in meanings().items()}
    ours = {
        code: (info.name, info.section)
        for code, info in codes.CODES.items()
        if code != codes.SUCCESS
    }
    assert ours == known


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_sentence_follows_the_sites_meaning(locale: str) -> None:
    i18n = build_i18n()
    wrong = {
        code: problems
        for code, meaning in meanings().items()
        if (problems := disagreements(meaning, locale, i18n.text(f"spaces-code-{code}", locale)))
    }
    assert wrong == {}


# Sentences this bot used to send, each saying something the site does not mean: the check
# above must catch every one of them, or it checks nothing.
FORMER_WRONG_SENTENCES = [
    (
        "02013",
        "en",
        "You are writing to too many people too quickly, and Spaces has taken it for spam.",
    ),
    ("14004", "en", "You have already complained about this."),
    ("17005", "en", "This attachment belongs to someone else, so you cannot use it here."),
    ("04008", "en", "Spaces could not process this friend request. Please try again."),
    ("00013", "en", "Spaces wants you to confirm this action. Open the site, confirm it there."),
    ("05009", "en", "Spaces took this chat message for spam. Wait a while before writing again."),
    ("17007", "en", "Spaces did not accept the attachment. Check the file and try again."),
    ("00026", "ru", "Этот аккаунт на Spaces заморожен. Разморозить можно на сайте."),
    ("06004", "ru", "Этот форум находится в корзине, поэтому он недоступен."),
    ("08001", "ru", "Spaces не нашёл это голосование."),
]


@pytest.mark.parametrize(("code", "locale", "sentence"), FORMER_WRONG_SENTENCES)
def test_the_check_catches_a_sentence_that_says_something_else(
    code: str, locale: str, sentence: str
) -> None:
    assert disagreements(meanings()[code], locale, sentence)

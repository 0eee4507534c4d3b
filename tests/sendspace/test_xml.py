"""The XML reader refuses what an auth answer never needs: DTDs, entities, depth, bulk."""

from __future__ import annotations

import pytest

from bot.sendspace import _xml

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><result status="ok"><s>&b;</s></result>'
)


def test_an_answer_is_read() -> None:
    root = _xml.parse(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<result method="auth.login" status="ok">'
        b"<session_key>k&amp;1</session_key><email>a@b.c</email></result>"
    )
    assert (root.tag, root.attrs) == ("result", {"method": "auth.login", "status": "ok"})
    assert root.child_text("session_key") == "k&1"  # predefined entities are fine
    assert root.child_text("missing") is None


@pytest.mark.parametrize(
    "body",
    [
        LAUGHS,
        b'<!doctype result SYSTEM "http://example.com/x.dtd"><result/>',
        b'<?xml version="1.0"?>\n<!DOCTYPE result>\n<result status="ok"/>',
        b"<!ENTITY x 'y'>",
    ],
)
def test_declarations_are_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(_xml.HostileXML):
        _xml.parse(body)


def test_a_declaration_the_byte_scan_cannot_see_is_refused_by_the_parser() -> None:
    text = LAUGHS.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    body = text.encode("utf-16")
    assert b"<!DOCTYPE" not in body and b"<!ENTITY" not in body  # the premise of this test
    with pytest.raises(_xml.HostileXML):
        _xml.parse(body)


def test_nesting_and_bulk_are_capped() -> None:
    deep = b"<a>" * (_xml.MAX_DEPTH + 1) + b"</a>" * (_xml.MAX_DEPTH + 1)
    with pytest.raises(_xml.HostileXML):
        _xml.parse(deep)
    wide = b"<r>" + b"<x/>" * _xml.MAX_ELEMENTS + b"</r>"
    with pytest.raises(_xml.HostileXML):
        _xml.parse(wide)


@pytest.mark.parametrize("body", [b"", b"<result", b"<html><body>down</html>", b"\xff\xfe\x00"])
def test_broken_documents(body: bytes) -> None:
    with pytest.raises(_xml.BrokenXML):
        _xml.parse(body)

"""sendspace's XML answers, read with the standard library's expat and nothing it can expand.

An answer is a few elements; it never needs a DOCTYPE, so any document declaring one (or
an entity) is refused before parsing, and again by expat's handlers should the text be in
an encoding the byte scan cannot see (UTF-16). Depth and element count are capped as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from xml.parsers import expat

MAX_DEPTH: Final = 8
MAX_ELEMENTS: Final = 500
_DECLARATION: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class HostileXML(ValueError):
    """The document declares a DTD or an entity, or nests or grows beyond any answer."""


class BrokenXML(ValueError):
    """Not a well-formed XML document (an HTML page, a cut-off body)."""


@dataclass(slots=True)
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def child(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def child_text(self, tag: str) -> str | None:
        found = self.child(tag)
        return None if found is None else found.text.strip()


def parse(body: bytes) -> Element:
    """The root element; raises HostileXML or BrokenXML."""
    if _DECLARATION.search(body):
        raise HostileXML("a DTD or entity declaration")
    builder = _Builder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = builder.refuse
    parser.EntityDeclHandler = builder.refuse
    parser.UnparsedEntityDeclHandler = builder.refuse
    parser.ExternalEntityRefHandler = builder.refuse_entity
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise BrokenXML(expat.ErrorString(exc.code)) from None
    if builder.root is None:
        raise BrokenXML("no element")
    return builder.root


class _Builder:
    def __init__(self) -> None:
        self.root: Element | None = None
        self._open: list[Element] = []
        self._count = 0

    def refuse(self, *args: object) -> None:
        raise HostileXML("a DTD or entity declaration")

    def refuse_entity(self, *args: object) -> int:
        raise HostileXML("an external entity")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self._count += 1
        if self._count > MAX_ELEMENTS or len(self._open) >= MAX_DEPTH:
            raise HostileXML("more elements or nesting than any answer has")
        element = Element(tag, dict(attrs))
        if self._open:
            self._open[-1].children.append(element)
        else:
            self.root = element
        self._open.append(element)

    def end(self, tag: str) -> None:
        self._open.pop()

    def data(self, text: str) -> None:
        if self._open:
            self._open[-1].text += text

"""Reading uploaded bytes: UTF-8 text, JSON whose errors name the path, XML without DTDs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from bot.evidence.errors import EvidenceError, refused, shown


def text(data: bytes, name: str, fix: str) -> str:
    if not data.strip():
        raise refused(name, "the file is empty", fix)
    try:
        # utf-8-sig: some Windows tools start the file with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - data.rfind(b"\n", 0, error.start)
        raise refused(
            name,
            f"byte 0x{data[error.start]:02x} is not UTF-8",
            "save the file as UTF-8, or upload the file the tool wrote unchanged",
            f"line {line}, column {column}",
        ) from None


def load_json(content: str, name: str, fix: str) -> object:
    try:
        return json.loads(content)
    except json.JSONDecodeError as error:
        cut = error.pos >= len(content.rstrip()) or error.msg.startswith("Unterminated string")
        problem = "the JSON ends early (cut short?)" if cut else f"not valid JSON ({error.msg})"
        where = f"line {error.lineno}, column {error.colno}"
        raise refused(name, problem, fix, where) from None
    except RecursionError:
        raise refused(name, "the JSON is nested too deeply", fix) from None


@dataclass(frozen=True)
class XmlDoc:
    root: Element
    lines: dict[int, int]  # id(element) -> the line it starts on, for messages

    def line(self, element: Element) -> str:
        return f"line {self.lines.get(id(element), 0)}"


def load_xml(content: str, name: str, fix: str) -> XmlDoc:
    """Parse with expat directly so that a DOCTYPE (and with it any entity: billion laughs,
    external files) is refused before anything is expanded."""
    parser = expat.ParserCreate()
    builder = TreeBuilder()
    lines: dict[int, int] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    def end(tag: str) -> None:
        builder.end(tag)

    def refuse(*_: object) -> None:
        raise refused(
            name,
            "a DOCTYPE or ENTITY declaration is not accepted (it can expand without bound)",
            fix,
            f"line {parser.CurrentLineNumber}, column {parser.CurrentColumnNumber + 1}",
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(content, True)
    except expat.ExpatError as error:
        reason = expat.errors.messages[error.code]
        cut = error.code in _CUT_SHORT
        problem = "the XML ends early (cut short?)" if cut else f"not well-formed XML ({reason})"
        where = f"line {error.lineno}, column {error.offset + 1}"
        raise refused(name, problem, fix, where) from None
    return XmlDoc(builder.close(), lines)


# What expat says when the text stops inside a tag, a character or an open element.
_CUT_SHORT = {
    expat.errors.codes[message]
    for message in (
        expat.errors.XML_ERROR_NO_ELEMENTS,
        expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        expat.errors.XML_ERROR_PARTIAL_CHAR,
        expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    )
}


def local(tag: str) -> str:
    """A tag without its prefix (``ns:testsuite``): namespace processing is off."""
    return tag.rsplit(":", 1)[-1]


class Fields:
    """Typed access to a loaded JSON document; every failure names the JSON path."""

    def __init__(self, name: str, fix: str) -> None:
        self.name, self.fix = name, fix

    def fail(self, path: str, problem: str) -> EvidenceError:
        return refused(self.name, problem, self.fix, path or "the top level")

    def obj(self, value: object, path: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, found {_type(value)}")
        return value

    def arr(self, value: object, path: str) -> list[object]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, found {_type(value)}")
        return value

    def get(self, parent: dict[str, object], key: str, path: str) -> object:
        if key not in parent:
            raise self.fail(join(path, key), "missing")
        return parent[key]

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, found {_type(value)}")
        return value

    def number(self, value: object, path: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(path, f"expected a number, found {shown(value)}")
        return float(value)

    def count(self, value: object, path: str) -> int:
        number = self.number(value, path)
        if number < 0 or not number.is_integer():
            raise self.fail(path, f"expected a whole number, found {shown(value)}")
        return int(number)

    def items(self, parent: dict[str, object], key: str, path: str) -> list[tuple[str, object]]:
        """An optional list (absent or null: empty) with each item's path."""
        value = parent.get(key)
        if value is None:
            return []
        where = join(path, key)
        return [(f"{where}[{i}]", item) for i, item in enumerate(self.arr(value, where))]


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )

"""Structured text (JSON, NDJSON, YAML, XML) as readable text: each key path is a section.

A config or data file has no headings, but its keys are its structure: `region: quokka-west` found
under `servers > payments` means something, the same line alone does not. So every object (or
element) becomes one block of `key: value` lines whose heading path is the keys leading to it, and a
citation reads `file § servers > payments`. Arrays of records give one block per record, named by a
name-like field where the record has one (a person says "the payments server", not "item 3").
"""

from __future__ import annotations

import json
import logging
import xml.parsers.expat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder

from kb.errors import ParseError
from kb.ingest.base import paragraphs
from kb.ingest.decode import decode, read_text, xml_declared
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

LONG = 200  # characters: a scalar longer than this (or with a line break) is prose, kept as paragraphs
_NAME_KEYS = ("name", "title", "id", "key", "label", "slug")


def _label(record: dict[str, Any], index: int) -> str:
    for key in _NAME_KEYS:
        value = record.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:80]
    return f"[{index}]"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_long(text: str) -> bool:
    return len(text) > LONG or "\n" in text.strip()


def value_blocks(value: Any, path: tuple[str, ...] = ()) -> Iterator[Block]:
    """Blocks for a parsed JSON/YAML value: short scalars of one object share a block of
    `key: value` lines under the object's path; nested objects and long strings get their own."""
    if isinstance(value, dict):
        lines: list[str] = []
        nested: list[tuple[str, Any]] = []
        for key, item in value.items():
            key = str(key)
            if isinstance(item, (dict, list)) and item and not _flat_list(item):
                nested.append((key, item))
            elif isinstance(item, list):
                lines.append(f"{key}: {', '.join(_scalar(v) for v in item)}")
            elif _is_long(_scalar(item)):
                nested.append((key, item))
            else:
                lines.append(f"{key}: {_scalar(item)}")
        if lines:
            yield Block("\n".join(lines), path)
        for key, item in nested:
            yield from value_blocks(item, (*path, key))
    elif isinstance(value, list):
        if _flat_list(value):
            if value:
                yield Block(", ".join(_scalar(v) for v in value), path)
            return
        for i, item in enumerate(value):
            label = _label(item, i) if isinstance(item, dict) else f"[{i}]"
            yield from value_blocks(item, (*path, label))
    else:
        text = _scalar(value)
        if text.strip():
            yield from paragraphs(text, path) if _is_long(text) else [Block(text, path)]


def _flat_list(value: Any) -> bool:
    """A list of short scalars reads best on one line: `tags: a, b, c`."""
    return isinstance(value, list) and all(
        not isinstance(v, (dict, list)) and not _is_long(_scalar(v)) for v in value
    )


def _document(path: Path, blocks: list[Block], warnings: list[str] | None = None) -> ParsedDocument:
    if not blocks:
        raise ParseError("no values in file")
    metadata: dict[str, Any] = {"warnings": warnings} if warnings else {}
    return ParsedDocument(title=path.stem, blocks=blocks, metadata=metadata)


def _json_error(e: json.JSONDecodeError) -> ParseError:
    return ParseError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")


class JsonParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "json"
    extensions = (".json",)

    def parse(self, path: Path) -> ParsedDocument:
        text = read_text(path)
        if not text.strip():
            raise ParseError("empty file")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _json_error(e) from None
        except RecursionError:
            raise ParseError("invalid JSON: nested too deeply") from None
        return _document(path, list(value_blocks(data)))


class NdjsonParser:
    """One JSON record per line. A bad line loses that record only; the count is in a warning."""

    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "ndjson"
    extensions = (".ndjson", ".jsonl")

    def parse(self, path: Path) -> ParsedDocument:
        blocks: list[Block] = []
        bad: list[int] = []
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                bad.append(n)
                continue
            label = _label(record, n) if isinstance(record, dict) else f"[{n}]"
            blocks.extend(value_blocks(record, (f"line {n}" if label == f"[{n}]" else label,)))
        if not blocks:
            raise ParseError(f"no valid JSON lines ({len(bad)} bad)" if bad else "empty file")
        warnings = None
        if bad:
            warnings = [f"{len(bad)} bad JSON line(s) skipped (first at line {bad[0]})"]
            log.warning("kb: %s: %s", path, warnings[0])
        return _document(path, blocks, warnings)


class YamlParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "yaml"
    extensions = (".yaml", ".yml")

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import yaml

        text = read_text(path)
        if not text.strip():
            raise ParseError("empty file")
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            raise ParseError(f"invalid YAML: {_yaml_reason(e)}") from None
        except RecursionError:
            raise ParseError("invalid YAML: nested too deeply") from None
        blocks: list[Block] = []
        for i, doc in enumerate(docs, 1):  # `---` separated documents: each its own section
            blocks.extend(value_blocks(doc, (f"document {i}",) if len(docs) > 1 else ()))
        return _document(path, blocks)


def _yaml_reason(e: Exception) -> str:
    problem = getattr(e, "problem", None) or getattr(e, "context", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1} column {mark.column + 1}"
    return " ".join(str(e).split())


class XmlParser:
    """Element paths as sections; text and attributes kept as `name: value` lines."""

    version = 2  # text in any encoding: UTF-16/32, mismatched or unknown declarations (issue 33)
    file_type = "xml"
    extensions = (".xml",)

    def parse(self, path: Path) -> ParsedDocument:
        root = parse_xml(path.read_bytes())
        return _document(path, list(element_blocks(root, ())))


def _refuse_entities(*_: Any) -> None:
    # Entity declarations are how "billion laughs" and external-entity (file read) attacks start;
    # documents people keep do not need them, so any file declaring one is refused.
    raise ParseError("XML declares entities (refused: unsafe in untrusted files)")


def parse_xml(data: bytes) -> Element:
    """Parse with expat directly, refusing entity declarations (the stdlib's ElementTree parser
    expands them, and `defusedxml` is not a dependency). The bytes are decoded by kb.ingest.decode
    (BOM, UTF-16/32, the declared encoding, UTF-8, detection) and expat reads the text: files whose
    declaration does not match their bytes (a UTF-16 declaration kept in a file re-saved as UTF-8, and
    the reverse) or names an encoding expat lacks (UTF-32) are read as a person's editor shows them."""
    text = decode(data, xml_declared)
    if not text.strip():
        raise ParseError("empty file")
    builder = TreeBuilder()
    p = xml.parsers.expat.ParserCreate()
    p.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.EntityDeclHandler = _refuse_entities
    p.UnparsedEntityDeclHandler = _refuse_entities
    p.ExternalEntityRefHandler = lambda *_: False
    p.StartElementHandler = builder.start
    p.EndElementHandler = builder.end
    p.CharacterDataHandler = builder.data
    p.buffer_text = True
    try:
        p.Parse(text, True)  # a str is parsed as UTF-8 whatever its declaration says
        return builder.close()
    except xml.parsers.expat.ExpatError as e:
        raise ParseError(f"invalid XML: {xml.parsers.expat.ErrorString(e.code)} at line {e.lineno} "
                         f"column {e.offset + 1}") from None
    except AssertionError:  # TreeBuilder.close on a document that never closed its root
        raise ParseError("invalid XML: no element found") from None
    except RecursionError:
        raise ParseError("invalid XML: nested too deeply") from None


def _name(qualified: str) -> str:
    """`x:port` -> `port`: the prefix is an alias that means nothing to a reader."""
    return qualified.rsplit(":", 1)[-1] if not qualified.startswith("xmlns") else qualified


def _tag(el: Element) -> str:
    return _name(str(el.tag))


def _xml_label(el: Element) -> str:
    tag = _tag(el)
    for key in _NAME_KEYS:
        value = el.attrib.get(key, "").strip()
        if value:
            return f"{tag} {value[:80]}"
    return tag


def element_blocks(el: Element, parent: tuple[str, ...]) -> Iterator[Block]:
    """An element's attributes, text and leaf children as one block under its path; elements with
    children of their own (or long text) get their own path."""
    path = (*parent, _xml_label(el))
    lines = [f"{_name(k)}: {v}" for k, v in el.attrib.items() if not _name(k).startswith("xmlns")]
    prose: list[str] = []
    own = (el.text or "").strip()
    if own:
        (prose if _is_long(own) else lines).append(own)
    nested: list[Element] = []
    for child in el:
        text = (child.text or "").strip()
        if len(child) or _is_long(text) or (child.attrib and text):
            nested.append(child)
        elif child.attrib:
            lines.extend(f"{_tag(child)}.{_name(k)}: {v}" for k, v in child.attrib.items()
                         if not _name(k).startswith("xmlns"))
        elif text:
            lines.append(f"{_tag(child)}: {text}")
        tail = (child.tail or "").strip()
        if tail:
            (prose if _is_long(tail) else lines).append(tail)
    if lines:
        yield Block("\n".join(lines), path)
    for text in prose:
        yield from paragraphs(text, path)
    for child in nested:
        yield from element_blocks(child, path)

"""Structured text (JSON, NDJSON, YAML, XML): ingested as key-path sections a citation names, and a
corrupt file of each is a one-line reason while the rest of the folder is ingested (fast layer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from tests.helpers import FAKE

CONFIG = {
    "service": "gateway",
    "servers": {
        "payments": {"region": "quokka-west", "port": 8443, "tags": ["pci", "primary"]},
        "search": {"region": "emu-east"},
    },
    "owners": [{"name": "wombat-team", "pager": "pager-7781"}, {"pager": "pager-0042"}],
}
YAML = """\
pipelines:
  nightly:
    schedule: "0 3 * * *"
    target: platypus-warehouse
  hourly:
    target: numbat-cache
"""
NDJSON = (
    '{"name": "ticket-1", "status": "closed", "summary": "kookaburra login loop fixed"}\n'
    "{this line is broken\n"
    '{"status": "open", "summary": "echidna export times out"}\n'
)
XML = """<?xml version="1.0"?>
<inventory xmlns:hw="urn:hw">
  <rack name="r12">
    <host name="db-1"><role>bandicoot-primary</role><hw:disk size="2TB"/></host>
  </rack>
</inventory>
"""
CORRUPT = {
    "broken.json": ('{"servers": {"payments": ', "invalid JSON"),
    "broken.jsonl": ("{nope\n[also bad\n", "no valid JSON lines (2 bad)"),
    "broken.yaml": ("servers: [payments, search\nregion: x\n", "invalid YAML"),
    "broken.xml": ("<inventory><rack>", "invalid XML"),
    "bomb.xml": ('<!DOCTYPE l [<!ENTITY a "aaaaaaaa">]><l>&a;&a;</l>', "XML declares entities"),
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2))
    (folder / "pipelines.yml").write_text(YAML)
    (folder / "tickets.jsonl").write_text(NDJSON)
    (folder / "inventory.xml").write_text(XML)
    for name, (text, _) in CORRUPT.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def kb(tmp_path: Path, docs: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
        yield k


def test_each_format_ingests_and_a_search_cites_the_key_path(kb: KnowledgeBase, docs: Path) -> None:
    report = kb.ingest([str(docs)])
    assert sorted(Path(s).name for s in report.added) == [
        "config.json", "inventory.xml", "pipelines.yml", "tickets.jsonl"]
    assert report.types == {"json": 1, "yaml": 1, "ndjson": 1, "xml": 1}
    cases = {
        "quokka-west": "config.json § servers > payments",
        "pager-7781": "config.json § owners > wombat-team",
        "pager-0042": "config.json § owners > [1]",
        "platypus-warehouse": "pipelines.yml § pipelines > nightly",
        "kookaburra": "tickets.jsonl § ticket-1",
        "echidna": "tickets.jsonl § line 3",
        "bandicoot-primary": "inventory.xml § inventory > rack r12 > host db-1",
    }
    for term, citation in cases.items():
        hit = kb.search(term, k=1, mode="keyword")[0]
        assert hit.citation.endswith(citation), (term, hit.citation)
        assert term in hit.text
    hit = kb.search("quokka-west", k=1, mode="keyword")[0]
    assert "region: quokka-west" in hit.text and "port: 8443" in hit.text and "tags: pci, primary" in hit.text


def test_each_corrupt_file_is_a_one_line_reason_and_the_rest_goes_on(kb: KnowledgeBase, docs: Path) -> None:
    report = kb.ingest([str(docs)])
    assert len(report.added) == 4
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert sorted(failed) == sorted(CORRUPT)
    for name, (_, reason) in CORRUPT.items():
        assert reason in failed[name] and "\n" not in failed[name] and "Traceback" not in failed[name], failed[name]
    assert "line 1 column" in failed["broken.json"]


def test_ndjson_keeps_good_lines_and_warns_of_the_bad(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    path.write_text(NDJSON)
    doc = parser_for(path).parse(path)
    assert [b.headings for b in doc.blocks] == [("ticket-1",), ("line 3",)]
    assert doc.metadata["warnings"] == ["1 bad JSON line(s) skipped (first at line 2)"]


def test_long_strings_stay_prose_and_yaml_documents_are_sections(tmp_path: Path) -> None:
    story = " ".join(["The marsupial migration report explains the route."] * 8)
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"incident": {"id": 7, "story": story}}))
    blocks = parser_for(path).parse(path).blocks
    assert (blocks[0].headings, blocks[0].text) == (("incident",), "id: 7")
    assert blocks[1].headings == ("incident", "story") and blocks[1].text == story
    multi = tmp_path / "multi.yaml"
    multi.write_text("a: 1\n---\nb: 2\n")
    assert [(b.headings, b.text) for b in parser_for(multi).parse(multi).blocks] == [
        (("document 1",), "a: 1"), (("document 2",), "b: 2")]


def test_html_keeps_its_parser_and_an_empty_json_is_refused(tmp_path: Path) -> None:
    assert parser_for(tmp_path / "page.html").file_type == "html"
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(ParseError, match="empty file"):
        parser_for(empty).parse(empty)

"""benchmarks/mixed.py: the office files it generates are readable by kb's parsers and hold the gold
answers, and the mixed question sets parse with both halves present."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from benchmarks.mixed import SHARED, build, main, split_of
from kb.ingest.base import parser_for
from kb.query.evaluate import source_matches
from tests.conftest import EVAL

REPO = Path(__file__).resolve().parents[1]
SETS = {name: REPO / "benchmarks" / f"mixed_{name}.jsonl" for name in ("answerable", "unanswerable")}


def _text(path: Path) -> str:
    return "\n".join(b.text for b in parser_for(path).parse(path).blocks)


def _load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in SETS[name].read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, str]:
    folder = tmp_path_factory.mktemp("mixed")
    return {p: _text(p) for p in build(folder, own_only=True)}


def test_own_files_span_the_formats_and_every_one_parses(own: dict[Path, str]) -> None:
    assert 20 <= len(own) <= 40
    assert {p.suffix for p in own} >= {".md", ".txt", ".docx", ".pptx", ".xlsx", ".csv", ".eml", ".html", ".pdf"}
    empty = [p.name for p, text in own.items() if len(text.split()) < 10]
    assert not empty, f"parsed to (almost) nothing: {empty}"


def test_a_rebuild_writes_the_same_bytes(own: dict[Path, str], tmp_path: Path) -> None:
    first = {str(p).rsplit("/own/", 1)[1]: p.read_bytes() for p in own}
    assert {str(p).rsplit("/own/", 1)[1]: p.read_bytes() for p in build(tmp_path, own_only=True)} == first


def test_the_launch_deck_names_a_later_date_in_passing_than_its_own(own: dict[Path, str]) -> None:
    deck = next(p for p in own if p.name == "beacon-launch-deck.pptx")
    first = [b.text for b in parser_for(deck).parse(deck).blocks if b.page == 1]
    assert any("30 June 2024" in t for t in first)
    assert datetime.fromtimestamp(deck.stat().st_mtime, timezone.utc).date().isoformat() == "2023-11-14"


def test_question_sets_have_the_keys_and_both_halves() -> None:
    for name, least in (("answerable", 80), ("unanswerable", 80)):
        rows = _load(name)
        assert len(rows) >= least, name
        for r in rows:
            assert isinstance(r["question"], str) and r["question"].strip()
            assert r["split"] in ("tune", "validate")
            if name == "unanswerable":
                assert r["unanswerable"] is True and "answer" not in r
                assert r["split"] == split_of(str(r["group"]))  # near-duplicates share a half
            else:
                assert isinstance(r["answer"], str) and r["answer"] and "unanswerable" not in r
                assert r["split"] == split_of(str(r["sources"][0]))  # a document's questions share a half
        assert {r["split"] for r in rows} == {"tune", "validate"}
    assert len({r["question"].lower() for r in _load("unanswerable")}) == len(_load("unanswerable"))


def test_own_questions_name_one_generated_file_holding_the_gold_figures(own: dict[Path, str]) -> None:
    rows = [r for r in _load("answerable") if r.get("set") == "own"]
    assert len(rows) >= 30
    for r in rows:
        glob = str(r["sources"][0])
        matches = [p for p in own if source_matches(glob, str(p))]
        assert len(matches) == 1, f"{glob} matches {matches}"
        text = own[matches[0]].replace(",", "")
        for number in re.findall(r"\d+(?:[.,]\d+)*", str(r["answer"])):
            assert number.replace(",", "") in text, f"{r['question']!r}: {number} not in {glob}"


def test_build_links_the_shared_sets(tmp_path: Path) -> None:
    if not EVAL.is_dir():
        pytest.skip("../shared/eval is not here")
    build(tmp_path)
    for name in SHARED:
        assert (tmp_path / name).is_symlink() and any((tmp_path / name).glob("*.pdf"))


def test_ingest_of_a_missing_folder_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(tmp_path / "nope"), "--kb", str(tmp_path / "kb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err


def test_renamed_gives_the_same_questions_under_names_that_say_nothing(tmp_path: Path) -> None:
    """benchmarks/renamed.py: every file under a meaningless name, each question's sources the new
    names its globs matched, its half the one its old first source gives."""
    from benchmarks.renamed import new_name, write

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("2023 Q1 ACME.pdf", "2023 Q2 ACME.pdf", "2023 Q1 BOLT.pdf"):
        (docs / name).write_bytes(name.encode())
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "Acme revenue?", "sources": ["*ACME*"]}) + "\n"
                         + json.dumps({"question": "Bolt Q1?", "sources": ["2023 Q1 BOLT.pdf"], "pages": [3]}) + "\n")
    assert write(docs, questions, tmp_path / "out") == (3, 2)
    linked = sorted(p.name for p in (tmp_path / "out" / "docs").iterdir())
    assert linked == sorted(new_name(n) for n in ("2023 Q1 ACME.pdf", "2023 Q2 ACME.pdf", "2023 Q1 BOLT.pdf"))
    assert all(re.fullmatch(r"doc-[0-9a-f]{8}\.pdf", n) for n in linked)
    rows = [json.loads(line) for line in (tmp_path / "out" / "questions.jsonl").read_text().splitlines()]
    assert sorted(rows[0]["sources"]) == sorted([new_name("2023 Q1 ACME.pdf"), new_name("2023 Q2 ACME.pdf")])
    assert rows[1]["sources"] == [new_name("2023 Q1 BOLT.pdf")] and rows[1]["pages"] == [3]
    assert [r["split"] for r in rows] == [split_of("*ACME*"), split_of("2023 Q1 BOLT.pdf")]
    assert (tmp_path / "out" / "docs" / new_name("2023 Q1 BOLT.pdf")).read_bytes() == b"2023 Q1 BOLT.pdf"

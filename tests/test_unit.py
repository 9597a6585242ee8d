"""The fast layer: the engine's logic with `FakeEmbedder` and `ScriptedLLM` (real subclasses of the
seams, tests/helpers.py) instead of the model, on small files made here. Runs in seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kb import KnowledgeBase
from kb.errors import ConfigError, EmbedderMismatchError, KBError
from kb.index import STORES, open_index
from kb.index.local import LocalIndex
from kb.index.team import TeamIndex
from kb.ingest.base import PARSERS, file_types
from kb.llm import LLMS
from tests.helpers import FAKE, FakeEmbedder, ScriptedLLM, write_markdown

NOTES = {
    "gateway.md": "# Gateway\n\nWhen the payment gateway returns error 5031, page the on-call engineer and fail over "
                  "to the secondary region named quokka-west.\n",
    "kennel.md": "# Kennel\n\nThe kennel feeds the greyhounds twice a day at nine, with fresh water at noon.\n",
    "garden.md": "# Garden\n\nWater the tomatoes every morning; prune the roses in March.\n",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    for name, text in NOTES.items():
        write_markdown(folder / name, text)
    return folder


@pytest.fixture
def kb(tmp_path: Path, docs: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
        report = k.ingest([str(docs)])
        assert sorted(Path(s).name for s in report.added) == sorted(NOTES) and not report.failed
        yield k


def names(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [Path(h.source).name for h in hits]


def test_ingest_search_and_incremental_changes(kb: KnowledgeBase, docs: Path) -> None:
    assert kb.embedder.backend == "fake" and kb.catalog.meta()["model"] == "fake-hash"
    assert names(kb.search("greyhounds kennel feeding", k=1)) == ["kennel.md"]
    assert names(kb.search("error 5031", k=1, mode="keyword")) == ["gateway.md"]
    again = kb.ingest([str(docs)])
    assert not (again.added or again.updated) and len(again.unchanged) == 3
    write_markdown(docs / "garden.md", "# Garden\n\nThe greenhouse heater runs below four degrees.\n")
    (docs / "kennel.md").unlink()
    changed = kb.ingest([str(docs)])
    assert names_of(changed.updated) == ["garden.md"] and names_of(changed.removed) == ["kennel.md"]
    assert names(kb.search("greenhouse heater", k=1)) == ["garden.md"]
    assert kb.status().documents == 2 and kb.store.count() == kb.catalog.totals()[1]


def names_of(sources: list[str]) -> list[str]:
    return sorted(Path(s).name for s in sources)


def test_check_deletes_orphan_vectors_and_reembeds_missing_ones(kb: KnowledgeBase) -> None:
    """The state a crash between the catalog commit and the vector save leaves: both repaired."""
    ids = sorted(kb.catalog.chunk_ids())
    kb.store.delete(np.asarray(ids[:1], dtype=np.int64))
    kb.store.add(np.asarray([10**9], dtype=np.int64), np.ones((1, FakeEmbedder.DIMENSIONS), dtype=np.float32))
    kb.store.save()
    found = kb.check(repair=False)
    assert (found.orphan_vectors, found.missing_vectors, found.ok) == (1, 1, False)
    fixed = kb.check()
    assert fixed.repaired and fixed.ok and sorted(kb.store.ids().tolist()) == ids
    assert kb.check(repair=False).orphan_vectors == 0


def test_reindex_switches_to_a_new_vectors_file(kb: KnowledgeBase) -> None:
    before = kb.catalog.meta().get("vectors", "vectors.faiss")
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"]  # the store and the model are in use
    n = kb.reindex("fake-hash-v2")
    meta = kb.catalog.meta()
    assert n == kb.catalog.totals()[1] and meta["model"] == "fake-hash-v2" and meta["vectors"] != before
    assert not (kb.path / before).exists() and meta["vectors"].endswith(".faiss")  # as older kb versions name it
    assert (kb.path / meta["vectors"]).is_file()
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"]
    assert kb.embedder.model_id == "fake-hash-v2"  # queries are embedded with the new model
    with KnowledgeBase.open(kb.path, workers=1, backend="fake") as reopened:  # the index's model is kept
        assert reopened.model_id == "fake-hash-v2" and names(reopened.search("roses", k=1)) == ["garden.md"]


def test_reindex_mends_an_unreadable_vectors_file(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = kb.path
    kb.close()
    (path / "vectors.faiss").write_bytes(b"not a faiss index")
    with KnowledgeBase.open(path, workers=1, **FAKE) as k:
        assert k.reindex() == k.catalog.totals()[1]
        assert names(k.search("greyhounds", k=1)) == ["kennel.md"]


def test_nothing_to_do_loads_no_model(kb: KnowledgeBase, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An up-to-date ingest and a check with nothing to repair never build the embedder."""
    from kb.embed import EMBEDDERS

    path = kb.path
    kb.close()
    monkeypatch.setitem(EMBEDDERS._entries, "fake", lambda *a, **k: pytest.fail("the model was loaded"))
    with KnowledgeBase.open(path, workers=1, **FAKE) as k:
        assert len(k.ingest([str(docs)]).unchanged) == 3
        assert k.check().ok and k.check(repair=False).ok


def test_a_long_lived_kb_ignores_vectors_of_another_model(kb: KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    """`kb reindex --model` in another process: a long-lived reader keeps its model and vectors, and says so."""
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"]
    with KnowledgeBase.open(kb.path, workers=1, **FAKE) as other:
        other.reindex("fake-hash-v2")
    assert not kb.reload_if_changed()
    assert "restart" in caplog.text and names(kb.search("greyhounds", k=1)) == ["kennel.md"]


def test_remove_forgets_the_document_and_its_vectors(kb: KnowledgeBase, docs: Path) -> None:
    chunks = kb.catalog.totals()[1]
    assert names_of(kb.remove([str(docs / "kennel.md")])) == ["kennel.md"]
    assert kb.catalog.totals()[1] < chunks and kb.store.count() == kb.catalog.totals()[1]
    assert "kennel.md" not in names(kb.search("greyhounds", k=3))


def test_one_kb_serves_threads_while_a_writer_ingests(kb: KnowledgeBase, docs: Path) -> None:
    errors: list[BaseException] = []
    results: list[list[str]] = []
    stop = time.monotonic() + 20

    def search() -> None:
        try:
            for _ in range(25):
                if time.monotonic() > stop:
                    break
                results.append(names(kb.search("greyhounds kennel", k=1)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    write_markdown(docs / "boats.md", "# Boats\n\nThe ferry to the island leaves at seven from pier four.\n")
    report = kb.ingest([str(docs)])  # the same object, from this thread, while the others search
    for t in threads:
        t.join(30)
    assert not errors and results and all(r == ["kennel.md"] for r in results)
    assert names_of(report.added) == ["boats.md"]
    assert names(kb.search("ferry to the island", k=1)) == ["boats.md"]
    assert kb.status().documents == 4


def test_a_waiting_writer_holds_new_readers_back() -> None:
    """The index's read/write lock: searches share it, and once a change waits for the searches in
    flight, a new search waits behind it, so a stream of searches cannot starve an ingest."""
    from kb.lock import RWLock

    lock, events = RWLock(), []
    inside, let_go = threading.Event(), threading.Event()

    def first() -> None:
        with lock.read():
            inside.set()
            let_go.wait(10)

    def write() -> None:
        with lock.write():
            events.append("write")

    def second() -> None:
        with lock.read():
            events.append("read")

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert inside.wait(10)
    for target in (write, second):
        threads.append(threading.Thread(target=target))
        threads[-1].start()
        time.sleep(0.2)
    assert events == []  # the writer waits for the first search; the second search waits behind the writer
    let_go.set()
    for t in threads:
        t.join(10)
    assert events == ["write", "read"]


def test_a_long_lived_kb_reloads_vectors_another_process_wrote(kb: KnowledgeBase, docs: Path) -> None:
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"]
    assert not kb.reload_if_changed()
    write_markdown(docs / "boats.md", "# Boats\n\nThe ferry to the island leaves at seven from pier four.\n")
    with KnowledgeBase.open(kb.path, workers=1, **FAKE) as other:  # as `kb ingest` in another process would
        other.ingest([str(docs)])
    assert kb.reload_if_changed()
    assert names(kb.search("ferry to the island", k=1)) == ["boats.md"]


def test_ask_with_a_scripted_model_cleans_and_checks_citations(kb: KnowledgeBase) -> None:
    llm = ScriptedLLM("Page the on-call engineer and fail over to quokka-west [1][7]. "
                      "The gateway handles 9,400 payments per second [1].")
    answer = kb.ask("What happens when the payment gateway returns error 5031?", k=2, llm=llm)
    assert answer.mode == "llm" and answer.removed_citations == [7]
    assert [c.sentence for c in answer.unsupported] == ["The gateway handles 9,400 payments per second [1]."]
    assert Path(answer.citations[0].source).name == "gateway.md"
    user = llm.prompts[0][1]["content"]  # type: ignore[index]
    assert '<source n="1"' in user and "quokka-west" in user


def test_ask_refits_when_the_server_window_is_smaller_than_it_said(kb: KnowledgeBase) -> None:
    llm = ScriptedLLM("Fail over to quokka-west [1].", window=4096, overflow_at=150)
    answer = kb.ask("What happens when the payment gateway returns error 5031?", k=3, llm=llm)
    assert len(llm.prompts) == 2 and llm.window == 150 and answer.found


def test_extractive_answer_without_a_model(kb: KnowledgeBase) -> None:
    answer = kb.ask("What happens when the payment gateway returns error 5031?", k=2, llm="none")
    assert answer.mode == "extractive" and "quokka-west" in answer.answer
    assert kb.ask("sourdough starter hydration ratio", k=2, llm="none").mode == "not_found"


def test_running_headers_and_footers_are_not_quoted() -> None:
    from kb.answer.extractive import _quotable

    assert not _quotable("Acme Corporation | Annual Report 2024 | 17")
    assert not _quotable("17 | Acme Corporation | quarterly report")
    assert _quotable("Europe warehouse shipments | 1200 | 1350")  # a table row, not a footer
    assert _quotable("Total revenue grew to 1,234 thousand dollars in the period.")


def test_a_passages_heading_is_not_the_answer_and_a_short_line_with_a_figure_is(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "kitchen"
    docs.mkdir()
    (docs / "soup.md").write_text("# Red lentil soup (office kitchen, Friday lunch)\n\nServes 6.\n\n## Ingredients\n"
                                  "- 250 g red lentils, rinsed\n- 2 cloves of garlic\n\n## Method\n"
                                  "1. Simmer for 25 minutes until the lentils fall apart.\n")
    (docs / "flapjacks.txt").write_text("Flapjacks for the charity bake sale\n\nMakes 12 squares.\n\n"
                                        "Bake at 180 C (160 C fan) for 20 minutes, until golden at the edges.\n")
    kb.ingest([str(docs)])
    oven = kb.ask("How long to bake flapjacks for the charity bake sale", k=1, llm="none")
    assert oven.answer.startswith("Bake at 180 C"), oven.answer  # a text file's first line is its title
    answer = kb.ask("How many grams of red lentils go in the red lentil soup?", k=2, llm="none")
    assert "office kitchen" not in answer.answer  # the title names the topic, it answers nothing
    assert answer.answer.startswith("- 250 g red lentils, rinsed ["), answer.answer
    from kb.answer.extractive import _quotable

    assert _quotable("Go-live: 2 September 2024") and _quotable("Total due £478.20")
    assert not _quotable("Note 5 — DEBT") and not _quotable("Occurrence #2: FORCED LANDING")  # headings
    assert not _quotable("Liquidity and capital resources Pages 37 - 38")  # a table of contents' line


# --- seams: registries, declared capabilities ---------------------------------------------------
def test_registries_name_what_they_know() -> None:
    assert {"pdf", "docx", "markdown", "html", "text", "pptx", "xlsx", "csv", "email", "epub", "image"} <= set(file_types())
    assert {"faiss", "milvus"} <= set(STORES.names()) and {"llama-cpp", "openai", "transformers"} <= set(LLMS.names())
    with pytest.raises(ConfigError, match="known: faiss, milvus"):
        STORES.get("chroma")
    with pytest.raises(ConfigError, match="unknown parser"):
        PARSERS.get("numbers")  # Apple Numbers: not read


def test_store_capabilities_are_declared_and_choose_the_index() -> None:
    faiss_store, milvus_store = STORES.get("faiss"), STORES.get("milvus")
    assert not (faiss_store.native_filters or faiss_store.native_keyword or faiss_store.shared)
    assert milvus_store.native_filters and milvus_store.native_keyword and milvus_store.shared
    from kb.config import Settings

    assert isinstance(open_index(Path("/nonexistent"), Settings(store="faiss")), LocalIndex)
    assert isinstance(open_index(Path("/nonexistent"), Settings(store="milvus")), TeamIndex)


def test_a_parser_registered_at_run_time_ingests_its_format(tmp_path: Path) -> None:
    from kb.types import ParsedDocument

    class IniParser:
        file_type = "ini"
        extensions = (".ini",)

        def parse(self, path: Path) -> ParsedDocument:
            from kb.ingest.base import paragraphs

            return ParsedDocument(title=path.stem, blocks=paragraphs(path.read_text().replace("=", " is ")))

    from kb.ingest.base import parser_name

    assert parser_name(Path("server.ini")) == "config"
    PARSERS.register("ini", IniParser)
    try:
        assert parser_name(Path("server.ini")) == "ini"  # seen at once: the extension map is rebuilt
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "server.ini").write_text("timeout = ninety seconds\n")
        with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as k:
            assert names_of(k.ingest([str(tmp_path / "docs")]).added) == ["server.ini"]
            hit = k.search("timeout seconds", k=1)[0]
            assert hit.file_type == "ini" and "ninety" in hit.text
    finally:
        PARSERS.unregister("ini")
    assert "ini" not in file_types() and parser_name(Path("server.ini")) == "config"


def test_reindex_on_a_team_store_is_refused_before_any_work(tmp_path: Path) -> None:
    from kb.config import Settings

    index = open_index(tmp_path, Settings(store="milvus"))
    with pytest.raises(KBError, match="reindex"):
        index.replace_vectors(iter(()), {})


def test_a_closed_kb_reopens_on_use(kb: KnowledgeBase) -> None:
    """`close` releases the files (after the searches in flight); the next call opens them again."""
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"] and kb.is_open
    kb.close()
    assert not kb.is_open
    assert names(kb.search("greyhounds", k=1)) == ["kennel.md"] and kb.is_open


def test_a_broken_plugin_is_one_warning_line_and_the_rest_works(docs: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The library logs; the CLI shows its warnings as one line each on stderr."""
    from click.testing import CliRunner

    from kb.cli import main
    from kb.ingest import base

    PARSERS.register("broken", "kb_no_such_plugin:Parser")
    monkeypatch.setattr(base, "_BROKEN", set())
    try:
        for key, value in {**FAKE, "workers": "1"}.items():
            monkeypatch.setenv(f"KB_{key.upper()}", value)
        result = CliRunner().invoke(main, ["ingest", str(docs), "--kb", str(tmp_path / "cli-kb")])
    finally:
        PARSERS.unregister("broken")
    assert result.exit_code == 0, result.output
    assert "kb: parser 'broken' (kb_no_such_plugin:Parser) cannot be imported" in result.stderr
    assert "Traceback" not in result.stderr and "added 3" in result.stdout


def test_a_long_lived_writer_refuses_to_mix_its_model_into_an_index_another_process_reembedded(tmp_path: Path) -> None:
    """A server or a watcher keeps its model loaded. When another process re-embeds the index with
    another model (`kb reindex --model`), its next write says to restart instead of adding vectors of
    the old model to the new ones, and the index stays whole."""
    docs = tmp_path / "docs"
    write_markdown(docs / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
    with KnowledgeBase.open(tmp_path / "kb", **FAKE) as server:
        server.ingest([str(docs)])
        assert server.search("greyhounds", k=1)  # the model is loaded
        with KnowledgeBase.open(tmp_path / "kb", **FAKE) as other:
            other.reindex("fake-other")
        write_markdown(docs / "boats.md", "# Boats\n\nThe ferry leaves at seven from pier four.\n")
        with pytest.raises(EmbedderMismatchError, match="restart"):
            server.ingest([str(docs)])
    with KnowledgeBase.open(tmp_path / "kb", model="fake-other", backend="fake") as fresh:
        assert fresh.catalog.meta()["model"] == "fake-other"
        assert [d.source.rsplit("/", 1)[-1] for d in fresh.documents()] == ["kennel.md"]
        assert fresh.store.count() == fresh.catalog.totals()[1]
        assert [h.source.rsplit("/", 1)[-1] for h in fresh.search("greyhounds", k=1)] == ["kennel.md"]


def test_close_waits_for_the_write_in_flight(tmp_path: Path) -> None:
    """Closing a shared knowledge base (a server stopping, a `with` block ending on another thread)
    lets a running ingest finish with its files and write lock; what it committed is whole."""
    docs = tmp_path / "docs"
    write_markdown(docs / "kennel.md", "# Kennel\n\nThe kennel feeds the greyhounds at nine.\n")
    started, go = threading.Event(), threading.Event()

    def progress(_: object) -> None:
        started.set()
        go.wait(10)

    kb = KnowledgeBase.open(tmp_path / "kb", **FAKE)
    reports: list[object] = []
    writer = threading.Thread(target=lambda: reports.append(kb.ingest([str(docs)], progress=progress)))
    writer.start()
    assert started.wait(10)
    closer = threading.Thread(target=kb.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the ingest
    go.set()
    writer.join(10)
    closer.join(10)
    assert not writer.is_alive() and not closer.is_alive() and len(reports) == 1
    with KnowledgeBase.open(tmp_path / "kb", **FAKE) as again:
        assert again.status().documents == 1 and again.store.count() == again.catalog.totals()[1] > 0

"""`kb mcp` and `kb serve --mcp`: the MCP SDK's own client against a real knowledge base (a PDF of three
pages and a Markdown runbook, the packaged model), over stdio through the installed `kb` command and over
streamable HTTP under a real `kb serve` on 127.0.0.1; plus the fast layer in-process (fake embedder)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason='kb mcp needs the "mcp" extra: pip install -e ".[mcp]"')

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from kb import KnowledgeBase
from kb.integrations.mcp import create_server
from kb.types import search_json
from tests.conftest import REPO
from tests.helpers import FAKE, free_port, stop, write_markdown, write_pdf

KB_EXE = Path(sys.executable).with_name("kb")
TOOLS = {"search", "ask", "get_document", "list_documents"}
REVENUE_Q = "What was total revenue for the quarter ended June 30, 2024?"
REVENUE = "Total revenue was 42.7 million dollars for the quarter ended June 30, 2024."
WAIT_S = 120  # the longest any one client session may take (a cold model load on a busy 2-core machine)


def _page(n: int, topic: str, fact: str) -> str:
    """About 500 words: the page's fact in the middle, so that the passage holding it lies on this page alone."""
    lines = [f"Northwind Turbines quarterly report, part {n}: {topic}"]
    filler = [f"On day {i} the {topic} committee reviewed routine matter {n}-{i} and recorded it in the "
              f"{topic} minutes." for i in range(1, 37)]
    return "\n".join(lines + filler[:18] + [fact] + filler[18:])


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcp-docs")
    write_pdf(root / "report.pdf", [
        _page(1, "fleet", "The turbine fleet grew to 41 units during the quarter."),
        _page(2, "finance", REVENUE),
        _page(3, "outlook", "The company expects to open two new plants in Norway next year."),
    ])
    write_markdown(root / "notes" / "runbook.md")
    return root


@pytest.fixture(scope="module")
def real_kb(docs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's one knowledge base, built with the real (packaged) embedding model."""
    kb_dir = tmp_path_factory.mktemp("mcp-kb") / "kb"
    with KnowledgeBase.open(kb_dir) as kb:
        report = kb.ingest([str(docs)])
    assert not report.failed and len(report.added) == 2, report
    return kb_dir


def _json(result: Any) -> dict[str, Any]:
    """A successful tool result: its structured content, which the text content carries as JSON too."""
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content  # type: ignore[no-any-return]


def _error(result: Any) -> str:
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text, text
    return text  # type: ignore[no-any-return]


# --- stdio, end to end ----------------------------------------------------------------------------------
@pytest.mark.slow
async def test_stdio_end_to_end(real_kb: Path, docs: Path, tmp_path: Path) -> None:
    pdf, runbook = str((docs / "report.pdf").resolve()), str((docs / "notes" / "runbook.md").resolve())
    params = StdioServerParameters(command=str(KB_EXE), args=["mcp", "--llm", "none"], env={"KB_DIR": str(real_kb)},
                                   cwd=str(tmp_path))
    errlog = tmp_path / "stderr.txt"
    with open(errlog, "w") as err:
        with anyio.fail_after(WAIT_S):
            async with Client(stdio_client(params, errlog=err)) as client:
                tools = (await client.list_tools()).tools
                assert {t.name for t in tools} == TOOLS
                assert all(t.annotations and t.annotations.read_only_hint for t in tools)
                assert all(t.description and t.input_schema["type"] == "object" for t in tools)

                # search: cited passages, the same as kb search --json
                found = _json(await client.call_tool("search", {"query": REVENUE_Q, "k": 3}))
                top = found["hits"][0]
                assert top["source"] == pdf and top["page"] == 2 and top["page_end"] == 2, top
                assert "42.7 million" in top["text"] and top["citation"].startswith("report.pdf p.2"), top
                with KnowledgeBase.open(real_kb) as kb:
                    expected = search_json(REVENUE_Q, kb.search(REVENUE_Q, k=3))
                assert [{k: v for k, v in h.items() if k != "citation"} for h in found["hits"]] == expected["hits"]

                filtered = _json(await client.call_tool("search", {"query": "on-call engineer", "type": "markdown"}))
                assert filtered["hits"] and {h["source"] for h in filtered["hits"]} == {runbook}
                assert filtered["hits"][0]["section"].startswith("Payments runbook")

                # ask: the extractive answer, cited at the page
                answer = _json(await client.call_tool("ask", {"question": REVENUE_Q}))
                assert answer["mode"] == "extractive" and answer["llm"] is None, answer
                assert "42.7" in answer["answer"], answer["answer"]
                cited = answer["citations"][0]
                assert cited["source"] == pdf and cited["page"] == 2 and cited["citation"].startswith("report.pdf p.2")

                # get_document: a page's text, by the file name as a reader would give it
                page = _json(await client.call_tool("get_document", {"source": "report.pdf", "page": 2}))
                assert REVENUE in " ".join(page["text"].split()) and page["source"] == pdf, page
                assert page["page_start"] <= 2 <= page["page_end"] and page["pages"] == 3 and not page["truncated"]
                assert "41 units" not in page["text"] or page["page_start"] == 1  # only page 1 text says this
                note = _json(await client.call_tool("get_document", {"source": runbook}))
                assert note["page"] is None and "error 5031" in note["text"] and "quokka-west" in note["text"]

                # list_documents
                listed = _json(await client.call_tool("list_documents", {}))
                by_source = {d["source"]: d for d in listed["documents"]}
                assert set(by_source) == {pdf, runbook} and listed["failed"] == []
                assert by_source[pdf]["pages"] == 3 and by_source[pdf]["chunks"] > 3
                assert by_source[pdf]["file_type"] == "pdf" and by_source[runbook]["pages"] is None

                # resources: each document, and a page of the PDF
                resources = {r.uri: r for r in (await client.list_resources()).resources}
                uri = by_source[pdf]["uri"]
                assert set(resources) == {d["uri"] for d in listed["documents"]}
                assert resources[uri].name == "report.pdf" and resources[uri].mime_type == "text/plain"
                whole = (await client.read_resource(uri)).contents[0]
                assert whole.mime_type == "text/plain" and "41 units" in whole.text and "Norway" in whole.text
                assert whole.text.count("Norway") == 1  # overlapping passages are not repeated
                page2 = (await client.read_resource(f"{uri}/page/2")).contents[0]
                assert "42.7 million" in page2.text

                # bad arguments: tool errors with one line each, and the server goes on answering
                assert "k" in _error(await client.call_tool("search", {"query": "revenue", "k": 0}))
                assert "page range" in _error(await client.call_tool("search", {"query": "revenue", "pages": "x"}))
                assert "no document" in _error(await client.call_tool("get_document", {"source": "nope.pdf"}))
                assert "has 3 page(s), not 9" in _error(
                    await client.call_tool("get_document", {"source": pdf, "page": 9}))
                assert "no pages" in _error(await client.call_tool("get_document", {"source": runbook, "page": 1}))
                with pytest.raises(MCPError, match="no document 999"):
                    await client.read_resource("kb://document/999")
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
    logged = errlog.read_text()
    assert f"kb: MCP server for {real_kb}" in logged and "Traceback" not in logged, logged


@pytest.mark.slow
def test_stdio_writes_nothing_but_the_protocol_to_stdout(real_kb: Path, tmp_path: Path) -> None:
    """A raw client: every line `kb mcp` writes to stdout is a JSON-RPC message, and it exits 0 when
    stdin closes. Anything else on stdout (a log line, a progress bar) would break every MCP client."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search", "arguments": {
            "query": REVENUE_Q, "k": 2}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search", "arguments": {"k": 2}}},
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | {"KB_DIR": str(real_kb)}
    proc = subprocess.Popen([str(KB_EXE), "mcp", "--llm", "none"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    assert proc.stdin is not None
    replies: list[dict[str, Any]] = []
    try:
        for m in messages:
            proc.stdin.write(json.dumps(m) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + WAIT_S
        while {r.get("id") for r in replies} < {1, 2, 3}:  # a client waits for its answers before it hangs up
            replies.append(json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic()))))  # JSON, or it fails
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    while not lines.empty():
        replies.append(json.loads(lines.get()))
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    assert all(r.get("jsonrpc") == "2.0" for r in replies), replies
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert set(by_id) == {1, 2, 3}, replies
    assert by_id[1]["result"]["serverInfo"]["name"] == "kb"
    assert not by_id[2]["result"].get("isError") and "42.7" in by_id[2]["result"]["content"][0]["text"]
    assert by_id[3]["result"]["isError"] and "query" in by_id[3]["result"]["content"][0]["text"]
    assert "kb: MCP server for" in stderr and "Traceback" not in stderr, stderr


# --- streamable HTTP under kb serve -------------------------------------------------------------------------
TOKEN = "mcp-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(real_kb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kb serve --mcp` with an API token on 127.0.0.1 and a free port, stopped at teardown."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | {"KB_API_TOKEN": TOKEN}
    env["OLLAMA_HOST"] = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("mcp-serve") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(KB_EXE), "serve", "--kb", str(real_kb), "--port", str(port), "--llm", "none",
                                 "--mcp", "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    import httpx

    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert proc.poll() is None, f"kb serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"kb serve did not start in {WAIT_S} s: {log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert "/mcp" in log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.mark.slow
async def test_streamable_http_under_kb_serve(server: str, docs: Path) -> None:
    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(base_url=server, timeout=30) as plain:
        refused = await plain.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                   headers={"Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401 and "API token" in refused.json()["detail"]
        wrong = await plain.post("/mcp", json={}, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401

    with anyio.fail_after(WAIT_S):
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            async with Client(streamable_http_client(f"{server}/mcp", http_client=http)) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOLS
                found = _json(await client.call_tool("search", {"query": REVENUE_Q, "k": 3}))
                top = found["hits"][0]
                assert top["source"] == str((docs / "report.pdf").resolve()) and top["page"] == 2, top
                assert top["citation"].startswith("report.pdf p.2")
                assert "page range" in _error(await client.call_tool("search", {"query": "x", "pages": "0"}))

    async with httpx.AsyncClient(base_url=server, timeout=30) as plain:  # the API beside it is unchanged
        api = await plain.post("/search", json={"query": REVENUE_Q, "k": 3},
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert api.status_code == 200 and api.json()["hits"] == [
            {k: v for k, v in h.items() if k != "citation"} for h in found["hits"]]


# --- the fast layer: in-process, fake embedder --------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    """A knowledge base whose chunks overlap (small chunks), with two files of one name in two folders."""
    root = tmp_path_factory.mktemp("mcp-fake")
    paragraphs = [f"Paragraph {i}: the archive keeps record {i} of the harbour logbook, entry {i * 7}." for i in range(40)]
    (root / "docs" / "a").mkdir(parents=True)
    (root / "docs" / "a" / "log.md").write_text("# Harbour log\n\n" + "\n\n".join(paragraphs) + "\n")
    write_markdown(root / "docs" / "b" / "log.md")
    write_pdf(root / "docs" / "scan.pdf", ["First page about anchors", "Second page about sails"])
    kb = KnowledgeBase.open(root / "kb", chunk_tokens=48, chunk_overlap=12, workers=1, **FAKE)
    report = kb.ingest([str(root / "docs")])
    assert not report.failed, report.failed
    try:
        yield kb
    finally:
        kb.close()


async def test_document_text_is_assembled_once_in_order_and_bounded(fake_kb: KnowledgeBase) -> None:
    log = next(d for d in fake_kb.documents() if d.source.endswith("a/log.md"))
    assert log.chunks > 3  # small chunks, which overlap
    source = log.source
    async with Client(create_server(fake_kb, llm="none")) as client:
        doc = _json(await client.call_tool("get_document", {"source": source}))
        text = doc["text"]
        positions = [text.find(f"Paragraph {i}:") for i in range(40)]
        assert all(p >= 0 for p in positions) and positions == sorted(positions), positions
        assert all(text.count(f"entry {i * 7}.") == 1 for i in range(40))  # each sentence once, overlaps removed
        assert not doc["truncated"] and doc["chars"] == len(text)

        cut = _json(await client.call_tool("get_document", {"source": source, "max_chars": 300}))
        assert cut["truncated"] and cut["chars"] == len(text)
        assert cut["text"].endswith(f"of {len(text):,} characters shown]") and "[truncated: " in cut["text"]
        assert len(cut["text"]) < 400

        whole = _json(await client.call_tool("get_document", {"source": "scan.pdf"}))
        assert "anchors" in whole["text"] and "sails" in whole["text"] and whole["page"] is None


async def test_errors_are_one_line_tool_errors(fake_kb: KnowledgeBase) -> None:
    async with Client(create_server(fake_kb, llm="none")) as client:
        ambiguous = _error(await client.call_tool("get_document", {"source": "log.md"}))
        assert "names 2 documents" in ambiguous and "give the full source" in ambiguous
        assert "search: query: " in _error(await client.call_tool("search", {"query": ""}))
        assert "k: " in _error(await client.call_tool("ask", {"question": "anchors?", "k": 500}))
        assert "type: " in _error(await client.call_tool("search", {"query": "anchors", "type": "exe"}))
        assert "page range" in _error(await client.call_tool("ask", {"question": "anchors?", "pages": "9-2"}))
        missing = _json(await client.call_tool("search", {"query": "anchors", "path": "*.docx"}))
        assert missing["hits"] == [] and "path '*.docx'" in missing["note"]
        with pytest.raises(MCPError, match="has no page 7"):
            await client.read_resource("kb://document/1/page/7")


async def test_list_documents_filters_the_failed_files_as_it_filters_the_documents(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    (docs / "bin.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        assert len(kb.ingest([str(docs)]).failed) == 1
        async with Client(create_server(kb, llm="none")) as client:
            every = _json(await client.call_tool("list_documents", {}))
            assert [f["source"] for f in every["failed"]] == [str(docs / "bin.txt")]
            markdown = _json(await client.call_tool("list_documents", {"type": "markdown"}))
            assert len(markdown["documents"]) == 1 and markdown["failed"] == []
            text = _json(await client.call_tool("list_documents", {"path": "*.txt"}))
            assert text["documents"] == [] and text["failed"] == every["failed"]


async def test_empty_knowledge_base_is_a_tool_error(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "empty", **FAKE) as kb:
        async with Client(create_server(kb, llm="none")) as client:
            message = _error(await client.call_tool("search", {"query": "anything"}))
            assert "is empty: run `kb ingest PATH` first" in message
            assert _json(await client.call_tool("list_documents", {})) == {"documents": [], "failed": []}
            assert (await client.list_resources()).resources == []


def test_without_the_extra_kb_mcp_says_how_to_install_it(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys

        class BlockMCP:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("mcp", "mcp_types"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, BlockMCP())
        from kb.cli import main
        main(["mcp"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | {"KB_DIR": str(tmp_path / "kb")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=WAIT_S, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip() == ("kb: error: the MCP SDK is not available (mcp): "
                                   "pip install -e '.[mcp]' (in the kb checkout)"), proc.stderr


async def test_documents_ingested_beside_a_running_server_are_found(tmp_path: Path) -> None:
    """`kb mcp` runs for days: what a `kb ingest` beside it adds is searched by meaning too (the
    vectors it wrote are read before the next call), not only by keyword from the shared catalog."""
    write_markdown(tmp_path / "docs" / "runbook.md")
    with KnowledgeBase.open(tmp_path / "kb", **FAKE) as served:
        served.ingest([str(tmp_path / "docs")])
        async with Client(create_server(served, llm="none")) as client:
            before = _json(await client.call_tool("search", {"query": "zebra migration river", "mode": "dense"}))
            assert all(not h["source"].endswith("zebra.md") for h in before["hits"])
            (tmp_path / "docs" / "zebra.md").write_text("# Zebras\n\nThe zebra migration crosses the river.\n")
            with KnowledgeBase.open(tmp_path / "kb", **FAKE) as other:  # another process, as far as files go
                other.ingest([str(tmp_path / "docs")])
            after = _json(await client.call_tool("search", {"query": "zebra migration river", "mode": "dense"}))
            assert after["hits"][0]["source"].endswith("zebra.md"), after
            assert len((await client.list_resources()).resources) == 2


def test_docs_configuration_snippet_runs_kb_mcp() -> None:
    """The MCP page's `mcpServers` block is valid JSON whose arguments `kb` accepts."""
    from click.testing import CliRunner

    from kb.cli import main

    section = (REPO / "docs" / "mcp.md").read_text()
    block = section[section.index("```json") + len("```json"):section.index("```", section.index("```json") + 7)]
    entry = json.loads(block)["mcpServers"]["kb"]
    assert Path(entry["command"]).name == "kb" and set(entry["env"]) == {"KB_DIR"}
    result = CliRunner().invoke(main, [*entry["args"], "--help"])
    assert result.exit_code == 0 and "Model Context Protocol" in result.output

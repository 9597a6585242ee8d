"""`kb serve`: the HTTP API over a real ingested knowledge base (FastAPI's TestClient), a real `kb serve`
process on 127.0.0.1, ingest jobs beside searches, uploads and their cap, authentication, traversal."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi", reason='kb serve needs the "serve" extra: pip install -e ".[serve]"')

from fastapi.testclient import TestClient

from kb.answer.chat import KEPT_TURNS
from kb.cli import main
from kb.ingest.base import file_types, supported_types
from kb.server import check_bind, create_app, is_loopback
from kb.server.routes.page import STATIC
from kb.types import UNITS
from tests.conftest import AAPL_Q3_2023, MSFT_Q1_2023
from tests.helpers import FAKE, assert_checkable, free_port, stop, write_markdown

AAPL_SALES = "What were Apple's total net sales for the three months ended July 1, 2023?"
RUNBOOK_Q = "What should the on-call engineer do when the payment gateway returns error 5031?"
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Ollama probe at a closed port, so `auto` means extractive here as in CI."""
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def events(text: str) -> list[tuple[str, Any]]:
    """Server-sent events as (event, data) pairs; comments skipped."""
    out = []
    for block in text.split("\n\n"):
        lines = [x for x in block.split("\n") if x and not x.startswith(":")]
        if not lines:
            continue
        name = next((x[6:].strip() for x in lines if x.startswith("event:")), "message")
        data = "\n".join(x[5:].lstrip() for x in lines if x.startswith("data:"))
        out.append((name, json.loads(data)))
    return out


def wait_job(client: Any, job_id: str, timeout: float = 180.0, on_poll: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if on_poll:
            on_poll(job)
        if job["state"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.fixture(scope="module")
def client(ingested: Path, corpus: Path) -> Iterator[TestClient]:
    """The API over the session's knowledge base, extractive answers (read-only: tests never ingest here)."""
    with TestClient(create_app(ingested, llm="none", docs=[corpus])) as c:
        yield c


def doc_ids(client: TestClient) -> dict[str, int]:
    return {os.path.basename(d["source"]): d["id"] for d in client.get("/documents").json()}


# --- the JSON contracts ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_search_is_the_cli_json(client: TestClient, ingested: Path) -> None:
    r = client.post("/search", json={"query": AAPL_SALES, "k": 5})
    assert r.status_code == 200
    assert r.json() == cli_json("search", AAPL_SALES, "--kb", str(ingested), "--json", "-k", "5")
    md = client.post("/search", json={"query": RUNBOOK_Q, "k": 3, "type": "markdown"}).json()
    assert md["hits"] and all(h["source"].endswith(".md") for h in md["hits"])
    assert md == cli_json("search", RUNBOOK_Q, "--kb", str(ingested), "--json", "-k", "3", "--type", "markdown")


@pytest.mark.slow
@pytest.mark.needs_eval
def test_ask_is_the_cli_json(client: TestClient, ingested: Path) -> None:
    served = client.post("/ask", json={"question": AAPL_SALES, "k": 3}).json()
    cli = cli_json("ask", AAPL_SALES, "--kb", str(ingested), "--json", "-k", "3")
    assert set(served) == set(cli) and served["mode"] == "extractive" and served["citations"]
    assert {k: v for k, v in served.items() if k != "timing"} == {k: v for k, v in cli.items() if k != "timing"}
    assert set(served["timing"]) == set(cli["timing"])


@pytest.mark.slow
@pytest.mark.needs_eval
def test_status_is_the_cli_json_plus_server(client: TestClient, ingested: Path) -> None:
    served = client.get("/status").json()
    cli = cli_json("status", "--kb", str(ingested), "--json")
    assert {k: served[k] for k in cli} == cli
    assert served["documents"] == 4 and served["server"]["auth"] is False and served["server"]["llm"] is None


@pytest.mark.slow
@pytest.mark.needs_eval
def test_bad_requests(client: TestClient) -> None:
    assert client.post("/search", json={"query": ""}).status_code == 422
    assert client.post("/search", json={"query": "x", "k": 0}).status_code == 422
    assert client.post("/search", json={"query": "x", "mode": "psychic"}).status_code == 422
    bad_pages = client.post("/search", json={"query": "x", "pages": "9-2"})
    assert bad_pages.status_code == 400 and "page range" in bad_pages.json()["detail"]
    assert client.post("/search", content=b"{" + b" " * (2 << 20) + b"}",
                       headers={"content-type": "application/json"}).status_code == 413
    assert client.get("/jobs/nope").status_code == 404


# --- streaming --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_stream_extractive_links_open_the_cited_page(client: TestClient) -> None:
    r = client.post("/ask/stream", json={"question": AAPL_SALES, "k": 3})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = events(r.text)
    assert [name for name, _ in got] == ["token", "links", "answer"]
    links, answer = got[1][1], got[2][1]
    assert got[0][1]["text"] == answer["answer"]  # extractive: the whole answer is one piece
    ids = {d["id"]: d for d in client.get("/documents").json()}
    for c in answer["citations"]:
        url = links["citations"][str(c["n"])]
        doc = ids[int(url.split("/")[2].split("#")[0])]
        assert doc["source"] == c["source"]
        assert url.endswith(f"#page={c['page']}") == (doc["file_type"] == "pdf")
    assert set(links["hits"]) == {str(h["rank"]) for h in answer["hits"]}


@pytest.mark.slow
@pytest.mark.needs_eval
def test_stream_gemma_tokens_then_the_ask_object(ingested: Path, gemma: Any) -> None:
    with TestClient(create_app(ingested, llm=gemma)) as c:
        r = c.get("/ask/stream", params={"question": AAPL_SALES, "k": 3, "max_tokens": 24, "temperature": 0})
        assert r.status_code == 200
        got = events(r.text)
        names = [name for name, _ in got]
        assert names[-2:] == ["links", "answer"] and names[:-2] == ["token"] * (len(names) - 2)
        answer = got[-1][1]
        assert_checkable(answer, gemma.name)  # whatever Gemma wrote on this CPU and build (tests/helpers.py)
        assert len(names) - 2 >= 1  # it streamed
        assert set(answer) == set(c.post("/ask", json={"question": AAPL_SALES, "k": 3, "max_tokens": 8}).json())
        assert all(isinstance(u["reasons"], list) for u in answer["unsupported"])  # the citation check's results
        assert c.get("/status").json()["server"]["llm"] == gemma.name


# --- documents -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_documents_serves_the_ingested_pdf(client: TestClient, corpus: Path) -> None:
    ids = doc_ids(client)
    r = client.get(f"/documents/{ids[AAPL_Q3_2023.name]}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == (corpus / AAPL_Q3_2023.name).read_bytes()
    assert r.headers["content-disposition"].startswith("inline")
    docx = client.get(f"/documents/{ids['handbook.docx']}")
    assert docx.status_code == 200 and docx.headers["content-disposition"].startswith("attachment")


@pytest.mark.slow
@pytest.mark.needs_eval
def test_traversal_and_unknown_ids_are_404(client: TestClient) -> None:
    taken = max(doc_ids(client).values())
    # (httpx resolves literal dot segments before sending: those are sent raw to the real server below)
    for url in ["/documents/..%2F..%2Fetc%2Fpasswd", "/documents/%2e%2e%2f%2e%2e%2fetc", "/documents/%2e%2e",
                "/documents/-1", "/documents/1.0", "/documents/0x1", "/documents/%201", f"/documents/{taken + 1}",
                "/documents/99999999999999999999999", "/documents/%00", "/static/..%2F..%2F..%2Fetc%2Fpasswd",
                "/static/%2e%2e/app.py", "/static/%2e%2e%2f%2e%2e%2fapi.py"]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert b"root:" not in r.content


# --- ingest jobs -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_eval
def test_ingest_job_runs_beside_searches(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "notes" / "runbook.md")
    for pdf in (AAPL_Q3_2023, MSFT_Q1_2023):
        (docs / "filings").mkdir(parents=True, exist_ok=True)
        shutil.copy(pdf, docs / "filings" / pdf.name)
    with TestClient(create_app(tmp_path / "kb", llm="none", docs=[docs])) as c:
        first = c.post("/ingest", json={"paths": ["notes"]})  # relative to the first --docs folder
        assert first.status_code == 202 and first.json()["state"] in ("queued", "running")
        assert wait_job(c, first.json()["id"])["state"] == "done"
        expected = c.post("/search", json={"query": RUNBOOK_Q, "k": 2}).json()

        job = c.post("/ingest", json={"paths": [str(docs / "filings")]}).json()
        seen: list[dict[str, Any]] = []
        during = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            r = c.post("/search", json={"query": RUNBOOK_Q, "k": 2})
            assert r.status_code == 200 and r.json()["hits"][0]["source"] == expected["hits"][0]["source"]
            state = c.get(f"/jobs/{job['id']}").json()
            seen.append(state)
            if state["state"] == "running":
                during += 1
            if state["state"] not in ("queued", "running"):
                break
        final = seen[-1]
        assert final["state"] == "done", final
        assert during >= 1  # searches were answered while the ingest ran
        assert final["progress"]["done"] == final["progress"]["total"] == 2
        assert any(s["progress"]["total"] == 2 and s["state"] == "running" for s in seen)
        assert sorted(os.path.basename(p) for p in final["report"]["added"]) == sorted([AAPL_Q3_2023.name,
                                                                                        MSFT_Q1_2023.name])
        hits = c.post("/search", json={"query": AAPL_SALES, "k": 3}).json()["hits"]
        assert os.path.basename(hits[0]["source"]) == AAPL_Q3_2023.name  # the new vectors are searched
        assert c.get("/status").json()["documents"] == 3


def test_vectors_from_another_process_are_picked_up(tmp_path: Path) -> None:
    """`kb ingest` run beside the server (another process, in effect): its new vectors are searched soon."""
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    CliRunner().invoke(main, ["ingest", str(docs), "--kb", str(tmp_path / "kb"), "-q"], catch_exceptions=False)
    with TestClient(create_app(tmp_path / "kb", llm="none", docs=[docs])) as c:
        write_markdown(docs / "dogs.md", "# Kennel\n\nThe kennel feeds the greyhounds twice a day at nine.\n")
        result = CliRunner().invoke(main, ["ingest", str(docs), "--kb", str(tmp_path / "kb"), "-q"])
        assert result.exit_code == 0, result.output
        query = {"query": "When are the greyhounds fed?", "k": 1, "mode": "dense"}
        deadline = time.monotonic() + 30
        while c.post("/search", json=query).json()["hits"][0]["source"] != str(docs / "dogs.md"):
            assert time.monotonic() < deadline, "the server never searched the new vectors"
            time.sleep(0.2)


def test_ingest_paths_must_be_inside_docs(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    with TestClient(create_app(tmp_path / "kb", llm="none", docs=[docs])) as c:
        assert c.post("/ingest", json={"paths": ["/etc"]}).status_code == 403
        assert c.post("/ingest", json={"paths": ["../"]}).status_code == 403
        assert c.post("/ingest", json={"paths": ["missing.md"]}).status_code == 400
        assert c.post("/ingest", json={"paths": []}).status_code == 422
        assert c.post("/ingest", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
        assert c.post("/search", json={"query": "gateway"}).status_code == 409  # empty: nothing ingested yet


def test_upload_is_ingested_and_capped(tmp_path: Path) -> None:
    from tests.helpers import RUNBOOK

    with TestClient(create_app(tmp_path / "kb", llm="none", docs=[tmp_path], max_upload_mb=0.05)) as c:
        r = c.post("/ingest", files=[("files", ("../../Run book.md", RUNBOOK.encode(), "text/markdown"))])
        assert r.status_code == 202, r.text
        saved = Path(r.json()["paths"][0])
        assert saved.parent == tmp_path / "kb" / "uploads" and saved.name == "Run book.md"  # no way out of uploads/
        assert wait_job(c, r.json()["id"], timeout=60)["state"] == "done"
        hit = c.post("/search", json={"query": RUNBOOK_Q, "k": 1}).json()["hits"][0]
        assert hit["source"] == str(saved)
        doc = next(d for d in c.get("/documents").json() if d["source"] == str(saved))
        assert c.get(doc["url"]).content == RUNBOOK.encode()

        big = b"x" * (60 * 1024)  # over 0.05 MB
        assert c.post("/ingest", files=[("files", ("big.md", big, "text/markdown"))]).status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: the cap applies as the body streams in
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.md"\r\n\r\n'
            for _ in range(16):
                yield b"y" * 8192
            yield b"\r\n--b--\r\n"

        r = c.post("/ingest", content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        assert not (tmp_path / "kb" / "uploads" / "big.md").exists()
        refused = c.post("/ingest", files=[("files", ("tool.exe", b"MZ", "application/octet-stream"))])
        assert refused.status_code == 415 and supported_types() in refused.json()["detail"]


# --- the document list and removal -----------------------------------------------------------------
def test_documents_list_their_fields_and_remove_deletes_them(tmp_path: Path) -> None:
    """GET /documents has what `kb documents --json` shows; DELETE /documents/{id} is a job of the
    single writer that forgets the document (searches stop finding it) and deletes an uploaded copy,
    but never a file of the user's own folder."""
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    write_markdown(docs / "dogs.md", "# Kennel\n\nThe kennel feeds the greyhounds twice a day at nine.\n")
    kb_dir = tmp_path / "kb"
    with TestClient(create_app(kb_dir, llm="none", docs=[docs], **FAKE)) as c:
        assert wait_job(c, c.post("/ingest", json={"paths": [str(docs)]}).json()["id"], timeout=60)["state"] == "done"
        up = c.post("/ingest", files=[("files", ("cats.md", b"# Cattery\n\nThe cattery brushes the Persians.\n",
                                                  "text/markdown"))])
        assert wait_job(c, up.json()["id"], timeout=60)["state"] == "done"

        listed = c.get("/documents").json()
        cli_docs = cli_json("documents", "--kb", str(kb_dir), "--json")["documents"]
        assert [{k: d[k] for k in cli_docs[0]} for d in listed] == cli_docs
        by_name = {os.path.basename(d["source"]): d for d in listed}
        assert set(by_name) == {"runbook.md", "dogs.md", "cats.md"}
        dogs = by_name["dogs.md"]
        assert dogs["file_type"] == "markdown" and dogs["chunks"] >= 1 and dogs["bytes"] == (docs / "dogs.md").stat().st_size
        assert dogs["url"] == f"/documents/{dogs['id']}" and re.fullmatch(r"\d{4}-\d\d-\d\dT.*", dogs["ingested_at"])

        query = {"query": "When are the greyhounds fed?", "k": 3}
        assert any(h["source"] == dogs["source"] for h in c.post("/search", json=query).json()["hits"])
        r = c.delete(f"/documents/{dogs['id']}")
        assert r.status_code == 202 and r.json()["kind"] == "remove" and r.json()["url"] == f"/jobs/{r.json()['id']}"
        job = wait_job(c, r.json()["id"], timeout=60)
        assert job["state"] == "done" and job["report"] == {"removed": [dogs["source"]], "deleted_files": []}
        assert {os.path.basename(d["source"]) for d in c.get("/documents").json()} == {"runbook.md", "cats.md"}
        assert all(h["source"] != dogs["source"] for h in c.post("/search", json=query).json()["hits"])
        assert (docs / "dogs.md").is_file()  # the user's own file stays
        assert c.get(dogs["url"]).status_code == 404
        assert c.delete(f"/documents/{dogs['id']}").status_code == 404  # already gone

        cats = by_name["cats.md"]
        job = wait_job(c, c.delete(f"/documents/{cats['id']}").json()["id"], timeout=60)
        assert job["report"] == {"removed": [cats["source"]], "deleted_files": [cats["source"]]}
        assert not Path(cats["source"]).exists()  # the server's uploaded copy goes with it
        for url in ("/documents/999999", "/documents/x", "/documents/-1", "/documents/..%2Fkb.toml"):
            assert c.delete(url).status_code == 404, url
        assert c.get("/status").json()["documents"] == 1


# --- authentication -----------------------------------------------------------------------------------
def test_token_is_required_on_every_api_route(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    app = create_app(tmp_path / "kb", llm="none", docs=[docs], token=TOKEN)
    with TestClient(app) as c:
        good = {"Authorization": f"Bearer {TOKEN}"}
        job = c.post("/ingest", json={"paths": [str(docs)]}, headers=good)
        assert job.status_code == 202
        deadline = time.monotonic() + 60
        while c.get(f"/jobs/{job.json()['id']}", headers=good).json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        doc = c.get("/documents", headers=good).json()[0]["url"]
        routes = [("GET", "/status", None), ("POST", "/search", {"query": "gateway"}),
                  ("POST", "/ask", {"question": "gateway error?"}), ("GET", "/ask/stream?question=gateway", None),
                  ("POST", "/ingest", {"paths": [str(docs)]}), ("GET", "/jobs", None), ("GET", "/documents", None),
                  ("GET", doc, None), ("DELETE", "/documents/999999", None)]
        for method, url, body in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN}x"}):
                r = c.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (method, url, headers)
                assert r.headers["www-authenticate"] == "Bearer"
            expected = (404,) if method == "DELETE" else (200, 202)  # refused before it is looked up
            assert c.request(method, url, json=body, headers=good).status_code in expected, (method, url)
        # The page and its files carry no data; the health check is for container orchestrators.
        for url in ("/", "/static/app.js", "/healthz"):
            assert c.get(url).status_code == 200
        # A citation link is a plain navigation: the page's cookie opens documents, and nothing else.
        c.cookies.set("kb_token", TOKEN)
        assert c.get(doc).status_code == 200
        assert c.delete(doc).status_code == 401  # the cookie opens files; it removes nothing
        assert c.get("/status").status_code == 401 and c.post("/search", json={"query": "x"}).status_code == 401
        c.cookies.set("kb_token", "wrong")
        assert c.get(doc).status_code == 401


def test_the_page_reads_what_it_shares_with_the_library_from_status(tmp_path: Path) -> None:
    """The turns a conversation keeps, the file types, the unit labels and the token cookie are defined
    once in Python: GET /status gives them to the page, which holds no copy."""
    with TestClient(create_app(tmp_path / "kb", llm="none", **FAKE)) as c:
        server = c.get("/status").json()["server"]
        assert server["kept_turns"] == KEPT_TURNS
        assert server["file_types"] == file_types() and len(file_types()) >= 25
        assert server["units"] == {unit: [one, many] for unit, (one, many, _) in UNITS.items()}
        assert server["token_cookie"] == "kb_token"
        history = [{"question": f"question {i}?", "answer": "An answer."} for i in range(KEPT_TURNS + 1)]
        assert c.post("/ask", json={"question": "And then?", "history": history}).status_code == 422
    page = (STATIC / "app.js").read_text() + (STATIC / "index.html").read_text()
    assert "MAX_TURNS" not in page and "kb_token=" not in page and "Markdown, HTML" not in page
    assert 'slide ", "slides' not in page


def test_api_docs_load_their_files_from_this_server(tmp_path: Path) -> None:
    """/docs and /redoc work offline: every script and style they load is served here, with no token."""
    with TestClient(create_app(tmp_path / "kb", llm="none", token=TOKEN, **FAKE)) as c:
        for page in ("/docs", "/redoc"):
            r = c.get(page)
            assert r.status_code == 200, page
            urls = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', r.text)
            assert any(u.endswith(".js") for u in urls), r.text
            for url in urls:
                assert url.startswith("/") or url.startswith("data:"), (page, url)
                if url.startswith("/"):
                    assert c.get(url).status_code == 200, url
        assert c.get("/openapi.json").json()["paths"]["/search"]


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert is_loopback(host), host
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com"):
        assert not is_loopback(host), host
        check_bind(host, TOKEN)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_serve_refuses_other_hosts_without_a_token(host: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--kb", str(tmp_path / "kb"), "--host", host])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kb: error:") and "KB_API_TOKEN" in lines[0], result.stderr
    assert not (tmp_path / "kb").exists()  # refused before opening anything


# --- a real server ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(ingested: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kb serve` (the installed entry point) on 127.0.0.1 and a free port, killed at teardown."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["OLLAMA_HOST"] = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("serve") / "server.log"
    exe = Path(sys.executable).with_name("kb")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--kb", str(ingested), "--port", str(port), "--llm", "none",
                                 "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"kb serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"kb serve did not start in 120 s: {log.read_text()}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield base
    finally:
        stop(proc)


@pytest.mark.slow
@pytest.mark.needs_eval
def test_real_server_concurrent_searches_and_stream(server: str, ingested: Path) -> None:
    import httpx

    expected = cli_json("search", AAPL_SALES, "--kb", str(ingested), "--json", "-k", "5")
    results: list[Any] = []
    errors: list[BaseException] = []

    def client_loop() -> None:
        try:
            with httpx.Client(base_url=server, timeout=60) as h:
                for _ in range(5):
                    results.append(h.post("/search", json={"query": AAPL_SALES, "k": 5}).json())
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=client_loop) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 40
    assert all(r == expected for r in results)

    with httpx.Client(base_url=server, timeout=60) as h, h.stream(
        "GET", "/ask/stream", params={"question": RUNBOOK_Q, "k": 2}
    ) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    names = [name for name, _ in events(text)]
    assert names == ["token", "links", "answer"]
    assert "quokka-west" in events(text)[-1][1]["answer"]


@pytest.mark.slow
@pytest.mark.needs_eval
def test_real_server_refuses_raw_traversal(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    for raw in ["/documents/../../etc/passwd", "/documents/..", "/documents/../app.py",
                "/documents/..%2f..%2fetc%2fpasswd", "/documents/%2e%2e/%2e%2e/etc/passwd",
                "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/documents/1/../../x"]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", raw)  # sent as written: http.client does not normalise dot segments
        r = conn.getresponse()
        body = r.read()
        assert r.status == 404, (raw, r.status)
        assert b"root:" not in body


def test_watch_passes_do_not_push_a_users_job_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kb serve --watch over a busy folder: many watch passes, and GET /jobs/{id} still answers for the
    user's upload, however many passes ran after it."""
    from kb.server import service
    from kb.watch import Pass

    monkeypatch.setattr(service, "MAX_JOBS_KEPT", 3)
    monkeypatch.setattr(service, "MAX_WATCH_JOBS_KEPT", 2, raising=False)
    docs = tmp_path / "docs"
    write_markdown(docs / "a.md", "# Alpha\n\nThe alpaca grazes on the hill.\n")
    with TestClient(create_app(tmp_path / "kb", llm="none", docs=[docs], **FAKE)) as c:
        mine = c.post("/ingest", files=[("files", ("note.md", b"# Note\n\nThe heron fishes.\n", "text/markdown"))])
        assert wait_job(c, mine.json()["id"])["state"] == "done"
        svc = c.app.state.service  # type: ignore[attr-defined]
        for i in range(6):  # what a busy watched folder does: a pass per batch of changes
            write_markdown(docs / f"w{i}.md", f"# W{i}\n\nThe weaver number {i} spins.\n")
            report = svc._watch_pass(Pass((str(docs),), changed=frozenset({str((docs / f"w{i}.md").resolve())})))
            assert report.added == [str(docs / f"w{i}.md")]
        r = c.get(f"/jobs/{mine.json()['id']}")
        assert r.status_code == 200 and r.json()["state"] == "done"
        kinds = [j["kind"] for j in c.get("/jobs").json()]
        assert kinds.count("watch") == 2 and kinds.count("ingest") == 1  # the latest passes, bounded apart


def test_a_mounted_apps_posts_wait_their_turn_with_the_searches(tmp_path: Path) -> None:
    """What `kb serve --mcp` mounts at /mcp: its POSTs (tool calls) count against the bound on
    concurrent searches, and the API token guards it with the API routes' own check."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from kb.server.app import mount

    running, most = [0], [0]

    async def tool(request: Any) -> JSONResponse:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.3)
        running[0] -= 1
        return JSONResponse({"ok": True})

    sub = Starlette(routes=[Route("/tool", tool, methods=["POST", "GET"])])
    app = create_app(tmp_path / "kb", llm="none", token=TOKEN, search_concurrency=1, **FAKE)
    mount(app, "/tool", sub)
    with TestClient(app) as c:
        assert c.post("/tool").status_code == 401
        assert c.post("/tool", headers={"Authorization": "Bearer wrong"}).status_code == 401
        codes: list[int] = []

        def call() -> None:
            codes.append(c.post("/tool", headers={"Authorization": f"Bearer {TOKEN}"}).status_code)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert codes == [200, 200, 200]
        assert most[0] == 1  # one at a time, as search_concurrency=1 lets searches run

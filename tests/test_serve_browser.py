"""The `kb serve` web page in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
by selenium): type a question, watch the answer stream in with its sources, see the unsupported
sentence marked, click a citation and land on the cited page of the PDF."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kb.answer.citations import split_sentences
from kb.ingest.base import file_types
from kb.llm.base import LLM, GenerationOptions, Prompt
from tests.helpers import free_port, write_markdown, write_pdf

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
QUESTION = "What were Apple's total net sales for the three months ended July 1, 2023?"
INVENTED = "Apple also sold 7,777,777 unicorns on the Moon [1]."
PHRASE = "the heron counted seventeen blue pebbles"
TOKEN = "browser-token-0123456789abcdef"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_eval,
    pytest.mark.skipif(not CHROMIUM.is_file() or not CHROMEDRIVER.is_file(),
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
]


class Quoting(LLM):
    """Answers by quoting the longest sentence of source [1], then adds a claim no source makes, word by
    word. A real subclass of the seam: the page must show a streamed answer with one supported and one
    unsupported sentence, which no small real model produces on cue."""

    backend = "quoting"
    model_name = "longest-sentence"

    @property
    def context_window(self) -> int:
        return 8192

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _stream(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        source = re.search(r'<source n="1" from="[^"]*">\n(.*?)\n</source>', text, re.DOTALL)
        assert source is not None, text[:500]
        quoted = max(split_sentences(source.group(1)), key=len).rstrip(".: ")
        for piece in re.findall(r"\S+\s*", f"{quoted} [1]. {INVENTED}"):
            time.sleep(0.01)
            yield piece


@pytest.fixture(scope="module")
def served(ingested: Path) -> Iterator[str]:
    """The app, answering with `Quoting`, in a uvicorn server thread on 127.0.0.1."""
    pytest.importorskip("uvicorn")
    from kb.server import create_app

    yield from _serve(create_app(ingested, llm=Quoting()))


@pytest.fixture
def served_writable(tmp_path: Path) -> Iterator[str]:
    """The app over an empty knowledge base of this test's own (uploads land in it), extractive answers,
    uploads capped at 1 MB."""
    pytest.importorskip("uvicorn")
    from kb.server import create_app

    yield from _serve(create_app(tmp_path / "kb", llm="none", max_upload_mb=1))


@pytest.fixture
def served_crashing(ingested: Path, tmp_path: Path) -> Iterator[str]:
    """The app with the llama-cpp backend whose model server kills itself with SIGSEGV when asked."""
    pytest.importorskip("uvicorn")
    from kb.server import create_app

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    crashing = f"{sys.executable} {Path(__file__).with_name('crashing_llm_server.py')}"
    yield from _serve(create_app(ingested, llm="llama-cpp", llm_model=str(gguf), llm_server=crashing))


@pytest.fixture
def served_with_token(tmp_path: Path) -> Iterator[str]:
    """The app behind an API token, over an empty knowledge base that may ingest tmp_path/docs."""
    pytest.importorskip("uvicorn")
    from kb.server import create_app

    (tmp_path / "docs").mkdir()
    yield from _serve(create_app(tmp_path / "kb", llm="none", token=TOKEN, docs=[tmp_path / "docs"]))


def _serve(app: Any) -> Iterator[str]:
    """`app` in a uvicorn server thread on 127.0.0.1 and a free port; stopped at teardown."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start in 60 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium is not installed (pip install -e ".[test]")')
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Without the background-networking flags chromium waits on the (closed) network.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_ask_on_the_page_and_open_a_citation(served: str, browser: Any) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served + "/")
    WebDriverWait(browser, 30).until(lambda d: "documents" in d.find_element(By.ID, "kb-status").text)
    assert "answers by quoting:longest-sentence" in browser.find_element(By.ID, "kb-status").text

    # Keyboard only: type, Enter asks.
    box = browser.find_element(By.ID, "question")
    box.send_keys(QUESTION)
    box.send_keys(Keys.ENTER)
    answer = browser.find_element(By.ID, "answer")
    assert answer.get_attribute("aria-live") == "polite"
    WebDriverWait(browser, 120).until(lambda d: answer.get_attribute("aria-busy") == "false" and d.find_elements(
        By.CSS_SELECTOR, "#answer a.cite, #answer .error"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#answer .error"), answer.text

    marked = browser.find_elements(By.CSS_SELECTOR, "#answer mark.unsupported")
    assert [m.text for m in marked] == [INVENTED]
    flag = browser.find_element(By.CSS_SELECTOR, "#answer .flag")
    assert flag.is_displayed() and "7,777,777 is not in [1]" in flag.text
    sources = browser.find_elements(By.CSS_SELECTOR, "#sources li")
    assert len(sources) == 1 and "2023 Q3 AAPL.pdf" in sources[0].text and "unsupported" in sources[0].text
    passages = browser.find_elements(By.CSS_SELECTOR, "#passages li")
    # k=5 retrieved, plus up to 3 keyword passages of the best document (kb.answer.retrieve)
    assert 5 <= len(passages) <= 8 and all(p.find_elements(By.TAG_NAME, "a") for p in passages)
    # Each passage's snippet shows the question's terms in <mark> (built as elements, not parsed HTML).
    marks = browser.find_elements(By.CSS_SELECTOR, "#passages summary mark.match")
    assert marks and {"net", "sales"} <= {m.text.lower() for m in marks}
    assert not browser.find_elements(By.CSS_SELECTOR, "#passages mark *")

    cite = browser.find_elements(By.CSS_SELECTOR, "#answer a.cite")[0]
    href = cite.get_attribute("href")
    found = re.fullmatch(re.escape(served) + r"/documents/(\d+)#page=(\d+)", href)
    assert found, href
    doc_id, page = int(found.group(1)), int(found.group(2))
    documents = httpx.get(served + "/documents", timeout=30).json()
    assert os.path.basename(next(d["source"] for d in documents if d["id"] == doc_id)) == "2023 Q3 AAPL.pdf"
    # shown from the folder that holds every document, not as the absolute path stored
    assert re.search(rf"\[1\] 2023 Q3 AAPL\.pdf p\.{page}\b", sources[0].text), sources[0].text

    before = set(browser.window_handles)
    cite.click()
    WebDriverWait(browser, 30).until(lambda d: len(d.window_handles) > len(before))
    browser.switch_to.window((set(browser.window_handles) - before).pop())
    WebDriverWait(browser, 30).until(lambda d: "/documents/" in d.current_url)
    assert browser.current_url == f"{served}/documents/{doc_id}#page={page}"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.contentType") == "application/pdf")


def test_api_docs_render_offline(served: str, browser: Any) -> None:
    """Swagger UI (/docs) and ReDoc (/redoc) draw the API from files this server ships; the browser
    here has no network, so a page that needed a CDN would stay blank."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served + "/docs")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#swagger-ui .opblock"))
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/search", "/ask", "/ask/stream", "/status"} <= paths, paths

    browser.get(served + "/redoc")
    WebDriverWait(browser, 60).until(lambda d: "Best passages for a query" in d.find_element(By.TAG_NAME, "body").text)


def test_a_crashing_model_still_answers_on_the_page(served_crashing: str, browser: Any) -> None:
    """The model's process dies with SIGSEGV mid-question: the page shows the extractive answer with its
    sources, and a note saying what failed and how to fix it; no error box, the question is not lost."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served_crashing + "/")
    WebDriverWait(browser, 30).until(lambda d: "documents" in d.find_element(By.ID, "kb-status").text)
    box = browser.find_element(By.ID, "question")
    box.send_keys(QUESTION)
    box.send_keys(Keys.ENTER)
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 120).until(lambda d: answer.get_attribute("aria-busy") == "false" and d.find_elements(
        By.CSS_SELECTOR, "#answer a.cite, #answer .error"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#answer .error"), answer.text
    assert "81,797" in answer.text
    note = browser.find_element(By.ID, "answer-note").text
    assert "crashed (SIGSEGV)" in note and "-DGGML_NATIVE=OFF" in note, note
    assert browser.find_elements(By.CSS_SELECTOR, "#sources li")
    # the status line, read again after the answer, says the model is not running and why
    WebDriverWait(browser, 10).until(lambda d: "stopped" in d.find_element(By.ID, "kb-status").text)
    status = browser.find_element(By.ID, "kb-status").text
    assert "answers by llama-cpp:model.gguf (stopped: the llama.cpp server for model.gguf crashed (SIGSEGV)" in status
    assert "it starts again on the next question" in status


def test_upload_search_share_and_remove_on_the_page(served_writable: str, browser: Any, tmp_path: Path) -> None:
    """A teammate without a terminal: drop a PDF (and a note) on the page, watch the job, find a phrase
    of page 2 in search-only mode (cited at p.2, the phrase marked), open the shareable link in a fresh
    load, ask two questions as a conversation, then remove the PDF: the list and a search lose it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    def text(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).text)

    def document_rows() -> list[str]:
        return [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#documents tr")]

    first_day = [f"Hour {h}: the shore was quiet, gulls over the dunes and wind from the west at {h + 3} knots."
                 for h in range(1, 8)]  # one passage of its own: page 2 starts the next
    pdf = write_pdf(tmp_path / "files" / "Field notes.pdf", [
        "Field notes, first day.\n" + "\n".join(first_day),
        f"On the second morning {PHRASE} on the jetty.\nThe tide was low.",
    ])
    note = write_markdown(tmp_path / "files" / "tides.md", "# Tides\n\nLow tide falls at six in the morning.\n")
    big = tmp_path / "files" / "big.txt"
    big.write_bytes(b"tide tables " * 100_000)  # 1.2 MB, over the 1 MB cap

    browser.get(served_writable + "/")
    WebDriverWait(browser, 30).until(lambda d: "0 documents" in text("kb-status"))
    assert "up to 1 MB" in text("upload-help") and ", ".join(file_types()) in text("upload-help")  # the registry's
    assert browser.find_element(By.ID, "job").get_attribute("aria-live") == "polite"

    # Over the cap: refused in the page, nothing sent.
    picker = browser.find_element(By.ID, "upload")
    picker.send_keys(str(big))
    WebDriverWait(browser, 10).until(lambda d: "Not sent" in text("job-status"))
    assert "big.txt" in text("job-status") and "1 MB" in text("job-status")

    # Upload two files through the file picker; the job's progress, then its report.
    picker.send_keys(f"{pdf}\n{note}")
    WebDriverWait(browser, 180).until(lambda d: "Ingest done" in text("job-status") or "failed" in text("job-status"),
                                      f"the upload did not finish: {text('job-status')!r}")
    assert "2 files added" in text("job-status"), text("job-status")
    report = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#job-report li")]
    assert sorted(report) == ["Added: Field notes.pdf", "Added: tides.md"], report
    WebDriverWait(browser, 30).until(lambda d: len(document_rows()) == 2)
    pdf_row = next(r for r in document_rows() if "Field notes.pdf" in r)
    assert re.search(r"Field notes\.pdf.*\bpdf 2 \d+ \d+ KB", pdf_row, re.DOTALL), pdf_row  # type, pages, passages, size
    assert "2 documents" in text("kb-status")

    # Search only: passages, the phrase marked, page 2 cited, no answer written.
    browser.find_element(By.ID, "mode-search").click()
    assert text("ask-button") == "Search"
    box = browser.find_element(By.ID, "question")
    box.send_keys(PHRASE)
    box.send_keys(Keys.ENTER)

    def passages_shown(d: Any) -> bool:
        return bool(d.find_elements(By.CSS_SELECTOR, "#passages li")) and "passage" in text("passages-note")

    def check_search_result() -> None:
        WebDriverWait(browser, 60).until(passages_shown)
        first = browser.find_elements(By.CSS_SELECTOR, "#passages li")[0]
        assert first.text.startswith("Field notes.pdf p.2"), first.text
        href = first.find_element(By.TAG_NAME, "a").get_attribute("href")
        assert re.fullmatch(re.escape(served_writable) + r"/documents/\d+#page=2", href), href
        marks = {m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, "summary mark.match")}
        assert {"heron", "counted", "seventeen", "blue", "pebbles"} <= marks, marks
        assert not browser.find_element(By.ID, "answer-section").is_displayed()

    check_search_result()
    shared = browser.current_url
    assert shared.startswith(served_writable + "/?q=") and "mode=search" in shared, shared
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#recent button")] == [f"{PHRASE} (search only)"]

    # The shareable link, in a new load, fills the form and shows the same result.
    browser.get("about:blank")
    browser.get(shared)
    check_search_result()
    assert browser.find_element(By.ID, "question").get_attribute("value") == PHRASE
    assert browser.find_element(By.ID, "mode-search").is_selected()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#recent li")) == 1  # kept in the browser, not duplicated

    # A conversation: the follow-up carries the first turn as history; "New conversation" forgets it.
    browser.execute_script("""
        window.sentBodies = [];
        const original = window.fetch;
        window.fetch = (url, init) => {
            if (url === "/ask/stream") window.sentBodies.push(JSON.parse(init.body));
            return original(url, init);
        };""")
    browser.find_element(By.ID, "mode-ask").click()
    box, answer = browser.find_element(By.ID, "question"), browser.find_element(By.ID, "answer")
    for question in ("When does low tide fall?", "And what did the heron count?"):
        box.clear()
        box.send_keys(question)
        box.send_keys(Keys.ENTER)
        WebDriverWait(browser, 120).until(lambda d: answer.get_attribute("aria-busy") == "false" and d.find_elements(
            By.CSS_SELECTOR, "#answer a.cite, #answer .error"))
        assert not browser.find_elements(By.CSS_SELECTOR, "#answer .error"), answer.text
    first_answer = browser.find_element(By.CSS_SELECTOR, "#conversation .turn-answer").text
    sent = browser.execute_script("return window.sentBodies")
    assert "history" not in sent[0]
    assert sent[1]["history"] == [{"question": "When does low tide fall?", "answer": first_answer}]
    assert "six" in first_answer
    assert browser.current_url.startswith(served_writable + "/?q=And+what") and "mode=" not in browser.current_url
    browser.find_element(By.ID, "new-conversation").click()
    assert not browser.find_element(By.ID, "conversation-section").is_displayed()
    recent = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#recent button")]
    assert recent[0] == "And what did the heron count?" and len(recent) == 3

    # Remove the PDF (after a confirmation): gone from the list and from the results.
    remove = browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Remove Field notes.pdf"]')
    remove.click()
    WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    browser.switch_to.alert.accept()
    WebDriverWait(browser, 60).until(lambda d: "Removed" in text("job-status"))
    WebDriverWait(browser, 30).until(lambda d: len(document_rows()) == 1)
    assert "tides.md" in document_rows()[0] and "1 document " in text("kb-status") + " "
    browser.find_element(By.ID, "mode-search").click()
    box.clear()
    box.send_keys(PHRASE)
    box.send_keys(Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda d: not d.find_element(By.ID, "ask-button").get_attribute("disabled")
                                     and "Searching" not in text("passages-note"))
    assert "Field notes.pdf" not in text("passages")

    # Dropped on the zone (a synthetic drop: WebDriver cannot drag from the desktop), a file is uploaded too.
    browser.execute_script("""
        const data = new DataTransfer();
        data.items.add(new File(["# Birds\\n\\nA heron waded past the jetty.\\n"], "birds.md", {type: "text/markdown"}));
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }""")
    WebDriverWait(browser, 60).until(lambda d: "Ingest done" in text("job-status") and len(document_rows()) == 2)
    assert any("birds.md" in r for r in document_rows())

    browser.find_element(By.ID, "clear-recent").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#recent li")
    assert browser.execute_script("return localStorage.getItem('kb_recent')") is None


def test_slides_rows_and_attachments_are_cited_by_their_unit_on_the_page(tmp_path: Path, browser: Any) -> None:
    """A deck, a sheet and a mail with a PDF attached, searched and asked on the page: each passage is
    cited as a reader finds it (slide 2, row 3, the attachment's page) and the list counts slides and rows."""
    from email.message import EmailMessage

    import openpyxl
    from pptx import Presentation
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from kb.api import KnowledgeBase
    from kb.server import create_app

    files = tmp_path / "files"
    files.mkdir()
    deck = Presentation()
    for title, body in [("Welcome", "Agenda for the harbour review."),
                        ("Pricing", "The harbour plan costs 40 credits a month for each berth.")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(files / "deck.pptx"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Berths"
    for row in (["Berth", "Vessel", "Tonnage"], ["A1", "Marigold", 1200], ["A2", "Puffin Star", 860]):
        sheet.append(row)
    book.save(str(files / "berths.xlsx"))
    pdf = write_pdf(tmp_path / "inspection.pdf", ["\n".join(f"Checklist line {i} for the quay." for i in range(40)),
                                                  "The crane inspection found two worn cables."])
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "Harbour master <hm@example.org>", "crew@example.org", "Inspection"
    mail.set_content("The report is attached.")
    mail.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename="inspection.pdf")
    (files / "inspection.eml").write_bytes(bytes(mail))
    with KnowledgeBase.open(tmp_path / "kb") as kb:
        assert not kb.ingest([str(files)]).failed
    for url in _serve(create_app(tmp_path / "kb", llm="none")):
        def first_passage(query: str, url: str = url) -> str:
            browser.get(f"{url}/?q={query.replace(' ', '+')}&mode=search")
            WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#passages li"))
            return str(browser.find_elements(By.CSS_SELECTOR, "#passages li")[0].text)

        assert first_passage("harbour plan credits per berth").startswith("deck.pptx slide 2 § Pricing")
        assert first_passage("Puffin Star tonnage").startswith("berths.xlsx rows 2-3 § Berths")  # rows pack
        assert first_passage("crane inspection worn cables").startswith("inspection.eml > inspection.pdf p.2")
        WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#documents tr")) == 4)
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#documents tr")]
        assert any("deck.pptx" in r and "2 slides" in r for r in rows), rows
        assert any("berths.xlsx" in r and "2 rows" in r for r in rows), rows
        # Asked (no model: the answer quotes the passages), the sources are cited the same way.
        browser.get(f"{url}/?q=How+much+does+the+harbour+plan+cost%3F")
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sources li"))
        sources = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#sources li")]
        assert any(s.startswith("[1] deck.pptx slide 2 § Pricing") for s in sources), sources


def test_the_page_asks_for_the_token_and_its_cookie_opens_files(served_with_token: str, browser: Any,
                                                                 tmp_path: Path) -> None:
    """Behind KB_API_TOKEN the page asks for the token; once GET /status takes it, the page sets the
    cookie /status names, so that a document link (a plain navigation, no header) opens the file."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    auth = {"Authorization": f"Bearer {TOKEN}"}
    write_markdown(tmp_path / "docs" / "tides.md", "# Tides\n\nLow tide falls at six in the morning.\n")
    job = httpx.post(served_with_token + "/ingest", json={"paths": ["tides.md"]}, headers=auth, timeout=30).json()
    deadline = time.monotonic() + 60
    while httpx.get(served_with_token + job["url"], headers=auth, timeout=30).json()["state"] != "done":
        assert time.monotonic() < deadline, "the ingest job did not finish in 60 s"
        time.sleep(0.2)
    doc_id = httpx.get(served_with_token + "/documents", headers=auth, timeout=30).json()[0]["id"]

    browser.get(served_with_token + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "token-form").is_displayed())
    assert "needs an API token" in browser.find_element(By.ID, "kb-status").text
    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: "1 document" in d.find_element(By.ID, "kb-status").text)
    assert not browser.find_element(By.ID, "token-form").is_displayed()

    browser.get(f"{served_with_token}/documents/{doc_id}")
    assert "Low tide falls at six" in browser.find_element(By.TAG_NAME, "body").text

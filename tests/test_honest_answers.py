"""Answers that know when they do not know, as a reader sees them: a model's answer with no supported
sentence is not shown as the answer (library, `kb ask`, the HTTP API and its stream, MCP); an answer is
never empty while found; "not found" lists each nearest page once, numbered once; the hint on plugging
in a model comes once per knowledge base; bad questions get one line. A real knowledge base (a PDF of
three pages, a Markdown runbook, a note whose only table is of another period; the packaged model) and
a scripted model (`ScriptedLLM`) for what a model writes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kb import KnowledgeBase
from kb.answer import NOT_FOUND
from kb.cli import main
from kb.cli.ask import HINT_SHOWN
from tests.helpers import ScriptedLLM, free_port, write_markdown, write_pdf

RUNBOOK_Q = "What happens on gateway error 5031?"
# An answer citing [1] whose every sentence the sources do not hold.
INVENTED = "Employees receive 25 vacation days each year [1]. The office cafeteria serves lunch at noon [1]."
# What the packaged Gemma 3 270M wrote for a 10-Q question: its prompt's instruction echoed, and a stray word.
GEMMA_ECHO = "Answer from the sources, citing them like [2]. mendatang"
# A question whose passage holds only a table of another period: nothing is left to quote.
WIDGETS_Q = "What were total widget sales for the three months ended July 31, 2023?"
WIDGETS = """# Widget report

Updated July 31, 2023

Widget sales were as follows (in millions):

Three Months Ended

June 30, 2022 June 30, 2021

Total widget sales 1,200 1,100
"""
STOP_WORDS_Q = "the of and what is"
NEAREST_Q = "Which pizza did the minutes mention?"  # off the topic; "minutes" adds the report's keyword passages


def _page(n: int, topic: str, fact: str) -> str:
    """About 500 words: several chunks on one page."""
    filler = [f"On day {i} the {topic} committee reviewed routine matter {n}-{i} and recorded it in the "
              f"{topic} minutes." for i in range(1, 37)]
    return "\n".join([f"Northwind Turbines quarterly report, part {n}: {topic}", *filler[:18], fact, *filler[18:]])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("honest")
    docs = root / "docs"
    write_pdf(docs / "report.pdf", [
        _page(1, "fleet", "The turbine fleet grew to 41 units during the quarter."),
        _page(2, "finance", "Total revenue was 42.7 million dollars for the quarter ended June 30, 2024."),
        _page(3, "outlook", "The company expects to open two new plants in Norway next year."),
    ])
    write_markdown(docs / "runbook.md")
    write_markdown(docs / "widgets" / "widgets.md", WIDGETS)
    with KnowledgeBase.open(root / "kb") as k:
        assert not k.ingest([str(docs)]).failed
    return root / "kb"


@pytest.fixture
def kb_dir(built: Path, tmp_path: Path) -> Path:
    """A copy of the knowledge base per test: the hint's marker is written into its folder."""
    return Path(shutil.copytree(built, tmp_path / "kb"))


@pytest.fixture
def kb(kb_dir: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(kb_dir) as k:
        yield k


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Ollama probe at a closed port: `auto` means extractive here."""
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


def ask_cli(kb_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["ask", *args[:1], "--kb", str(kb_dir), *args[1:]])


# --- a model's answer with no supported sentence --------------------------------------------------
@pytest.mark.parametrize("written", [INVENTED, GEMMA_ECHO])
def test_a_wholly_unsupported_model_answer_is_not_the_answer(kb: KnowledgeBase, written: str) -> None:
    """The reader gets the passages' own sentences and the reason; the model's text is kept aside."""
    pieces: list[str] = []
    answer = kb.ask(RUNBOOK_Q, k=5, llm=ScriptedLLM(written), on_token=pieces.append)
    assert answer.found and answer.mode == "extractive" and "quokka-west" in answer.answer
    assert "vacation days" not in answer.answer and "mendatang" not in answer.answer
    assert answer.model_answer is not None and answer.model_answer.reason == "unsupported"
    assert answer.model_answer.text.split("[")[0] == written.split("[")[0]
    assert answer.llm_error and "not supported by the sources" in answer.llm_error
    assert answer.llm_error in (answer.note or "")
    assert answer.citations and all(c.supported for c in answer.citations)  # the quotes: their own sources
    data = json.loads(json.dumps(answer.to_json()))
    assert data["model_answer"]["reason"] == "unsupported" and data["model_answer"]["unsupported"]
    assert data["answer"] == answer.answer and data["unsupported"] == []
    # streamed: the model's words as they came, then the answer that replaces them
    assert "".join(pieces).endswith("\n\n" + answer.answer)


def test_a_partly_supported_model_answer_is_shown_with_its_unsupported_sentence_marked(kb: KnowledgeBase) -> None:
    """The rule is about answers with nothing to rely on: one good sentence keeps the model's answer."""
    llm = ScriptedLLM("On error 5031, page the on-call engineer and fail over to quokka-west [1]. " + INVENTED)
    answer = kb.ask(RUNBOOK_Q, k=5, llm=llm)
    assert answer.mode == "llm" and answer.found and answer.model_answer is None
    assert "vacation days" in answer.answer and len(answer.unsupported) == 2


def test_an_unsupported_model_answer_with_nothing_to_quote_is_not_found(kb: KnowledgeBase) -> None:
    answer = kb.ask(WIDGETS_Q, k=5, llm=ScriptedLLM("Total widget sales were 9,999 million dollars [1]."))
    assert not answer.found and answer.mode == "not_found" and answer.answer == NOT_FOUND
    assert answer.model_answer is not None and "9,999" in answer.model_answer.text
    assert answer.abstained == "unquotable" and answer.to_json()["abstained"] == "unquotable"


def test_kb_ask_says_the_model_answer_was_not_supported(kb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kb.answer

    llm = ScriptedLLM(INVENTED)
    monkeypatch.setattr(kb.answer, "load_llm", lambda settings, name, cache: (llm, None))
    quiet = ask_cli(kb_dir, RUNBOOK_Q, "-k", "5", "--no-stream")
    assert quiet.exit_code == 0, quiet.output
    assert "quokka-west" in quiet.stdout and "vacation days" not in quiet.stdout
    assert "not supported by the sources" in quiet.stderr
    streamed = ask_cli(kb_dir, RUNBOOK_Q, "-k", "5")
    assert streamed.exit_code == 0, streamed.output
    # the model's words streamed before they were checked: then said not to be the answer, and why
    assert streamed.stdout.index("vacation days") < streamed.stdout.index("quokka-west")
    assert "the model's answer above is not the answer" in streamed.stderr
    assert "The model's answer is not supported by the sources:" in streamed.stdout
    data = json.loads(ask_cli(kb_dir, RUNBOOK_Q, "-k", "5", "--json").stdout)
    assert data["mode"] == "extractive" and "quokka-west" in data["answer"]
    assert data["model_answer"]["text"].startswith("Employees receive 25 vacation days")


def test_http_api_and_stream_give_the_passages_not_the_unsupported_answer(kb_dir: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kb.server import create_app
    from tests.test_serve import events

    with TestClient(create_app(kb_dir, llm=ScriptedLLM(INVENTED))) as c:
        body = c.post("/ask", json={"question": RUNBOOK_Q, "k": 5}).json()
        assert body["mode"] == "extractive" and "quokka-west" in body["answer"]
        assert body["model_answer"]["reason"] == "unsupported" and "not supported" in body["note"]
        got = events(c.post("/ask/stream", json={"question": RUNBOOK_Q, "k": 5}).text)
        final = got[-1][1]
        assert got[-1][0] == "answer" and final["answer"] == body["answer"]
        assert final["model_answer"]["text"] == body["model_answer"]["text"]
        assert set(got[-2][1]["hits"]) <= {str(h["rank"]) for h in final["hits"]}
        assert c.post("/ask", json={"question": "x" * 2001}).status_code == 422
    page = (Path(__file__).parents[1] / "kb" / "server" / "static" / "app.js").read_text()
    assert "result.model_answer" in page  # the page folds the model's answer away under the quotes


async def test_mcp_ask_gives_the_passages_not_the_unsupported_answer(kb: KnowledgeBase) -> None:
    pytest.importorskip("mcp")
    from mcp import Client

    from kb.integrations.mcp import create_server

    async with Client(create_server(kb, llm=ScriptedLLM(INVENTED))) as client:
        result = await client.call_tool("ask", {"question": RUNBOOK_Q, "k": 5})
        out = json.loads(result.content[0].text)
        assert out["mode"] == "extractive" and "quokka-west" in out["answer"]
        assert "vacation days" in out["model_answer"]["text"] and "not supported" in out["note"]


# --- never empty while found ------------------------------------------------------------------------
def test_an_answer_is_never_empty_while_found(kb_dir: Path) -> None:
    """The passage holds only a table of another period: no line is left to quote, so "not found"
    with the reason, and the passage among the nearest."""
    result = ask_cli(kb_dir, WIDGETS_Q, "--llm", "none", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["found"] is False and data["mode"] == "not_found" and data["answer"] == NOT_FOUND
    assert data["abstained"] == "unquotable" and "no sentence of the passages" in data["note"]
    assert any(h["source"].endswith("widgets.md") for h in data["hits"])
    text = ask_cli(kb_dir, WIDGETS_Q, "--llm", "none")
    assert text.stdout.startswith(NOT_FOUND) and "no sentence of the passages answers" in text.stderr


# --- "not found": one list ------------------------------------------------------------------------------
def test_not_found_lists_each_nearest_page_once_numbered_once(kb_dir: Path) -> None:
    data = json.loads(ask_cli(kb_dir, NEAREST_Q, "--llm", "none", "--json").stdout)
    assert data["found"] is False and data["hits"]
    assert [h["rank"] for h in data["hits"]] == list(range(1, len(data["hits"]) + 1))
    pages = [(h["source"], h["page"]) for h in data["hits"] if h["page"] is not None]
    assert len(pages) == len(set(pages))
    text = ask_cli(kb_dir, NEAREST_Q, "--llm", "none").stdout
    listed = text.split("Nearest passages:")[1]
    numbers = [line.split(".")[0].strip() for line in listed.splitlines() if line.startswith("  ") and
               line[2:3].isdigit()]
    assert numbers == [str(n) for n in range(1, len(data["hits"]) + 1)]


def test_an_answer_numbers_its_passages_once(kb: KnowledgeBase) -> None:
    answer = kb.ask("How much total revenue did Northwind report?", k=5, llm="none")
    assert answer.found and [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))


# --- the hint on plugging in a model ----------------------------------------------------------------
def test_the_model_hint_comes_once_per_knowledge_base(kb_dir: Path) -> None:
    for args in (["--llm", "none"], ["-q"], ["--json"]):  # never with these
        result = ask_cli(kb_dir, RUNBOOK_Q, "-k", "2", *args)
        assert result.exit_code == 0 and "No LLM configured" not in result.output, args
    assert json.loads(ask_cli(kb_dir, RUNBOOK_Q, "--json").stdout)["note"] is None
    before = CliRunner().invoke(main, ["-q", "ask", RUNBOOK_Q, "--kb", str(kb_dir)])  # -q before the command
    assert before.exit_code == 0 and "No LLM configured" not in before.stderr
    first = ask_cli(kb_dir, RUNBOOK_Q, "-k", "2")
    assert "quokka-west" in first.stdout and "No LLM configured" in first.stderr
    assert "Ollama" not in first.stdout  # on stderr, not in the answer
    assert (kb_dir / HINT_SHOWN).exists()
    again = ask_cli(kb_dir, RUNBOOK_Q, "-k", "2")
    assert again.exit_code == 0 and "No LLM configured" not in again.stderr
    helped = CliRunner().invoke(main, ["ask", "--help"])
    assert "ollama serve" in helped.stdout and "--llm llama-cpp" in helped.stdout


# --- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("question", "said"), [
    ("", "the question is empty"),
    ("   ", "the question is empty"),
    ("revenue " * 1250, "the question is 9,999 characters long; at most 2,000 are read"),
])
def test_a_question_that_cannot_be_read_is_a_usage_error_in_one_line(kb_dir: Path, question: str, said: str) -> None:
    result = ask_cli(kb_dir, question)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"kb: error: {said}\n"


@pytest.mark.parametrize("question", [STOP_WORDS_Q, "What is it?", "?"])
def test_a_question_of_common_words_only_is_not_found_with_the_reason(kb_dir: Path, question: str) -> None:
    """Nothing to look for: any passage would be as near as any other, so none is shown."""
    result = ask_cli(kb_dir, question, "--llm", "none", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["found"] is False and data["abstained"] == "vague" and data["hits"] == []
    text = ask_cli(kb_dir, question, "--llm", "none")
    assert text.exit_code == 0 and text.stdout == NOT_FOUND + "\n"
    assert text.stderr == "kb: the question has no word to look for but common ones\n"


@pytest.mark.parametrize("question", ["什么是公司的收入？", "Какова выручка компании?"])
def test_a_question_in_another_script_is_not_found(kb_dir: Path, question: str) -> None:
    """Another script or language than the documents': "not found", a line saying why, no traceback."""
    result = ask_cli(kb_dir, question, "--llm", "none")
    assert result.exit_code == 0 and result.exception is None, result.output
    assert result.stdout.startswith(NOT_FOUND) and "Traceback" not in result.output
    assert result.stderr.startswith("kb: ") and len(result.stderr.splitlines()) == 1


def test_kb_chat_goes_on_after_a_question_it_cannot_read(kb_dir: Path) -> None:
    result = CliRunner().invoke(main, ["chat", "--kb", str(kb_dir), "--llm", "none", "-k", "2"],
                                input=f"{'revenue ' * 300}\n{RUNBOOK_Q}\n")
    assert result.exit_code == 1 and "quokka-west" in result.stdout  # the next question was answered
    assert "kb: error: the question is 2,399 characters long; at most 2,000 are read" in result.stderr

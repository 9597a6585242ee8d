"""benchmarks/page_ceiling.py: each question searched within its gold document only, page recall per mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import page_ceiling
from kb import KnowledgeBase
from tests.helpers import write_pdf


@pytest.mark.slow
def test_page_recall_within_the_gold_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    # Pages long enough to be chunks of their own, so that a hit's page says which page matched.
    filler = " ".join(f"Routine entry {i} of the logbook records nothing unusual." for i in range(25))
    write_pdf(docs / "quokka.pdf", [f"Quokka colony report.\nThe quokka colony on the island counts 412 animals. {filler}",
                                    f"Warden notes.\nThe warden feeds them apples on Tuesdays. {filler}"])
    write_pdf(docs / "turbine.pdf", [f"Turbine maintenance log.\nThe wind turbine gearbox was replaced in March. {filler}",
                                     f"Blade inspection.\nBlade three shows erosion on its leading edge. {filler}",
                                     f"Costs.\nThe gearbox repair cost 18,000 euros. {filler}"])
    with KnowledgeBase.open(tmp_path / "kb", workers=1) as kb:
        kb.ingest([str(docs)])
    gold = tmp_path / "gold.jsonl"
    rows = [{"question": "What does the warden feed the animals?", "sources": ["quokka.pdf"], "pages": [2]},
            {"question": "How much did the gearbox repair cost?", "sources": ["turbine.pdf"], "pages": [3]},
            # The answer is not on its gold page: every mode misses it, searched within turbine.pdf.
            {"question": "When was the gearbox replaced?", "sources": ["turbine.pdf"], "pages": [2]},
            {"question": "Which animals live on the island?", "sources": ["quokka.pdf", "turbine.pdf"], "pages": [1]}]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert page_ceiling.main([str(gold), "--kb", str(tmp_path / "kb"), "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 single-document questions" in out
    assert "dense page R@1 0.667  keyword page R@1 0.667  hybrid page R@1 0.667  any page R@1 0.667" in out

"""The language of each document, detected at ingest from a sample of its chunks and kept in its
metadata; one warning, at ingest and in `kb status`, when most of a knowledge base's text is in
languages its embedding model was not trained for (issue 32, item 8)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.api import KnowledgeBase
from kb.cli.main import main
from kb.embed.languages import ENGLISH, MULTILINGUAL, trained_for
from kb.filters import Filters, parse_where
from kb.ingest.language import SAMPLE_CHUNKS, SUGGESTED, detect, sample, warning
from kb.types import Chunk
from tests.helpers import FAKE

ENGLISH_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the default's id: the fake embedder stands in for it
AS_ENGLISH_MODEL = {**FAKE, "model": ENGLISH_MODEL}

GERMAN = [
    "Die Gemeinde hat am Mittwoch beschlossen, den Ausbau der Radwege im Stadtzentrum zu beschleunigen. "
    "Bis zum Ende des nächsten Jahres sollen zwölf Kilometer neue Wege entstehen, die Schulen, Bahnhof und "
    "Rathaus miteinander verbinden. Die Kosten trägt zum größten Teil das Land.",
    "Im vergangenen Quartal ist der Umsatz des Unternehmens um acht Prozent gestiegen. Besonders gefragt waren "
    "Wärmepumpen und Solaranlagen für Einfamilienhäuser. Der Vorstand rechnet für das Gesamtjahr mit einem "
    "leichten Rückgang der Gewinnmarge, weil die Preise für Rohstoffe weiter steigen.",
    "Die Wartung der Anlage erfolgt einmal im Monat. Vor jeder Prüfung muss die Stromversorgung getrennt und "
    "das Gehäuse geöffnet werden. Defekte Teile werden sofort ersetzt und im Protokoll vermerkt, damit die "
    "nächste Schicht weiß, was geändert wurde.",
    "Unsere Bibliothek ist montags bis freitags von neun bis achtzehn Uhr geöffnet. Bücher können drei Wochen "
    "lang ausgeliehen und zweimal verlängert werden. Für Zeitschriften und Nachschlagewerke gilt eine kürzere "
    "Leihfrist von einer Woche.",
]
FRENCH = ("Le conseil municipal a voté mardi soir le budget de l'année prochaine. Les dépenses d'investissement "
          "augmentent de dix pour cent, principalement pour la rénovation des écoles et des gymnases. "
          "L'opposition a demandé un débat sur la hausse des tarifs de la cantine.")
ENGLISH_TEXTS = [
    "The committee met on Tuesday to review the maintenance schedule for the pumping stations. Each station is "
    "inspected once a month, and any worn part is replaced before the next shift begins. The log records who "
    "did the work and what was changed.",
    "Revenue for the quarter rose eight percent, driven by strong demand for heat pumps and solar panels. "
    "Management expects margins to narrow slightly over the full year as the cost of raw materials keeps rising.",
    "The library is open from nine in the morning until six in the evening on weekdays. Books may be borrowed "
    "for three weeks and renewed twice; reference works and journals are lent for one week only.",
    "Backups run every night at two o'clock and are kept for thirty days. A restore is tested at the start of "
    "each month, and the result is written to the operations log so that the next review can check it.",
]
JAPANESE = ("東京都は水曜日、新しい防災計画を発表した。地震や台風に備えて、避難所の数を増やし、食料と水の備蓄を見直す方針だ。"
            "計画では、高齢者や障害のある人の避難を支援する体制も強化される。区や市と協力して、年に二回の訓練を行う予定である。")


def write(folder: Path, name: str, paragraphs: list[str], title: str = "Notes") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def german_folder(folder: Path) -> Path:
    for n, text in enumerate(GERMAN):
        write(folder, f"bericht-{n}.md", [text, *GERMAN[:n]], title="Bericht")
    write(folder, "readme.md", [ENGLISH_TEXTS[0]], title="Read me")  # one short English file among them
    return folder


def english_folder(folder: Path) -> Path:
    for n, text in enumerate(ENGLISH_TEXTS):
        write(folder, f"report-{n}.md", [text, *ENGLISH_TEXTS[:n]], title="Report")
    write(folder, "compte-rendu.md", [FRENCH], title="Compte rendu")  # a French file among them
    return folder


def languages_of(kb: KnowledgeBase) -> dict[str, str | None]:
    rows = kb.catalog.db.execute("SELECT source, json_extract(metadata, '$.language') FROM documents")
    return {Path(source).name: lang for source, lang in rows}


def cli(args: list[str], kb_dir: Path, monkeypatch: pytest.MonkeyPatch, model: str = ENGLISH_MODEL):
    monkeypatch.setenv("KB_DIR", str(kb_dir))
    monkeypatch.setenv("KB_BACKEND", "fake")
    monkeypatch.setenv("KB_MODEL", model)
    return CliRunner().invoke(main, args)


def test_each_documents_language_is_detected_stored_and_filterable(tmp_path: Path) -> None:
    folder = german_folder(tmp_path / "docs")
    write(folder, "tokyo.md", [JAPANESE, JAPANESE], title="防災計画")
    write(folder, "cr.md", [FRENCH], title="Compte rendu")
    write(folder, "figures.md", ["| 2021 | 2022 | 2023 |\n|---|---|---|\n| 1.2 | 3.4 | 5.6 |"], title="Q")
    # a table of names and places has letters enough, and no language: langid is unsure of it (0.15)
    (folder / "people.csv").write_text("Name,City,Age\nJohn Smith,Leeds,34\nMary Jones,York,29\n"
                                      "Peter Brown,Hull,41\nAnna White,Bath,38\n")
    # an author's own language stays as written
    (folder / "own.md").write_text("---\nlanguage: German\n---\n# Hinweis\n\nDas Büro ist am Freitag geschlossen.\n")
    with KnowledgeBase.open(tmp_path / "kb", **AS_ENGLISH_MODEL) as kb:
        kb.ingest([str(folder)])
        found = languages_of(kb)
        assert found == {"bericht-0.md": "de", "bericht-1.md": "de", "bericht-2.md": "de", "bericht-3.md": "de",
                         "readme.md": "en", "tokyo.md": "ja", "cr.md": "fr",
                         "figures.md": None,  # figures alone: no language rather than a guess
                         "people.csv": None, "own.md": "German"}
        hits = kb.search("Rathaus Schulen", k=10, filters=Filters(where=parse_where(["language=fr"])))
        assert {Path(h.source).name for h in hits} == {"cr.md"}


def test_a_mostly_german_folder_warns_once_at_ingest_and_in_status(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = german_folder(tmp_path / "docs")
    ingest = cli(["ingest", str(folder)], tmp_path / "kb", monkeypatch)
    assert ingest.exit_code == 0, ingest.output
    said = [line for line in ingest.stderr.splitlines() if "warning" in line]
    assert len(said) == 1
    assert said[0].startswith("kb: warning: most of this knowledge base is in German (de, ")
    assert "trained on English" in said[0] and f"kb reindex --model {SUGGESTED}" in said[0]
    assert ingest.stderr.rstrip().endswith(SUGGESTED)  # the ingest's last word
    assert "German" not in ingest.stdout

    status = cli(["status"], tmp_path / "kb", monkeypatch)
    assert status.exit_code == 0
    warned = [line for line in status.output.splitlines() if line.startswith("Warning: ")]
    assert warned == ["Warning: " + said[0].removeprefix("kb: warning: ")]
    languages = next(line for line in status.output.splitlines() if line.startswith("Languages "))
    assert languages.startswith("Languages de ") and " en " in languages
    got = json.loads(cli(["status", "--json"], tmp_path / "kb", monkeypatch).output)
    assert got["language_warning"] == said[0].removeprefix("kb: warning: ")
    assert got["languages"]["de"] > 0.5 and set(got["languages"]) == {"de", "en"}

    as_json = json.loads(cli(["ingest", "--json", str(write(folder, "neu.md", [GERMAN[0]]))], tmp_path / "kb",
                             monkeypatch).stdout)
    assert as_json["language_warning"].startswith("most of this knowledge base is in German (de, 83% of the text)")
    again = cli(["ingest", str(folder)], tmp_path / "kb", monkeypatch)  # nothing new: no new nagging
    assert again.exit_code == 0 and "warning" not in again.stderr


def test_a_mostly_english_folder_with_one_french_file_does_not_warn(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = cli(["ingest", str(english_folder(tmp_path / "docs"))], tmp_path / "kb", monkeypatch)
    assert ingest.exit_code == 0 and "warning" not in ingest.stderr
    got = json.loads(cli(["status", "--json"], tmp_path / "kb", monkeypatch).output)
    assert got["language_warning"] is None and set(got["languages"]) == {"en", "fr"}
    assert got["languages"]["en"] > got["languages"]["fr"] > 0


def test_the_warning_counts_the_whole_knowledge_base_over_several_ingests(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", **AS_ENGLISH_MODEL) as kb:
        first = kb.ingest([str(english_folder(tmp_path / "en"))])
        assert first.language_warning is None
        german = tmp_path / "de"
        for n in range(3):  # German ingests that, added up, outweigh the English
            write(german, f"teil-{n}.md", GERMAN * 2, title="Teil")
            report = kb.ingest([str(german)])
        assert report.language_warning is not None and "German (de" in report.language_warning
        assert kb.status().language_warning == report.language_warning
        kb.remove([str(german)])  # and with them gone, so is the warning
        assert kb.status().language_warning is None


def test_a_multilingual_or_unknown_model_gets_no_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = german_folder(tmp_path / "docs")
    multilingual = cli(["ingest", str(folder)], tmp_path / "kb1", monkeypatch, model=SUGGESTED)
    assert multilingual.exit_code == 0 and "warning" not in multilingual.stderr
    unknown = cli(["ingest", str(folder)], tmp_path / "kb2", monkeypatch, model=FAKE["model"])
    assert unknown.exit_code == 0 and "warning" not in unknown.stderr
    assert json.loads(cli(["status", "--json"], tmp_path / "kb2", monkeypatch, model=FAKE["model"]).output)[
        "languages"]["de"] > 0.5  # languages are still told


def test_a_model_cards_language_field_says_what_a_model_outside_the_table_was_trained_for(tmp_path: Path) -> None:
    def model(name: str, card: str | None) -> str:
        folder = tmp_path / name
        folder.mkdir()
        if card is not None:
            (folder / "README.md").write_text(card)
        return str(folder)

    german_only = trained_for(model("german-bert", "---\nlanguage: de\nlicense: mit\n---\n# A German model\n"))
    assert german_only is not None and german_only.covers("de") and not german_only.covers("fr")
    listed = trained_for(model("two", "---\nlanguage:\n- en\n- fr-FR\n---\n"))
    assert listed is not None and listed.covers("fr") and not listed.covers("de")
    assert trained_for(model("many", "---\nlanguage: multilingual\n---\n")) is MULTILINGUAL
    assert trained_for(model("silent", "---\nlicense: mit\n---\n")) is None
    assert trained_for(model("bare", None)) is None
    assert trained_for(model("broken", "---\nlanguage: [de\n---\n")) is None
    # German text, a German model: nothing to say; French text with it: said, naming the card's language
    assert warning({"de": 0.9}, "german-bert", german_only) is None
    said = warning({"fr": 0.9}, "german-bert", german_only)
    assert said is not None and "in French (fr, 90% of the text)" in said and "trained on German" in said


def test_the_table_knows_the_default_and_the_common_multilingual_models() -> None:
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-mpnet-base-v2", "BAAI/bge-small-en-v1.5",
                 "intfloat/e5-base-v2"):
        assert trained_for(name) is ENGLISH, name
    for name in (SUGGESTED, "sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
                 "intfloat/multilingual-e5-small", "BAAI/bge-m3", "sentence-transformers/LaBSE",
                 "sentence-transformers/distiluse-base-multilingual-cased-v2"):
        assert trained_for(name) is MULTILINGUAL, name


def test_a_mix_of_languages_the_model_misses_is_named_as_such() -> None:
    said = warning({"de": 0.3, "fr": 0.25, "en": 0.2, "ja": 0.15}, ENGLISH_MODEL, ENGLISH)
    assert said is not None
    assert said.startswith("most of this knowledge base is in languages other than English (70% of the text: "
                           "German (de, 30%), French (fr, 25%), Japanese (ja, 15%))")
    assert warning({"de": 0.5, "en": 0.5}, ENGLISH_MODEL, ENGLISH) is None  # half is not most


def test_a_long_document_is_read_from_a_sample_spread_over_it() -> None:
    def chunk(n: int, text: str) -> Chunk:
        return Chunk(n, text, text, (), None, None, 0, len(text), 0)

    chunks = [chunk(n, (GERMAN[n % 4] if n % 10 else ENGLISH_TEXTS[0]) * 3) for n in range(200)]
    picked = sample(chunks)
    assert len(picked) == SAMPLE_CHUNKS and picked[0] == chunks[0].text[:len(picked[0])]
    assert picked[-1] == chunks[-1].text[:len(picked[-1])]
    assert detect(chunks) == "de"


def test_a_knowledge_base_ingested_before_languages_were_detected_still_tells_its_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = german_folder(tmp_path / "docs")
    with KnowledgeBase.open(tmp_path / "kb", **AS_ENGLISH_MODEL) as kb:
        kb.ingest([str(folder)])
        with kb.catalog.transaction() as db:  # as an older kb left it: no language in any document's metadata
            db.execute("UPDATE documents SET metadata = json_remove(metadata, '$.language')")
    got = cli(["status", "--json"], tmp_path / "kb", monkeypatch)
    assert got.exit_code == 0, got.output
    status = json.loads(got.output)
    assert status["languages"] == {} and status["language_warning"] is None
    shown = cli(["status"], tmp_path / "kb", monkeypatch)
    assert shown.exit_code == 0 and "Languages" not in shown.output and "Warning" not in shown.output
    # Files added now are detected; with the old ones of no known language, they are no majority yet
    added = cli(["ingest", str(write(tmp_path / "more", "neu.md", [GERMAN[1]]))], tmp_path / "kb", monkeypatch)
    assert added.exit_code == 0 and "warning" not in added.stderr


def test_without_the_detector_an_ingest_goes_on_without_languages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from kb.ingest import language

    monkeypatch.setitem(sys.modules, "py3langid.langid", None)  # as if not installed: importing it fails
    language._identifier.cache_clear()
    try:
        with KnowledgeBase.open(tmp_path / "kb", **AS_ENGLISH_MODEL) as kb:
            report = kb.ingest([str(german_folder(tmp_path / "docs"))])
            assert len(report.added) == 5 and not report.failed and report.language_warning is None
            assert set(languages_of(kb).values()) == {None}
        assert "py3langid is not installed" in caplog.text
    finally:
        language._identifier.cache_clear()

"""An office's everyday files, as many as asked for: the "other kinds" a real folder holds beside the
documents a question set is about (`python -m benchmarks.mixed build DIR --office N`).

A fictional engineering firm, Harrow & Vale, writes memos, meeting notes, policies, budgets, sales
sheets, supplier lists, IT asset registers, slide decks, e-mails and intranet pages in Markdown, text,
DOCX, XLSX, CSV, PPTX, e-mail, HTML and PDF. Their words are the ones office files share with filings
and reports (revenue, gross margin, the quarter ended ..., foreign exchange, cash, risk, suppliers), and
they name well-known vendors in passing (laptops, cloud invoices, software licences), as real office
files do: what a search for a company's report must look past. Seeded, so every build writes the same
files; nothing here answers a question of the shared sets.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

from benchmarks.mixed import (
    Section,
    _stamp,
    markdown,
    write_csv,
    write_docx,
    write_eml,
    write_pdf,
    write_pptx,
    write_xlsx,
)

FIRM = "Harrow & Vale"
DEPARTMENTS = ["Finance", "Sales", "Operations", "IT", "People", "Facilities", "Engineering", "Procurement",
               "Legal", "Marketing", "Quality", "Health and Safety"]
PEOPLE = ["Amira Shah", "Ben Cole", "Chloe Martin", "Dev Patel", "Elena Rossi", "Femi Adeyemi", "Grace Liu",
          "Hugo Brandt", "Isla Murray", "Jonas Weber", "Kemi Ojo", "Liam Byrne", "Maya Green", "Noah Fischer"]
CLIENTS = ["Northgate Rail", "Coastline Water", "Pennine Energy", "Castlebrook Council", "Riverside Health Trust",
           "Ashford Ports", "Meridian Housing", "Kestrel Airports"]
# Vendors a firm names in passing: devices, cloud, software, couriers.
VENDORS = ["Apple MacBook Pro laptops", "Microsoft 365 E3 licences", "Amazon Web Services hosting", "Dell monitors",
           "Intel NUC meeting-room PCs", "NVIDIA RTX workstations for the modelling team", "Adobe Creative Cloud seats",
           "Zoom Rooms subscriptions", "Google Workspace archive accounts", "Cisco Meraki access points",
           "Salesforce CRM seats", "Oracle NetSuite finance licences", "DHL courier account", "Lenovo ThinkPads"]
PLACES = ["Leeds", "Bristol", "Manchester", "Glasgow", "Cardiff", "Newcastle", "Rotterdam", "Dublin"]
TOPICS = {
    "finance": ["revenue for the quarter ended {date} was {money}, {pct} above plan",
                "gross margin fell to {pct} because subcontractor costs rose on the {client} contract",
                "operating expenses were {money} for the month, mostly salaries and rent",
                "foreign exchange losses on the euro invoices for the {place} office came to {money}",
                "cash at the end of {month} was {money}; the overdraft facility was not used",
                "the board approved capital expenditure of {money} for {vendor}",
                "debtor days rose to {n}; {client} pays on 60-day terms",
                "the forecast for the fiscal year assumes revenue growth of {pct}"],
    "sales": ["the pipeline for {client} stands at {money} across {n} bids",
              "we won the {place} framework with {client}, worth {money} over three years",
              "net sales by region: the north grew {pct}, the south was flat",
              "pricing for the {client} renewal is held for twelve months",
              "customer satisfaction on the {client} account scored {n} out of 10"],
    "it": ["{vendor} were renewed on {date} at {money} a year",
           "the service desk closed {n} tickets in {month}; most were password resets",
           "backups run nightly; the restore test on {date} took {n} minutes",
           "multi-factor sign-in is required for the finance system from {date}",
           "replace {n} laptops this year with {vendor}"],
    "people": ["{person} joins the {dept} team on {date}",
               "the annual staff survey had a response rate of {pct}",
               "mentoring pairs for the graduate intake are {person} and {person2}",
               "training days this quarter: {n} booked, mostly site safety refreshers",
               "the cycle-to-work scheme reopens in {month}"],
    "operations": ["the {place} site visit for {client} is on {date}; hard hats and boots required",
                   "the pool car is booked through the front desk; mileage is logged weekly",
                   "site risk assessments for {client} must be signed before work starts",
                   "{n} drawings were issued for review on the {client} scheme",
                   "the {place} office lease renews on {date}; rent rises by {pct}"],
    "facilities": ["the heating in the {place} office is serviced on {date}",
                   "fire drills are held each {month}; assembly point is the car park",
                   "meeting rooms are booked in the calendar; {vendor} run the screens",
                   "cleaning contract with a local supplier costs {money} a month"],
    "procurement": ["three quotes are needed for any purchase over {money}",
                    "preferred suppliers are reviewed every {month}; {n} were added this year",
                    "purchase orders for {vendor} go through the finance system",
                    "the supplier code of conduct was updated on {date}"],
}
KINDS = ["md", "md", "md", "txt", "docx", "docx", "xlsx", "xlsx", "csv", "pptx", "eml", "eml", "html", "pdf"]


class _Writer:
    """One seeded source of sentences, tables and dates, so the same `n` gives the same files."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def when(self) -> datetime:
        return datetime(2022, 1, 1) + (datetime(2024, 12, 1) - datetime(2022, 1, 1)) * self.r.random()

    def sentence(self, template: str) -> str:
        r = self.r
        people = r.sample(PEOPLE, 2)
        when = self.when()
        text = template.format(
            date=when.strftime("%-d %B %Y"), month=when.strftime("%B"), money=f"£{r.randint(2, 900) * 1000:,}",
            pct=f"{r.randint(1, 40)}%", n=r.randint(2, 90), client=r.choice(CLIENTS), place=r.choice(PLACES),
            vendor=r.choice(VENDORS), person=people[0], person2=people[1], dept=r.choice(DEPARTMENTS))
        return text[0].upper() + text[1:] + "."

    def paragraphs(self, topic: str, n: int) -> list[str]:
        return [" ".join(map(self.sentence, self.r.sample(TOPICS[topic], self.r.randint(1, 3)))) for _ in range(n)]

    def sections(self, topic: str, title: str) -> list[Section]:
        heads = [f"{topic.title()} update", "Actions", "Risks", "Next steps", "Notes", "Decisions"]
        return [(title, self.paragraphs(topic, 1))] + [
            (h, self.paragraphs(topic, self.r.randint(1, 3))) for h in self.r.sample(heads, self.r.randint(2, 4))]

    def table(self, topic: str) -> list[list[object]]:
        r = self.r
        if topic in ("finance", "sales"):
            rows = ["Revenue", "Cost of sales", "Gross margin", "Operating expenses", "Foreign exchange loss",
                    "Net income", "Cash", "Capital expenditure"] if topic == "finance" else CLIENTS
            year = self.when().year
            head = ["Line", *(f"Q{q} {year}" for q in range(1, 5)), f"Total {year}"]
            body = [[name, *(q := [r.randint(5, 900) * 1000 for _ in range(4)]), sum(q)] for name in rows]
            return [head, *body]
        head = ["Item", "Owner", "Location", "Due", "Status", "Cost"]
        status = ["open", "done", "late", "on hold"]
        return [head, *([r.choice(VENDORS), r.choice(PEOPLE), r.choice(PLACES), self.when().strftime("%Y-%m-%d"),
                         r.choice(status), r.randint(1, 90) * 100] for _ in range(r.randint(5, 25)))]


def _html(title: str, sections: list[Section]) -> str:
    body = "".join(f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in ps) for h, ps in sections[1:])
    return (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>{sections[0][1][0]}</p>{body}</body></html>\n")


def build_office(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Write `n` files into `folder` (emptied first), spread over kinds, departments and topics."""
    if folder.exists():
        for p in sorted(folder.rglob("*"), reverse=True):
            p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
    w = _Writer(seed)
    written = []
    for i in range(n):
        topic, kind, dept = w.r.choice(sorted(TOPICS)), KINDS[i % len(KINDS)], w.r.choice(DEPARTMENTS)
        when = w.when()
        title = f"{FIRM} {dept}: {topic} {w.r.choice(['memo', 'notes', 'update', 'review', 'plan', 'summary'])}"
        path = folder / dept.lower().replace(" ", "-") / f"{topic}-{i:04d}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(kind, path, title, topic, w.sections(topic, title), when, w)
        _stamp(path, when)
        written.append(path)
    return written


def _write(kind: str, path: Path, title: str, topic: str, sections: list[Section], when: datetime, w: _Writer) -> None:
    paragraphs = [p for _, ps in sections for p in ps]
    if kind == "md":
        path.write_text(markdown(sections))
    elif kind == "txt":
        path.write_text("\n\n".join([title, *paragraphs]) + "\n")
    elif kind == "docx":
        write_docx(path, sections, when)
    elif kind == "xlsx":
        write_xlsx(path, {topic.title(): w.table(topic), "Notes": [[p] for p in sections[0][1]]}, when)
    elif kind == "csv":
        write_csv(path, w.table(topic))
    elif kind == "pptx":
        write_pptx(path, [(h, [p[:120] for p in ps]) for h, ps in sections], when)
    elif kind == "eml":
        write_eml(path, (f"{w.r.choice(PEOPLE)} <team@harrowvale.example>", "all@harrowvale.example", title, when,
                         "\n\n".join(paragraphs)))
    elif kind == "html":
        path.write_text(_html(title, sections))
    else:
        write_pdf(path, ["\n".join([title, *_wrap(sections[0][1][0])]),
                         *("\n".join([h, *_wrap(" ".join(ps))]) for h, ps in sections[1:])], when)


def _wrap(text: str, width: int = 90) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines

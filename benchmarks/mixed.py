"""A mixed folder as a user has one: the shared evaluation sets side by side plus an office's own files
(notes, mail, slides, sheets, PDFs), for the answers and retrieval benchmarks.

    python -m benchmarks.mixed build DIR [--own-only]   # DIR/<set> symlinks + DIR/own/ generated fresh
    python -m benchmarks.mixed ingest DIR --kb KB       # `kb ingest DIR --kb KB`

`build` links ../shared/eval's document folders into DIR (`sec-10q`, `financebench-dev`, `ntsb`, `nih`:
SEC filings, NTSB accident reports, NIH trial protocols) and writes DIR/own/: 27 files of a small
fictional design studio in Leeds, Fernhill Studio (staff handbook, travel and expense rules, a VPN
runbook, recipes, meeting notes, a project plan, a budget sheet, a clinical site visit note, mail,
slides, an intranet page), in Markdown, text, DOCX, PPTX, XLSX, CSV, e-mail, HTML and PDF. Everything
is written by this module, without randomness, so every build writes the same bytes; each file's
modification time and metadata carry its own date. The launch deck `own/beacon-launch-deck.pptx` names a date in
passing on its first slide ("General availability on 30 June 2024"); its own date (14 November 2023)
is on its last slide and in its properties only. `--own-only` writes own/ alone (tests).

Question sets (one JSON object per line: question, answer or unanswerable, sources, pages, split):
`benchmarks/mixed_answerable.jsonl` (controls from sec-10q, financebench-dev, ntsb/nih and own/) and
`benchmarks/mixed_unanswerable.jsonl` (nothing in the folder answers them). Splits: an answerable
question is in "tune" when the md5 of its first source glob is even, else "validate", so all questions
of one document share a half; an unanswerable one by the md5 parity of its topic group (the `group`
key), so near-duplicates share a half. Decide on tune, report validate.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = Path(os.environ.get("KB_EVAL_DIR", ROOT.parent / "shared" / "eval"))  # as tests/conftest.py finds it
# name in DIR -> the shared folder it links to
SHARED = {"sec-10q": "sec-10q/docs", "financebench-dev": "financebench-dev/docs", "ntsb": "ntsb", "nih": "nih"}

Section = tuple[str, list[str]]  # a heading and its paragraphs ("- " starts a list item)
Table = Sequence[Sequence[object]]


def split_of(key: str) -> str:
    """The half a document (or topic group) belongs to: md5 parity, stable across runs and machines."""
    return "tune" if int(hashlib.md5(key.encode()).hexdigest(), 16) % 2 == 0 else "validate"


# ----------------------------------------------------------------------------------------------------
# Content: the office's own files. Facts here are what mixed_answerable.jsonl asks about; what the
# office does not write down (parental leave, passwords, a Beacon 3.0...) is what mixed_unanswerable asks.

HANDBOOK: list[Section] = [
    ("About this handbook", [
        "These are excerpts from the Fernhill Studio staff handbook, version 3.2, in force from 1 January 2024. "
        "Questions about it go to Joanna Reid, Operations Manager."]),
    ("Working hours", [
        "The standard working week is 37.5 hours. Core hours are 10:00 to 16:00, Monday to Friday; outside "
        "core hours you may start and finish when it suits you and your team.",
        "Staff may work from home up to three days a week once they have agreed the pattern with their line manager."]),
    ("Annual leave", [
        "Full-time staff receive 25 days of annual leave a year, plus the eight bank holidays of England. "
        "Part-time staff receive the same entitlement pro rata.",
        "The holiday year runs from January to December. Up to five unused days may be carried over into the "
        "next holiday year; carried-over days must be taken by 31 March or they are lost.",
        "Book leave in the HR portal at least two weeks ahead for any absence longer than three days."]),
    ("Sickness absence", [
        "If you are too ill to work, tell your line manager by 09:30 on the first day of absence.",
        "You may self-certify up to seven calendar days of sickness. From the eighth day a fit note from a doctor is required.",
        "Company sick pay is full pay for up to ten working days in any rolling twelve-month period; after that, statutory sick pay applies."]),
    ("Bereavement leave", [
        "Employees may take up to five days of paid bereavement leave on the death of a close family member, "
        "and one day to attend the funeral of another relative or a friend."]),
    ("Jury service", [
        "If you are called for jury service, Fernhill Studio pays your normal salary for up to ten working days. "
        "Please give HR a copy of the summons as soon as you receive it."]),
]

TRAVEL = [
    ("Travel policy", [
        "This policy covers journeys made on Fernhill Studio business. Book all travel through the TravelDesk "
        "portal at least 14 days before departure whenever possible."]),
    ("Rail", [
        "Rail travel is in standard class. First class is allowed only when it costs no more than the standard "
        "fare, or for journeys longer than four hours with the approval of a director."]),
    ("Air", [
        "Flights are booked in economy. Premium economy may be booked for flights longer than seven hours, "
        "with the written approval of a director.",
        "Checked baggage is reimbursed when the trip lasts more than two nights."]),
    ("Hotels", [
        "The nightly hotel limit is £140 in London and £100 elsewhere in the United Kingdom, including breakfast."]),
]

EXPENSES = [
    "Fernhill Studio - Expenses policy\nVersion 2.1, effective 1 February 2024\n\n"
    "1. Claims\nSubmit expense claims in ClaimIt within 30 days of spending the money.\n"
    "A receipt is required for every item over £10.\nYour line manager approves claims each Friday.\n"
    "Approved claims are paid with the next payroll run, on the 25th of the month.\n\n"
    "2. Meals\nThe meal allowance is £25 a day in the United Kingdom and £40 a day abroad.\n"
    "Alcohol is not reimbursed.",
    "3. Mileage\nBusiness mileage in your own car is paid at 45p per mile for the first 10,000 miles in a tax year\n"
    "and 25p per mile after that. Commuting to the Leeds office is not business mileage.\n\n"
    "4. Client entertainment\nClient entertainment needs the approval of a director before the event.\n"
    "Keep the names of the guests with the receipt.",
]

VPN_RUNBOOK = """# VPN runbook

Owner: IT, Dan Okafor. Last reviewed 5 February 2024.

## What we run

Remote access to the studio network uses WireGuard. The gateway is `vpn.fernhill.example` on UDP port 51820.
Split tunnelling is disabled: all traffic goes through the studio while connected.

## Giving someone access

1. The line manager raises a ticket in the HelpDesk queue NET.
2. IT generates a key pair on the gateway and sends the client configuration by the secure file drop.
3. The user imports the configuration into the WireGuard app and connects once while IT watches the handshake.

Client keys are rotated every 90 days. The gateway reminds IT a week before a key expires.

## When the tunnel does not come up

- No handshake: check that the laptop clock is correct, then re-import the configuration.
- Handshake but no traffic: the DNS setting in the configuration must be 10.20.0.53.
- Still down after 30 minutes: call the IT on-call phone, 0113 496 0720.
"""

PRINTER = """Office printer guide

The studio printer is a Brother MFC-L8900CDW called PRN-02, on the second floor next to the kitchen.

Scanning: press Scan, choose "to E-mail", pick your name from the address book, press Start. Scans arrive as PDF.

Toner: spare cartridges are in cupboard B in the store room. Tell Joanna when you take the last one.

Paper jam: open the front cover, pull the drum unit out gently, remove the paper, then push the unit back until it clicks.
"""

CHECKLIST = """# New starter checklist

For the line manager and the new starter, first month.

## Before day one
- Order the laptop (standard kit: MacBook Air 13-inch with 16 GB memory) at least ten days ahead.
- Ask Joanna to add the starter to payroll and the HR portal.
- Choose a buddy from another team.

## Day one
- Building tour, fire assembly point and kitchen rota.
- Collect the laptop and the door fob from reception.
- Lunch with the buddy, paid by the studio.

## First month
- Shadow a client project in the first week.
- Read the staff handbook and the expenses policy.
- Thirty-day check-in with the line manager; the probation review form is sent by HR afterwards.
"""

SOUP = """# Red lentil soup (office kitchen, Friday lunch)

From Maria's kitchen rota. Serves 6.

## Ingredients
- 250 g red lentils, rinsed
- 1 large onion and 2 carrots, chopped
- 2 cloves of garlic
- 1 teaspoon ground cumin
- 1.2 litres vegetable stock
- juice of half a lemon

## Method
1. Soften the onion, carrot and garlic in a little oil for eight minutes.
2. Stir in the cumin, then add the lentils and the stock.
3. Simmer for 25 minutes until the lentils fall apart, then blend until smooth and add the lemon juice.

Leftovers freeze well for up to three months.
"""

FLAPJACKS = """Flapjacks for the charity bake sale

Makes 12 squares.

200 g rolled oats
125 g butter
100 g golden syrup
75 g light brown sugar

Melt the butter, syrup and sugar in a pan, stir in the oats and press into a 20 cm square tin.
Bake at 180 C (160 C fan) for 20 minutes, until golden at the edges.
Cut into squares while warm but leave in the tin until cold.
"""

NOTES_MARCH = """# Weekly operations meeting, 12 March 2024

Attendees: Joanna Reid (chair), Dan Okafor, Priya Nair, Tom Hughes, Maria Santos.

## Decisions
- The studio moves from the second floor to the third floor on 15 April 2024; the second floor is handed back to the landlord.
- A new coffee machine is approved, budget £1,150, from the office line.
- Beacon beta: 42 testers so far; Priya will share the feedback summary next week.

## Actions
- Dan: move the network cabinet and test the VPN gateway after the move.
- Tom: book the removal company for Sunday 14 April.
- Maria: update the kitchen rota for the new floor.
"""

NOTES_APRIL = """# Weekly operations meeting, 9 April 2024

Attendees: Joanna Reid (chair), Dan Okafor, Priya Nair, Sam Patel.

## Decisions
- Backups move to Keepsafe Cloud by the end of May; the old tape drive is retired.
- The kitchen gets a deep clean every Friday afternoon from now on.
- The all-hands meeting is on 2 May 2024 at 15:00 in the big meeting room.

## Actions
- Dan: sign the Keepsafe order and copy the March archive first.
- Sam: draft the data-retention section for the Atlas plan.
"""

BOARD = [
    ("Board meeting minutes, 28 March 2024", [
        "Present: Helen Marsh (chair), Richard Cole, Joanna Reid (secretary). Apologies: none."]),
    ("1. Results of the first quarter", [
        "The board noted first-quarter revenue ahead of target and the strong Beacon beta."]),
    ("2. Hiring", [
        "The board approved the hiring of two data engineers in the second quarter, within the approved budget."]),
    ("3. Office", [
        "The board approved the move to the third floor and noted that the lease break date of 1 April 2025 "
        "will be reviewed at the September meeting."]),
    ("4. Next meeting", ["The next board meeting is on 26 June 2024."]),
]

ATLAS = [
    ("Project Atlas: project plan", [
        "Project Atlas moves our client records from spreadsheets into a customer relationship management "
        "system, so that sales and delivery work from the same data."]),
    ("Team and budget", [
        "Project lead: Priya Nair. Sponsor: Helen Marsh. Budget: £84,000, of which £30,000 is for licences "
        "in the first year."]),
    ("Milestones", [
        "- Discovery and requirements: April 2024",
        "- Data cleansing: May and June 2024",
        "- Migration and user training: July 2024",
        "- Go-live: 2 September 2024"]),
    ("Risks", [
        "The main risk is duplicate client records; the data-cleansing phase removes them before migration. "
        "A second risk is staff time in July, the busiest month for client work."]),
]

BUDGET_HEAD = ["Department", "Q1", "Q2", "Q3", "Q4", "Total 2024"]
BUDGET_ROWS: dict[str, tuple[int, int, int, int]] = {
    "Marketing": (30000, 30000, 30000, 30000), "IT": (28000, 21500, 23000, 23000), "Travel": (8000, 12000, 10000, 8000),
    "Training": (6000, 5750, 5500, 5500), "Office": (16000, 16000, 16000, 16000),
    "Salaries": (215000, 235000, 235000, 235000)}

HEADCOUNT: Table = [["Team", "Lead", "Headcount", "Location"], ["Design", "Maria Santos", 6, "Leeds"],
             ["Data", "Priya Nair", 5, "Leeds"], ["Sales", "Tom Hughes", 4, "Manchester"],
             ["Operations", "Joanna Reid", 3, "Leeds"]]

SUPPLIERS: Table = [["Supplier", "Service", "Contact", "Phone", "Contract ends"],
             ["Harrow & Vale Office Supplies", "Stationery and toner", "Lena Brooks", "0113 496 0311", "2025-01-31"],
             ["Keepsafe Cloud", "Off-site backup", "Arjun Mehta", "0161 496 0822", "2026-05-31"],
             ["Brightclean", "Office cleaning", "Paula Grant", "0113 496 0455", "2024-12-31"],
             ["Canalside Properties", "Landlord", "Owen Price", "0113 496 0102", "2027-03-31"]]

TRAINING: Table = [["Employee", "Course", "Date", "Hours", "Cost (GBP)"],
            ["Aisha Khan", "Mental health first aid", "2024-01-18", 14, 300],
            ["Tom Hughes", "Mental health first aid", "2024-01-18", 14, 300],
            ["Sam Patel", "Cloud data engineering", "2024-02-20", 21, 1250],
            ["Maria Santos", "Accessible design", "2024-03-07", 7, 420],
            ["Dan Okafor", "Network security fundamentals", "2024-03-21", 14, 890]]

LAUNCH_DECK = [
    ("Beacon 2.0: partner briefing", ["Dashboards your clients can share. General availability on 30 June 2024."]),
    ("What is new", ["Offline mode for field teams", "Export any dashboard to PDF", "Twelve new chart types"]),
    ("Pricing", ["Starter: £19 per user per month", "Team: £49 per user per month, with single sign-on"]),
    ("For partners", ["Partners receive a 20% margin on every licence they resell.", "Demo accounts: ask Tom Hughes."]),
    ("Thank you", ["Prepared by Fernhill Product Marketing for the partner summit, 14 November 2023."]),
]

SALES_DECK = [
    ("Sales review: first quarter 2024", ["Presented by Tom Hughes, 8 April 2024"]),
    ("Results", ["Revenue £412,000 against a target of £400,000", "Seven new clients, two clients lost"]),
    ("Regions", ["Yorkshire was the strongest region with £198,000 of revenue", "The North West grew 12% on the last quarter"]),
    ("Pipeline", ["Qualified pipeline of £1.1 million for the second quarter", "Largest deal: the Calder Health dashboard renewal"]),
]

OFFSITE_MAIL = ("Tom Hughes <tom.hughes@fernhill.example>", "all@fernhill.example", "Summer offsite at Windermere, 18 May",
                datetime(2024, 4, 22, 10, 5), """Hi all,

Our summer offsite is on Saturday 18 May 2024 at Lake Windermere.

The coach leaves the Canal Street office at 08:00 and is back in Leeds by 19:30. There is a boat trip in the
morning and a workshop on the Beacon roadmap after lunch.

Please reply by 3 May if you are coming, and tell me about any dietary requirements.

Thanks,
Tom
""")

MAINTENANCE_MAIL = ("Dan Okafor <dan.okafor@fernhill.example>", "all@fernhill.example",
                    "Planned maintenance: file server FS01 on Saturday 22 June", datetime(2024, 6, 14, 16, 40), """Hello everyone,

The file server FS01 will be offline on Saturday 22 June 2024 from 06:00 to 10:00 for a firmware upgrade.
Save anything you need that weekend to your laptop before you leave on Friday.

The VPN stays up during the work; only the shared drives are affected.

Dan (IT)
""")

OFFICE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fernhill Studio intranet: the office</title></head>
<body>
<h1>The office</h1>
<p>Fernhill Studio, 14 Canal Street, Leeds LS1 4AB. Reception: 0113 496 0100.</p>
<h2>Opening hours</h2>
<p>The building is open from 07:30 to 19:00, Monday to Friday. Weekend access needs a request to Joanna Reid by Thursday.</p>
<h2>Parking and bikes</h2>
<p>There are six parking spaces behind the building; book them at reception the day before. The bike store is
by the side door and takes twelve bikes.</p>
<h2>Kitchen</h2>
<p>Label your food in the fridge with your name and the date. The fridge is emptied every Friday at 16:00.</p>
</body></html>
"""

NEWSLETTER = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fernhill News, May 2024</title></head>
<body>
<h1>Fernhill News, May 2024</h1>
<h2>Five-a-side champions</h2>
<p>Our five-a-side football team won the Leeds Business League final 4-2 against Aire Valley Logistics.
Sam Patel scored twice.</p>
<h2>Bake-off</h2>
<p>The spring bake-off raised £260 for Leeds Food Bank. Aisha Khan's lemon drizzle cake won.</p>
<h2>Welcome</h2>
<p>Welcome to Sam Patel, who joined the Data team as a data engineer on 15 April.</p>
</body></html>
"""

SITE_VISIT = [
    "Calder Health - Clinical research\nMONITORING VISIT REPORT\n\n"
    "Study: CH-SKIN-02, comparison of two emollient regimens in adults with moderate eczema\n"
    "Site: 014, Riverside Dermatology Clinic, Wakefield\nPrincipal investigator: Dr Anil Rao\n"
    "Monitor: Grace Lin\nVisit date: 11 March 2024\nVisit type: interim monitoring visit\n\n"
    "Recruitment\nSubjects screened: 15. Subjects enrolled: 12. Screen failures: 3. Withdrawn: 1 (moved away).\n\n"
    "Informed consent\nConsent forms were reviewed for all 12 enrolled subjects; all were signed and dated\n"
    "before any study procedure.",
    "Protocol deviations\n1. Subject 014-007 attended week 4 visit three days outside the visit window.\n"
    "2. Study product fridge temperature excursion to 9.1 C for 40 minutes on 2 March 2024;\n"
    "   the product was quarantined and later released by the sponsor.\n\n"
    "Source data verification\nSource data were verified for 10 of 12 subjects; no discrepancies were found.\n\n"
    "Follow-up\nThe site will retrain staff on visit scheduling.\nNext monitoring visit: 10 June 2024.",
]

INVOICE = [
    "Harrow & Vale Office Supplies\n21 Kirkgate, Leeds LS2 7DJ\n\nINVOICE\n"
    "Invoice number: HV-0457\nInvoice date: 2 April 2024\nCustomer: Fernhill Studio, 14 Canal Street, Leeds\n\n"
    "Item                               Qty    Unit price    Amount\n"
    "A4 paper, box of 5 reams             4        £22.50      £90.00\n"
    "Toner cartridge TN-910 black         3        £64.00     £192.00\n"
    "Toner cartridge TN-910 colour        2        £58.25     £116.50\n\n"
    "Subtotal                                                 £398.50\n"
    "VAT at 20%                                                £79.70\n"
    "Total due                                                £478.20\n\n"
    "Payment due within 30 days, by 2 May 2024. Bank transfer to sort code 40-11-62.",
]

LEASE = """# Office lease: summary

Landlord: Canalside Properties. Premises: second and third floors, 14 Canal Street, Leeds (the second floor was
handed back in April 2024 under a side letter).

- Term: five years, from 1 April 2022 to 31 March 2027.
- Rent: £58,000 a year, paid quarterly in advance.
- Service charge: £7,200 a year.
- Break clause: the tenant may end the lease on 1 April 2025 by giving six months' written notice.
- Repairs: the landlord repairs the structure and the roof; the tenant keeps the interior in good order.
"""

WELLBEING = """Wellbeing at Fernhill

Employee assistance programme: free and confidential advice 24 hours a day on 0800 555 0199.
Mental health first aiders: Aisha Khan and Tom Hughes.
Gym: staff get 20% off membership at FitLeeds on Wellington Street.
Cycle to work: buy a bike and equipment up to £1,500 through salary sacrifice.
Eye tests: the studio pays for an eye test every two years for staff who use screens.
"""

FIRE = """Fire safety

Fire drills take place twice a year, in March and September.
Fire wardens: Maria Santos (third floor) and Dan Okafor (ground floor).
When the alarm sounds, leave by the nearest stairs; do not use the lift.
The assembly point is the car park opposite the building, by the canal bridge.
Fire extinguishers are checked every year by Northern Fire Services.
"""


# ----------------------------------------------------------------------------------------------------
# Writers, one per format.

def _stamp(path: Path, when: datetime) -> None:
    """The file's modification time is its own date, as on a real disk."""
    t = when.replace(tzinfo=timezone.utc).timestamp()
    os.utime(path, (t, t))


def _settle_zip(path: Path, when: datetime) -> None:
    """Office files are zips: give every entry the document's date and set its `modified` property to it
    (openpyxl stamps the time of saving), so that a rebuild writes the same bytes and no build-time date leaks."""
    with zipfile.ZipFile(path) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()]
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            z.writestr(zipfile.ZipInfo(name, date_time=when.timetuple()[:6]), data, zipfile.ZIP_DEFLATED)


def write_docx(path: Path, sections: list[Section], when: datetime) -> None:
    import docx  # optional heavy format libraries: only `build` needs them

    d = docx.Document()
    d.core_properties.created = d.core_properties.modified = when
    d.core_properties.author = "Fernhill Studio"
    for i, (heading, paras) in enumerate(sections):
        d.add_heading(heading, level=0 if i == 0 else 1)
        for p in paras:
            if p.startswith("- "):
                d.add_paragraph(p[2:], style="List Bullet")
            else:
                d.add_paragraph(p)
    d.save(str(path))
    _settle_zip(path, when)


def write_pptx(path: Path, slides: list[Section], when: datetime) -> None:
    from pptx import Presentation  # optional heavy format library

    deck = Presentation()
    deck.core_properties.created = deck.core_properties.modified = when
    deck.core_properties.author = "Fernhill Studio"
    for i, (title, bullets) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[0 if i == 0 else 1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = "\n".join(bullets)
    deck.save(str(path))
    _settle_zip(path, when)


def write_xlsx(path: Path, sheets: dict[str, Table], when: datetime) -> None:
    import openpyxl  # optional heavy format library

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    wb.properties.created = wb.properties.modified = when
    wb.properties.creator = "Fernhill Studio"
    for name, table in sheets.items():
        ws = wb.create_sheet(name)
        for row in table:
            ws.append(list(row))
    wb.save(str(path))
    _settle_zip(path, when)


def write_pdf(path: Path, pages: list[str], when: datetime) -> None:
    """One text per page, as tests/helpers.py writes PDFs (reportlab), dated `when` in its metadata."""
    from reportlab.lib.pagesizes import A4  # optional heavy library
    from reportlab.pdfgen import canvas

    # reportlab's reproducible-build switch: the creation date is `when`, not the time of the build
    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(when.replace(tzinfo=timezone.utc).timestamp()))
    try:
        c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    finally:
        if before is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = before
    c.setAuthor("Fernhill Studio")
    c.setTitle(pages[0].split("\n", 1)[0])
    for text in pages:
        y = 780
        for line in text.split("\n"):
            c.drawString(60, y, line)
            y -= 16
        c.showPage()
    c.save()


def write_eml(path: Path, mail: tuple[str, str, str, datetime, str]) -> None:
    sender, to, subject, when, body = mail
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Date"] = format_datetime(when.replace(tzinfo=timezone.utc))
    m["Message-ID"] = f"<{hashlib.md5(subject.encode()).hexdigest()}@fernhill.example>"
    m.set_content(body)
    path.write_bytes(bytes(m))


def write_csv(path: Path, table: Table) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)


def markdown(sections: list[Section]) -> str:
    out = []
    for i, (heading, paras) in enumerate(sections):
        out.append(("# " if i == 0 else "## ") + heading)
        out.extend(paras)
    return "\n\n".join(out) + "\n"


def _budget() -> list[list[object]]:
    rows: list[list[object]] = [list(BUDGET_HEAD)]
    for name, q in BUDGET_ROWS.items():
        rows.append([name, *q, sum(q)])
    totals = [sum(q[i] for q in BUDGET_ROWS.values()) for i in range(4)]
    rows.append(["Total", *totals, sum(totals)])
    return rows


# file name -> (writer, date). The writers close over the content above.
OWN: dict[str, tuple[Callable[[Path], object], datetime]] = {
    "hr-handbook.docx": (lambda p: write_docx(p, HANDBOOK, datetime(2023, 12, 18)), datetime(2023, 12, 18)),
    "travel-policy.md": (lambda p: p.write_text(markdown(TRAVEL)), datetime(2024, 1, 10)),
    "expenses-policy.pdf": (lambda p: write_pdf(p, EXPENSES, datetime(2024, 1, 29)), datetime(2024, 1, 29)),
    "it/vpn-runbook.md": (lambda p: p.write_text(VPN_RUNBOOK), datetime(2024, 2, 5)),
    "it/printer-guide.txt": (lambda p: p.write_text(PRINTER), datetime(2023, 9, 4)),
    "it/fs01-maintenance.eml": (lambda p: write_eml(p, MAINTENANCE_MAIL), datetime(2024, 6, 14)),
    "new-starter-checklist.md": (lambda p: p.write_text(CHECKLIST), datetime(2023, 10, 2)),
    "kitchen/red-lentil-soup.md": (lambda p: p.write_text(SOUP), datetime(2023, 11, 3)),
    "kitchen/flapjacks.txt": (lambda p: p.write_text(FLAPJACKS), datetime(2024, 2, 26)),
    "meetings/2024-03-12-ops.md": (lambda p: p.write_text(NOTES_MARCH), datetime(2024, 3, 12)),
    "meetings/2024-04-09-ops.md": (lambda p: p.write_text(NOTES_APRIL), datetime(2024, 4, 9)),
    "meetings/board-minutes-2024-03-28.docx": (lambda p: write_docx(p, BOARD, datetime(2024, 3, 29)),
                                               datetime(2024, 3, 29)),
    "projects/atlas-project-plan.docx": (lambda p: write_docx(p, ATLAS, datetime(2024, 3, 20)), datetime(2024, 3, 20)),
    "finance/budget-2024.xlsx": (lambda p: write_xlsx(p, {"Budget 2024": _budget(), "Assumptions": [
        ["Assumption", "Value"], ["Pay rise from April", "3%"], ["Headcount at year end", 20]]},
        datetime(2023, 12, 5)), datetime(2023, 12, 5)),
    "finance/invoice-HV-0457.pdf": (lambda p: write_pdf(p, INVOICE, datetime(2024, 4, 2)), datetime(2024, 4, 2)),
    "finance/office-lease-summary.md": (lambda p: p.write_text(LEASE), datetime(2024, 4, 30)),
    "people/headcount.csv": (lambda p: write_csv(p, HEADCOUNT), datetime(2024, 4, 1)),
    "people/training-log.xlsx": (lambda p: write_xlsx(p, {"Training 2024": TRAINING}, datetime(2024, 3, 22)),
                                 datetime(2024, 3, 22)),
    "people/wellbeing.txt": (lambda p: p.write_text(WELLBEING), datetime(2023, 8, 14)),
    "people/offsite-invite.eml": (lambda p: write_eml(p, OFFSITE_MAIL), datetime(2024, 4, 22)),
    "suppliers.csv": (lambda p: write_csv(p, SUPPLIERS), datetime(2024, 5, 7)),
    "slides/beacon-launch-deck.pptx": (lambda p: write_pptx(p, LAUNCH_DECK, datetime(2023, 11, 14)),
                                       datetime(2023, 11, 14)),
    "slides/sales-review-q1-2024.pptx": (lambda p: write_pptx(p, SALES_DECK, datetime(2024, 4, 8)),
                                         datetime(2024, 4, 8)),
    "intranet/office.html": (lambda p: p.write_text(OFFICE_PAGE), datetime(2024, 4, 16)),
    "intranet/newsletter-2024-05.html": (lambda p: p.write_text(NEWSLETTER), datetime(2024, 5, 31)),
    "clinical/site-visit-014-2024-03-11.pdf": (lambda p: write_pdf(p, SITE_VISIT, datetime(2024, 3, 13)), datetime(2024, 3, 13)),
    "fire-safety.txt": (lambda p: p.write_text(FIRE), datetime(2023, 9, 18)),
}


def build_own(own: Path) -> list[Path]:
    """Write the office's files into `own` (emptied first, so a build never keeps a stale file)."""
    if own.exists():
        for p in sorted(own.rglob("*"), reverse=True):
            p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
    written = []
    for name, (write, when) in OWN.items():
        path = own / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        _stamp(path, when)
        written.append(path)
    return written


def build(folder: Path, *, own_only: bool = False, sets: Sequence[str] = tuple(SHARED), office: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if not own_only:
        for name in sets:
            rel = SHARED[name]
            target, link = EVAL / rel, folder / name
            if not target.is_dir():
                raise SystemExit(f"error: {target} is missing: the shared evaluation documents are needed (see ../shared/eval)")
            if link.exists() and not link.is_symlink():
                raise SystemExit(f"error: {link} exists and is not a link: build into a new folder")
            if link.is_symlink():
                link.unlink()
            link.symlink_to(target.resolve(), target_is_directory=True)
    written = build_own(folder / "own")
    if office:
        from benchmarks.office import build_office

        written += build_office(folder / "office", office)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mixed", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="make DIR: symlinks to the shared sets plus own/ generated fresh")
    b.add_argument("dir", type=Path)
    b.add_argument("--own-only", action="store_true", help="write DIR/own/ only, no symlinks")
    b.add_argument("--sets", default=",".join(SHARED), help=f"shared sets to link (default: {','.join(SHARED)})")
    b.add_argument("--office", type=int, default=0, metavar="N",
                   help="also write DIR/office/: N everyday files of another firm (benchmarks/office.py)")
    i = sub.add_parser("ingest", help="kb ingest DIR --kb KB")
    i.add_argument("dir", type=Path)
    i.add_argument("--kb", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        sets = [name for name in args.sets.split(",") if name]
        unknown = sorted(set(sets) - set(SHARED))
        if unknown:
            print(f"error: --sets: no shared set named {', '.join(unknown)} (choose from {', '.join(SHARED)})", file=sys.stderr)
            return 2
        files = build(args.dir, own_only=args.own_only, sets=sets, office=args.office)
        links = "" if args.own_only else f"{len(sets)} shared folders linked, "
        print(f"{args.dir}: {links}{len(files)} files written (own/{', office/' if args.office else ''})")
        return 0
    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a folder: run `python -m benchmarks.mixed build {args.dir}` first", file=sys.stderr)
        return 2
    # the `kb` command as a user runs it, from this interpreter (so PYTHONPATH picks the tree under test)
    return subprocess.call([sys.executable, "-c", "from kb.cli import main; main()", "ingest", str(args.dir),
                            "--kb", str(args.kb)])


if __name__ == "__main__":
    sys.exit(main())

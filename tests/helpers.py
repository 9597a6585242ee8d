"""Real test documents made on the fly: Markdown, Word and PDF files with known content."""

from __future__ import annotations

import socket
from pathlib import Path

RUNBOOK = """---
title: Payments runbook
owner: sre-team
---

# Payments runbook

Intro paragraph about the payments service.

## Incident response

When the payment gateway returns error 5031, page the on-call engineer and fail over to the
secondary region named quokka-west.

```bash
kubectl rollout restart deployment/payments
kubectl get pods -l app=payments
```

## Capacity

| Region | Peak TPS | Headroom |
|--------|----------|----------|
| east   | 1200     | 30%      |
| west   | 800      | 45%      |
"""


def write_markdown(path: Path, text: str = RUNBOOK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_docx(path: Path) -> Path:
    """A handbook with a title, two heading levels, a list and a table."""
    import docx

    path.parent.mkdir(parents=True, exist_ok=True)
    d = docx.Document()
    d.core_properties.title = "Employee handbook"
    d.add_heading("Employee handbook", level=1)
    d.add_paragraph("Welcome to the company.")
    d.add_heading("Travel policy", level=2)
    d.add_paragraph("Economy class is required for flights shorter than six hours.")
    d.add_paragraph("Book through the portal", style="List Bullet")
    d.add_paragraph("Keep every receipt", style="List Bullet")
    d.add_heading("Expense limits", level=2)
    table = d.add_table(rows=3, cols=2)
    for row, (a, b) in zip(table.rows, [("Item", "Limit"), ("Hotel night", "$240"), ("Dinner", "$75")]):
        row.cells[0].text, row.cells[1].text = a, b
    d.add_paragraph("Limits are reviewed every April.")
    d.save(str(path))
    return path


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF (reportlab) with one given text per page."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=letter)
    for text in pages:
        y = 720
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers the tests start, or to point a probe at)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""Read speed of the tabular formats, in rows per second: kb's parser alone (no chunking or embedding).

    python -m benchmarks.sheets [--rows 50000] [--repeat 1] [--json]

Builds one sheet of `--rows` data rows (six columns: text, integer, formatted number, decimal, date,
free text) in each tabular format, then times the parser of its type on it (best of `--repeat`).
.csv/.tsv with the csv module, .xlsx with openpyxl, .ods as LibreOffice writes it (content.xml with
displayed text and office:value, empty padding rows repeated to the sheet's end), .xls with xlwt where
installed, else LibreOffice's conversion of the .xlsx where it is installed, else skipped with the
reason. Prints the CPU; writes benchmarks/results/sheets.json.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine, save

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["Region", "Units", "Revenue", "Rate", "Date", "Note"]
REGIONS = ("West", "East", "North", "South", "Quokka Bay", "Central")


def rows(n: int) -> list[list[Any]]:
    start = date(2024, 1, 1)
    return [[REGIONS[i % len(REGIONS)], i, 1000.0 + i * 3.25, (i % 97) / 100, start + timedelta(days=i % 3650),
             f"order {i} shipped by ferry {i % 13}"] for i in range(n)]


def write_csv(path: Path, data: list[list[Any]], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(HEADER)
        writer.writerows([[r[0], r[1], f"{r[2]:,.2f}", r[3], r[4].isoformat(), r[5]] for r in data])


def write_xlsx(path: Path, data: list[list[Any]]) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    sheet.append(HEADER)
    for r in data:
        sheet.append(r)
    book.save(str(path))


def write_xls(path: Path, data: list[list[Any]], xlsx: Path) -> str | None:
    """An .xls, or the reason there is none."""
    try:
        import xlwt  # type: ignore[import-not-found]
    except ImportError:
        soffice = shutil.which("soffice") or shutil.which("libreoffice")
        if soffice is None:
            return "neither xlwt nor LibreOffice installed"
        with tempfile.TemporaryDirectory(prefix="kb-bench-") as profile:
            subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "xls",
                            "--outdir", str(path.parent), str(xlsx)], check=True, capture_output=True, timeout=600)
        return None if path.is_file() else "LibreOffice did not convert the .xlsx"
    book = xlwt.Workbook()
    sheet = book.add_sheet("Data")
    dated = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for c, name in enumerate(HEADER):
        sheet.write(0, c, name)
    for i, r in enumerate(data, 1):
        for c, value in enumerate(r):
            sheet.write(i, c, value, dated) if c == 4 else sheet.write(i, c, value)
    book.save(str(path))
    return None


def write_ods(path: Path, data: list[list[Any]]) -> None:
    """content.xml as LibreOffice writes it: typed cells with displayed text, padding rows repeated."""

    def cell(value: Any) -> str:
        if isinstance(value, str):
            return (f'<table:table-cell office:value-type="string" calcext:value-type="string"><text:p>{value}'
                    "</text:p></table:table-cell>")
        if isinstance(value, date):
            return (f'<table:table-cell table:style-name="ce2" office:value-type="date" '
                    f'office:date-value="{value.isoformat()}" calcext:value-type="date">'
                    f"<text:p>{value:%m/%d/%y}</text:p></table:table-cell>")
        return (f'<table:table-cell table:style-name="ce1" office:value-type="float" office:value="{value}" '
                f'calcext:value-type="float"><text:p>{value:,}</text:p></table:table-cell>')

    row = '<table:table-row table:style-name="ro1">'
    body = [row + "".join(cell(v) for v in HEADER) + "</table:table-row>"]
    body += [row + "".join(cell(v) for v in r) + "</table:table-row>" for r in data]
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
               'xmlns:calcext="urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0" '
               'office:version="1.2">'
               '<office:body><office:spreadsheet><table:table table:name="Data">'
               '<table:table-column table:number-columns-repeated="6"/>' + "".join(body)
               + f'<table:table-row table:number-rows-repeated="{1_048_576 - len(data) - 1}">'
               '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
               "</table:table></office:spreadsheet></office:body></office:document-content>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
                   'xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type='
                   '"application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path='
                   '"content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
        z.writestr("content.xml", content)


def time_parse(path: Path, repeat: int) -> tuple[float, int]:
    from kb.ingest.base import parser_for

    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        doc = parser_for(path).parse(path)
        best = min(best, time.perf_counter() - start)
        count = doc.pages or 0
    return best, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50_000, help="data rows per sheet (the parser keeps at most 200,000)")
    ap.add_argument("--repeat", type=int, default=1, help="timings per format; the best is kept")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    data = rows(args.rows)
    results: dict[str, Any] = {"machine": _machine(), "rows": args.rows, "formats": {}}
    with tempfile.TemporaryDirectory(prefix="kb-sheets-") as tmp:
        folder = Path(tmp)
        xlsx = folder / "sheet.xlsx"
        writers: dict[str, Callable[[Path], str | None]] = {
            "csv": lambda p: write_csv(p, data),
            "tsv": lambda p: write_csv(p, data, "\t"),
            "xlsx": lambda p: write_xlsx(p, data),
            "xls": lambda p: write_xls(p, data, xlsx),
            "ods": lambda p: write_ods(p, data),
        }
        for ext, write in writers.items():
            path = folder / f"sheet.{ext}"
            skipped = write(path)
            if skipped:
                results["formats"][ext] = {"skipped": skipped}
                continue
            seconds, count = time_parse(path, args.repeat)
            results["formats"][ext] = {"seconds": round(seconds, 3), "rows": count,
                                       "rows_per_s": round(count / seconds) if seconds else None,
                                       "bytes": path.stat().st_size}
    if save(results, ROOT / "benchmarks" / "results" / "sheets.json", args.json):
        return 0
    m = results["machine"]
    print(f"CPU: {m['cpu']} ({m['cores']} cores, load {m['load_1m']}); {args.rows:,} data rows per sheet")
    print(f"{'format':8} {'rows/s':>10} {'seconds':>9}")
    for ext, r in results["formats"].items():
        if "skipped" in r:
            print(f"{ext:8} {'skipped':>10}  ({r['skipped']})")
        else:
            print(f"{ext:8} {r['rows_per_s']:>10,} {r['seconds']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

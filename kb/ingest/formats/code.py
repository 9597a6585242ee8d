"""Source code, configuration and logs, read as text line by line and cited by line range ('app.py L12-40').

Lines are kept as written (indentation included, trailing spaces dropped); a block is a run of
non-blank lines, numbered by its first line, so a chunk never splits a line and its citation names the
lines a reader opens the file at. INI and TOML section headers (`[server]`) are the section path of
the lines under them. Any encoding `kb.ingest.formats.text.read_text` reads; binary content under a code
extension is refused with that reason.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from kb.errors import ParseError
from kb.ingest.formats.text import read_text
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

# A line longer than this is minified code or data, not read by a person: cut there (500 to 1,500 tokens,
# a few chunks), so one 5 MB line of a bundle does not become thousands of chunks.
MAX_LINE_CHARS = 2000
_SECTION = re.compile(r"^\s*\[{1,2}\s*([^\[\]\n]{1,80}?)\s*\]{1,2}\s*(?:[#;].*)?$")  # [server], [[bin]]


def line_blocks(text: str, *, sections: bool = False) -> tuple[list[Block], int, int]:
    """Blocks of consecutive non-blank lines, each numbered by its first line (1-based), kind "code";
    with `sections`, INI/TOML headers set the heading path. Returns the blocks, the file's line count and
    how many lines were cut at `MAX_LINE_CHARS`."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line starts no line of its own
    blocks: list[Block] = []
    run: list[str] = []
    first = 0
    headings: tuple[str, ...] = ()
    cut = 0

    def close() -> None:
        if run:
            blocks.append(Block("\n".join(run), headings, first, "code"))
            run.clear()

    for n, line in enumerate(lines, start=1):
        line = line.rstrip().replace("\x00", "")
        if not line.strip():
            close()
            continue
        if len(line) > MAX_LINE_CHARS:
            line, cut = line[:MAX_LINE_CHARS] + " …", cut + 1
        if sections and (m := _SECTION.match(line)):
            close()
            headings = (m.group(1),)
        if not run:
            first = n
        run.append(line)
    close()
    return blocks, len(lines), cut


class CodeParser:
    """Source code (and build files, stylesheets, XSLT): one reader for every language, by lines."""

    file_type = "code"
    extensions: tuple[str, ...] = (
        ".py", ".pyw", ".pyi", ".go", ".rs", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx",
        ".cs", ".java", ".kt", ".kts", ".scala", ".groovy", ".gradle", ".swift", ".m", ".mm", ".dart",
        ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue", ".svelte",
        ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".ex", ".exs", ".erl", ".hrl", ".hs", ".ml", ".mli",
        ".fs", ".clj", ".cljs", ".lisp", ".el", ".scm", ".zig", ".nim", ".f90", ".f95", ".vb", ".vbs",
        ".sh", ".bash", ".zsh", ".fish", ".ps1", ".psm1", ".bat", ".cmd", ".awk",
        ".sql", ".graphql", ".gql", ".proto", ".tf", ".hcl", ".nix", ".mk", ".cmake", ".dockerfile",
        ".css", ".scss", ".sass", ".less", ".xsl", ".xslt", ".asm", ".diff", ".patch",
    )
    # Files known by name alone (matched lower-case); a file with no extension starting with '#!' is code too.
    filenames: tuple[str, ...] = ("makefile", "gnumakefile", "dockerfile", "containerfile", "jenkinsfile", "vagrantfile",
                 "rakefile", "gemfile", "procfile", "justfile", "cmakelists.txt")
    sections = False

    def parse(self, path: Path) -> ParsedDocument:
        blocks, lines, cut = line_blocks(read_text(path), sections=self.sections)
        if not blocks:
            raise ParseError("empty file")
        metadata: dict[str, object] = {"lines": lines}
        if cut:
            metadata["long_lines_cut"] = cut
            log.warning("kb: %s: %d line(s) longer than %d characters cut there (minified?)", path, cut,
                        MAX_LINE_CHARS)
        return ParsedDocument(path.name, blocks, lines, metadata, unit="line")


class ConfigParser(CodeParser):
    """Configuration files; INI/TOML sections are their section path. (.json, .yaml and .xml keep their
    structured readers; .env files are left out on purpose: they hold secrets, and are hidden anyway.)"""

    file_type = "config"
    extensions = (".toml", ".ini", ".cfg", ".conf", ".cnf", ".properties", ".desktop", ".service")
    filenames = ()
    sections = True


class LogParser(CodeParser):
    """Logs: lines cited by number, the way a log is read."""

    file_type = "log"
    extensions = (".log",)
    filenames = ()

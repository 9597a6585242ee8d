"""LibreOffice, headless, as the converter of the legacy Office formats no Python library reads well
(.ppt, and .doc where antiword and catdoc fail): a file in, its modern counterpart in a folder out."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from kb.errors import ParseError

CONVERT_TIMEOUT = 120  # seconds LibreOffice may take to convert one legacy file


def soffice() -> str | None:
    """LibreOffice's command, where one is on PATH."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def libreoffice_convert(path: Path, to: str, outdir: Path, what: str, package: str) -> Path:
    """Convert `path` to format `to` in `outdir` with a headless LibreOffice, or raise a one-line
    ParseError. Each call has its own LibreOffice profile: parser workers run in parallel, and
    instances sharing a profile hand their work to one another or refuse to start."""
    command = soffice()
    if command is None:
        raise ParseError(f"LibreOffice is needed to read {path.suffix} files ({what}) and is not installed "
                         f"(Debian: apt-get install {package})")
    profile = outdir / "profile"
    args = [command, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
            "--convert-to", to, "--outdir", str(outdir), str(path.resolve())]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: a timeout ends soffice.bin as well
    try:
        output, _ = proc.communicate(timeout=CONVERT_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ParseError(f"LibreOffice took over {CONVERT_TIMEOUT} s to convert it") from None
    out = outdir / f"{path.stem}.{to}"
    if not out.is_file() or out.stat().st_size == 0:
        said = [line.strip() for line in output.decode(errors="replace").splitlines() if line.startswith("Error")]
        reason = " ".join((said[-1] if said else "no output").split())[:200]
        raise ParseError(f"not a valid {what} file (truncated or corrupt): LibreOffice says {reason!r}")
    return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.communicate()

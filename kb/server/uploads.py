"""What POST /ingest takes in: uploaded files kept under the uploads folder, and server paths checked
to lie inside the --docs folders."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from fastapi import HTTPException
from starlette.datastructures import UploadFile

from kb.ingest.base import is_supported, supported_types

JSON_LIMIT = 1 << 20  # bytes of any request body other than an upload
MAX_FILES = 100  # files in one upload


def safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ]", "_", base).lstrip(".-~$ ")
    return base[:200] or "upload"


def save_uploads(files: list[UploadFile], folder: Path) -> list[str]:
    """Keep uploaded files under `folder` by name (an upload of a name already there is a new version)."""
    named = [(f, safe_name(f.filename or "")) for f in files]
    bad = [n for _, n in named if not is_supported(Path(n), peek=False)]
    if bad:
        raise HTTPException(415, f"unsupported file type: {', '.join(bad)} (kb reads {supported_types()})")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for upload, name in named:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out, 1 << 20)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(str(folder / name))
    return paths


def inside(given: str, roots: list[Path]) -> str:
    """A server path the client named, if it lies inside one of the --docs folders."""
    candidate = Path(given).expanduser()
    resolved = (candidate if candidate.is_absolute() else roots[0] / candidate).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise HTTPException(403, f"{given}: outside the folders this server ingests from (--docs)")
    if not resolved.exists():
        raise HTTPException(400, f"{given}: no such file or folder on the server")
    return str(resolved)

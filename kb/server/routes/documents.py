"""GET /documents, and one document: its source file (GET) or its removal (DELETE, a job)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from kb.server.deps import AUTHORIZED, ServiceDep, SettingsDep

router = APIRouter(dependencies=AUTHORIZED)

_MEDIA = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html; charset=utf-8",
    "markdown": "text/plain; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}
# An ingested web page must not run scripts on this origin (where the API token lives).
_DOCUMENT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@router.get("/documents", summary="The ingested documents (the `kb documents --json` fields), with each id and file URL")
def documents(svc: ServiceDep) -> list[dict[str, Any]]:
    return svc.documents()


@router.delete("/documents/{doc_id}", status_code=202,
               summary="Remove a document (a job, as ingest is); a file uploaded here is deleted with it")
def remove_document(doc_id: str, svc: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    job = svc.remove(int(doc_id), owned=settings.upload_dir) if _is_id(doc_id) else None
    if job is None:
        raise HTTPException(404, "no such document")
    return {**job.to_json(), "url": f"/jobs/{job.id}"}


@router.get("/documents/{doc_id}", summary="The source file of an ingested document (PDFs open at #page=N)",
            response_class=FileResponse)
def document(doc_id: str, svc: ServiceDep) -> FileResponse:
    found = svc.document_file(int(doc_id)) if _is_id(doc_id) else None
    if found is None:
        raise HTTPException(404, "no such document on this server")
    path, file_type, _ = found
    media = _MEDIA.get(file_type, "application/octet-stream")
    inline = file_type != "docx"
    response = FileResponse(path, media_type=media, filename=path.name,
                            content_disposition_type="inline" if inline else "attachment")
    if file_type == "html":
        response.headers["Content-Security-Policy"] = _DOCUMENT_CSP
    return response


def _is_id(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,18}", text) is not None

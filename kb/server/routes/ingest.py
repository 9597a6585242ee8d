"""POST /ingest (server paths or uploaded files) and GET /jobs: ingesting is a job, followed by its id."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kb.server.deps import AUTHORIZED, ServiceDep, SettingsDep
from kb.server.models import IngestRequest
from kb.server.uploads import JSON_LIMIT, MAX_FILES, inside, save_uploads

router = APIRouter(dependencies=AUTHORIZED)

_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": IngestRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
}}}


@router.post("/ingest", status_code=202, summary="Ingest server paths (JSON) or uploaded files (multipart): a job",
             openapi_extra=_BODY)
async def ingest(request: Request, svc: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=JSON_LIMIT) as form:
            files = [f for key in ("files", "file") for f in form.getlist(key) if not isinstance(f, str)]
            if not files:
                raise HTTPException(400, "no files: send them as multipart fields named 'files'")
            paths = await run_in_threadpool(save_uploads, files, settings.upload_dir)
    elif kind in ("application/json", ""):
        try:
            body = IngestRequest.model_validate(json.loads(await request.body() or b"null"))
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False)) from None
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        paths = [inside(p, settings.roots) for p in body.paths]
    else:
        raise HTTPException(415, "send JSON {\"paths\": [...]} or multipart/form-data files")
    job = svc.submit(paths)
    return {**job.to_json(), "url": f"/jobs/{job.id}"}


@router.get("/jobs/{job_id}", summary="An ingest job: state, progress, and its report when done")
def job(job_id: str, svc: ServiceDep) -> dict[str, Any]:
    found = svc.job(job_id)
    if found is None:
        raise HTTPException(404, "no such job")
    return found.to_json()


@router.get("/jobs", summary="Recent ingest jobs, oldest first")
def jobs(svc: ServiceDep) -> list[dict[str, Any]]:
    return [j.to_json() for j in svc.jobs()]

"""The upload endpoint: a ledger file in the request body, the same importer as the CLI, the
summary and the rejects file in the answer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from importers.columns import Kind
from importers.run import BATCH_ROWS, Options, require_rights, run_import
from registry.deps import ActorDep, RegistryDep
from registry.errors import Invalid

router = APIRouter(prefix="/imports", tags=["imports 台账导入"])

_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


class ImportResult(BaseModel):
    summary: dict
    rejects_csv: str | None = None  # the rejects file's text, as the CLI writes it


@router.post("/{kind}", response_model=ImportResult, openapi_extra={"requestBody": {
    "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}}},
    "required": True}})
async def import_ledger(
    kind: Kind,
    request: Request,
    registry: RegistryDep,
    actor: ActorDep,
    filename: Annotated[str, Query(min_length=5, max_length=200,
                                   description="the file's name: .csv or .xlsx")],
    sheet: Annotated[str | None, Query(max_length=100)] = None,
    encoding: Annotated[str | None, Query(max_length=20)] = None,
    dry_run: bool = False,
    update: bool = False,
    all_or_nothing: bool = False,
    batch_rows: Annotated[int, Query(ge=1, le=100_000)] = BATCH_ROWS,
) -> ImportResult:
    """Import a ledger sent as the request body (the raw file, not a form), as the signed-in
    user. Answers the summary (read, imported, updated, unchanged, rejected; a fatal file error
    in ``summary.error``) and the rejected rows with their reasons as CSV text."""
    name = Path(filename).name
    suffix = Path(name).suffix.lower()
    if suffix not in _SUFFIXES:
        raise Invalid("must end in .csv or .xlsx", "文件名须以 .csv 或 .xlsx 结尾",
                      field="filename")
    if dry_run and all_or_nothing:
        raise Invalid("dry_run already writes nothing; give one of the two",
                      "dry_run 本身不写入数据，请二选一", field="all_or_nothing")
    await run_in_threadpool(require_rights, registry, actor, kind,
                            request_id=request.state.request_id)
    with tempfile.TemporaryDirectory(prefix="registry-import-") as folder:
        upload = Path(folder) / f"upload{suffix}"
        fd = os.open(upload, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        rejects = Path(folder) / "rejects.csv"
        options = Options(encoding=encoding, sheet=sheet, dry_run=dry_run, update=update,
                          all_or_nothing=all_or_nothing, batch_rows=batch_rows, rejects=rejects,
                          name=name)
        summary = await run_in_threadpool(
            run_import, registry, actor, kind, upload, options,
            request_id=request.state.request_id)
        text = rejects.read_text("utf-8-sig") if summary.rejects_file else None
    body = summary.to_dict()
    body["rejects_file"] = None  # a server path means nothing to the caller
    return ImportResult(summary=body, rejects_csv=text)

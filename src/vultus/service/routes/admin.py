"""Keys and the audit log (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from vultus.service.auth import AdminKey, KeysAdminKey
from vultus.service.errors import ServiceError
from vultus.service.routes.common import READ_ERRORS, WRITE_ERRORS, json_body, state
from vultus.service.schemas import AuditLog, KeyCreate, KeyCreated, KeyList, KeyOut

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/audit", response_model=AuditLog, responses=READ_ERRORS,
            summary="The audit log, newest first: who changed what, never biometric data (admin)")
async def audit(request: Request, key: AdminKey,
                collection: Annotated[str | None, Query(max_length=200)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    lib = state(request).library
    if collection is not None and not key.sees(collection):
        return {"records": []}

    def run():
        records = lib.audit_log(collection, limit if key.collections is None else 10 * limit)
        return [r for r in records if key.sees(r.collection)][:limit]

    return {"records": [r.to_dict() for r in await state(request).run(run)]}


@router.get("/keys", response_model=KeyList, responses=READ_ERRORS, summary="Every key, revoked ones too (admin)")
async def list_keys(request: Request, key: KeysAdminKey) -> dict:
    st = state(request)
    return {"keys": [k.to_dict() for k in await st.run(st.keys.list)]}


@router.post("/keys", response_model=KeyCreated, status_code=201, responses=WRITE_ERRORS,
             dependencies=[Depends(json_body)], summary="Create a key; the key is in this answer only (admin)")
async def create_key(request: Request, key: KeysAdminKey, body: KeyCreate) -> dict:
    st = state(request)
    if body.collections is not None and not [c for c in body.collections if c.strip()]:
        raise ServiceError("collections, when given, must name at least one collection", code="invalid_request",
                           field="collections")

    def run():
        token, info = st.keys.create(body.role, body.collections, body.name)
        st.library.record(key.actor, "key_create", "", {"key_id": info.id, "role": info.role,
                                                       "collections": info.collections and list(info.collections)})
        return token, info

    token, info = await st.run(run)
    return {"key": token, "info": info.to_dict()}


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=WRITE_ERRORS,
               summary="Revoke a key; it stops working at once (admin)")
async def revoke_key(request: Request, key: KeysAdminKey, key_id: Annotated[str, Path(max_length=64)]) -> dict:
    st = state(request)

    def run():
        revoked = st.keys.revoke(key_id)
        st.library.record(key.actor, "key_revoke", "", {"key_id": key_id})
        return revoked

    return (await st.run(run)).to_dict()

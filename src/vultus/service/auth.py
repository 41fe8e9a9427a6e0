"""Who is calling: the API key from `Authorization: Bearer` or `X-API-Key`, its
role, and which collections it may see.

Roles nest: `identify` may detect, verify, analyze and identify; `manage` may
also enroll, rename, merge, move, delete and forget; `admin` may also manage
collections and keys. A key scoped to collections gets 404 for every other
collection, exactly as for one that does not exist, so names do not leak.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from vultus.gallery.errors import NotFoundError
from vultus.service.errors import ServiceError
from vultus.service.keys import NO_AUTH, ApiKey, role_allows

bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer vk_...")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="X-API-Key: vk_... (CompreFace-style clients)")


def current_key(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                header_key: Annotated[str | None, Depends(api_key_header)]) -> ApiKey:
    # A plain `def`: FastAPI runs it on its thread pool, so the key store's file read
    # (and the once-per-key scrypt check) never blocks the event loop.
    state = request.app.state.vultus
    if not state.settings.auth:
        return NO_AUTH
    token = creds.credentials if creds is not None else header_key
    if not token:
        raise ServiceError("an API key is required (Authorization: Bearer <key>, or X-API-Key: <key>)",
                           code="unauthorized")
    return state.keys.verify(token)


def require(role: str):
    """A dependency: the caller's key, if its role allows `role`'s actions."""

    def dependency(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if not role_allows(key.role, role):
            raise ServiceError(f"a key with role {key.role!r} may not do this (needs {role!r})", code="forbidden",
                               role=key.role, needed=role)
        return key

    dependency.__name__ = f"require_{role}"
    return dependency


def unscoped_admin(key: Annotated[ApiKey, Depends(require("admin"))]) -> ApiKey:
    """Key management: an admin key for every collection (a scoped admin could
    otherwise mint itself a wider key)."""
    if key.collections is not None:
        raise ServiceError("only an admin key for every collection may manage keys", code="forbidden",
                           role=key.role, needed="admin (unscoped)")
    return key


AnyKey = Annotated[ApiKey, Depends(current_key)]
IdentifyKey = Annotated[ApiKey, Depends(require("identify"))]
ManageKey = Annotated[ApiKey, Depends(require("manage"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
KeysAdminKey = Annotated[ApiKey, Depends(unscoped_admin)]


def collection_not_found(name: str) -> NotFoundError:
    # Deliberately the same for "does not exist" and "not yours"; and unlike the
    # library's message it names no other collection and no server path.
    return NotFoundError(f"no collection {name!r}", kind="collection", collection=name)


def visible_collection(key: ApiKey, name: str, library) -> str:
    if not key.sees(name):
        raise collection_not_found(name)
    try:
        library.gallery.collection(name)
    except NotFoundError:
        raise collection_not_found(name) from None
    return name


__all__ = ["AdminKey", "AnyKey", "IdentifyKey", "KeysAdminKey", "ManageKey", "current_key", "require",
           "unscoped_admin", "visible_collection"]

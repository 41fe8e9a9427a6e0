"""Health, readiness, models, and the key in use."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vultus.service.auth import AnyKey
from vultus.service.errors import error_body
from vultus.service.routes.common import AUTH_ERRORS, SYSTEM_ERRORS, state
from vultus.service.schemas import Health, KeyOut, ModelsResponse, Ready

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/health", response_model=Health, summary="The process is up (liveness)")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, responses=SYSTEM_ERRORS,
            summary="Models loaded and gallery open (readiness); 503 until then")
async def ready(request: Request):
    st = request.app.state.vultus
    lib = st.library
    if lib is None or not lib.ready or st.startup_error:
        why = st.startup_error or ("starting" if lib is None else "models are loading")
        return JSONResponse(error_body("not_ready", f"not ready: {why}", {}), status_code=503,
                            headers={"Retry-After": "5"})
    # No paths or names here: readiness is answered without a key.
    return {"ready": True, "gallery_open": lib.gallery.store is not None, "models": [lib.detector, lib.embedder],
            "inference": {"threads": st.pool.threads, "capacity": st.pool.capacity, "admitted": st.pool.admitted,
                          "running": st.pool.running}}


def _models(st) -> list[dict]:
    # Hashing every model file is slow the first time; the answer cannot change while
    # the process runs, so it is computed once.
    with st.lock:
        if st.models_cache is None:
            from vultus.models.registry import check, registry

            out = []
            for spec in registry().values():
                ok, msg = check(spec)
                out.append({"name": spec.name, "task": spec.task, "license": spec.license, "source": spec.source,
                            "version": spec.version, "verified": ok, "status": msg,
                            "files": [{"file": f.filename, "sha256": f.sha256} for f in spec.files]})
            st.models_cache = out
        return st.models_cache


@router.get("/models", response_model=ModelsResponse, responses=AUTH_ERRORS | SYSTEM_ERRORS,
            summary="Every model: task, licence, source, version and checksum status")
async def models(request: Request, key: AnyKey) -> dict:
    st = state(request)
    return {"models": await st.run(_models, st), "default_detector": st.library.detector,
            "default_embedder": st.library.embedder}


@router.get("/keys/me", response_model=KeyOut, responses=AUTH_ERRORS, summary="The key in use: role and collections")
async def key_in_use(key: AnyKey) -> dict:
    return key.to_dict()

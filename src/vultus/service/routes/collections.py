"""Collections (create, list, get, set the target rate, delete) and identify."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile

from vultus.service.auth import AdminKey, AnyKey, IdentifyKey, collection_not_found
from vultus.service.routes.common import (
    READ_ERRORS,
    UPLOAD_ERRORS,
    WRITE_ERRORS,
    forget_proof,
    identification,
    in_collection,
    json_body,
    liveness_point,
    multipart_body,
    state,
)
from vultus.service.schemas import (
    CollectionCreate,
    CollectionDeleted,
    CollectionList,
    CollectionOut,
    IdentifyResponse,
    LivenessPointName,
    LivenessRequirement,
    TargetFpir,
    TargetRate,
)
from vultus.service.uploads import read_uploads

router = APIRouter(prefix="/v1/collections", tags=["collections"])

CollectionName = Annotated[str, Path(min_length=1, max_length=200, description="the collection's name")]


def collection_out(info: dict) -> dict:
    d = info["collection"].to_dict()
    d["people"] = info["counts"]["people"]
    d["faces"] = info["counts"]["faces"]
    d["decision"] = info["decision"].to_dict() if info["decision"] is not None else None
    d["decision_error"] = info["decision_error"]
    d.setdefault("liveness", None)
    return d


@router.get("", response_model=CollectionList, responses=READ_ERRORS, summary="The collections this key sees")
async def list_collections(request: Request, key: AnyKey) -> dict:
    lib = state(request).library

    def run():
        return [collection_out(lib.collection_info(c.name)) for c in lib.collections(key.sees)]

    return {"collections": await state(request).run(run)}


@router.post("", response_model=CollectionOut, status_code=201, responses=WRITE_ERRORS,
             dependencies=[Depends(json_body)], summary="Create a collection pinned to an embedder (admin)")
async def create_collection(request: Request, key: AdminKey, body: CollectionCreate):
    st = state(request)
    lib = st.library
    if not key.sees(body.name):
        # A scoped admin creates only collections named in its scope.
        from vultus.service.errors import ServiceError

        raise ServiceError(f"this key may not create collection {body.name!r} (outside its collections)",
                           code="forbidden", collection=body.name)

    def run():
        lib.create_collection(key.actor, body.name, embedder=body.embedder, detector=body.detector,
                              target_fmr=body.target_fmr, target_fpir=body.target_fpir, keep_crops=body.keep_crops,
                              aggregation=body.aggregation)
        return collection_out(lib.collection_info(body.name))

    return await st.run(run)


@router.get("/{collection}", response_model=CollectionOut, responses=READ_ERRORS,
            summary="A collection: embedder contract, counts, threshold and its false-match rate")
async def get_collection(request: Request, key: AnyKey, collection: CollectionName):
    lib = state(request).library
    return await in_collection(request, key, collection, lambda: collection_out(lib.collection_info(collection)))


@router.put("/{collection}/target-fmr", response_model=CollectionOut, responses=WRITE_ERRORS,
            dependencies=[Depends(json_body)], summary="Decide at another false-match rate (admin)")
async def set_target_fmr(request: Request, key: AdminKey, collection: CollectionName, body: TargetRate):
    return await changed_collection(request, key, collection,
                                    lambda lib: lib.set_target_fmr(key.actor, collection, body.target_fmr))


@router.put("/{collection}/liveness", response_model=CollectionOut, responses=WRITE_ERRORS,
            dependencies=[Depends(json_body)],
            summary="Require liveness at enroll and identify, at an operating point, or stop (admin)")
async def set_liveness(request: Request, key: AdminKey, collection: CollectionName, body: LivenessRequirement):
    return await changed_collection(request, key, collection,
                                    lambda lib: lib.set_liveness(key.actor, collection, body.point))


async def changed_collection(request: Request, key, collection: str, change) -> dict:
    """change(library) on the pool, once the key may see the collection; the collection afterwards."""
    lib = state(request).library

    def run():
        change(lib)
        return collection_out(lib.collection_info(collection))

    return await in_collection(request, key, collection, run)


@router.put("/{collection}/target-fpir", response_model=CollectionOut, responses=WRITE_ERRORS,
            dependencies=[Depends(json_body)],
            summary="Decide at a false-positive identification rate; the threshold follows the size (admin)")
async def set_target_fpir(request: Request, key: AdminKey, collection: CollectionName, body: TargetFpir):
    return await changed_collection(request, key, collection,
                                    lambda lib: lib.set_target_fpir(key.actor, collection, body.target_fpir))


@router.delete("/{collection}", response_model=CollectionDeleted, responses=WRITE_ERRORS,
               summary="Forget every person (with proof) and delete the collection (admin)")
async def delete_collection(request: Request, key: AdminKey, collection: CollectionName):
    lib = state(request).library

    def run():
        people = {p.name: p for p in lib.gallery.people(collection)}
        reports = lib.delete_collection(key.actor, collection)
        return {"collection": collection,
                "people_forgotten": [forget_proof(people[r.person], r) for r in reports]}

    return await in_collection(request, key, collection, run)


@router.post("/{collection}/identify", response_model=IdentifyResponse, responses=UPLOAD_ERRORS,
             dependencies=[Depends(multipart_body)],
             summary="Every face in each image: top-k people and one decision, a person or unknown")
async def identify(request: Request, key: IdentifyKey, collection: CollectionName,
                   images: Annotated[list[UploadFile], File(description="one or more photos")],
                   top_k: Annotated[int, Query(ge=1, le=50, description="people listed per face")] = 5,
                   liveness: Annotated[bool, Query(description="refuse faces that fail the liveness check")] = False,
                   point: Annotated[LivenessPointName | None, Query(
                       description="liveness operating point (default: the shipped default; a collection that "
                                   "requires liveness uses the stricter of its own and this)")] = None) -> dict:
    st = state(request)
    lib = st.library
    if not key.sees(collection):
        raise collection_not_found(collection)
    uploads = await read_uploads(images, st.settings)

    results = await in_collection(request, key, collection, lib.identify, collection, uploads, top_k=top_k,
                                  liveness=liveness_point(liveness, point))
    out = []
    for r in results:
        d = r.to_dict()
        d["faces"] = [identification(i) for i in r.faces]
        out.append(d)
    return {"collection": collection, "images": out}

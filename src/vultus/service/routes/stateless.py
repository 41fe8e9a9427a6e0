"""Detect, analyze and verify: no gallery needed (verify against a person excepted)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from vultus.errors import InvalidArgumentError
from vultus.service.auth import IdentifyKey, visible_collection
from vultus.service.routes.common import UPLOAD_ERRORS, liveness_out, liveness_point, multipart_body, state
from vultus.service.schemas import AnalyzeResponse, DetectResponse, LivenessPointName, VerificationOut
from vultus.service.uploads import read_uploads

router = APIRouter(prefix="/v1", tags=["stateless"], responses=UPLOAD_ERRORS,
                   dependencies=[Depends(multipart_body)])

Images = Annotated[list[UploadFile], File(description="one or more images (JPEG, PNG, WebP, BMP, TIFF, GIF)")]
ACTIONS = ("age", "gender", "emotion", "pose", "quality")
ACTIONS_HELP = f"a subset of {', '.join(ACTIONS)} (default: all)"


async def _uploads(st, files, field="images"):
    return await read_uploads(files, st.settings, field)


@router.post("/detect", response_model=DetectResponse, summary="Faces in each image: box, score, 5 landmarks")
async def detect(request: Request, key: IdentifyKey, images: Images,
                 landmarks68: Annotated[bool, Query(description="add dlib's 68 landmarks per face")] = False) -> dict:
    st = state(request)
    uploads = await _uploads(st, images)
    found = await st.run(st.library.detect, uploads, landmarks68=landmarks68)
    return {"images": [{"image": d.upload.name, "width": d.width, "height": d.height,
                        "faces": [f.to_dict() for f in d.faces]} for d in found]}


@router.post("/analyze", response_model=AnalyzeResponse,
             summary="Age, gender, emotion, head pose and quality of every face")
async def analyze(request: Request, key: IdentifyKey, images: Images,
                  actions: Annotated[list[str] | None, Query(description=ACTIONS_HELP)] = None) -> dict:
    st = state(request)
    if actions:
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise InvalidArgumentError(f"unknown analysis {', '.join(unknown)}; choose from {', '.join(ACTIONS)}",
                                       field="actions", value=unknown)
    uploads = await _uploads(st, images)
    found = await st.run(st.library.analyze, uploads, actions or None)
    return {"images": [{"image": d.upload.name, "width": d.width, "height": d.height,
                        "faces": [fa.to_dict() for fa in d.faces]} for d in found]}


@router.post("/verify", response_model=VerificationOut,
             summary="Same person? Two images, or one image and an enrolled person")
async def verify(request: Request, key: IdentifyKey,
                 image_a: Annotated[UploadFile, File(description="a photo showing one face")],
                 image_b: Annotated[UploadFile | None, File(description="the other photo (or give a person)")] = None,
                 collection: Annotated[str | None, Form(max_length=200, description="with person_id")] = None,
                 person_id: Annotated[int | None, Form(description="verify image_a against this person")] = None,
                 fmr: Annotated[float | None, Query(gt=0, lt=1, description="false-match rate (default 1e-3)")] = None,
                 largest: Annotated[bool, Query(description="with several faces, take the largest")] = False,
                 liveness: Annotated[bool, Query(description="every compared face must pass the liveness check; "
                                                             "one that fails makes `same` false")] = False,
                 point: Annotated[LivenessPointName | None, Query(
                     description="liveness operating point (default: the shipped default)")] = None) -> dict:
    st = state(request)
    lib = st.library
    live_point = liveness_point(liveness, point)
    against_person = person_id is not None or collection is not None
    if against_person == (image_b is not None):
        raise InvalidArgumentError("give either image_b, or collection and person_id", code="invalid_request",
                                   field="image_b")
    if against_person and (person_id is None or collection is None):
        raise InvalidArgumentError("verifying against a person needs both collection and person_id",
                                   code="invalid_request", field="person_id" if person_id is None else "collection")
    if against_person:
        (a,) = await _uploads(st, [image_a], "image_a")

        def run():
            visible_collection(key, collection, lib)
            return lib.verify_person(a, collection, person_id, fmr=fmr, largest=largest, liveness=live_point)

        result, person, checks = await st.run(run)
        out = result.to_dict()
        out["person"] = person.to_dict()
        return out | verify_liveness([("image_a", a)], checks)
    (a,) = await _uploads(st, [image_a], "image_a")
    (b,) = await _uploads(st, [image_b], "image_b")
    result, checks = await st.run(lib.verify, a, b, fmr=fmr, largest=largest, liveness=live_point)
    return result.to_dict() | {"person": None} | verify_liveness([("image_a", a), ("image_b", b)], checks)


def verify_liveness(uploads, checks) -> dict:
    """The `liveness` part of a verify answer: each compared face's check, and which failed why."""
    if checks is None:
        return {}
    faces = [{"field": f, "image": u.name} | liveness_out(c) for (f, u), c in zip(uploads, checks, strict=True)]
    refused = "; ".join(f"{d['field']} ({d['image']}): {d['reason']}" for d in faces if not d["live"])
    return {"liveness": {"live": not refused, "refused": refused, "faces": faces}}

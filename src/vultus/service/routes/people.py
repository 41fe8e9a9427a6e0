"""People (create by enrolling, list, search, get, rename, merge, forget) and their faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response

from vultus.gallery.errors import NotFoundError
from vultus.service.auth import AnyKey, ManageKey
from vultus.service.errors import ServiceError
from vultus.service.routes.collections import CollectionName
from vultus.service.routes.common import (
    READ_ERRORS,
    UPLOAD_ERRORS,
    WRITE_ERRORS,
    enroll_response,
    face_record,
    forget_proof,
    in_collection,
    json_body,
    multipart_body,
    state,
)
from vultus.service.schemas import (
    EnrollResponse,
    FaceList,
    ForgetProof,
    MergeRequest,
    MergeResult,
    MoveRequest,
    PeoplePage,
    PersonDetail,
    PersonOut,
    Rename,
)
from vultus.service.uploads import read_uploads

router = APIRouter(prefix="/v1/collections/{collection}", tags=["people"])

PersonId = Annotated[int, Path(description="the person's id")]
FaceId = Annotated[int, Path(description="the face's id")]
Images = Annotated[list[UploadFile], File(description="one or more photos of the person")]
Subject = Annotated[str, Query(pattern="^(center_largest|only|largest|central)$",
                               description="which face of a photo with several is the person: center_largest "
                                           "(of the faces at least 0.9x the largest's area, the one nearest the "
                                           "centre; the photo is refused when none is clearly the subject), only "
                                           "(refuse several faces of similar size), largest, or central")]
Pick = Annotated[str | None, Query(pattern="^(one|largest|central)$", deprecated=True,
                                   description="the older name of `subject` (one = only)")]


def _subject(subject: str, pick: str | None) -> str:
    return subject if pick is None else {"one": "only"}.get(pick, pick)


async def _uploads(st, images):
    return await read_uploads(images, st.settings)


@router.get("/people", response_model=PeoplePage, responses=READ_ERRORS,
            summary="People, by name, with cursor pagination and name search")
async def list_people(request: Request, key: AnyKey, collection: CollectionName,
                      q: Annotated[str | None, Query(max_length=200, description="part of the name")] = None,
                      cursor: Annotated[str | None, Query(max_length=1000)] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    lib = state(request).library
    page, next_cursor, total = await in_collection(request, key, collection,
                                                   lib.people_page, collection, q=q, cursor=cursor, limit=limit)
    return {"people": [p.to_dict() for p in page], "next_cursor": next_cursor, "total": total}


@router.post("/people", response_model=EnrollResponse, status_code=201, responses=UPLOAD_ERRORS,
             dependencies=[Depends(multipart_body)],
             summary="Create a person by enrolling their photos (manage); each image gets the gate's verdict")
async def create_person(request: Request, key: ManageKey, collection: CollectionName, images: Images,
                        name: Annotated[str, Form(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")],
                        subject: Subject = "center_largest", pick: Pick = None) -> dict:
    st = state(request)
    lib = st.library
    uploads = await _uploads(st, images)

    report, person = await in_collection(request, key, collection, lib.enroll, key.actor, collection, uploads,
                                         person=name.strip(), subject=_subject(subject, pick))
    answer = enroll_response(report, person)
    if person is None:
        # Nothing passed: no person was created. Each image's verdict is in the details.
        raise ServiceError(f"no image of {name.strip()!r} could be enrolled", code="nothing_enrolled",
                           person=name.strip(), images=answer["images"])
    return answer


@router.get("/people/{person_id}", response_model=PersonDetail, responses=READ_ERRORS,
            summary="A person and their enrolled faces")
async def get_person(request: Request, key: AnyKey, collection: CollectionName, person_id: PersonId) -> dict:
    lib = state(request).library

    def run():
        return lib.person(collection, person_id), lib.faces(collection, person_id)

    p, faces = await in_collection(request, key, collection, run)
    return p.to_dict() | {"face_list": [face_record(f) for f in faces]}


@router.patch("/people/{person_id}", response_model=PersonOut, responses=WRITE_ERRORS,
              dependencies=[Depends(json_body)], summary="Rename a person (manage)")
async def rename_person(request: Request, key: ManageKey, collection: CollectionName, person_id: PersonId,
                        body: Rename) -> dict:
    lib = state(request).library
    return (await in_collection(request, key, collection,
                                lib.rename, key.actor, collection, person_id, body.name)).to_dict()


@router.post("/people/{person_id}/merge", response_model=MergeResult, responses=WRITE_ERRORS,
             dependencies=[Depends(json_body)], summary="Move every face of this person to another, remove this one")
async def merge_person(request: Request, key: ManageKey, collection: CollectionName, person_id: PersonId,
                       body: MergeRequest) -> dict:
    lib = state(request).library
    person, moved = await in_collection(request, key, collection,
                                        lib.merge, key.actor, collection, person_id, body.into)
    return {"person": person.to_dict(), "faces_moved": moved}


@router.delete("/people/{person_id}", response_model=ForgetProof, responses=WRITE_ERRORS,
               summary="Forget a person: every row, embedding, crop and index entry, with the proof (manage)")
async def forget_person(request: Request, key: ManageKey, collection: CollectionName, person_id: PersonId) -> dict:
    lib = state(request).library
    return forget_proof(*await in_collection(request, key, collection, lib.forget, key.actor, collection, person_id))


@router.post("/people/{person_id}/faces", response_model=EnrollResponse, responses=UPLOAD_ERRORS,
             dependencies=[Depends(multipart_body)], summary="Enroll more photos of a person (manage)")
async def enroll_faces(request: Request, key: ManageKey, collection: CollectionName, person_id: PersonId,
                       images: Images,
                       subject: Subject = "center_largest", pick: Pick = None) -> dict:
    st = state(request)
    lib = st.library
    uploads = await _uploads(st, images)

    return enroll_response(*await in_collection(request, key, collection, lib.enroll, key.actor, collection, uploads,
                                                person_id=person_id, subject=_subject(subject, pick)))


@router.get("/faces", response_model=FaceList, responses=READ_ERRORS, summary="Enrolled faces (of one person)")
async def list_faces(request: Request, key: AnyKey, collection: CollectionName,
                     person_id: Annotated[int | None, Query(description="only this person's faces")] = None) -> dict:
    lib = state(request).library
    return {"faces": [face_record(f) for f in await in_collection(request, key, collection,
                                                                  lib.faces, collection, person_id)]}


@router.get("/faces/{face_id}/crop", response_class=Response, responses=READ_ERRORS | {
    200: {"content": {"image/jpeg": {}}, "description": "the aligned 256x256 face crop kept at enrollment"}},
    summary="The face's aligned crop as JPEG (manage)")
async def face_crop(request: Request, key: ManageKey, collection: CollectionName, face_id: FaceId) -> Response:
    lib = state(request).library
    jpeg = await in_collection(request, key, collection, lib.crop, collection, face_id)
    if jpeg is None:
        raise NotFoundError(f"face {face_id} was enrolled without keeping its crop", kind="crop", id=face_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/faces/{face_id}/move", response_model=FaceList, responses=WRITE_ERRORS,
             dependencies=[Depends(json_body)], summary="Move a face to another person (manage)")
async def move_face(request: Request, key: ManageKey, collection: CollectionName, face_id: FaceId,
                    body: MoveRequest) -> dict:
    lib = state(request).library

    def run():
        lib.move_face(key.actor, collection, face_id, body.person_id)
        return [f for f in lib.faces(collection, body.person_id) if f.id == face_id]

    return {"faces": [face_record(f) for f in await in_collection(request, key, collection, run)]}


@router.delete("/faces/{face_id}", status_code=204, response_class=Response, responses=WRITE_ERRORS,
               summary="Delete one face: its row, embeddings, crop and index entry (manage)")
async def delete_face(request: Request, key: ManageKey, collection: CollectionName, face_id: FaceId) -> Response:
    lib = state(request).library

    await in_collection(request, key, collection, lib.delete_face, key.actor, collection, face_id)
    return Response(status_code=204)

"""What every route module shares: the documented error answers, content-type
checks, and conversions from library results to response bodies."""

from __future__ import annotations

from pathlib import PurePath

from fastapi import Request

from vultus.service.errors import ServiceError
from vultus.service.schemas import ErrorResponse

_ERR = {"model": ErrorResponse}
AUTH_ERRORS = {401: _ERR, 403: _ERR}
READ_ERRORS = {**AUTH_ERRORS, 400: _ERR, 404: _ERR, 422: _ERR, 429: _ERR, 503: _ERR}
WRITE_ERRORS = {**READ_ERRORS, 409: _ERR, 415: _ERR}
UPLOAD_ERRORS = {**WRITE_ERRORS, 413: _ERR}
SYSTEM_ERRORS = {503: _ERR}


def state(request: Request):
    st = request.app.state.vultus
    if st.library is None:  # the app's start-up (lifespan) has not run
        raise ServiceError("the service is starting", code="not_ready")
    return st


async def in_collection(request: Request, key, collection: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) on the inference pool, once the key may see `collection`
    (else the same 404 as a collection that does not exist)."""
    from vultus.service.auth import visible_collection

    st = state(request)

    def run():
        visible_collection(key, collection, st.library)
        return fn(*args, **kwargs)

    return await st.run(run)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def multipart_body(request: Request) -> None:
    """Uploads come as multipart/form-data; anything else is 415 (checked before the body is read)."""
    if _media_type(request) != "multipart/form-data":
        raise ServiceError(f"expected a multipart/form-data upload, got {_media_type(request) or 'no content type'}",
                           code="unsupported_media_type", content_type=_media_type(request))


def json_body(request: Request) -> None:
    if _media_type(request) != "application/json":
        raise ServiceError(f"expected application/json, got {_media_type(request) or 'no content type'}",
                           code="unsupported_media_type", content_type=_media_type(request))


def face_record(f) -> dict:
    d = f.to_dict()
    path = d.pop("image_path", None)
    name = PurePath(path).name if path else ""
    # Uploads are stored as "<index>-<name>" in a temporary folder; show the upload's own name.
    prefix, sep, rest = name.partition("-")
    d["source"] = rest if sep and prefix.isdigit() and rest else name
    d["person_id"] = f.person_id
    return d


def liveness_point(liveness: bool, point: str | None) -> str | None:
    """The operating point a request with `liveness` and `point` asks for (None: no check)."""
    if not liveness:
        if point is not None:
            from vultus.errors import InvalidArgumentError

            raise InvalidArgumentError("point is for liveness=true", field="point")
        return None
    from vultus.liveness.api import shipped

    return point or shipped()["default_point"]


def liveness_out(check) -> dict:
    """A vultus.liveness.api.Liveness as LivenessOut: its own fields, the decision in words and why."""
    return check.to_dict() | {"decision": "live" if check.live else "spoof", "reason": check.reason}


def identification(ident) -> dict:
    d = ident.to_dict()
    if ident.liveness is not None:
        d["liveness"] = liveness_out(ident.liveness)
    for m, md in zip(ident.matches, d["matches"], strict=True):
        md["person_id"] = m.person_id
    d["person_id"] = ident.matches[0].person_id if ident.person is not None and ident.matches else None
    return d


def forget_proof(person, report) -> dict:
    d = report.to_dict()
    d["person_id"] = person.id
    return d


def enroll_response(report, person) -> dict:
    d = report.to_dict()
    for img in d["images"]:
        img["image"] = img.pop("path")
        img.pop("person", None)
    for w in d["warnings"]:
        w["image"] = w.pop("path")
    d["person"] = person.to_dict() if person is not None else None
    return d

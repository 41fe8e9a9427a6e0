"""Liveness: passive (is each face live, or a printed photo or a screen?) and the active challenge
(issue a random sequence of actions; check the frames that answer it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from vultus.errors import InvalidArgumentError
from vultus.service.auth import IdentifyKey
from vultus.service.routes.common import AUTH_ERRORS, UPLOAD_ERRORS, liveness_out, multipart_body, state
from vultus.service.schemas import (
    ChallengeOut,
    ChallengeResultOut,
    ErrorResponse,
    LivenessPointName,
    LivenessResponse,
)
from vultus.service.uploads import read_uploads

router = APIRouter(prefix="/v1/liveness", tags=["liveness"])

# What a token looks like (base64url body "." base64url signature); anything else is refused as a form error.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
MAX_FPS = 240.0


@router.post("", response_model=LivenessResponse, responses=UPLOAD_ERRORS, dependencies=[Depends(multipart_body)],
             summary="Is each face live, or a printed photo or a screen? Score, decision and its error rates")
async def liveness(request: Request, key: IdentifyKey,
                   images: Annotated[list[UploadFile], File(description="one or more photos")],
                   point: Annotated[LivenessPointName | None, Query(
                       description="operating point: door (strict) or check-in (lenient); default: the shipped "
                                   "default")] = None) -> dict:
    st = state(request)
    uploads = await read_uploads(images, st.settings)
    found = await st.run(st.library.liveness, uploads, point)
    return {"images": [{"image": d.upload.name, "width": d.width, "height": d.height,
                        "faces": [liveness_out(c) for c in d.faces]} for d in found]}


@router.post("/challenge", response_model=ChallengeOut, responses={**AUTH_ERRORS, 503: {"model": ErrorResponse}},
             summary="Issue an active liveness challenge: 2-4 random actions, a nonce and a deadline")
async def issue_challenge(request: Request, key: IdentifyKey) -> dict:
    st = state(request)

    def run():
        return st.challenge_issuer().issue().to_dict()

    return await st.run(run)


@router.post("/challenge/answer", response_model=ChallengeResultOut, responses=UPLOAD_ERRORS,
             dependencies=[Depends(multipart_body)],
             summary="Answer a challenge with frames in order: passed, or failed with the reason")
async def answer_challenge(
        request: Request, key: IdentifyKey,
        token: Annotated[str, Form(max_length=2000, pattern=TOKEN_PATTERN, description="the challenge's token")],
        frames: Annotated[list[UploadFile], File(description="the recorded frames, in order; the first shows "
                                                             "the person at rest")],
        fps: Annotated[float | None, Form(gt=0, le=MAX_FPS, description="frames were taken at this rate "
                                                                        "(or give times)")] = None,
        times: Annotated[str | None, Form(max_length=20000, description="each frame's time in seconds, "
                                                                         "comma-separated (or give fps)")] = None,
) -> dict:
    st = state(request)
    if (fps is None) == (times is None):
        raise InvalidArgumentError("give either fps or times (one time per frame)", code="invalid_request",
                                   field="fps")
    uploads = await read_uploads(frames, st.settings, "frames")
    if times is not None:
        seconds = parse_times(times)
        if len(seconds) != len(uploads):
            raise InvalidArgumentError(f"{len(seconds)} times for {len(uploads)} frames", code="invalid_request",
                                       field="times")
    else:
        seconds = [k / fps for k in range(len(uploads))]

    def run():
        return st.library.answer_challenge(st.challenge_issuer(), token, uploads, seconds).to_dict()

    return await st.run(run)


def parse_times(text: str) -> list[float]:
    import math

    try:
        out = [float(t) for t in text.split(",")]
    except ValueError:
        out = [math.nan]
    if not all(math.isfinite(t) and abs(t) < 1e9 for t in out):
        raise InvalidArgumentError("times: seconds as numbers, comma-separated", code="invalid_request", field="times")
    return out

"""Every error the service answers with: one table from error code to HTTP status.

The body is always ``{"error": {"code", "message", "details"}}``, built from
``VultusError.to_dict()`` (the library's code and data fields), never from the
CLI's text. Errors the service raises itself (auth, limits, overload) are
VultusErrors too, so they take the same path.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vultus.errors import VultusError

log = logging.getLogger("vultus.service")

#: HTTP status per error code. A code not listed is a user-actionable library
#: error of an unlisted kind: 400 (never 500: every VultusError is about the input).
HTTP_STATUS: dict[str, int] = {
    # request shape
    "invalid_request": 422,
    "invalid_argument": 422,
    "unsupported_media_type": 415,
    "method_not_allowed": 405,
    # auth
    "unauthorized": 401,
    "forbidden": 403,
    # what is stored
    "not_found": 404,
    "conflict": 409,
    "model_mismatch": 409,
    "gallery_error": 422,
    "invalid_name": 422,
    "invalid_rate": 422,
    "conflicting_targets": 422,
    # images
    "bad_image": 422,
    "empty_file": 422,
    "corrupt_image": 422,
    "not_an_image": 415,
    "no_face": 422,
    "many_faces": 422,
    "too_many_faces": 422,
    "nothing_enrolled": 422,
    "file_too_large": 413,
    "image_too_large": 413,
    "payload_too_large": 413,
    "too_many_images": 413,
    "too_many_pixels": 413,
    "limit_exceeded": 413,
    # models
    "model_error": 422,  # an unknown model name; a model failing its checksum has its own code below
    "model_checksum": 503,
    "model_missing": 503,
    "missing_dependency": 503,  # an optional package (torch for cloaking) not installed on the server
    # liveness
    "liveness_point": 422,  # an operating point the shipped model has no measurement for
    "liveness_model": 422,
    "challenge_actions": 422,
    "challenge_forged": 422,  # a challenge token this installation did not issue, or altered
    "challenge_key": 503,  # the installation's challenge key file is damaged
    # the server's state
    "overloaded": 429,
    "timeout": 503,
    "not_ready": 503,
    "shutting_down": 503,
    "busy": 503,
    "gallery_damaged": 503,
    "read_only": 503,
    "disk_full": 503,
}
DEFAULT_STATUS = 400
RETRY_AFTER_CODES = {"overloaded": 1, "timeout": 5, "not_ready": 5, "shutting_down": 5, "busy": 2}


class ServiceError(VultusError):
    """An error the service itself raises (auth, limits, overload); `code` picks the status."""

    code = "invalid_request"


def status_of(exc: VultusError) -> int:
    return HTTP_STATUS.get(exc.code, DEFAULT_STATUS)


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(exc: VultusError) -> JSONResponse:
    status = status_of(exc)
    headers = {}
    if exc.code in RETRY_AFTER_CODES:
        headers["Retry-After"] = str(RETRY_AFTER_CODES[exc.code])
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="vultus"'
    return JSONResponse({"error": exc.to_dict()}, status_code=status, headers=headers)


_STARLETTE_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                    413: "payload_too_large", 415: "unsupported_media_type"}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path (Starlette's own 405 names only
    the first route that matched the path, not all of them)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET", "type": "http"})
        route_methods = getattr(route, "methods", None)
        if route_methods and match != Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Route every error through the one envelope."""

    @app.exception_handler(VultusError)
    async def _vultus(request: Request, exc: VultusError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            problems.append({"field": ".".join(loc[1:]) or ".".join(loc), "in": loc[0] if loc else "",
                             "problem": str(e.get("msg", ""))})
        first = problems[0] if problems else {"field": "", "problem": "invalid request"}
        message = f"{first['field'] or 'request'}: {first['problem']}" if first["field"] else first["problem"]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        return JSONResponse(error_body("invalid_request", message, {"problems": problems}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _STARLETTE_CODES.get(exc.status_code, "invalid_request")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # A bug, not an input error: logged with its traceback, answered without internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; see the service log"), status_code=500)

"""The FastAPI application: create_app(settings).

    uvicorn --factory vultus.service.app:app_from_env   # what `vultus serve` runs

Layers (as InsightFace-REST splits them): routes/ (HTTP: parse, authorise,
answer), inference.py (a bounded thread pool off the event loop),
library.py (the one adapter onto vultus.Engine and vultus.gallery.Gallery:
models, search, storage), keys.py (API keys), errors.py (the one table of
error codes to HTTP statuses).
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from vultus import __version__
from vultus.errors import VultusError
from vultus.service import errors
from vultus.service.inference import InferencePool
from vultus.service.keys import KeyStore
from vultus.service.library import Library
from vultus.service.settings import Settings
from vultus.service.uploads import BodyLimit

log = logging.getLogger("vultus.service")

STATIC_DIR = Path(__file__).with_name("static")
DOCS_ASSETS_URL = "/docs-assets"

DESCRIPTION = """Face detection, verification and identification, offline.

Send an API key as `Authorization: Bearer vk_...` (or `X-API-Key: vk_...`).
Images are multipart uploads; every error is `{"error": {"code", "message", "details"}}`.
See docs/service.md for the roles, the limits and curl examples."""


@dataclass
class ServiceState:
    """What the routes share. The library (models, gallery) and the pool live from
    the app's start-up to its shutdown; a restarted app (tests) gets fresh ones."""

    settings: Settings
    keys: KeyStore
    library: Library | None = None
    pool: InferencePool | None = None
    models_cache: list | None = None
    startup_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    issuer: object | None = None  # the liveness ChallengeIssuer, made on first use

    def challenge_issuer(self):
        """This installation's ChallengeIssuer: its secret and spent nonces are files beside the key
        store, shared by every worker process (see vultus.liveness.challenge.install_issuer)."""
        from vultus.liveness.challenge import install_issuer

        with self.lock:
            if self.issuer is None:
                keys = self.settings.keys_path
                self.issuer = install_issuer(folder=keys.parent, prefix=keys.name + ".challenge")
            return self.issuer

    def start(self) -> None:
        s = self.settings
        self.library = Library(s.gallery_path, detector=s.detector, embedder=s.embedder,
                               model_threads=s.threads_per_model, max_faces=s.max_faces, pool_size=s.pool_size)
        self.pool = InferencePool(s.inference_threads, s.queue_size, s.request_timeout)
        self.startup_error = None

    def stop(self) -> None:
        # Graceful shutdown: uvicorn has stopped accepting and let requests in flight
        # finish; the pool finishes what it runs, then the gallery saves its index and
        # closes, so the file is consistent.
        if self.pool is not None:
            self.pool.shutdown()
        if self.library is not None:
            self.library.close()

    async def run(self, fn, *args, **kwargs):
        if self.pool is None:
            from vultus.service.errors import ServiceError

            raise ServiceError("the service is starting", code="not_ready")
        return await self.pool.run(fn, *args, **kwargs)


class NoStore:
    """`Cache-Control: no-store` on every /v1 answer that sets no policy of its own:
    names, faces and crops must not linger in a proxy's or browser's cache."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            return await self.app(scope, receive, send)

        async def send_no_store(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)


def swagger_assets() -> Path | None:
    """Swagger UI's files from the fastapi-offline package (Swagger UI 5, which reads
    OpenAPI 3.1; no CDN). None when it is not installed: /docs then says so."""
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServiceState(settings=settings, keys=KeyStore(settings.keys_path))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            state.start()
        except VultusError as exc:  # e.g. a damaged gallery: stay up, answer 503 and say why
            state.startup_error = exc.message
            log.error("vultus service cannot start: %s", exc.message)
            yield
            return
        if settings.preload:
            try:
                await state.run(state.library.warm_up)
            except Exception as exc:  # stay up and say why in /v1/ready; health still answers
                state.startup_error = f"{type(exc).__name__}: {exc}"
                log.exception("model warm-up failed")
        else:
            state.library.ready = True
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="vultus", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.vultus = state
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(NoStore)

    from vultus.service.routes import admin, collections, liveness, people, stateless, system

    for module in (system, stateless, liveness, collections, people, admin):
        app.include_router(module.router)

    assets = swagger_assets()
    if assets is not None and assets.is_dir():
        app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse("<p>Interactive docs need the fastapi-offline package "
                                "(pip install 'vultus[service]'); the schema is at /openapi.json.</p>")
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="vultus API",
                                   swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters={"persistAuthorization": False})

    # The web UI (plain files, no build step) at /, mounted last so /v1 and /docs win.
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    else:
        @app.get("/", include_in_schema=False)
        async def no_ui() -> HTMLResponse:
            return HTMLResponse("<p>vultus: the web UI is not installed; the API is at /v1, its docs at /docs.</p>")

    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker process (settings from the environment)."""
    return create_app(Settings.from_env())

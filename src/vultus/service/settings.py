"""The service's settings: where the gallery and keys live, and every limit.

One frozen dataclass. `vultus serve` fills it from its flags; each field can
also come from the environment (VULTUS_SERVICE_<FIELD>, e.g.
VULTUS_SERVICE_MAX_IMAGE_BYTES=5242880), which is how uvicorn worker processes
(--workers N) receive the settings their parent was started with.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from vultus.errors import InvalidArgumentError

ENV_PREFIX = "VULTUS_SERVICE_"
# The whole settings object as JSON, for worker processes started by uvicorn.
ENV_SETTINGS = "VULTUS_SERVICE_SETTINGS"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

MiB = 1 << 20


@dataclass(frozen=True)
class Settings:
    gallery: str | None = None  # the gallery file or postgresql:// URL; None: $VULTUS_GALLERY or the user data dir
    keys: str | None = None  # the key store; None: <gallery>.keys beside a gallery file (see keys_path)
    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True  # False only with --no-auth, and only on a loopback host
    # -- limits --------------------------------------------------------------
    max_image_bytes: int = 10 * MiB  # one uploaded image
    max_request_bytes: int = 64 * MiB  # one whole request body
    max_pixels: int = 40_000_000  # decoded pixels of one image, checked from its header before decoding
    max_request_pixels: int = 200_000_000  # all images of one request together (bounds a request's memory)
    max_images: int = 16  # images in one request
    max_faces: int = 64  # faces in one image (more: refused with too_many_faces)
    request_timeout: float = 60.0  # seconds a request may wait for and run its inference
    # -- inference pool --------------------------------------------------------
    inference_threads: int = 2  # requests whose models run at once in one worker process
    queue_size: int = 32  # requests waiting for a thread; more are refused with 429 and Retry-After
    # onnxruntime threads per model; None: the cores shared out among the inference
    # threads (so two requests running at once do not each spin on every core).
    model_threads: int | None = None
    # -- models ----------------------------------------------------------------
    detector: str = "yunet"  # for the stateless endpoints (collections use their own)
    embedder: str = "sface"
    preload: bool = True  # load the default models at start-up, so /v1/ready means ready

    def __post_init__(self):
        for name in ("max_image_bytes", "max_request_bytes", "max_pixels", "max_request_pixels", "max_images",
                     "max_faces",
                     "inference_threads", "queue_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidArgumentError(f"{name} must be at least 1 (got {getattr(self, name)})",
                                           setting=name, value=getattr(self, name))
        if self.request_timeout <= 0:
            raise InvalidArgumentError("request_timeout must be positive", setting="request_timeout",
                                       value=self.request_timeout)
        if not self.auth and self.host not in LOOPBACK_HOSTS:
            raise InvalidArgumentError(
                f"authentication can be turned off only on a loopback host (127.0.0.1, ::1), not {self.host!r}",
                code="auth_required", host=self.host)

    @property
    def threads_per_model(self) -> int:
        if self.model_threads:
            return int(self.model_threads)
        if os.environ.get("VULTUS_THREADS"):  # the library's own override wins
            from vultus.models.runtime import default_threads

            return default_threads()
        return max(1, (os.cpu_count() or 1) // self.inference_threads)

    @property
    def gallery_path(self) -> str | Path:
        """The gallery file (a Path), or its database URL as given (a str: postgresql://...)."""
        from vultus.gallery.api import default_gallery_path, is_url

        if self.gallery:
            return self.gallery if is_url(self.gallery) else Path(self.gallery).expanduser()
        return default_gallery_path()

    @property
    def pool_size(self) -> int:
        """Database connections per worker process (a PostgreSQL gallery): one per inference
        thread, plus one for the request threads' reads and writes outside the pool."""
        return self.inference_threads + 2

    @property
    def keys_path(self) -> Path:
        """The API key store. Beside a gallery file by default; for a database gallery there is no
        file to sit beside, so it is a file named after the database in the user data dir
        (every host of a multi-host service needs the same keys: give them one --keys path, or
        create the keys on each host)."""
        if self.keys:
            return Path(self.keys).expanduser()
        g = self.gallery_path
        if isinstance(g, str):
            import hashlib

            import platformdirs

            from vultus.gallery.storage.postgres import public_location

            digest = hashlib.sha256(public_location(g).encode()).hexdigest()[:12]
            return Path(platformdirs.user_data_dir("vultus")) / f"service-{digest}.keys"
        return g.with_name(g.name + ".keys")

    def to_env(self) -> dict[str, str]:
        return {ENV_SETTINGS: json.dumps(asdict(self))}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ENV_SETTINGS (JSON), then any VULTUS_SERVICE_<FIELD> on top."""
        env = os.environ if environ is None else environ
        base = cls(**json.loads(env[ENV_SETTINGS])) if env.get(ENV_SETTINGS) else cls()
        changes = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            changes[f.name] = _parse(f.name, raw, getattr(base, f.name))
        return replace(base, **changes) if changes else base


def _parse(name: str, raw: str, current):
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if name == "model_threads":
            return int(raw) if raw else None
    except ValueError as exc:
        raise InvalidArgumentError(f"{ENV_PREFIX}{name.upper()}: not a valid value ({raw!r})",
                                   setting=name, value=raw) from exc
    return raw or None

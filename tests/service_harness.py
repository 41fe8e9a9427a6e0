"""Helpers for the service tests: a real app on a temporary gallery, keys, and uploads of real photos."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from vultus.data import data_root

KNN = ("face_recognition", "examples", "knn_examples")


def knn_dir() -> Path | None:
    root = data_root()
    p = root.joinpath(*KNN) if root else None
    return p if p and p.is_dir() else None


def make_app(tmp: Path, gallery: str | None = None, **settings):
    """The app on a gallery file in `tmp`, or on `gallery` (a postgresql:// URL); keys in `tmp`."""
    from vultus.service.app import create_app
    from vultus.service.settings import Settings

    if gallery is not None:
        settings.setdefault("keys", str(tmp / "service.keys"))
    s = Settings(gallery=gallery or str(tmp / "gallery.db"), **settings)
    return create_app(s), s


def client(app):
    import warnings

    from fastapi.testclient import TestClient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(app, raise_server_exceptions=False)


def new_key(settings, role: str, collections=None, name: str = "") -> tuple[str, dict]:
    from vultus.service.keys import KeyStore

    token, info = KeyStore(settings.keys_path).create(role, collections, name or role)
    return token, {"Authorization": f"Bearer {token}"}


def upload(path: Path, field: str = "images", ctype: str = "image/jpeg"):
    return (field, (path.name, path.read_bytes(), ctype))


def enroll_knn(c, headers, collection: str = "default") -> dict[str, dict]:
    """Enroll knn_examples/train's people; {name: enroll answer}."""
    train = knn_dir() / "train"
    out = {}
    for person in sorted(p.name for p in train.iterdir() if p.is_dir()):
        files = [upload(f) for f in sorted((train / person).iterdir()) if f.is_file()]
        r = c.post(f"/v1/collections/{collection}/people", headers=headers, data={"name": person}, files=files)
        assert r.status_code == 201, r.text
        out[person] = r.json()
    return out


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` black 8-bit grey pixels: a few hundred KB that
    decode to width*height bytes (a decompression bomb), built without holding them."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def jpeg_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (120, 110, 100)).save(buf, "JPEG", quality=70)
    return buf.getvalue()

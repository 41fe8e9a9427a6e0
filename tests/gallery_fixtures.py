"""Synthetic people for the gallery's storage tests: identity centres with per-face noise
(as real embeddings of one person scatter), NewFace rows for them, and a gallery filled
with them through the store and the index, as an enroll would."""

from __future__ import annotations

import numpy as np

from vultus.gallery import Gallery
from vultus.gallery.types import NewFace
from vultus.types import Box, Face

DIM = 128


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def people_vectors(n_people: int, per_person: int, seed: int = 0, spread: float = 0.35):
    """Identity centres with per-face noise, as real embeddings of one person scatter."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n_people, DIM)))
    faces = unit(centres[:, None, :] + spread * unit(rng.standard_normal((n_people, per_person, DIM))))
    return centres, faces


def new_face(person: str, tag: str, vector: np.ndarray, crop: bool = False) -> NewFace:
    face = Face(box=Box(10, 20, 110, 140), score=0.9, landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
                detector="yunet")
    crop_face = Face(box=Box(0, 0, 256, 256), score=0.9, landmarks=np.ones((5, 2), np.float32), detector="yunet")
    return NewFace(person=person, image_sha256=f"sha-{person}-{tag}", image_path=f"/photos/{person}/{tag}.jpg",
                   face=face, vector=vector, quality={"face_px": 100.0},
                   crop_jpeg=b"\xff\xd8jpeg-" + tag.encode() if crop else None, crop_face=crop_face if crop else None)


def fill(g: Gallery, n_people=10, per_person=3, seed=0, collection="default", crop=False):
    coll = g.ensure_collection(collection)
    centres, faces = people_vectors(n_people, per_person, seed)
    batch = [new_face(f"p{i:03d}", f"{seed}-{j}", faces[i, j], crop) for i in range(n_people)
             for j in range(per_person)]
    stored = g.store.add_faces(coll.id, coll.contract.key, batch)
    ids = np.array([s[1] for s in stored], np.int64)
    g.indexes.added(coll, coll.contract.key, ids, np.stack([b.vector for b in batch]))
    return coll, centres, faces

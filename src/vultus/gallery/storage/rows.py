"""Rows to records, the same for every SQL backend: the column lists both stores select,
how a row becomes a Collection, FaceRecord or AuditRecord, and how float32 arrays are
kept as bytes. Only the SQL around them differs between the stores."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime

import numpy as np

from vultus.gallery.types import (
    AuditRecord,
    Collection,
    EmbedderContract,
    FaceRecord,
    OwnCalibration,
    ThresholdOverride,
)
from vultus.types import Box

COLLECTION_COLS = ("id, name, embedder, embedder_version, embedder_alignment, dim, detector, target_fmr, "
                   "threshold, threshold_fmr, threshold_source, keep_crops, aggregation, generation, created_at, "
                   "liveness, target_fpir, own_calibration")
FACE_COLS = ("f.id, f.person_id, p.name, f.image_sha256, f.image_path, f.x1, f.y1, f.x2, f.y2, f.landmarks, "
             "f.detector, f.detector_score, f.quality, f.created_at, c.face_id IS NOT NULL")
AUDIT_COLS = "id, at, actor, action, collection, detail"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def process_actor() -> str:
    """Who this process writes as in the audit log (the service sets the key's name instead)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def as_f32(blob, shape=None) -> np.ndarray:
    arr = np.frombuffer(bytes(blob), dtype=np.float32)  # bytes(): psycopg hands back a memoryview
    return arr.reshape(shape) if shape else arr


def f32_blob(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=np.float32).tobytes()


def collection_from_row(row) -> Collection:
    """A row of COLLECTION_COLS."""
    (cid, name, emb, ver, align, dim, det, fmr, thr, thr_fmr, thr_src, crops, agg, gen, created, live,
     fpir, own) = row
    override = ThresholdOverride(thr, thr_fmr, thr_src) if thr is not None else None
    return Collection(id=int(cid), name=name, contract=EmbedderContract(emb, ver, align, int(dim)), detector=det,
                      target_fmr=fmr, keep_crops=bool(crops), aggregation=agg, created_at=created,
                      generation=int(gen), threshold_override=override, liveness=live, target_fpir=fpir,
                      own_calibration=OwnCalibration.from_dict(json.loads(own)) if own else None)


def face_from_row(r) -> FaceRecord:
    """A row of FACE_COLS."""
    return FaceRecord(id=int(r[0]), person_id=int(r[1]), person=r[2], image_sha256=r[3], image_path=r[4],
                      box=Box(r[5], r[6], r[7], r[8]), landmarks=as_f32(r[9], (5, 2)), detector=r[10],
                      detector_score=r[11], quality=json.loads(r[12]), created_at=r[13], has_crop=bool(r[14]))


def audit_from_row(r) -> AuditRecord:
    """A row of AUDIT_COLS."""
    return AuditRecord(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]))

"""Sort photos by person without enrolling anyone: the Python API.

    from vultus.cluster import cluster_photos
    result = cluster_photos(["photos/a.jpg", "photos/b.jpg", ...])
    for c in result.clusters:            # largest first
        print(c.id, c.size, c.cohesion, [f.image for f in c.faces])
    result.unsorted                      # faces like no other (or not like enough)
    result.low_quality                   # faces the quality gate kept out, with the reason

The threshold is the embedder's calibrated threshold at a stated false-match rate (models/calibration),
chosen by bench/cluster.py; see docs/clustering.md for the algorithm and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.cluster.algorithms import Constraints, average_linkage_knn
from vultus.cluster.faces import PhotoFace, photo_faces
from vultus.gallery.gate import GateThresholds
from vultus.models.calibration import operating_point

# The calibrated false-match rate whose threshold cuts the average-linkage tree, per embedder, and the
# kNN graph's k. Chosen by bench/cluster.py on one half of the LFW people by the rule written in
# bench/results/cluster.md, then reported on the other half. Embedders the bench did not run get
# DEFAULT_FMR (sface's).
DEFAULT_FMR = 1e-5
DEFAULT_FMRS = {"sface": 1e-5, "dlib-resnet": 1e-4}
DEFAULT_K = 30
ALGORITHM = "average-linkage-knn"


@dataclass(frozen=True)
class Cluster:
    id: int
    faces: list[PhotoFace] = field(repr=False)
    representative: PhotoFace = field(repr=False)
    cohesion: float  # mean cosine similarity over every pair of its faces
    name: str | None = None  # the person it was named as, if any

    @property
    def size(self) -> int:
        return len(self.faces)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "size": self.size, "cohesion": round(self.cohesion, 4),
                "representative": face_dict(self.representative), "faces": [face_dict(f) for f in self.faces]}


@dataclass(frozen=True)
class ClusterResult:
    clusters: list[Cluster]  # largest first
    unsorted: list[PhotoFace]  # passed the gate, joined no cluster
    low_quality: list[PhotoFace]  # refused by the quality gate (PhotoFace.gate says why)
    errors: dict[str, str]  # files skipped, and why
    embedder: str
    threshold: float
    fmr: float
    source: str
    algorithm: str = ALGORITHM
    images: int = 0
    images_without_faces: int = 0
    cache_hits: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "algorithm": self.algorithm, "embedder": self.embedder,
            "decision": {"threshold": round(self.threshold, 6), "fmr": self.fmr, "source": self.source},
            "images": self.images, "images_without_faces": self.images_without_faces,
            "cache_hits": self.cache_hits, "seconds": round(self.seconds, 2),
            "clusters": [c.to_dict() for c in self.clusters],
            "unsorted": [face_dict(f) for f in self.unsorted],
            "low_quality": [face_dict(f) | {"reasons": list(f.gate)} for f in self.low_quality],
            "errors": [{"file": p, "reason": why} for p, why in self.errors.items()],
        }


def face_dict(f: PhotoFace) -> dict:
    return {"face": f.key, "image": f.image, "index": f.index,
            "box": [round(v, 1) for v in f.box.as_tuple()], "score": round(f.score, 3),
            "quality": round(f.quality, 3)}


def cohesion(vectors: np.ndarray) -> float:
    """Mean cosine over all pairs, from the sum of the unit vectors: (|S|^2 - n) / (n (n - 1))."""
    n = len(vectors)
    if n < 2:
        return 1.0
    s = vectors.sum(axis=0, dtype=np.float64)
    return float((s @ s - np.einsum("ij,ij->", vectors, vectors, dtype=np.float64)) / (n * (n - 1)))


def representative(vectors: np.ndarray, qualities: np.ndarray) -> int:
    """The face nearest its cluster's mean, among the better half by quality (a clear face shows
    the person best)."""
    mean = vectors.sum(axis=0)
    sims = vectors @ mean
    good = qualities >= np.median(qualities)
    return int(np.flatnonzero(good)[np.argmax(sims[good])])


def threshold_for(embedder: str, fmr: float | None = None):
    """The calibrated operating point clustering uses: at `fmr`, else the rate chosen for `embedder`."""
    return operating_point(embedder, fmr if fmr is not None else DEFAULT_FMRS.get(embedder, DEFAULT_FMR))


def cluster_vectors(vectors: np.ndarray, threshold: float, *, groups: np.ndarray | None = None,
                    cannot_link: Sequence[tuple[int, int]] = (), k: int = DEFAULT_K, index_kind: str = "exact",
                    seeds: Sequence[Sequence[int]] = (), sealed: Sequence[bool] | None = None) -> np.ndarray:
    """Labels (-1 = unsorted) for unit vectors: the shipped algorithm with its constraints."""
    cons = Constraints(len(vectors), groups, cannot_link)
    return average_linkage_knn(vectors, threshold, k=k, constraints=cons, index_kind=index_kind, seeds=seeds,
                               sealed=sealed)


def build_result(faces: list[PhotoFace], labels: np.ndarray, low: list[PhotoFace], *, embedder: str, point,
                 errors: dict[str, str], ids: Sequence[int] | None = None, names: dict[int, str] | None = None,
                 **extra) -> ClusterResult:
    """Group faces by label into Clusters (largest first); `ids` maps label -> stable cluster id."""
    clusters = []
    names = names or {}
    vectors = np.stack([f.vector for f in faces]) if faces else np.zeros((0, 1), np.float32)
    qualities = np.array([f.quality for f in faces])
    for lab in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == lab)
        rep = idx[representative(vectors[idx], qualities[idx])]
        cid = int(ids[lab]) if ids is not None else int(lab) + 1
        clusters.append(Cluster(id=cid, faces=[faces[i] for i in idx], representative=faces[rep],
                                cohesion=cohesion(vectors[idx]), name=names.get(cid)))
    clusters.sort(key=lambda c: (-c.size, c.id))
    unsorted = [faces[i] for i in np.flatnonzero(labels < 0)]
    return ClusterResult(clusters=clusters, unsorted=unsorted, low_quality=low, errors=errors, embedder=embedder,
                         threshold=point.threshold, fmr=point.fmr, source=point.source, **extra)


def split_by_gate(faces: list[PhotoFace]) -> tuple[list[PhotoFace], list[PhotoFace]]:
    return [f for f in faces if not f.gate], [f for f in faces if f.gate]


def photo_groups(faces: list[PhotoFace]) -> np.ndarray:
    """One id per photo: two faces of one photo are two people (cannot-link)."""
    _, inv = np.unique([f.sha256 for f in faces], return_inverse=True) if faces else (None, np.zeros(0, int))
    return np.asarray(inv, np.int64)


def cluster_photos(paths: Sequence, *, embedder: str = "sface", detector: str = "yunet", fmr: float | None = None,
                   gate: GateThresholds | None = None, engine=None, workers: int | None = None,
                   use_cache: bool = True, cache_root: Path | None = None, thumbnails: bool = True,
                   progress: Callable[[int], None] | None = None) -> ClusterResult:
    """Detect, embed and cluster every face of `paths` (no gallery involved: see ClusterState for
    clusters that persist, grow incrementally and take corrections)."""
    from vultus.engine import Engine

    t0 = time.perf_counter()
    point = threshold_for(embedder, fmr)
    engine = engine or Engine(detector=detector, embedder=embedder)
    found = photo_faces(engine, paths, limits=gate, workers=workers, use_cache=use_cache, cache_root=cache_root,
                        thumbnails=thumbnails, progress=progress)
    good, low = split_by_gate(found.faces)
    vectors = np.stack([f.vector for f in good]) if good else np.zeros((0, engine.embedder_spec.dim), np.float32)
    labels = cluster_vectors(vectors, point.threshold, groups=photo_groups(good))
    return build_result(good, labels, low, embedder=engine.embedder_name, point=point, errors=found.errors,
                        images=found.images, images_without_faces=found.images_without_faces,
                        cache_hits=found.cache_hits, seconds=time.perf_counter() - t0)

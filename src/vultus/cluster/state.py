"""Clusters that persist in the gallery, grow with new photos and take corrections.

The state lives in the gallery store (tables cluster_faces, clusters, cluster_cannot_link,
cluster_seq; storage/base.py ClusteringState), keyed to a collection, so it shares the store's
transactions and crash safety: every step below is one `save_clustering` transaction with its
audit record, and a crash leaves the state before or after the step, never half of it.

- add: faces of new photos (by image sha256 + face number; known faces are skipped). Faces of
  photos named people were enrolled as are first identified against the collection: a match at
  the collection's threshold joins that person's cluster. The rest go through the same average
  linkage as a full run, seeded with the existing clusters: a new face joins the cluster whose
  mean similarity to it is highest and at least the threshold (unless a second existing cluster also
  reaches it: then it is not clearly closer, and waits), new faces that agree with each other form a
  new cluster, and faces that do neither wait as "unsorted" and are reconsidered next time.
  Existing clusters keep their ids and never merge with each other automatically (only a person
  merges them), so ids are stable across runs.
- recluster: everything from scratch (faces a person placed stay together), then each new cluster
  takes the old id it shares the most faces with (greedy by overlap, each old id once); the rest
  get fresh ids. Names go with ids.
- name: the cluster's faces are enrolled as a person into the collection through the gallery's
  normal enrollment (the quality gate and its duplicate check), and pinned.
- merge A B: B's faces join A (pinned), B's id is retired.
- remove FACE: the face leaves its cluster, and a must-not-link between it and every face of that
  cluster is stored: no later run (recluster included) puts them together again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.cluster.algorithms import Constraints, average_linkage_knn, knn_graph
from vultus.cluster.api import (
    ALGORITHM,
    DEFAULT_K,
    ClusterResult,
    build_result,
    split_by_gate,
    threshold_for,
)
from vultus.cluster.faces import PhotoFace
from vultus.gallery.errors import GalleryError, NotFoundError
from vultus.gallery.storage.base import ClusterFaceRow, ClusteringChange, ClusteringState
from vultus.types import Box


@dataclass(frozen=True)
class StepReport:
    """What one clustering step did."""

    action: str
    added: int = 0  # new faces stored
    known: int = 0  # faces already in the state (skipped)
    joined: int = 0  # new faces that joined an existing cluster
    identified: int = 0  # new faces that joined a named cluster by identification
    waiting: int = 0  # new faces near two existing clusters: left unsorted until it is clear
    new_clusters: int = 0
    unsorted: int = 0  # faces in no cluster after the step
    id_map: dict[int, int] = field(default_factory=dict)  # recluster: old id -> new id (same id: kept)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("action", "added", "known", "joined", "identified", "waiting",
                                              "new_clusters", "unsorted", "seconds")} | {"id_map": {str(k): v for k, v
                                                                                    in self.id_map.items()}}


def _row(f: PhotoFace) -> ClusterFaceRow:
    return ClusterFaceRow(key=f.key, image_path=str(Path(f.image).resolve()) if f.image else "",
                          box=f.box.as_tuple(), detector_score=f.score, quality=f.quality,
                          vector=np.asarray(f.vector, np.float32), thumbnail=f.thumbnail)


def _face(r: ClusterFaceRow) -> PhotoFace:
    sha, _, idx = r.key.rpartition(":")
    return PhotoFace(image=r.image_path, sha256=sha, index=int(idx), box=Box(*r.box), score=r.detector_score,
                     quality=r.quality, gate=(), vector=r.vector, thumbnail=r.thumbnail)


def map_by_overlap(old: np.ndarray, new: np.ndarray) -> dict[int, int]:
    """{new label: old id} pairing each new cluster with the old id it shares most faces with,
    greedily by overlap (each old id used once). Faces with old id < 0 or new label < 0 do not vote."""
    both = (old >= 0) & (new >= 0)
    if not both.any():
        return {}
    pairs, counts = np.unique(np.stack([new[both], old[both]], axis=1), axis=0, return_counts=True)
    out: dict[int, int] = {}
    used: set[int] = set()
    for (n_lab, o_id), _ in sorted(zip(pairs.tolist(), counts.tolist(), strict=True),
                                   key=lambda t: (-t[1], t[0][0], t[0][1])):
        if n_lab not in out and o_id not in used:
            out[n_lab] = o_id
            used.add(o_id)
    return out


class PhotoClusters:
    """The clustering state of one gallery collection. Use through `open_clusters`."""

    def __init__(self, gallery, collection: str, *, fmr: float | None = None, k: int = DEFAULT_K):
        self.gallery = gallery
        self.coll = gallery.collection(collection)
        self.embedder = self.coll.contract.name
        self.point = threshold_for(self.embedder, fmr)
        self.k = k

    @property
    def store(self):
        return self.gallery.store

    def state(self) -> ClusteringState:
        return self.store.clustering(self.coll.id)

    # -- running -----------------------------------------------------------------
    def _identify(self, vectors: np.ndarray, names: dict[int, str | None]) -> list[int | None]:
        """For each vector, the id of the named cluster whose person it is identified as, if any."""
        by_name = {n: cid for cid, n in names.items() if n}
        if not by_name or not len(vectors) or not self.store.counts(self.coll.id)["faces"]:
            return [None] * len(vectors)
        found = self.gallery.identify_vectors(vectors, self.coll.name, top_k=1)
        return [by_name.get(i.person) if i.person else None for i in found]

    def _cluster(self, rows: list[ClusterFaceRow], seeds: dict[int, list[int]], free: np.ndarray,
                 cannot: list[tuple[str, str]], *, sealed: bool) -> np.ndarray:
        """Labels for `rows`: the seeds (cluster id -> row numbers) plus the free rows, clustered."""
        vectors = np.stack([r.vector for r in rows]) if rows else np.zeros((0, self.coll.contract.dim), np.float32)
        where = {r.key: i for i, r in enumerate(rows)}
        groups = np.unique([r.key.rpartition(":")[0] for r in rows], return_inverse=True)[1] if rows else None
        links = [(where[a], where[b]) for a, b in cannot if a in where and b in where]
        cons = Constraints(len(rows), groups, links)
        # Only the free faces' neighbourhoods matter: seeded faces are already together, and two
        # sealed seeds never merge.
        graph = knn_graph(vectors, min(self.k, max(1, len(rows) - 1)), rows=free,
                          min_similarity=self.point.threshold) if len(free) and len(rows) > 1 else None
        seed_list = list(seeds.values())
        if graph is None:
            labels = np.full(len(rows), -1, np.int64)
            for j, members in enumerate(seed_list):
                labels[members] = j
            return labels
        return average_linkage_knn(vectors, self.point.threshold, graph=graph, constraints=cons, seeds=seed_list,
                                   sealed=[sealed] * len(seed_list))

    def add(self, faces: list[PhotoFace]) -> StepReport:
        """Cluster new faces into the existing state (gate-refused faces are not stored)."""
        t0 = time.perf_counter()
        st = self.state()
        known = {r.key for r in st.faces}
        good, _ = split_by_gate(faces)
        fresh, seen = [], set()
        for f in good:
            if f.key not in known and f.key not in seen:
                fresh.append(f)
                seen.add(f.key)
        n_known = len(good) - len(fresh)
        if not fresh:
            return StepReport("cluster", known=n_known, unsorted=sum(r.cluster_id is None for r in st.faces),
                              seconds=time.perf_counter() - t0)
        new_rows = [_row(f) for f in fresh]
        rows = list(st.faces) + new_rows
        seeds: dict[int, list[int]] = {}
        for i, r in enumerate(st.faces):
            if r.cluster_id is not None:
                seeds.setdefault(r.cluster_id, []).append(i)
        for cid in st.names:
            seeds.setdefault(cid, [])
        # Named people pull their faces by identification first.
        pulled = self._identify(np.stack([r.vector for r in new_rows]), st.names)
        identified = 0
        for j, cid in enumerate(pulled):
            if cid is not None:
                seeds[cid].append(len(st.faces) + j)
                identified += 1
        seeds = {c: m for c, m in seeds.items() if m}
        in_seed = np.zeros(len(rows), bool)
        for m in seeds.values():
            in_seed[m] = True
        free = np.flatnonzero(~in_seed)
        labels = self._cluster(rows, seeds, free, st.cannot_link, sealed=True)
        label_to_id = {int(labels[m[0]]): cid for cid, m in seeds.items()}
        ids, new_ids, next_id = _fresh_ids(labels, label_to_id, st.next_id)
        waiting = self._ambiguous(st, new_rows, ids, pulled)
        for j in waiting:
            ids[len(st.faces) + j] = None
        add_rows = [ClusterFaceRow(**{**_as_kwargs(r), "cluster_id": ids[len(st.faces) + j]})
                    for j, r in enumerate(new_rows)]
        assign = {r.key: ids[i] for i, r in enumerate(st.faces) if ids[i] != r.cluster_id}
        joined = sum(1 for j in range(len(new_rows)) if ids[len(st.faces) + j] in st.names) - identified
        report = StepReport("cluster", added=len(new_rows), known=n_known, joined=joined, identified=identified,
                            waiting=len(waiting), new_clusters=len(new_ids), unsorted=sum(i is None for i in ids),
                            seconds=time.perf_counter() - t0)
        self.store.save_clustering(self.coll.id, ClusteringChange(base_generation=st.generation,
            action="cluster", detail={k: v for k, v in report.to_dict().items() if k not in ("id_map", "seconds")},
            add_faces=add_rows, assign=assign, names=new_ids, next_id=next_id))
        return report

    def _ambiguous(self, st: ClusteringState, new_rows: list[ClusterFaceRow], ids: list, pulled: list) -> list[int]:
        """New faces that joined an existing cluster while another existing cluster also reaches the
        threshold on average: not clearly one person's, so they wait (unsorted) for more evidence or a
        person, rather than be put where a later photo may show they do not belong."""
        groups: dict[int, list[np.ndarray]] = {}
        for r in st.faces:
            if r.cluster_id is not None:
                groups.setdefault(r.cluster_id, []).append(r.vector)
        if len(groups) < 2:
            return []
        cids = list(groups)
        means = np.stack([np.sum(groups[c], axis=0) / len(groups[c]) for c in cids])
        out = []
        for j, r in enumerate(new_rows):
            cid = ids[len(st.faces) + j]
            if cid not in groups or pulled[j] is not None:
                continue
            if int(((means @ r.vector) >= self.point.threshold).sum()) >= 2:
                out.append(j)
        return out

    def recluster(self) -> StepReport:
        """Cluster every stored face from scratch; old ids carry over by overlap."""
        t0 = time.perf_counter()
        st = self.state()
        rows = list(st.faces)
        seeds: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            if r.pinned and r.cluster_id is not None:
                seeds.setdefault(r.cluster_id, []).append(i)
        in_seed = np.zeros(len(rows), bool)
        for m in seeds.values():
            in_seed[m] = True
        labels = self._cluster(rows, seeds, np.flatnonzero(~in_seed), st.cannot_link, sealed=True)
        old = np.array([r.cluster_id if r.cluster_id is not None else -1 for r in rows], np.int64)
        mapping = {int(labels[m[0]]): cid for cid, m in seeds.items()}  # pinned faces keep their cluster
        rest_old = old.copy()
        rest_old[np.isin(old, list(mapping.values()))] = -1
        rest_new = labels.copy()
        rest_new[np.isin(labels, list(mapping))] = -1
        mapping |= map_by_overlap(rest_old, rest_new)
        ids, names, next_id = _fresh_ids(labels, mapping, st.next_id)
        kept = set(mapping.values())
        drop = [cid for cid in st.names if cid not in kept]
        assign = {r.key: ids[i] for i, r in enumerate(rows) if ids[i] != r.cluster_id}
        id_map = {}
        for cid in st.names:
            members = [i for i, r in enumerate(rows) if r.cluster_id == cid]
            if members:
                votes = [ids[i] for i in members if ids[i] is not None]
                id_map[cid] = max(set(votes), key=votes.count) if votes else None
        report = StepReport("recluster", new_clusters=len(names), unsorted=sum(i is None for i in ids),
                            id_map={k: v for k, v in id_map.items() if v is not None},
                            seconds=time.perf_counter() - t0)
        self.store.save_clustering(self.coll.id, ClusteringChange(base_generation=st.generation,
            action="recluster", detail={"clusters": len(kept), "new_clusters": len(names), "retired": len(drop),
                                        "moved_faces": len(assign)},
            assign=assign, names=names, drop_clusters=drop, next_id=next_id))
        return report

    # -- corrections -------------------------------------------------------------
    def _members(self, st: ClusteringState, cluster_id: int) -> list[ClusterFaceRow]:
        if cluster_id not in st.names:
            known = ", ".join(str(c) for c in list(st.names)[:20]) or "none yet"
            raise NotFoundError(f"no cluster {cluster_id} in collection {self.coll.name!r} (clusters: {known})",
                                code="no_cluster", collection=self.coll.name)
        return [r for r in st.faces if r.cluster_id == cluster_id]

    def merge(self, into: int, other: int) -> int:
        """Move every face of `other` into `into` (pinned: a person put them there); returns faces moved."""
        if into == other:
            raise GalleryError("cannot merge a cluster into itself", code="bad_merge")
        st = self.state()
        self._members(st, into)
        moved = self._members(st, other)
        keys = [r.key for r in moved] + [r.key for r in st.faces if r.cluster_id == into]
        name = st.names.get(into) or st.names.get(other)
        self.store.save_clustering(self.coll.id, ClusteringChange(base_generation=st.generation,
            action="cluster-merge", detail={"cluster": into, "merged": other, "faces": len(moved)},
            assign={r.key: into for r in moved}, pin=dict.fromkeys(keys, True),
            names={into: name}, drop_clusters=[other]))
        return len(moved)

    def remove(self, face_key: str) -> int | None:
        """Take a face out of its cluster ("not this person"); it may never join that cluster's
        faces again. Returns the cluster it left."""
        st = self.state()
        row = next((r for r in st.faces if r.key == face_key), None)
        if row is None:
            raise NotFoundError(f"no face {face_key!r} in the clusters of collection {self.coll.name!r}",
                                code="no_cluster_face", collection=self.coll.name)
        if row.cluster_id is None:
            return None
        others = [r.key for r in st.faces if r.cluster_id == row.cluster_id and r.key != face_key]
        self.store.save_clustering(self.coll.id, ClusteringChange(base_generation=st.generation,
            action="cluster-remove", detail={"cluster": row.cluster_id, "face": face_key},
            assign={face_key: None}, pin={face_key: False},
            cannot_link=[(face_key, o) for o in others]))
        return row.cluster_id

    def name(self, cluster_id: int, person: str, *, options=None, workers: int | None = 0):
        """Enroll the cluster's faces as `person` in the collection (through the enrollment gate),
        name the cluster and pin its faces. Returns the gallery's EnrollReport."""
        from vultus.gallery.names import check_name
        from vultus.gallery.types import EnrollItem

        person = check_name(person, "person")
        st = self.state()
        members = self._members(st, cluster_id)
        taken = {n for c, n in st.names.items() if n and c != cluster_id}
        if person in taken:
            other = next(c for c, n in st.names.items() if n == person and c != cluster_id)
            raise GalleryError(f"cluster {other} is already named {person!r}; merge the two clusters instead",
                               code="name_taken", person=person)
        items = [EnrollItem(Path(r.image_path), person, box=r.box) for r in members]
        report = self.gallery.enroll(items, self.coll.name, options=options, workers=workers)
        self.store.save_clustering(self.coll.id, ClusteringChange(base_generation=st.generation,
            action="cluster-name", detail={"cluster": cluster_id, "person": person,
                                           "enrolled": sum(o.status == "enrolled" for o in report.outcomes)},
            names={cluster_id: person}, pin={r.key: True for r in members}))
        return report

    # -- reading -----------------------------------------------------------------
    def result(self, *, low_quality: list[PhotoFace] = (), errors: dict[str, str] | None = None,
               **extra) -> ClusterResult:
        st = self.state()
        faces = [_face(r) for r in st.faces]
        ids = sorted({r.cluster_id for r in st.faces if r.cluster_id is not None})
        pos = {cid: j for j, cid in enumerate(ids)}
        labels = np.array([pos[r.cluster_id] if r.cluster_id is not None else -1 for r in st.faces], np.int64)
        return build_result(faces, labels, list(low_quality), embedder=self.embedder, point=self.point,
                            errors=errors or {}, ids=ids, names={c: n for c, n in st.names.items() if n},
                            algorithm=ALGORITHM, **extra)


def _fresh_ids(labels: np.ndarray, mapping: dict[int, int], next_id: int):
    """Cluster id per face (None: unsorted): labels in `mapping` keep their id, the others get new
    ids from `next_id` on. Returns (ids, {new id: None}, the next free id); `mapping` is extended."""
    created: dict[int, str | None] = {}
    for lab in np.unique(labels[labels >= 0]).tolist():
        if lab not in mapping:
            mapping[lab] = next_id
            created[next_id] = None
            next_id += 1
    return [mapping[int(lab)] if lab >= 0 else None for lab in labels], created, next_id


def _as_kwargs(r: ClusterFaceRow) -> dict:
    return {k: getattr(r, k) for k in ClusterFaceRow.__slots__}


def open_clusters(gallery, collection: str = "default", *, embedder: str | None = None,
                  fmr: float | None = None) -> PhotoClusters:
    """The clustering state of `collection` (created for `embedder` if it does not exist)."""
    gallery.ensure_collection(collection, embedder=embedder)
    return PhotoClusters(gallery, collection, fmr=fmr)

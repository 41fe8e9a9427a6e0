"""The storage interface of the gallery: the source of truth.

Everything the gallery knows lives behind GalleryStore: collections and their
embedder contracts, people, faces, embeddings per embedder, aligned crops,
the audit log, and a note of what each derived ANN index file covers. Search
comes from one of two places, and the store says which: a store with its own
vector index (PostgreSQL + pgvector: `native_index()`, kept in step with the
rows inside every transaction) serves candidates itself; otherwise the gallery
keeps a derived ANN index (gallery/indexes.py), rebuilt from `vectors()`
whenever it is missing, stale or corrupt, and saved under `index_folder()`
when the store has a local folder for it (SQLite: beside the file).

Every method that changes data runs in one transaction and writes its own
audit record in that transaction, so a crash leaves either all or nothing.
A backend is one module implementing this class plus one entry in
storage/__init__.py's BACKENDS. The gallery, the clustering state and the
service use nothing but what this class declares (tests/test_store_contract.py
runs one suite over every backend).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.gallery.search.base import NativeIndex
from vultus.gallery.types import (
    AuditRecord,
    Collection,
    EmbedderContract,
    FaceRecord,
    NewFace,
    OwnCalibration,
    Person,
    ThresholdOverride,
)
from vultus.types import Face

# Multiplier and modulus of the id hash in IdFingerprint: an additive hash, so a
# store can compute it with one aggregate query and an index from its keys.
ID_HASH_MUL = 2654435761
ID_HASH_MOD = 4294967291


@dataclass(frozen=True, slots=True)
class IdFingerprint:
    """Which embedding ids a set holds, in three numbers. Embedding ids are never
    reused, so any insert raises max_id and any delete changes count or id_hash."""

    count: int
    max_id: int
    id_hash: int

    @classmethod
    def of(cls, ids: np.ndarray) -> IdFingerprint:
        ids = np.asarray(ids, dtype=np.uint64)
        if ids.size == 0:
            return cls(0, 0, 0)
        h = (ids * np.uint64(ID_HASH_MUL)) % np.uint64(ID_HASH_MOD)
        return cls(int(ids.size), int(ids.max()), int(h.sum(dtype=np.uint64)))


@dataclass(frozen=True, slots=True)
class IndexState:
    """What the derived index file of one (collection, embedder) holds, as last
    written: if the file's size or crc32 differ it is corrupt; if `ids` differs
    from the store's fingerprint it is stale."""

    collection_id: int
    embedder: str
    kind: str
    file: str
    ids: IdFingerprint
    file_size: int
    file_crc32: int
    built_at: str


@dataclass(frozen=True, slots=True)
class ForgottenData:
    """What forget_person removed, held in memory only long enough to prove that
    none of it can be matched any more."""

    person_id: int
    faces: int
    crops: int
    images: int
    embedding_ids: dict[str, np.ndarray] = field(repr=False)  # per embedder
    vectors: dict[str, np.ndarray] = field(repr=False)  # per embedder, rows as embedding_ids
    face_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    audit_token: str = ""  # the opaque id that replaced the person's name and id in the audit log


@dataclass(frozen=True, slots=True)
class PersonVectors:
    """All embeddings of some people, for exact re-ranking."""

    embedding_ids: np.ndarray
    face_ids: np.ndarray
    person_ids: np.ndarray
    vectors: np.ndarray
    names: dict[int, str]


@dataclass(frozen=True, slots=True)
class CropItem:
    face_id: int
    jpeg: bytes | None
    crop_face: Face | None  # the face in the crop's coordinates
    source_face: Face  # the face in the source image's coordinates
    image_path: str | None
    image_sha256: str


@dataclass(frozen=True, slots=True)
class ClusterFaceRow:
    """One face in the clustering state (vultus.cluster): where it is, its embedding, its cluster
    (None: unsorted) and whether a person placed it there (pinned: never moved by the algorithm)."""

    key: str  # image sha256 ":" face number
    image_path: str
    box: tuple[float, float, float, float]
    detector_score: float
    quality: float
    vector: np.ndarray = field(repr=False)
    thumbnail: bytes = field(default=b"", repr=False)
    cluster_id: int | None = None
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class ClusteringState:
    faces: list[ClusterFaceRow]
    names: dict[int, str | None]  # every cluster id that exists -> its name (None if unnamed)
    cannot_link: list[tuple[str, str]]  # face key pairs that are two people
    next_id: int  # the next cluster id to hand out (ids are never reused)
    generation: int = 0  # bumped by every saved change: a step computed from an older state is refused


@dataclass(frozen=True, slots=True)
class ClusteringChange:
    """Everything one clustering step changes, applied in one transaction with its audit record."""

    action: str
    detail: dict
    add_faces: list[ClusterFaceRow] = field(default_factory=list)
    assign: dict[str, int | None] = field(default_factory=dict)  # face key -> cluster id (None: unsorted)
    pin: dict[str, bool] = field(default_factory=dict)
    names: dict[int, str | None] = field(default_factory=dict)  # clusters to create or rename
    drop_clusters: list[int] = field(default_factory=list)
    cannot_link: list[tuple[str, str]] = field(default_factory=list)
    next_id: int | None = None
    base_generation: int | None = None  # the state's generation this change was computed from


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `migrate()` found and did: the schema version before and after, and the
    migrations applied now (empty when the schema was already current)."""

    backend: str
    location: str
    version_before: int
    version: int
    applied: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"backend": self.backend, "gallery": self.location, "version_before": self.version_before,
                "version": self.version, "applied": list(self.applied)}


class GalleryStore(ABC):
    """Source of truth for one gallery. Implementations must be safe for several
    processes writing at once (each change is one atomic transaction)."""

    #: the backend's name, as in the location's scheme ("sqlite", "postgresql")
    backend: str = ""
    #: the gallery's location as the user gave it (a path or a URL, without any password)
    location: str
    #: where rows a change deleted linger until checkpoint() succeeds (said by a forget that could
    #: not finish the erasure)
    residue: str = "in the store's files until they are compacted"
    #: who the audit log names for the changes made through this store; a service sets it
    #: per request (under its write lock) to the API key's id and name
    actor: str = ""
    #: why this process cannot write the gallery (None when it can); reads keep working
    read_only: str | None = None
    #: what a check or a query found damaged (None when nothing was); writes are refused
    damaged: str | None = None

    def require_writable(self) -> None:
        """Raise ReadOnlyError or GalleryDamagedError before a change starts."""
        return None

    def checkpoint(self) -> bool:
        """Make deletions final on disk (True when done): SQLite folds and truncates its
        write-ahead log, PostgreSQL vacuums the tables a forget touched. False: an older
        snapshot held by another reader keeps the deleted rows for now."""
        return True

    def migrate(self) -> MigrationReport:
        """Bring the schema up to this version of vultus (stores also do it when opened
        writable); returns what was applied."""
        raise NotImplementedError

    # -- where search comes from ---------------------------------------------
    def index_folder(self) -> Path | None:
        """The local folder where derived index files of this gallery are saved (SQLite:
        beside the file), or None when there is none: then the gallery keeps its derived
        index in memory only, or the store searches itself (native_index)."""
        return None

    def native_index(self, collection_id: int, embedder: str, dim: int) -> NativeIndex | None:
        """The store's own index over the collection's `embedder` vectors, always in step with
        its rows (written in the same transactions), or None when the gallery must keep a
        derived one. Its similarities may be approximate: the gallery re-ranks every candidate
        with the exact vectors from person_vectors(), as for a derived index."""
        return None

    def referenced_index_files(self) -> set[str]:
        """Index file names that index_state records."""
        return set()

    def trashed_index_files(self) -> set[str]:
        """Index file names a committed change superseded: delete them."""
        return set()

    def untrash_index_files(self, files) -> None:
        """Drop these names from the trash list once their files are gone."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    # -- collections -------------------------------------------------------
    @abstractmethod
    def create_collection(self, name: str, contract: EmbedderContract, detector: str, target_fmr: float,
                          keep_crops: bool, aggregation: str, *, exist_ok: bool = False,
                          target_fpir: float | None = None) -> Collection:
        """A new collection; ConflictError if the name is taken, unless exist_ok (then the
        existing one is returned, decided inside the write transaction: race-free). With
        `target_fpir` it decides by that identification rate, else by `target_fmr`."""

    @abstractmethod
    def collection(self, name: str) -> Collection:
        """The collection called `name`; NotFoundError naming the ones that exist."""

    @abstractmethod
    def collections(self) -> list[Collection]: ...

    @abstractmethod
    def update_decision(self, collection_id: int, *, target_fmr: float | None = None,
                        override: ThresholdOverride | None = None, clear_override: bool = False,
                        aggregation: str | None = None, target_fpir: float | None = None,
                        own_calibration: OwnCalibration | None = None,
                        clear_own_calibration: bool = False) -> Collection:
        """Change how the collection decides. Setting `target_fmr` also ends an FPIR target.
        `own_calibration` (a curve measured on the collection's own impostor pairs) is stored
        with the collection and returned as Collection.own_calibration; `clear_own_calibration`
        drops it. Clearing happens before setting, all in one transaction."""

    @abstractmethod
    def set_liveness(self, collection_id: int, point: str | None) -> Collection:
        """Require liveness at this operating point at enroll and identify (None: not required)."""

    @abstractmethod
    def delete_collection(self, collection_id: int) -> dict[str, int]:
        """Delete an empty collection (forget its people first) and its index
        records, leaving one audit record; returns what was removed."""

    @abstractmethod
    def switch_embedder(self, collection_id: int, new: EmbedderContract) -> int:
        """Make `new` the collection's contract and delete every embedding made by
        any other embedder (a migration's last, atomic step). Returns rows deleted."""

    # -- people ------------------------------------------------------------
    @abstractmethod
    def people(self, collection_id: int) -> list[Person]: ...

    @abstractmethod
    def person(self, collection_id: int, name: str) -> Person: ...

    @abstractmethod
    def rename_person(self, collection_id: int, old: str, new: str) -> Person: ...

    @abstractmethod
    def merge_people(self, collection_id: int, source: str, target: str) -> int:
        """Move every face of `source` to `target`, delete `source`; returns faces moved."""

    @abstractmethod
    def set_person_metadata(self, collection_id: int, name: str, metadata: dict) -> Person: ...

    @abstractmethod
    def forget_person(self, collection_id: int, name: str) -> ForgottenData:
        """Delete a person and every row that derives from them (faces, images,
        embeddings, crops), leaving one audit record without biometric data, and
        redact the person from every earlier audit record: their names (also
        former names and people merged into them) and ids become one opaque
        token, in the same transaction."""

    @abstractmethod
    def references(self, collection_id: int, person_id: int, embedding_ids: Sequence[int],
                   face_ids: Sequence[int]) -> dict[str, int]:
        """Rows that still refer to a person, their faces or embeddings, per table
        (all zero after a complete forget): forget's proof reads this."""

    # -- faces -------------------------------------------------------------
    @abstractmethod
    def known_images(self, collection_id: int, sha256s: Sequence[str]) -> dict[str, str]:
        """{sha256: person} for the images already enrolled in the collection."""

    @abstractmethod
    def add_faces(self, collection_id: int, embedder: str,
                  faces: Sequence[NewFace]) -> list[tuple[int, int] | None]:
        """Store faces (one per image) with their embeddings and crops in one
        transaction. Returns (face id, embedding id) per face, or None for an
        image already enrolled (it is skipped)."""

    @abstractmethod
    def faces(self, collection_id: int, person: str | None = None) -> list[FaceRecord]: ...

    @abstractmethod
    def move_face(self, collection_id: int, face_id: int, person: str) -> None: ...

    @abstractmethod
    def delete_face(self, collection_id: int, face_id: int) -> dict[str, np.ndarray]:
        """Delete one face; returns its embedding ids per embedder (to drop from indexes)."""

    @abstractmethod
    def crop_jpeg(self, collection_id: int, face_id: int) -> bytes | None:
        """The face's stored aligned crop (JPEG), None if it was enrolled without one;
        NotFoundError if the collection has no such face."""

    @abstractmethod
    def crop_items(self, collection_id: int, missing_embedder: str, limit: int) -> list[CropItem]:
        """Up to `limit` faces that have no embedding from `missing_embedder` yet."""

    @abstractmethod
    def add_embeddings(self, collection_id: int, embedder: str, face_ids: Sequence[int],
                       vectors: np.ndarray) -> None: ...

    # -- embeddings --------------------------------------------------------
    @abstractmethod
    def vectors(self, collection_id: int, embedder: str, ids: np.ndarray | None = None,
                batch: int = 65536):
        """Yield (ids, vectors) chunks of the collection's embeddings (all, or `ids`)."""

    @abstractmethod
    def embedding_ids(self, collection_id: int, embedder: str) -> np.ndarray: ...

    @abstractmethod
    def fingerprint(self, collection_id: int, embedder: str) -> IdFingerprint: ...

    @abstractmethod
    def generation(self, collection_id: int) -> int:
        """A counter bumped by every change to the collection's embeddings: a cheap
        'has anything changed since I looked' check for long-lived readers."""

    @abstractmethod
    def owners(self, collection_id: int, embedder: str, embedding_ids: np.ndarray) -> dict[int, int]:
        """{embedding id: person id} for the ids that still exist."""

    @abstractmethod
    def person_vectors(self, collection_id: int, embedder: str, person_ids: Sequence[int]) -> PersonVectors: ...

    # -- derived index bookkeeping (only stores with an index_folder() record files) --
    def index_state(self, collection_id: int, embedder: str) -> IndexState | None:
        return None

    def set_index_state(self, state: IndexState, *, snapshot_generation: int | None = None) -> bool:
        """Record an index file (the old one goes to the trash list); refused (False) when
        vectors were erased after the generation the index was built at, or when the store
        keeps no index files."""
        return False

    def clear_index_state(self, collection_id: int, embedder: str | None = None) -> None:
        return None

    # -- face clustering state (vultus.cluster) ----------------------------
    @abstractmethod
    def clustering(self, collection_id: int) -> ClusteringState:
        """The collection's clustering state (empty when nothing was clustered into it)."""

    @abstractmethod
    def save_clustering(self, collection_id: int, change: ClusteringChange) -> None:
        """Apply one clustering step (new faces, assignments, pins, cluster names, must-not-links)
        and its audit record in one transaction; ConflictError (nothing written) when the state's
        generation is no longer `change.base_generation`."""

    # -- audit and counts --------------------------------------------------
    @abstractmethod
    def audit(self, action: str, collection: str, detail: dict) -> None: ...

    @abstractmethod
    def audit_log(self, collection: str | None = None, limit: int = 100) -> list[AuditRecord]: ...

    @abstractmethod
    def counts(self, collection_id: int) -> dict[str, int]:
        """people, faces, images, embeddings (contract embedder), crops."""

    @abstractmethod
    def size_bytes(self) -> int: ...

"""The one place the service calls the vultus library (Engine and Gallery).

Routes never touch the library directly: they call this adapter, on a pool
thread (see inference.py). When the library's API changes (per-image batch
results, enroll from bytes), this module is what gets ported.

Images arrive as checked uploads (bytes, see uploads.py) and are decoded once
here; nothing in a request is ever used as a path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from vultus.engine import Engine, pick_one
from vultus.errors import InvalidArgumentError, ModelError, VultusError
from vultus.gallery import Gallery
from vultus.gallery.api import is_url
from vultus.gallery.errors import ConflictError, NotFoundError
from vultus.gallery.inference import EnrollOptions
from vultus.gallery.types import EnrollItem, EnrollReport, Person
from vultus.imageio import load_image
from vultus.models.calibration import calibration_for, operating_point
from vultus.service.errors import ServiceError
from vultus.service.uploads import Upload, decode
from vultus.textsafe import has_control
from vultus.types import OperatingPoint, Verification


@dataclass(frozen=True, slots=True)
class Detected:
    upload: Upload
    width: int
    height: int
    faces: list  # Face, or FaceAnalysis for analyze


class _FaceLimit:
    """An Engine whose embed_batch refuses an image with more than `max_faces`
    faces before embedding them (Gallery.identify calls engine.embed_batch)."""

    def __init__(self, engine: Engine, max_faces: int, uploads: list[Upload]):
        self._engine = engine
        self._max = max_faces
        self._uploads = uploads

    @property
    def embedder_name(self) -> str:
        return self._engine.embedder_name

    def embed_batch(self, images, faces=None):
        arrays = [load_image(i) for i in images]
        if faces is None:
            faces = self._engine.detector.detect(arrays)
        for pos, fs in enumerate(faces):
            _check_faces(len(fs), self._max, self._uploads[pos] if pos < len(self._uploads) else None)
        return self._engine.embed_batch(arrays, faces)


def _check_faces(n: int, limit: int, upload: Upload | None) -> None:
    if n > limit:
        name = upload.name if upload else "image"
        raise ServiceError(f"{name}: {n} faces; the limit is {limit} per image", code="too_many_faces",
                           image=name, index=upload.index if upload else None, faces=n, limit=limit)


def encode_cursor(name: str, pid: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, pid]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, pid = json.loads(raw)
        if not isinstance(name, str) or not isinstance(pid, int):
            raise ValueError
        return name, pid
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError("not a cursor this service returned", code="invalid_argument",
                                   field="cursor") from exc


class Library:
    """Models loaded once per process and shared by every request; one Gallery."""

    def __init__(self, gallery_path: str | Path, *, detector: str = "yunet", embedder: str = "sface",
                 model_threads: int | None = None, max_faces: int = 64, pool_size: int | None = None):
        self.detector = detector
        self.embedder = embedder
        self.model_threads = model_threads
        self.max_faces = max_faces
        # A database gallery gets a connection pool sized to this worker's threads.
        options = {"pool_size": pool_size} if pool_size and is_url(gallery_path) else {}
        self.gallery = Gallery(gallery_path, store_options=options)
        self._engines: dict[tuple[str, str], Engine] = {}
        self._engines_lock = threading.Lock()
        # Writes run one at a time per process: SQLite has one writer anyway, and the
        # gallery store names the audit log's actor per store, so a write sets it
        # (the key's id and name) while it holds this lock.
        self._write_lock = threading.Lock()
        self.ready = False

    # -- lifecycle ---------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the default models (and check their files) so the first request does not."""
        import numpy as np

        from vultus.align import ARCFACE_112
        from vultus.types import Box, Face

        engine = self.engine()
        # Run each model once on a blank picture: onnxruntime sizes its buffers and picks its
        # kernels on the first run, and that first run (1-2 s) must not land on a client's request.
        blank = np.full((112, 112, 3), 128, np.uint8)
        engine.detector.detect([blank])
        face = Face(Box(0, 0, 112, 112), 1.0, ARCFACE_112.astype(np.float32), "warm-up")
        engine.embedder.embed([(blank, face)])
        # Each collection's search index too (loaded, or rebuilt in memory, on first use otherwise).
        for coll in self.gallery.collections():
            with contextlib.suppress(VultusError):  # a collection that cannot load says so when it is asked
                self.gallery.indexes.get(coll)
        self.ready = True

    def close(self) -> None:
        self.ready = False
        with self._write_lock:
            self.gallery.close()

    def engine(self, detector: str | None = None, embedder: str | None = None) -> Engine:
        key = (detector or self.detector, embedder or self.embedder)
        with self._engines_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = Engine(detector=key[0], embedder=key[1], threads=self.model_threads)
        return engine

    @contextlib.contextmanager
    def acting_as(self, actor: str):
        with self._write_lock:
            store = self.gallery.store
            previous = store.actor
            store.actor = actor
            try:
                yield self.gallery
            finally:
                store.actor = previous

    # -- stateless ---------------------------------------------------------------
    def detect(self, uploads: list[Upload], *, landmarks68: bool = False) -> list[Detected]:
        engine = self.engine()
        arrays = [decode(u) for u in uploads]
        faces = engine.detector.detect(arrays)
        out = []
        for u, img, fs in zip(uploads, arrays, faces, strict=True):
            _check_faces(len(fs), self.max_faces, u)
            if landmarks68 and fs:
                fs = engine.landmarks68(img, fs)
            out.append(Detected(u, img.shape[1], img.shape[0], list(fs)))
        return out

    def analyze(self, uploads: list[Upload], actions: list[str] | None = None) -> list[Detected]:
        from vultus.attributes.analyze import analyze_batch

        engine = self.engine()
        arrays = [decode(u) for u in uploads]
        faces = engine.detector.detect(arrays)
        for u, fs in zip(uploads, faces, strict=True):
            _check_faces(len(fs), self.max_faces, u)
        results = analyze_batch(engine, arrays, faces, actions=actions)
        return [Detected(u, img.shape[1], img.shape[0], list(r.unwrap()))
                for u, img, r in zip(uploads, arrays, results, strict=True)]

    @staticmethod
    def _one_face_each(engine: Engine, uploads: list[Upload], largest: bool) -> tuple[list, list]:
        """Engine.embed_one_batch, with each upload's name in a no-face or many-faces error:
        (the decoded images, the one embedded face of each)."""
        arrays = [decode(u) for u in uploads]
        detected = engine.detector.detect(arrays)
        picked = [[pick_one(fs, largest=largest, name=u.name)] for fs, u in zip(detected, uploads, strict=True)]
        return arrays, [r.unwrap()[0] for r in engine.embed_batch(arrays, picked)]

    def verify(self, a: Upload, b: Upload, *, fmr: float | None, largest: bool,
               liveness: str | None = None) -> tuple[Verification, list | None]:
        """The verification, and with `liveness` (an operating point) each face's Liveness:
        a face that fails it makes the answer `same` false whatever the similarity."""
        engine = self.engine()
        point = engine.operating_point(fmr)
        arrays, (fa, fb) = self._one_face_each(engine, [a, b], largest)
        sim = fa.embedding.similarity(fb.embedding)
        result = Verification(same=sim >= point.threshold, similarity=sim, threshold=point.threshold,
                              fmr=point.fmr, model=engine.embedder_name, faces=(fa, fb))
        return self._refuse_spoofs(engine, result, arrays, [fa, fb], liveness)

    def verify_person(self, a: Upload, collection: str, person_id: int, *, fmr: float | None,
                      largest: bool, liveness: str | None = None) -> tuple[Verification, Person, list | None]:
        """Is the face in `a` this enrolled person? Compared with each of their
        faces (the best counts), at the collection's threshold unless `fmr` is given."""
        g = self.gallery
        coll = g.collection(collection)
        person = self.person(collection, person_id)
        engine = self.engine(coll.detector, coll.contract.name)
        g.check_contract(coll, engine.embedder_name)
        arrays, (face,) = self._one_face_each(engine, [a], largest)
        if fmr is None:
            d = g.decision(coll)
            point = OperatingPoint(d.threshold, d.fmr, d.source)
        else:
            point = operating_point(coll.contract.name, fmr)
        pv = g.store.person_vectors(coll.id, coll.contract.key, [person.id])
        sim = float((pv.vectors @ face.embedding.vector).max()) if len(pv.embedding_ids) else -1.0
        result = Verification(same=sim >= point.threshold, similarity=sim, threshold=point.threshold,
                              fmr=point.fmr, model=engine.embedder_name, faces=(face,))
        result, checks = self._refuse_spoofs(engine, result, arrays, [face], liveness)
        return result, person, checks

    @staticmethod
    def _refuse_spoofs(engine: Engine, result: Verification, arrays: list, faces: list,
                       point: str | None) -> tuple[Verification, list | None]:
        if point is None:
            return result, None
        from vultus.liveness.api import liveness_batch

        checks = [row[0] for row in liveness_batch(engine, arrays, [[f] for f in faces], point=point)]
        if not all(c.live for c in checks):
            result = replace(result, same=False)
        return result, checks

    def default_operating_point(self, fmr: float | None = None) -> OperatingPoint:
        return operating_point(self.embedder, fmr)

    # -- identify ----------------------------------------------------------------
    def identify(self, collection: str, uploads: list[Upload], *, top_k: int = 5, liveness: str | None = None):
        """Gallery.identify on the uploads. `liveness`: an operating point every face must also pass
        (a collection that requires liveness checks its own point anyway; of the two, the stricter
        one, the higher threshold, decides): a face that fails is refused, with why."""
        g = self.gallery
        coll = g.collection(collection)
        engine = _FaceLimit(self.engine(coll.detector, coll.contract.name), self.max_faces, uploads)
        arrays = [decode(u) for u in uploads]
        results = g.identify(arrays, collection, top_k=top_k, engine=engine)
        out = [replace(r.unwrap(), image=u.name) for r, u in zip(results, uploads, strict=True)]
        point = stricter_liveness_point(coll.liveness, liveness)
        if point is None or point == coll.liveness:
            return out  # nothing asked, or the gallery checked exactly this point
        from vultus.liveness.api import liveness_batch

        checks = liveness_batch(engine._engine, arrays, [[i.face for i in r.faces] for r in out], point=point)
        return [replace(r, faces=tuple(refuse_if_spoof(i, c) for i, c in zip(r.faces, row, strict=True)))
                for r, row in zip(out, checks, strict=True)]

    # -- liveness ----------------------------------------------------------------
    def liveness(self, uploads: list[Upload], point: str | None = None) -> list[Detected]:
        """Every face of each upload with its Liveness at `point` (default: the shipped default)."""
        from vultus.liveness.api import detect_for_liveness, liveness_batch

        engine = self.engine()
        arrays = [decode(u) for u in uploads]
        faces = detect_for_liveness(engine.detector, arrays)  # a tight face crop is found too, as the CLI does
        for u, fs in zip(uploads, faces, strict=True):
            _check_faces(len(fs), self.max_faces, u)
        rows = liveness_batch(engine, arrays, faces, point=point)
        return [Detected(u, img.shape[1], img.shape[0], row) for u, img, row in zip(uploads, arrays, rows, strict=True)]

    def answer_challenge(self, issuer, token: str, uploads: list[Upload], times: list[float]):
        """issuer.verify on the frames (decoded here), each at its time in seconds."""
        arrays = [decode(u) for u in uploads]
        return issuer.verify(self.engine(), token, list(zip(times, arrays, strict=True)))

    # -- collections -------------------------------------------------------------
    def collections(self, visible=None):
        return [c for c in self.gallery.collections() if visible is None or visible(c.name)]

    def collection_info(self, name: str) -> dict:
        """The collection, its counts and its decision (threshold, false-match rate)."""
        g = self.gallery
        coll = g.collection(name)
        counts = g.store.counts(coll.id)
        decision, why = None, None
        try:
            decision = g.decision(coll)
        except Exception as exc:  # no calibration for this embedder: say so, do not fail the listing
            if not hasattr(exc, "code"):
                raise
            why = str(exc)
        return {"collection": coll, "counts": counts, "decision": decision, "decision_error": why}

    def create_collection(self, actor: str, name: str, **options):
        with self.acting_as(actor) as g:
            if any(c.name == name for c in g.collections()):
                raise ConflictError(f"collection {name!r} already exists", collection=name)
            embedder, fmr = options.get("embedder", "sface"), options.get("target_fmr")
            if fmr is not None:
                try:
                    calibration_for(embedder)
                except ModelError:
                    pass  # no calibration at all: the collection needs a pinned threshold, as in the CLI
                else:
                    operating_point(embedder, fmr)  # refuse a rate its calibration did not measure
            return g.create_collection(name, **options)

    def set_liveness(self, actor: str, name: str, point: str | None):
        with self.acting_as(actor) as g:
            return g.set_liveness(name, point)

    def set_target_fmr(self, actor: str, name: str, fmr: float):
        with self.acting_as(actor) as g:
            return g.set_target_fmr(name, fmr)

    def set_target_fpir(self, actor: str, name: str, fpir: float):
        with self.acting_as(actor) as g:
            return g.set_target_fpir(name, fpir)

    def delete_collection(self, actor: str, name: str):
        with self.acting_as(actor) as g:
            return g.delete_collection(name)

    # -- people --------------------------------------------------------------------
    def people_page(self, collection: str, *, q: str | None, cursor: str | None, limit: int
                    ) -> tuple[list[Person], str | None, int]:
        people = self.gallery.people(collection)  # ordered by name
        if q:
            needle = q.casefold()
            people = [p for p in people if needle in p.name.casefold()]
        total = len(people)
        if cursor:
            after = decode_cursor(cursor)
            people = [p for p in people if (p.name, p.id) > after]
        page = people[:limit]
        more = len(people) > limit
        return page, (encode_cursor(page[-1].name, page[-1].id) if more and page else None), total

    def person(self, collection: str, person_id: int) -> Person:
        for p in self.gallery.people(collection):
            if p.id == person_id:
                return p
        raise NotFoundError(f"no person {person_id} in collection {collection!r}", kind="person",
                            id=person_id, collection=collection)

    def faces(self, collection: str, person_id: int | None = None):
        person = self.person(collection, person_id).name if person_id is not None else None
        return self.gallery.faces(collection, person)

    def rename(self, actor: str, collection: str, person_id: int, new: str) -> Person:
        with self.acting_as(actor) as g:
            p = self.person(collection, person_id)
            new = new.strip()
            if new != p.name and any(o.name == new for o in g.people(collection)):
                raise ConflictError(f"there is already a person {new!r}; merge them instead", person=new,
                                    collection=collection)
            return g.rename(p.name, new, collection)

    def merge(self, actor: str, collection: str, person_id: int, into_id: int) -> tuple[Person, int]:
        with self.acting_as(actor) as g:
            src = self.person(collection, person_id)
            dst = self.person(collection, into_id)
            if src.id == dst.id:
                raise InvalidArgumentError("cannot merge a person into themselves", person_id=person_id)
            moved = g.merge(src.name, dst.name, collection)
            return self.person(collection, dst.id), moved

    def forget(self, actor: str, collection: str, person_id: int):
        with self.acting_as(actor) as g:
            p = self.person(collection, person_id)
            return p, g.forget(p.name, collection)

    def crop(self, collection: str, face_id: int) -> bytes | None:
        return self.gallery.face_crop(face_id, collection)

    def move_face(self, actor: str, collection: str, face_id: int, person_id: int) -> None:
        with self.acting_as(actor) as g:
            g.move_face(face_id, self.person(collection, person_id).name, collection)

    def delete_face(self, actor: str, collection: str, face_id: int) -> None:
        with self.acting_as(actor) as g:
            g.delete_face(face_id, collection)

    # -- enroll ----------------------------------------------------------------------
    def enroll(self, actor: str, collection: str, uploads: list[Upload], *, person: str | None = None,
               person_id: int | None = None, subject: str = "center_largest") -> tuple[EnrollReport, Person | None]:
        """Enroll uploads as one person: a new one (`person`, a name not yet taken)
        or an existing one (`person_id`). Returns the report with each image's
        verdict from the gate, and the person afterwards (None if nothing was stored).

        Today's Gallery.enroll reads files, so each upload is written to a private
        temporary folder (mode 0700) for the call and removed after; the stored
        source is that file's base name (the upload's own name)."""
        from vultus.gallery.inference import SUBJECTS

        subject = {"one": "only"}.get(subject, subject)
        if subject not in SUBJECTS:
            raise InvalidArgumentError(f"subject must be one of {', '.join(SUBJECTS)} (got {subject!r})",
                                       field="subject")
        g = self.gallery
        coll = g.collection(collection)  # 404 before any work
        engine = self.engine(coll.detector, coll.contract.name)
        try:
            tmp = Path(tempfile.mkdtemp(prefix="vultus-upload-"))
        except OSError as exc:
            raise ServiceError(f"cannot stage the uploads ({exc.strerror or exc})", code="disk_full") from exc
        try:
            items = []
            for u in uploads:
                path = tmp / f"{u.index}-{u.name}"
                try:
                    path.write_bytes(u.data)
                except OSError as exc:  # a full temporary disk is the server's trouble, not the client's
                    raise ServiceError(f"cannot stage the uploads ({exc.strerror or exc})",
                                       code="disk_full") from exc
                items.append((u, path))
            with self.acting_as(actor):
                if person_id is not None:
                    name = self.person(collection, person_id).name
                else:
                    # The library's name rules (length, no control characters) apply in
                    # Gallery.enroll_image; enroll() takes items as given, so check here too.
                    name = (person or "").strip()
                    if not name or len(name) > 200 or has_control(name):
                        raise InvalidArgumentError("a person's name must be 1 to 200 printable characters",
                                                   code="invalid_name", field="name")
                    if any(p.name == name for p in g.people(collection)):
                        raise ConflictError(f"there is already a person {name!r} in {collection!r}",
                                            person=name, collection=collection)
                report = g.enroll([EnrollItem(path, name) for _, path in items], collection, engine=engine,
                                  workers=0, options=EnrollOptions(subject=subject, keep_crops=coll.keep_crops))
            by_path = {str(path): u.name for u, path in items}
            report = replace(report,
                             outcomes=tuple(replace(o, path=by_path.get(o.path, Path(o.path).name))
                                            for o in report.outcomes),
                             warnings=tuple(replace(w, path=by_path.get(w.path, Path(w.path).name))
                                            for w in report.warnings))
            try:
                after = g.person(name, collection)
            except NotFoundError:
                after = None
            return report, after
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- audit -------------------------------------------------------------------------
    def audit_log(self, collection: str | None, limit: int):
        return self.gallery.audit_log(collection, limit)

    def record(self, actor: str, action: str, collection: str, detail: dict) -> None:
        """An audit record for a write outside the gallery (keys)."""
        with self.acting_as(actor) as g:
            g.store.audit(action, collection, detail)


def stricter_liveness_point(a: str | None, b: str | None) -> str | None:
    """Of two liveness operating points (either may be None), the one with the higher threshold."""
    if a is None or b is None or a == b:
        return a or b
    from vultus.liveness.api import operating_point as liveness_point

    return a if liveness_point(a).threshold >= liveness_point(b).threshold else b


def refuse_if_spoof(ident, check):
    """The identification with its liveness check; a face that fails is nobody (`refused` says why)."""
    return replace(ident, liveness=check, person=ident.person if check.live else None)


__all__ = ["Detected", "Library"]

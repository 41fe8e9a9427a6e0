"""The Gallery: "here are the people I know; who is in this photo?"

    from vultus.gallery import Gallery
    with Gallery("people.db") as g:
        g.enroll_folder("photos/")                  # one sub-folder per person
        for result in g.identify(["group.jpg"]):      # one ImageResult per image
            for face in result.unwrap().faces:        # raises that image's error, if any
                print(face.label, face.similarity)

Layers (as in InsightFace-REST): this module is the API; inference.py turns
images into faces (in worker processes); search/ proposes candidates from a
derived ANN index that indexes.py keeps in step; storage/ is the source of
truth (SQLite by default).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vultus.batching import chunked, decode_batch, failed, source_label, with_value
from vultus.errors import ImageError, ModelError, ModelMismatchError
from vultus.gallery import decision as decide
from vultus.gallery.errors import GalleryError, NotFoundError
from vultus.gallery.indexes import IndexManager
from vultus.gallery.inference import (
    EnrollOptions,
    Processed,
    chunks,
    decode_crop,
    error_reason,
    process_items,
    run_in_process,
    run_in_workers,
    sha256_file,
    subject_policy,
)
from vultus.gallery.names import check_name
from vultus.gallery.search.base import NativeIndex
from vultus.gallery.storage import open_store
from vultus.gallery.storage.base import ForgottenData, GalleryStore
from vultus.gallery.types import (
    AGGREGATIONS,
    AuditRecord,
    CalibrateReport,
    Collection,
    CollectionStats,
    Decision,
    EmbedderContract,
    EnrollItem,
    EnrollOutcome,
    EnrollReport,
    EnrollWarning,
    FaceRecord,
    ForgetProof,
    ForgetReport,
    Identification,
    ImageIdentification,
    IndexReport,
    Lookalike,
    Match,
    Person,
    ReembedReport,
    ThresholdOverride,
)
from vultus.imageio import SkippedFile, iter_scan, load_image, read_file_bytes
from vultus.models.calibration import DEFAULT_FMR, operating_point
from vultus.models.registry import get_spec
from vultus.types import ImageResult

DEFAULT_COLLECTION = "default"
log = logging.getLogger(__name__)
# The ANN proposes this many nearest embeddings per query (at least), and the
# people they belong to are then scored exactly over all their faces.
MIN_CANDIDATES = 64
# How candidates are found. Face embeddings spread people evenly over the
# sphere, which defeats graph search: on vectors fitted to LFW, HNSW at 1M
# faces needs as much time as a full scan to find what the scan finds
# (bench/results/search.md). So by default ("auto") the index is scanned
# exhaustively (usearch, SIMD, half precision; ~2 ms at 100k, ~20 ms at 1M per
# face on one core) and every decision is what exact search would give; past
# EXHAUSTIVE_UP_TO, or with search="graph", the HNSW graph proposes the
# candidates (~3 ms at 1M, at the cost of missing some matches).
EXHAUSTIVE_UP_TO = 1_000_000
SEARCH_MODES = ("auto", "exact", "graph")
IDENTIFY_BATCH = 8  # images detected and embedded together
# forget's proof names other people a forgotten face still matches only at this
# false-match rate: at the collection's rate (1e-3 by default) a stranger matches
# somebody in a gallery of a thousand faces most of the time, which says nothing
# about the erasure; at 1e-5 a match is worth a look (the same person enrolled
# under another name).
FORGET_STRICT_FMR = 1e-5
FORGET_TOP_K = 3  # people looked at per forgotten face

Progress = Callable[[int], None]


def is_url(location: str | Path | None) -> bool:
    """Whether a gallery location is a database URL (postgresql://...) rather than a file."""
    scheme, sep, _ = str(location or "").partition("://")
    return bool(sep) and len(scheme) >= 2


def default_gallery_path() -> str | Path:
    """$VULTUS_GALLERY (a file or a URL such as postgresql://user@host/db), else gallery.db in
    the user's data dir."""
    env = os.environ.get("VULTUS_GALLERY")
    if env:
        return env if is_url(env) else Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vultus")) / "gallery.db"


def contract_of(embedder: str) -> EmbedderContract:
    """The contract of the installed `embedder`. A fused embedder's vectors also
    depend on its component weights (refitted with the calibration), so they are
    part of its version: new weights need a reembed, like a new model."""
    spec = get_spec(embedder, task="embed")
    contract = EmbedderContract.from_spec(spec)
    if spec.components:
        from vultus.embed.fused import fusion_weights

        weights = ",".join(f"{k}={v:g}" for k, v in sorted(fusion_weights().items()))
        contract = replace(contract, version=f"{contract.version}+{weights}")
    return contract


def _check_name(name: str, what: str) -> str:
    # One check for every way a name enters (vultus.gallery.names); the store repeats it.
    return check_name(name, what)


def _check_fmr(fmr: float) -> float:
    fmr = float(fmr)
    if not (0.0 < fmr < 1.0) or math.isnan(fmr):
        raise GalleryError(f"a false-match rate must be between 0 and 1 (got {fmr:g})")
    return fmr


def _check_fpir(fpir: float) -> float:
    fpir = float(fpir)
    if not (0.0 < fpir < 1.0) or math.isnan(fpir):
        raise GalleryError(f"a false-positive identification rate must be between 0 and 1 (got {fpir:g})",
                           code="invalid_rate", target_fpir=fpir)
    return fpir


class Gallery:
    """One gallery (several collections): a SQLite file, or a PostgreSQL database given
    by its URL (postgresql://user@host:port/db). Safe to share between threads of one
    process; several processes (on several hosts, for PostgreSQL) may open it at once.
    `store_options` go to the backend (e.g. PostgreSQL's pool_size)."""

    def __init__(self, path: str | Path | None = None, *, index_kind: str = "hnsw",
                 index_options: dict | None = None, actor: str | None = None, create: bool = True,
                 store: GalleryStore | None = None, exhaustive_up_to: int = EXHAUSTIVE_UP_TO,
                 store_options: dict | None = None):
        self.store = store or open_store(path or default_gallery_path(), actor=actor, create=create,
                                         **(store_options or {}))
        self.indexes = IndexManager(self.store, kind=index_kind, options=index_options)
        self.exhaustive_up_to = exhaustive_up_to
        self._engines: dict[tuple[str, str, int | None], object] = {}
        self._engines_lock = threading.Lock()  # Engines are cheap (models live in the model cache)

    @property
    def location(self) -> str:
        return self.store.location

    def close(self) -> None:
        """Close the store. Indexes are saved by the changes that make them (enroll,
        forget, reindex...), never here: a read-only command must not write."""
        if self.store is None:
            return
        self.store.close()
        self.store = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- collections -------------------------------------------------------
    def create_collection(self, name: str = DEFAULT_COLLECTION, *, embedder: str = "sface",
                          detector: str = "yunet", target_fmr: float | None = None, keep_crops: bool = True,
                          aggregation: str = "max", target_fpir: float | None = None) -> Collection:
        """A new collection pinned to `embedder`'s contract (name, version, alignment).

        It decides by a false-positive identification rate (`target_fpir`, 1% unless
        given; the threshold follows the collection's size), or, when `target_fmr` is
        given instead, by that false-match rate per comparison."""
        name = _check_name(name, "collection")
        get_spec(detector, task="detect")
        if aggregation not in AGGREGATIONS:
            raise GalleryError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r})")
        if target_fmr is not None and target_fpir is not None:
            raise GalleryError("a collection decides by a false-match rate or by a false-positive identification "
                               "rate, not both", code="conflicting_targets", collection=name)
        fpir = None if target_fmr is not None else _check_fpir(decide.DEFAULT_FPIR if target_fpir is None
                                                                else target_fpir)
        fmr = _check_fmr(target_fmr) if target_fmr is not None else DEFAULT_FMR
        return self.store.create_collection(name, contract_of(embedder), detector, fmr, keep_crops, aggregation,
                                            target_fpir=fpir)

    def collection(self, name: str = DEFAULT_COLLECTION) -> Collection:
        return self.store.collection(name)

    def delete_collection(self, name: str) -> list[ForgetReport]:
        """Forget every person of the collection (each with its proof), then delete
        the collection and its index; returns the forget reports."""
        coll = self.collection(name)
        reports = [self.forget(p.name, name) for p in self.store.people(coll.id)]
        self.store.delete_collection(coll.id)
        self.indexes.drop(coll.id)
        return reports

    def collections(self) -> list[Collection]:
        return self.store.collections()

    def ensure_collection(self, name: str = DEFAULT_COLLECTION, *, embedder: str | None = None,
                          detector: str | None = None, keep_crops: bool | None = None) -> Collection:
        """The collection, created with these settings if it does not exist yet; an
        existing one is checked against `embedder` (refused if it differs)."""
        try:
            coll = self.store.collection(name)
        except NotFoundError:
            # Another process may create it at the same moment: the store settles that
            # inside its write transaction (exist_ok), and the contract is checked below.
            name = _check_name(name, "collection")
            get_spec(detector or "yunet", task="detect")
            coll = self.store.create_collection(name, contract_of(embedder or "sface"), detector or "yunet",
                                                DEFAULT_FMR, True if keep_crops is None else keep_crops,
                                                "max", exist_ok=True, target_fpir=decide.DEFAULT_FPIR)
        if embedder is not None:
            self.check_contract(coll, embedder)
        return coll

    def check_contract(self, coll: Collection, embedder: str) -> None:
        """Refuse to mix vectors from another embedder (or another version of it)."""
        theirs = contract_of(embedder)
        ours = coll.contract
        why = ours.differs_from(theirs)
        if not why:
            return
        if theirs.name == ours.name:
            why = (f"collection {coll.name!r} was built with {ours.name} ({ours.describe()}, aligned by "
                   f"{ours.alignment}), but the installed {ours.name} differs: {why}")
        else:
            why = (f"collection {coll.name!r} was built with {ours.describe()}, aligned by "
                   f"{ours.alignment or 'its own alignment'}; {theirs.name} vectors cannot be compared with them")
        raise ModelMismatchError(
            f"{why}. Use {ours.name} for this collection, or re-embed the collection with {theirs.name}",
            collection=coll.name, collection_embedder=ours.name, requested_embedder=theirs.name)

    def set_target_fmr(self, collection: str, fmr: float) -> Collection:
        """Decide at a stricter or looser false-match rate (resolved through the
        embedder's calibration at search time)."""
        coll = self.collection(collection)
        fmr = _check_fmr(fmr)
        if coll.threshold_override is None:
            operating_point(coll.contract.name, fmr)  # refuse a rate the calibration did not measure
        return self.store.update_decision(coll.id, target_fmr=fmr)

    def set_target_fpir(self, collection: str, fpir: float) -> Collection:
        """Decide so that a face of someone never enrolled is named as somebody with
        chance `fpir`: the threshold is derived from the embedder's calibration and the
        collection's size at each decision (vultus.gallery.decision)."""
        coll = self.collection(collection)
        fpir = _check_fpir(fpir)
        if coll.threshold_override is None:
            from vultus.models.calibration import calibration_for

            try:
                calibration_for(coll.contract.name)  # without one, only a pinned threshold can decide
            except ModelError as exc:
                raise ModelError(f"{exc}; or set this collection's threshold from your own measurement",
                                 code="no_calibration", collection=coll.name,
                                 embedder=coll.contract.name) from exc
        return self.store.update_decision(coll.id, target_fpir=fpir)

    def set_threshold(self, collection: str, threshold: float, fmr: float, source: str) -> Collection:
        """Pin a threshold measured for this collection (e.g. by `vultus calibrate`
        on the user's own data); it replaces the embedder's calibration until
        cleared. `fmr` is the false-match rate it was measured to give."""
        coll = self.collection(collection)
        if not (-1.0 <= float(threshold) <= 1.0):
            raise GalleryError(f"a cosine-similarity threshold must be in [-1, 1] (got {threshold:g})")
        if not source.strip():
            raise GalleryError("say where the threshold was measured (source)")
        return self.store.update_decision(coll.id, override=ThresholdOverride(float(threshold), _check_fmr(fmr),
                                                                              source.strip()))

    def set_liveness(self, collection: str, point: str | None) -> Collection:
        """Require every face enrolled into or identified in this collection to pass the liveness
        check at operating point `point` ("door", "check-in"); None stops requiring it. A face that
        fails is refused at enroll and reported as refused, with its reason, at identify."""
        coll = self.collection(collection)
        if point is not None:
            from vultus.liveness.api import operating_point as liveness_point

            liveness_point(point)  # refuse a name the shipped model has no measured point for
        return self.store.set_liveness(coll.id, point)

    def clear_threshold(self, collection: str) -> Collection:
        """Drop a pinned threshold and a curve measured by calibrate: decide by the embedder's calibration again."""
        return self.store.update_decision(self.collection(collection).id, clear_override=True,
                                          clear_own_calibration=True)

    def calibrate(self, collection: str = DEFAULT_COLLECTION, *, store: bool = True,
                  max_faces: int | None = None) -> CalibrateReport:
        """Refit the collection's false-match-rate curve from its own impostor pairs (every pair of faces
        of two different enrolled people; a random sample of people above `max_faces` faces) and, with
        `store`, make it the collection's calibration: it then replaces the embedder's (and a pinned
        threshold), and an FPIR target is re-derived from it as the collection grows.

        Refused (GalleryError "too_few_pairs", nothing changed) unless there are at least 3 / f pairs for
        the per-comparison rate f the collection's target needs now (vultus.gallery.own_calibration)."""
        from datetime import UTC, datetime

        from vultus.gallery import own_calibration as own

        coll = self.collection(collection)
        if store:
            self.store.require_writable()
        before = self._decision_or_none(coll)
        scores = self._impostor_scores(coll, max_faces or own.CALIBRATE_MAX_FACES,
                                       self._check_thresholds(coll, before))
        n = decide.comparisons(coll.aggregation, len(self.indexes.get(coll)), self.store.counts(coll.id)["people"])
        rate = decide.fmr_for_fpir(coll.target_fpir, n) if coll.target_fpir is not None else coll.target_fmr
        need = own.pairs_needed(rate)
        what = (f"false-positive identification rate {coll.target_fpir:g} with {n} comparisons per search"
                if coll.target_fpir is not None else f"false-match rate {coll.target_fmr:g}")
        reference, reference_source = self._embedder_calibration(coll)
        fitted = own.fit(scores, datetime.now(UTC).isoformat(timespec="seconds"), reference, reference_source)
        measured_rungs = sum(1 for f, _ in fitted.points if f >= fitted.measured_to)
        if scores.pairs < need or measured_rungs < decide.TAIL_RUNGS:
            faces = own.faces_needed(coll.target_fpir, coll.target_fmr)
            raise GalleryError(
                f"too few impostor pairs in {coll.name!r} to calibrate it: {scores.describe()}; its target ({what}) "
                f"needs a false-match rate of {rate:.2g} per comparison, which takes at least {need:,} pairs to "
                f"measure (3 / rate); about {faces:,} enrolled people with one face each give that. Nothing was "
                "changed", code="too_few_pairs", collection=coll.name, pairs=scores.pairs, pairs_needed=need,
                target_rate=rate, faces_needed=faces)
        check = own.check(scores, self._calibration_points(coll), before,
                          before.source if before else coll.contract.name)
        if store:
            self.store.update_decision(coll.id, own_calibration=fitted, clear_override=True)
            coll = self.collection(collection)
            after = self.decision(coll)
        else:
            after = self.decision(replace(coll, own_calibration=fitted, threshold_override=None))
        return CalibrateReport(collection=coll.name, calibration=fitted, before=before, after=after, check=check,
                               target_rate=rate, pairs_needed=need, direct=rate >= fitted.measured_to, stored=store,
                               replaced_threshold=before is not None and before.target == "threshold")

    def check_calibration(self, collection: str | Collection = DEFAULT_COLLECTION, *,
                          max_faces: int | None = None):
        """The decision's stated rates against the collection's own impostor pairs
        (vultus.gallery.own_calibration.CalibrationCheck); None when the collection cannot decide."""
        from vultus.gallery import own_calibration as own

        coll = self.collection(collection) if isinstance(collection, str) else collection
        decision = self._decision_or_none(coll)
        if decision is None:
            return None
        scores = self._impostor_scores(coll, max_faces or own.STATS_MAX_FACES, self._check_thresholds(coll, decision))
        return own.check(scores, self._calibration_points(coll), decision, decision.source)

    def _check_thresholds(self, coll: Collection, decision: Decision | None) -> list[float]:
        """The thresholds the check counts pairs at: the decision's and the calibration's rungs."""
        return [p["threshold"] for p in self._calibration_points(coll)] + ([decision.threshold] if decision else [])

    def _decision_or_none(self, coll: Collection) -> Decision | None:
        try:
            return self.decision(coll)
        except ModelError:
            return None

    def _calibration_points(self, coll: Collection) -> list[dict]:
        """The rungs of the calibration the collection decides by (none for a pinned threshold)."""
        if coll.threshold_override is not None:
            return []
        if coll.own_calibration is not None:
            own = coll.own_calibration  # only the rungs measured on the pairs: the rest follows the embedder's
            return [p for p in own.ladder if p["fmr"] >= own.measured_to]
        return self._embedder_calibration(coll)[0]

    @staticmethod
    def _embedder_calibration(coll: Collection) -> tuple[list[dict], str]:
        from vultus.models.calibration import calibration_for

        try:
            cal = calibration_for(coll.contract.name)
        except ModelError:
            return [], ""
        return cal["points"], f"the shipped {coll.contract.name} calibration"

    def _impostor_scores(self, coll: Collection, max_faces: int, thresholds=()):
        from vultus.gallery import own_calibration as own

        people, sampled = own.sample_people([(p.id, p.face_count) for p in self.store.people(coll.id)], max_faces)
        pv = self.store.person_vectors(coll.id, coll.contract.key, people)  # only the sampled people's vectors
        scores = own.impostor_scores(pv.vectors, pv.person_ids, max_faces=max(max_faces, len(pv.person_ids)),
                                     thresholds=thresholds)
        return replace(scores, sampled=sampled)

    def set_aggregation(self, collection: str, aggregation: str) -> Collection:
        if aggregation not in AGGREGATIONS:
            raise GalleryError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r})")
        return self.store.update_decision(self.collection(collection).id, aggregation=aggregation)

    def decision(self, coll: Collection | str) -> Decision:
        """The collection's threshold, its false-match rate, and what that rate
        means for an unenrolled face against the whole collection. With an FPIR
        target the threshold is derived here, from the collection's size now, so it
        follows every enroll and forget (the model: vultus.gallery.decision)."""
        coll = self.collection(coll) if isinstance(coll, str) else coll
        # With "max", an unenrolled face gets one chance to match per enrolled face;
        # with "mean", about one per person.
        n = decide.comparisons(coll.aggregation, len(self.indexes.get(coll)) if coll.aggregation == "max" else 0,
                               self.store.counts(coll.id)["people"] if coll.aggregation != "max" else 0)
        extrapolated = False
        if coll.threshold_override is not None:
            o = coll.threshold_override
            threshold, fmr, source, target, rate = o.threshold, o.fmr, o.source, "threshold", None
        elif coll.own_calibration is not None:  # measured on this collection's own pairs (calibrate)
            own = coll.own_calibration
            if coll.target_fpir is not None:
                point = decide.fpir_point(own.ladder, coll.target_fpir, n)
                target, rate = "fpir", coll.target_fpir
            else:
                point = decide.threshold_for_fmr(own.ladder, coll.target_fmr)
                target, rate = "fmr", coll.target_fmr
            threshold, fmr, source = point.threshold, point.fmr, own.source
            extrapolated = point.extrapolated or point.fmr < own.measured_to * (1 - 1e-9)
        else:
            try:
                if coll.target_fpir is not None:
                    point, source = decide.embedder_fpir_point(coll.contract.name, coll.target_fpir, n)
                    threshold, fmr, extrapolated = point.threshold, point.fmr, point.extrapolated
                    target, rate = "fpir", coll.target_fpir
                else:
                    op = operating_point(coll.contract.name, coll.target_fmr)
                    threshold, fmr, source, target, rate = op.threshold, op.fmr, op.source, "fmr", coll.target_fmr
            except ModelError as exc:
                raise ModelError(f"{exc}; or set this collection's threshold from your own measurement",
                                 code="no_calibration", collection=coll.name, embedder=coll.contract.name,
                                 target_fmr=coll.target_fmr, target_fpir=coll.target_fpir) from exc
        return Decision(threshold=threshold, fmr=fmr, source=source, expected_fpir=decide.fpir_for_fmr(fmr, n),
                        target=target, target_rate=rate, comparisons=n, extrapolated=extrapolated)

    # -- engines -----------------------------------------------------------
    def engine_for(self, coll: Collection, *, detector: str | None = None, threads: int | None = None):
        from vultus.engine import Engine

        key = (detector or coll.detector, coll.contract.name, threads)
        with self._engines_lock:
            if key not in self._engines:
                self._engines[key] = Engine(detector=key[0], embedder=key[1], threads=threads)
            return self._engines[key]

    def _engine_checked(self, coll: Collection, engine, detector: str | None, threads: int | None):
        if engine is None:
            engine = self.engine_for(coll, detector=detector, threads=threads)
        self.check_contract(coll, engine.embedder_name)
        return engine

    # -- enroll ------------------------------------------------------------
    def enroll(self, items: Sequence[EnrollItem], collection: str = DEFAULT_COLLECTION, *,
               embedder: str | None = None, detector: str | None = None, options: EnrollOptions | None = None,
               workers: int | None = None, engine=None, progress: Progress | None = None,
               subject: str | None = None) -> EnrollReport:
        """Enroll (image, person) pairs. Images already in the collection (same
        bytes) are skipped; faces failing the gate are refused with the reason;
        each chunk of images is committed in one transaction as it finishes.

        `subject` says which face of a photo with several is the person
        ("center_largest" by default, "only", "largest", "central"; see
        vultus.gallery.inference.choose_subject); it overrides `options.subject`.
        Each outcome says which face was taken and why (EnrollOutcome.subject)."""
        self.store.require_writable()  # before any image is read
        items = named_items(items)
        if subject is not None:
            options = replace(options or EnrollOptions(), subject=subject_policy(subject))
        run = self.begin_enrollment(collection, embedder=embedder, detector=detector, options=options)
        hashed: list[tuple[int, EnrollItem, str | ImageError]] = []
        for pos, item in enumerate(items):
            try:
                hashed.append((pos, item, sha256_file(item.path)))
            except ImageError as exc:  # missing, a FIFO or device, too large: never opened or read
                hashed.append((pos, item, exc))
        todo, screened = run.screen(hashed)
        if progress and screened:
            progress(len(screened))
        if todo:
            coll = run.collection
            work = chunks(todo)
            n_workers = _workers(workers, len(todo))
            if n_workers > 0:
                self.check_contract(coll, coll.contract.name)
                results = run_in_workers(work, run.detector, coll.contract.name, run.options, n_workers)
            else:
                engine = self._engine_checked(coll, engine, detector, None)
                results = run_in_process(engine, work, run.options)
            for batch in results:
                run.commit(batch)
                if progress:
                    progress(len(batch))
        run.save()
        return run.report(len(items))

    def begin_enrollment(self, collection: str = DEFAULT_COLLECTION, *, embedder: str | None = None,
                         detector: str | None = None, options: EnrollOptions | None = None,
                         keep_outcomes: bool = True) -> Enrollment:
        """The writing side of an enroll job, for a caller that computes the faces
        itself (elsewhere, e.g. on a cluster: vultus.bulk) and commits them here:
        `screen` the hashed images (already enrolled, or a duplicate within the
        job), compute the faces of the rest with `vultus.gallery.process_items`
        and `run.options`, `commit` each chunk, then `save`. `enroll` runs exactly
        these steps, so both make the same decisions."""
        self.store.require_writable()
        options = options or EnrollOptions()
        coll = self.ensure_collection(collection, embedder=embedder, detector=detector,
                                      keep_crops=options.keep_crops)
        if not coll.keep_crops and options.keep_crops:
            options = replace(options, keep_crops=False)
        if coll.liveness and options.liveness is None:
            options = replace(options, liveness=coll.liveness)
        return Enrollment(self, coll, options, detector or coll.detector, keep_outcomes)

    def known_images(self, sha256s: Sequence[str], collection: str = DEFAULT_COLLECTION) -> dict[str, str]:
        """{sha256: person} for the images (by the sha256 of their bytes) already enrolled in the collection."""
        return self.store.known_images(self.collection(collection).id, list(sha256s))

    def _commit(self, coll: Collection, key: str, batch: list[Processed], outcomes: dict[int, EnrollOutcome],
                warnings: list[EnrollWarning], threshold: float | None) -> None:
        ok = [p for p in batch if p.status == "ok"]
        for p in batch:
            if p.status != "ok":
                outcomes[p.position] = EnrollOutcome(p.path, p.person, p.status, p.reason, subject=p.subject)
            if p.status == "refused":  # a service operator sees why faces stay out of the gallery
                log.info("enroll into %r refused %s: %s", coll.name, p.path, p.reason)
        if not ok:
            return
        warnings.extend(self._label_warnings(coll, ok, threshold))
        stored = self.store.add_faces(coll.id, key, [p.new_face for p in ok])
        new_ids, new_vecs = [], []
        for p, ids in zip(ok, stored, strict=True):
            if ids is None:  # another process enrolled the same image meanwhile
                outcomes[p.position] = EnrollOutcome(p.path, p.person, "duplicate", "already enrolled")
                continue
            outcomes[p.position] = EnrollOutcome(p.path, p.person, "enrolled", "", face_id=ids[0],
                                                 subject=p.subject)
            new_ids.append(ids[1])
            new_vecs.append(p.new_face.vector)
        if new_ids:
            self.indexes.added(coll, key, np.asarray(new_ids, np.int64), np.stack(new_vecs))

    def _label_warnings(self, coll: Collection, ok: list[Processed], threshold: float | None
                        ) -> list[EnrollWarning]:
        """Warn when a new face is closer to another person than to its own label."""
        if not len(self.indexes.get(coll)):
            return []
        vectors = np.stack([p.new_face.vector for p in ok])
        found = self.match_vectors(coll, vectors, top_k=3)
        out = []
        for p, matches, vec in zip(ok, found, vectors, strict=True):
            own = next((m.similarity for m in matches if m.person == p.person), None)
            if own is None:
                own = self._own_similarity(coll, p.person, vec)
            other = next((m for m in matches if m.person != p.person), None)
            if other is None:
                continue
            if (own is not None and other.similarity > own) or (
                    own is None and threshold is not None and other.similarity >= threshold):
                out.append(EnrollWarning(p.path, p.person, other.person, other.similarity, own))
        return out

    def _own_similarity(self, coll: Collection, person: str, vector: np.ndarray) -> float | None:
        try:
            pid = self.store.person(coll.id, person).id
        except GalleryError:
            return None
        pv = self.store.person_vectors(coll.id, coll.contract.key, [pid])
        return float((pv.vectors @ vector).max()) if len(pv.embedding_ids) else None

    def enroll_image(self, path: str | Path, person: str, collection: str = DEFAULT_COLLECTION,
                     **kwargs) -> EnrollReport:
        return self.enroll([EnrollItem(Path(path), _check_name(person, "person"))], collection, **kwargs)

    def enroll_folder(self, folder: str | Path, collection: str = DEFAULT_COLLECTION, **kwargs) -> EnrollReport:
        """Enroll a folder with one sub-folder per person (the sub-folder's name)."""
        return self.enroll(folder_items(folder), collection, **kwargs)

    def enroll_csv(self, csv_path: str | Path, collection: str = DEFAULT_COLLECTION, *, allow_outside: bool = False,
                   **kwargs) -> EnrollReport:
        """Enroll the (path, person) rows of a CSV; relative paths are taken from the CSV's folder,
        and paths outside that folder are refused unless `allow_outside`."""
        return self.enroll(csv_items(csv_path, allow_outside=allow_outside), collection, **kwargs)

    # -- identify ----------------------------------------------------------
    def identify(self, images: Iterable, collection: str = DEFAULT_COLLECTION, *, top_k: int = 5,
                 engine=None, detector: str | None = None, threads: int | None = None, search: str = "auto",
                 progress: Progress | None = None) -> list[ImageResult[ImageIdentification]]:
        """Every face in every image, with its top-k people and one decision: one
        ImageResult per image, in order, holding its ImageIdentification or the
        error that image met (unreadable, not an image...). Errors of the
        collection itself (unknown, no calibration, wrong embedder) raise."""
        return list(self.identify_stream(images, collection, top_k=top_k, engine=engine, detector=detector,
                                         threads=threads, search=search, progress=progress))

    def identify_stream(self, images: Iterable, collection: str = DEFAULT_COLLECTION, *, top_k: int = 5,
                        engine=None, detector: str | None = None, threads: int | None = None,
                        search: str = "auto", progress: Progress | None = None,
                        chunk_size: int = IDENTIFY_BATCH) -> Iterator[ImageResult[ImageIdentification]]:
        """identify over an iterable of any length, `chunk_size` images at a time,
        yielding each chunk's results as it finishes; each image is decoded once
        and released with its chunk. The collection is checked before this returns."""
        coll = self.collection(collection)
        engine = self._engine_checked(coll, engine, detector, threads)
        decision = self.decision(coll)
        _check_search(top_k, search)  # now, not when the first chunk is searched
        return self._identify_chunks(coll, engine, decision, chunked(images, chunk_size), top_k, search, progress)

    def _identify_chunks(self, coll: Collection, engine, decision: Decision, chunks: Iterator[list], top_k: int,
                         search: str, progress: Progress | None) -> Iterator[ImageResult[ImageIdentification]]:
        start = 0
        for chunk in chunks:
            decoded = decode_batch(chunk, start=start)  # each image once: embedding and liveness share it
            readable = [d for d in decoded if d.ok]
            done = iter(engine.embed_batch([d.value for d in readable]) if readable else [])
            embedded: list[ImageResult] = []
            for d in decoded:
                r = next(done) if d.ok else d
                embedded.append(with_value(d, r.value) if r.ok else failed(d, r.error))
            flat = [f for r in embedded if r.ok for f in r.value]
            found = (self.match_vectors(coll, np.stack([f.embedding.vector for f in flat]), top_k, search=search)
                     if flat else [])
            checks: list = [None] * len(flat)
            if coll.liveness and flat:
                from vultus.liveness.api import liveness_batch

                live = [(d.value, r.value) for d, r in zip(decoded, embedded, strict=True) if r.ok]
                rows = liveness_batch(engine, [a for a, _ in live], [fs for _, fs in live], point=coll.liveness)
                checks = [c for row in rows for c in row]
            del decoded, readable
            k = 0
            for pos, (image, r) in enumerate(zip(chunk, embedded, strict=True)):
                label = source_label(image, start + pos)
                if not r.ok:
                    yield ImageResult(start + pos, label, error=r.error)
                    continue
                idents = tuple(self._decide(f, found[k + j], decision, checks[k + j])
                               for j, f in enumerate(r.value))
                k += len(r.value)
                yield ImageResult(start + pos, label, ImageIdentification(label, r.width, r.height, idents, decision),
                                  width=r.width, height=r.height)
            start += len(chunk)
            if progress:
                progress(len(chunk))

    def identify_vectors(self, vectors: np.ndarray, collection: str = DEFAULT_COLLECTION, *,
                         top_k: int = 5, search: str = "auto") -> list[Identification]:
        """Identify embeddings made by the collection's embedder (no image needed)."""
        coll = self.collection(collection)
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        if vectors.shape[1] != coll.contract.dim:
            raise ModelMismatchError(f"{vectors.shape[1]}-d vectors cannot be searched in {coll.name!r}, whose "
                                     f"{coll.contract.name} embeddings are {coll.contract.dim}-d")
        decision = self.decision(coll)
        return [self._decide(None, m, decision) for m in self.match_vectors(coll, vectors, top_k, search=search)]

    @staticmethod
    def _decide(face, matches: tuple[Match, ...], decision: Decision, liveness=None) -> Identification:
        best = matches[0] if matches else None
        sim = best.similarity if best else -1.0
        person = best.person if best and sim >= decision.threshold else None
        if liveness is not None and not liveness.live:
            person = None  # a presentation attack is nobody; `refused` says why
        return Identification(face=face, matches=matches, person=person, similarity=sim, decision=decision,
                              liveness=liveness)

    def search_method(self, coll: Collection, search: str = "auto") -> str:
        """Which method a search of this collection uses now: "exact" (every face
        scanned) or "graph" (the HNSW graph proposes candidates); see EXHAUSTIVE_UP_TO."""
        if search not in SEARCH_MODES:
            raise GalleryError(f"search must be one of {', '.join(SEARCH_MODES)} (got {search!r})")
        if search != "auto":
            return search
        index = self.indexes.get(coll)
        # A store's own index says up to what size its exhaustive scan is the cheaper way.
        limit = min(self.exhaustive_up_to, index.exhaustive_up_to) if isinstance(index, NativeIndex) \
            else self.exhaustive_up_to
        return "exact" if len(index) <= limit else "graph"

    def match_vectors(self, coll: Collection, vectors: np.ndarray, top_k: int = 5, *,
                      search: str = "auto") -> list[tuple[Match, ...]]:
        """Top-k people per query vector, scored exactly.

        The index proposes the nearest embeddings (by a full scan, or by its HNSW
        graph: see EXHAUSTIVE_UP_TO); every person owning one is then scored
        against all of their enrolled faces with the float32 vectors from the
        store (best face by default, or the mean), so the final similarities and
        their order are exact for the people proposed."""
        _check_search(top_k, search)
        key = coll.contract.key
        index = self.indexes.get(coll)
        n = len(index)
        if n == 0:
            return [() for _ in range(len(vectors))]
        want = min(n, max(MIN_CANDIDATES, 8 * top_k))
        exhaustive = self.search_method(coll, search) == "exact"
        while True:
            cand, _ = index.search(vectors, want, exact=exhaustive)
            owners = self.store.owners(coll.id, key, cand.ravel())
            per_query = [len({owners[i] for i in row if i in owners}) for row in cand]
            if min(per_query) >= top_k or want >= n:
                break
            want = min(n, want * 4)  # a few people with many faces crowded the candidates out
        person_ids = sorted(set(owners.values()))
        pv = self.store.person_vectors(coll.id, key, person_ids)
        if not len(pv.embedding_ids):
            return [() for _ in range(len(vectors))]
        order = np.argsort(pv.person_ids, kind="stable")
        pids = pv.person_ids[order]
        starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        face_ids = pv.face_ids[order]
        sims = np.asarray(vectors, np.float32) @ pv.vectors[order].T
        if coll.aggregation == "mean":
            sizes = np.diff(np.r_[starts, len(pids)])
            scores = np.add.reduceat(sims, starts, axis=1) / sizes
        else:
            scores = np.maximum.reduceat(sims, starts, axis=1)
        out = []
        for q in range(len(vectors)):
            best = np.argsort(-scores[q], kind="stable")[:top_k]
            matches = []
            for g in best:
                lo = starts[g]
                hi = starts[g + 1] if g + 1 < len(starts) else len(pids)
                j = lo + int(np.argmax(sims[q, lo:hi]))
                pid = int(pids[lo])
                matches.append(Match(person_id=pid, person=pv.names[pid], similarity=float(scores[q, g]),
                                     best_face_id=int(face_ids[j]), faces_compared=int(hi - lo)))
            out.append(tuple(matches))
        return out

    # -- manage ------------------------------------------------------------
    def people(self, collection: str = DEFAULT_COLLECTION) -> list[Person]:
        return self.store.people(self.collection(collection).id)

    def person(self, name: str, collection: str = DEFAULT_COLLECTION) -> Person:
        return self.store.person(self.collection(collection).id, name)

    def faces(self, collection: str = DEFAULT_COLLECTION, person: str | None = None) -> list[FaceRecord]:
        return self.store.faces(self.collection(collection).id, person)

    def rename(self, old: str, new: str, collection: str = DEFAULT_COLLECTION) -> Person:
        return self.store.rename_person(self.collection(collection).id, old, _check_name(new, "person"))

    def merge(self, source: str, target: str, collection: str = DEFAULT_COLLECTION) -> int:
        """Move every face of `source` to `target` and remove `source`; returns faces moved."""
        return self.store.merge_people(self.collection(collection).id, source, target)

    def set_metadata(self, person: str, metadata: dict, collection: str = DEFAULT_COLLECTION) -> Person:
        return self.store.set_person_metadata(self.collection(collection).id, person, metadata)

    def face_crop(self, face_id: int, collection: str = DEFAULT_COLLECTION) -> bytes | None:
        """The face's stored aligned 256x256 crop as JPEG bytes (None: enrolled without crops)."""
        return self.store.crop_jpeg(self.collection(collection).id, face_id)

    def move_face(self, face_id: int, person: str, collection: str = DEFAULT_COLLECTION) -> None:
        self.store.move_face(self.collection(collection).id, face_id, person)

    def delete_face(self, face_id: int, collection: str = DEFAULT_COLLECTION) -> None:
        coll = self.collection(collection)
        self.store.delete_face(coll.id, face_id)
        self.indexes.get(coll)  # the next check drops the face from the index and overwrites its slot
        self.indexes.save(coll.id)

    def forget(self, person: str, collection: str = DEFAULT_COLLECTION) -> ForgetReport:
        """Remove a person completely and prove it.

        Every row (person, faces, image hashes and paths, embeddings of every
        embedder, crops) goes in one transaction that also writes one audit
        record (who, when, how many; nothing biometric) and redacts the person
        from earlier audit records. The index drops the entries, overwrites their
        slots and is saved; the saved file is checked for the forgotten vectors'
        bytes. Then the proof (`ForgetProof`): no row and no index entry refers to
        the person, and their own embeddings, still in memory, identified again,
        never return them. Faces of theirs that match someone else at a strict
        threshold are reported as lookalikes (a warning, not a failure). Only
        then are the embeddings dropped."""
        coll = self.collection(collection)
        key = coll.contract.key
        self.store.require_writable()
        self.indexes.get(coll)  # in step with the store first, so the count of entries removed is right
        try:
            data = self.store.forget_person(coll.id, person)
        except NotFoundError as exc:
            raise self._already_forgotten(coll, person, exc) from exc
        self.indexes.purge_trash()  # the saved files holding the vectors, listed by that commit
        if self.indexes.is_native(coll, key):  # the store dropped its index entries with the rows
            removed = len(data.embedding_ids.get(key, ()))
        else:
            removed = self.indexes.catch_up(coll)
        for other in data.vectors:
            if other != key:  # leftovers of an unfinished migration: their index is simply deleted
                self.indexes.drop(coll.id, other)
        mine = data.vectors.get(key, np.zeros((0, coll.contract.dim), np.float32))
        try:
            threshold = self.decision(coll).threshold
        except ModelError:
            threshold = None
        found = self.match_vectors(coll, mine, top_k=FORGET_TOP_K) if len(mine) else []
        # the very same vector, enrolled again under another name
        identical = np.array([bool(m) and m[0].similarity >= 1.0 - 1e-6 for m in found], bool)
        # Bytes of a vector that is still enrolled (under another name) are rightly in the
        # index; every other forgotten vector must be absent from the saved file.
        index_file_clean = self.indexes.prove_absent(coll, key, mine[~identical])
        self._checkpoint_erasure(coll, person, faces=data.faces)
        proof = self._forget_proof(coll, data, mine, found, index_file_clean)
        report = ForgetReport(collection=coll.name, person=person, faces_removed=data.faces,
                              embeddings_removed=sum(len(v) for v in data.embedding_ids.values()),
                              crops_removed=data.crops, index_entries_removed=removed, proof=proof,
                              threshold=threshold)
        del data, mine, found
        return report

    def _forget_proof(self, coll: Collection, data: ForgottenData, mine: np.ndarray, found: list[tuple[Match, ...]],
                      index_file_clean: bool) -> ForgetProof:
        """Test what forget claims, after the removal: the person is gone from
        every row and index, and their own faces never return them; separately,
        which other people their faces still match at a strict threshold."""
        forgotten_ids = np.concatenate([np.asarray(v, np.int64) for v in data.embedding_ids.values()] or
                                       [np.zeros(0, np.int64)])
        rows = self.store.references(coll.id, data.person_id, forgotten_ids.tolist(), data.face_ids.tolist())
        index = self.indexes.get(coll)
        in_index = int(np.isin(index.keys(), forgotten_ids).sum()) if forgotten_ids.size else 0
        hits = np.zeros(len(mine), bool)
        if len(mine) and len(index):
            # the index's own answer (before the exact re-ranking) holds no forgotten id
            cand, _ = index.search(mine, min(len(index), FORGET_TOP_K * 4), exact=True)
            hits |= np.isin(cand, forgotten_ids).any(axis=1)
            fresh = self.match_vectors(coll, mine, top_k=FORGET_TOP_K)
        else:
            fresh = [() for _ in range(len(mine))]
        for results in (found, fresh):  # before and after the index file was rewritten
            for i, matches in enumerate(results):
                hits[i] |= any(m.person_id == data.person_id for m in matches)
        strict, strict_fmr = self._strict_threshold(coll)
        best = None
        per_person: dict[int, list] = {}
        for matches in fresh:
            if not matches:
                continue
            top = matches[0]
            best = top.similarity if best is None else max(best, top.similarity)
            if strict is None:
                continue
            for m in matches:
                if m.similarity >= strict and m.person_id != data.person_id:
                    entry = per_person.setdefault(m.person_id, [m.person, m.similarity, 0])
                    entry[1] = max(entry[1], m.similarity)
                    entry[2] += 1
        lookalikes = tuple(sorted((Lookalike(person=name, person_id=pid, similarity=sim, faces=n)
                                   for pid, (name, sim, n) in per_person.items()),
                                  key=lambda x: -x.similarity))
        rows_remaining = sum(rows.values())
        search_hits = int(hits.sum())
        return ForgetProof(checked_faces=len(mine),
                           person_still_returned=bool(rows_remaining or in_index or search_hits),
                           rows_remaining=rows_remaining, index_entries_remaining=in_index, search_hits=search_hits,
                           index_file_clean=bool(index_file_clean), lookalikes=lookalikes, strict_threshold=strict,
                           fmr=strict_fmr, best_remaining_similarity=best)

    def _strict_threshold(self, coll: Collection) -> tuple[float | None, float | None]:
        """The threshold at FORGET_STRICT_FMR from the embedder's calibration, or the
        collection's own threshold when that is stricter (or the only one there is)."""
        try:
            point = operating_point(coll.contract.name, FORGET_STRICT_FMR)
        except ModelError:
            point = None
        try:
            decision = self.decision(coll)
        except ModelError:
            decision = None
        if point is None:
            return (decision.threshold, decision.fmr) if decision else (None, None)
        if decision is not None and decision.threshold > point.threshold:
            return decision.threshold, decision.fmr
        return point.threshold, point.fmr

    def _checkpoint_erasure(self, coll: Collection, person: str, **counts) -> None:
        """The erasure is complete only once the store made it final on disk (SQLite: the WAL
        checkpointed and truncated; PostgreSQL: the tables vacuumed). A reader holding an
        older snapshot blocks that; after the store's retries, say what remains (the store's
        `residue`) instead of reporting success."""
        if self.store.checkpoint():
            return
        raise GalleryError(
            f"{person!r} was deleted from every table of collection {coll.name!r} and from its index, but "
            f"another process is reading {self.location} and holds an older snapshot, so the deleted rows are "
            f"still {self.store.residue}; forget the same name again once that process has finished to complete "
            "the erasure",
            code="erasure_incomplete", person=person, collection=coll.name, path=self.location, **counts)

    def _already_forgotten(self, coll: Collection, person: str, exc: NotFoundError) -> NotFoundError:
        """Forget of a name that is not (or no longer) there: finish whatever an earlier,
        interrupted forget left (index files its commit listed, strays, the WAL) and
        say that nothing of theirs remains, rather than only "no person"."""
        self.store.require_writable()
        self.indexes.clean_strays()
        self._checkpoint_erasure(coll, person)
        return NotFoundError(f"{exc}: nothing of theirs is stored (if they were forgotten before, the erasure "
                             "is complete: no index file or log holds their data)", code="not_found",
                             kind="person", person=person, collection=coll.name, clean=True)

    # -- maintenance -------------------------------------------------------
    def reindex(self, collection: str = DEFAULT_COLLECTION, *, check_only: bool = False) -> IndexReport:
        """Rebuild the collection's index from the store (or only check it)."""
        coll = self.collection(collection)
        if check_only:
            self.indexes.get(coll)
            if not self.store.read_only and not self.store.damaged:
                self.indexes.save(coll.id)  # keep a repaired index; a read-only gallery is only checked
            return self.indexes.report(coll)
        self.store.require_writable()
        return self.indexes.rebuild(coll)

    def migrate(self):
        """Apply the store's pending schema migrations (a store also does this when opened
        writable); returns the store's MigrationReport."""
        return self.store.migrate()

    def reembed(self, collection: str, embedder: str, *, batch: int = 32, threads: int | None = None,
                progress: Progress | None = None) -> ReembedReport:
        """Migrate a collection to another embedder (or version), from the stored
        aligned crops, or from the source images for faces enrolled without crops.

        Resumable: new vectors are stored as they are made, and the switch (new
        contract, old vectors deleted) is one transaction at the end."""
        t0 = time.perf_counter()
        coll = self.collection(collection)
        new = contract_of(embedder)
        if not coll.contract.differs_from(new):
            raise GalleryError(f"collection {coll.name!r} is already embedded with {new.describe()}")
        missing = [f for f in self.store.faces(coll.id) if not f.has_crop
                   and not (f.image_path and Path(f.image_path).is_file())]
        if missing:
            shown = ", ".join(str(f.image_path) for f in missing[:3])
            raise GalleryError(
                f"{len(missing)} faces in {coll.name!r} were enrolled without aligned crops, so "
                f"reembed needs their source images, and these are missing (e.g. {shown}). Put them back at "
                "their enrolled paths, or enroll the people again into a new collection")
        from vultus.engine import Engine

        engine = Engine(detector=coll.detector, embedder=new.name, threads=threads)
        from_crops = from_images = 0
        while True:
            todo = self.store.crop_items(coll.id, new.key, batch)
            if not todo:
                break
            pairs = []
            for item in todo:
                if item.jpeg is not None:
                    pairs.append((decode_crop(item.jpeg), item.crop_face))
                    from_crops += 1
                else:
                    path = Path(item.image_path or "")
                    if not path.is_file() or sha256_file(path) != item.image_sha256:
                        raise GalleryError(f"{path}: the source image of face {item.face_id} is missing or has "
                                           "changed since it was enrolled; cannot reembed it")
                    pairs.append((load_image(path), item.source_face))
                    from_images += 1
            vectors = engine.embedder.embed(pairs)
            self.store.add_embeddings(coll.id, new.key, [i.face_id for i in todo], vectors)
            if progress:
                progress(len(todo))
        old = coll.contract
        if coll.own_calibration is not None:
            # measured on the old embedder's scores: dropped first (a crash in between leaves the
            # collection deciding by the embedder's calibration, never by a curve of another model)
            self.store.update_decision(coll.id, clear_own_calibration=True)
        self.store.switch_embedder(coll.id, new)
        self.indexes.drop(coll.id)
        coll = self.collection(collection)
        self.indexes.get(coll)
        self.indexes.save(coll.id)
        return ReembedReport(collection=coll.name, old=old, new=new, faces=from_crops + from_images,
                             from_crops=from_crops, from_images=from_images, seconds=time.perf_counter() - t0)

    def stats(self, collection: str = DEFAULT_COLLECTION, *, check_calibration: bool = True) -> CollectionStats:
        """Counts, index state, the decision and (with `check_calibration`) its stated rates
        against the collection's own impostor pairs (check_calibration)."""
        coll = self.collection(collection)
        counts = self.store.counts(coll.id)
        index = self.indexes.report(coll)  # checked and rebuilt in memory if need be; a read never writes
        decision, why = None, None
        try:
            decision = self.decision(coll)
        except ModelError as exc:
            why = str(exc)
        checked = self.check_calibration(coll) if check_calibration and decision is not None else None
        return CollectionStats(collection=coll, people=counts["people"], faces=counts["faces"],
                               images=counts["images"], embeddings=counts["embeddings"], crops=counts["crops"],
                               index=index, decision=decision, decision_error=why, db_bytes=self.store.size_bytes(),
                               index_bytes=self.indexes.index_bytes(coll.id), calibration_check=checked)

    def audit_log(self, collection: str | None = None, limit: int = 100) -> list[AuditRecord]:
        return self.store.audit_log(collection, limit)


class Enrollment:
    """One enroll job on the writing side (Gallery.begin_enrollment): which images
    are already enrolled or repeat one earlier in the job, and each finished chunk
    committed in one transaction, with its label warnings. Positions are the
    images' places in the job's input; the report lists outcomes in that order."""

    def __init__(self, gallery: Gallery, coll: Collection, options: EnrollOptions, detector: str,
                 keep_outcomes: bool = True):
        self.gallery, self.collection, self.options, self.detector = gallery, coll, options, detector
        self.keep_outcomes = keep_outcomes
        self.outcomes: dict[int, EnrollOutcome] = {}
        self.warnings: list[EnrollWarning] = []
        self._first_seen: dict[str, str] = {}  # sha256 -> the path that brought it into this job
        self._threshold: float | None = None
        self._committed = False
        self._started = time.perf_counter()

    def screen(self, hashed: Sequence[tuple[int, EnrollItem, str | ImageError]]
               ) -> tuple[list[tuple[int, EnrollItem]], list[EnrollOutcome]]:
        """Split (position, item, sha256 or the ImageError hashing met) into the
        images to compute and the outcomes of the rest (error, duplicate). An
        image seen earlier in this job is a duplicate of that one even when the
        earlier one has been committed since, so the outcome does not depend on
        how far the job got."""
        coll = self.collection
        fresh = [sha for _, _, sha in hashed if isinstance(sha, str) and sha not in self._first_seen]
        known = self.gallery.store.known_images(coll.id, fresh) if fresh else {}
        todo: list[tuple[int, EnrollItem]] = []
        done: list[tuple[int, EnrollOutcome]] = []
        for pos, item, sha in hashed:
            if not isinstance(sha, str):
                done.append((pos, EnrollOutcome(str(item.path), item.person, "error", error_reason(sha, item.path))))
            elif sha in self._first_seen:
                done.append((pos, EnrollOutcome(str(item.path), item.person, "duplicate",
                                                f"same image as {self._first_seen[sha]}")))
            elif sha in known:
                done.append((pos, EnrollOutcome(str(item.path), item.person, "duplicate",
                                                f"already enrolled as {known[sha]}")))
            else:
                self._first_seen[sha] = str(item.path)
                todo.append((pos, item))
        if self.keep_outcomes:
            self.outcomes.update(done)
        return todo, [o for _, o in done]

    def commit(self, batch: list[Processed]) -> tuple[list[EnrollOutcome], list[EnrollWarning]]:
        """Store a computed chunk in one transaction; its outcomes and warnings, in batch order."""
        g, coll = self.gallery, self.collection
        if not self._committed:
            g.indexes.get(coll)  # load (or rebuild) before the first batch needs it
            try:
                self._threshold = g.decision(coll).threshold
            except ModelError:
                self._threshold = None  # no calibration: the label check still compares people with each other
            self._committed = True
        outcomes: dict[int, EnrollOutcome] = {}
        warnings: list[EnrollWarning] = []
        g._commit(coll, coll.contract.key, batch, outcomes, warnings, self._threshold)
        if self.keep_outcomes:
            self.outcomes.update(outcomes)
            self.warnings.extend(warnings)
        return [outcomes[p.position] for p in batch], warnings

    def save(self) -> None:
        """Save the collection's index once the job's faces are in (nothing to do if none were computed)."""
        if self._committed:
            self.gallery.indexes.save(self.collection.id, self.collection.contract.key)

    def report(self, n_items: int) -> EnrollReport:
        """Every outcome of positions 0..n_items-1, in order (needs keep_outcomes)."""
        return EnrollReport(collection=self.collection.name, outcomes=tuple(self.outcomes[pos] for pos in
                                                                            range(n_items)),
                            warnings=tuple(self.warnings), seconds=time.perf_counter() - self._started)


def named_items(items: Sequence[EnrollItem]) -> list[EnrollItem]:
    """Every item's person name checked (and trimmed) before any work starts, so a
    bad name anywhere refuses the whole input, as a folder or a CSV does."""
    out = []
    for item in items:
        try:
            name = check_name(item.person, "person")
        except GalleryError as exc:
            raise GalleryError(f"{item.path}: {exc.message}", code=exc.code, file=str(item.path),
                               **exc.data) from None
        out.append(item if name == item.person else replace(item, person=name))
    return out


def _check_search(top_k: int, search: str) -> None:
    if top_k < 1:
        raise GalleryError(f"top-k must be at least 1 (got {top_k})", code="bad_top_k", value=top_k)
    if search not in SEARCH_MODES:
        raise GalleryError(f"search must be one of {', '.join(SEARCH_MODES)} (got {search!r})",
                           code="bad_search_mode", value=search, choices=list(SEARCH_MODES))


def _workers(requested: int | None, n_images: int) -> int:
    """0 means in this process. By default, worker processes (one per core, each
    with its own models on one thread) only when there are 4+ cores and enough
    images to pay for starting them: on 2 cores one process with its models on
    both cores was as fast or faster (bench/results/identify.md)."""
    if requested is not None:
        return max(0, int(requested))
    cores = os.cpu_count() or 1
    return min(cores, 8) if cores >= 4 and n_images >= 64 else 0


@dataclass(frozen=True, slots=True)
class EnrollSource:
    """What a folder or a CSV gives to enroll: the (image, person) items, and the
    entries skipped with why (a FIFO, a symbolic link loop, a folder named like
    an image, a file of a type Pillow does not read)."""

    items: list[EnrollItem]
    skipped: list[SkippedFile] = field(default_factory=list)


def scan_enroll_folder(folder: str | Path) -> EnrollSource:
    """The images of a folder with one sub-folder per person (named after them)."""
    root = Path(folder)
    if not root.is_dir():
        raise GalleryError(f"{root}: not a folder (enroll a folder with one sub-folder per person)",
                           code="not_a_folder", file=str(root))
    items, loose, skipped = [], [], []
    for found in iter_scan(root):
        if isinstance(found, SkippedFile):
            skipped.append(found)
            continue
        rel = found.relative_to(root)
        if len(rel.parts) < 2:
            loose.append(found)
            continue
        items.append(EnrollItem(found, _check_name(rel.parts[0], "person")))
    if loose and not items:
        raise GalleryError(f"{root}: images are not in per-person sub-folders (e.g. {loose[0].name}); put each "
                           "person's photos in a folder named after them", code="no_person_folders",
                           file=str(root), loose=len(loose))
    if not items:
        seen = f" ({len(skipped)} entries skipped, e.g. {skipped[0].message()})" if skipped else ""
        raise GalleryError(f"{root}: no images found{seen}", code="no_images", file=str(root), skipped=len(skipped))
    if loose:
        raise GalleryError(f"{root}: {len(loose)} images lie outside any person's sub-folder "
                           f"(e.g. {loose[0].name}); move them into one, so no face gets the wrong name",
                           code="no_person_folders", file=str(root), loose=len(loose))
    return EnrollSource(items, skipped)


def folder_items(folder: str | Path) -> list[EnrollItem]:
    """The (image, person) items of a folder with one sub-folder per person."""
    return scan_enroll_folder(folder).items


# The largest CSV read: 16 MiB is some 100,000 rows of long paths.
MAX_CSV_BYTES = 16 * 1024 * 1024


def scan_enroll_csv(csv_path: str | Path, *, allow_outside: bool = False) -> EnrollSource:
    """The (path, person) rows of a CSV file. An optional `path,person` header,
    blank lines and lines starting with `#` are ignored; errors name the file's
    line number. Relative paths are taken from the CSV's folder; a path that
    resolves (following symbolic links) outside that folder is refused unless
    `allow_outside`, so a CSV cannot make enroll read files elsewhere."""
    path = Path(csv_path)
    try:  # a FIFO, a device or a file over the cap is refused (ImageError) before it is read
        text = read_file_bytes(path, max_bytes=MAX_CSV_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GalleryError(f"{path}: not a UTF-8 text file", code="bad_csv", file=str(path)) from exc
    base = Path(os.path.realpath(path.parent))
    reader = csv.reader(io.StringIO(text, newline=""))
    items: list[EnrollItem] = []
    header_possible = True
    last_line = 0
    for row in reader:
        line = last_line + 1  # the row's first line in the file (a quoted field may span several)
        last_line = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header_possible and [c.strip().lower() for c in row[:2]] == ["path", "person"]:
            header_possible = False
            continue
        header_possible = False
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise GalleryError(f"{path}, line {line}: expected `path,person`, got {','.join(row)!r}",
                               code="bad_csv", file=str(path), line=line)
        try:
            person = _check_name(row[1], "person")
        except GalleryError as exc:
            raise GalleryError(f"{path}, line {line}: {exc.message}", code=exc.code,
                               **(exc.data | {"file": str(path), "line": line})) from exc
        p = Path(row[0].strip())
        image = p if p.is_absolute() else path.parent / p
        if not allow_outside and not Path(os.path.realpath(image)).is_relative_to(base):
            raise GalleryError(f"{path}, line {line}: {image} is outside the CSV's folder ({base})",
                               code="path_outside", file=str(path), line=line, path=str(image), folder=str(base))
        items.append(EnrollItem(image, person))
    if not items:
        raise GalleryError(f"{path}: no rows (expected `path,person` per line)", code="bad_csv", file=str(path))
    return EnrollSource(items)


def csv_items(csv_path: str | Path, *, allow_outside: bool = False) -> list[EnrollItem]:
    """The (path, person) items of a CSV (see scan_enroll_csv)."""
    return scan_enroll_csv(csv_path, allow_outside=allow_outside).items


# process_items is part of the public surface for callers that run their own pool.
__all__ = ["DEFAULT_COLLECTION", "EnrollSource", "Enrollment", "Gallery", "csv_items", "default_gallery_path",
           "folder_items", "named_items", "process_items", "scan_enroll_csv", "scan_enroll_folder"]

"""Bulk jobs on Ray Data: enroll into a gallery, or embed / analyze into Parquet.

    from vultus.bulk import bulk_enroll, read_source
    from vultus.gallery import Gallery
    with Gallery("people.db") as g:     # or a postgresql:// gallery once that backend is installed
        report = bulk_enroll(read_source("people/", people=True).items, g, num_cpus=8)

The source's items become a Ray dataset; `map_batches` runs them through a pool
of actors (one CPU and one onnxruntime thread each, models loaded once per
actor), in order, and the driver (this process) takes the results back batch by
batch. Enroll commits them through the gallery's own enroll steps
(`Gallery.begin_enrollment`: the same screening, the same chunks of
vultus.gallery.inference.CHUNK images, the same transactions and label checks
as `Gallery.enroll`), so a bulk enroll decides exactly as a plain one; only the
detection, gate and embedding run elsewhere. Embed and analyze write Parquet
parts (vultus.bulk.output).

Resumable: before computing an image, an enroll actor asks the gallery (through
a small actor on the driver's node) whether its sha256 is enrolled, and an
embed or analyze actor checks it against the output's existing rows; a job run
again after a crash computes only what is missing.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vultus.bulk import output
from vultus.bulk.errors import BulkError
from vultus.bulk.runtime import client_mode, cluster_cpus, ray_modules, ray_session
from vultus.gallery.api import named_items
from vultus.gallery.inference import CHUNK, EnrollOptions, Processed
from vultus.gallery.types import EnrollItem, EnrollOutcome, EnrollWarning

Progress = Callable[[int], None]
#: Images per actor call for embed and analyze (one batched model call each).
IMAGE_BATCH = 16
#: Images per Parquet part.
FLUSH_EVERY = 2048
#: Actor calls per Ray block (one actor task).
BLOCK_BATCHES = 4


@dataclass(frozen=True, slots=True)
class BulkEnrollReport:
    collection: str
    gallery: str
    images: int
    counts: dict  # status -> images: enrolled, duplicate, refused, error
    workers: int
    seconds: float
    worker_cpu_s: float = 0.0  # CPU time the actors spent (hashing, detection, gate, embedding)
    problems: tuple[EnrollOutcome, ...] = ()  # the refused and unreadable images, in input order
    warnings: tuple[EnrollWarning, ...] = ()
    outcomes: tuple[EnrollOutcome, ...] | None = None  # every image's, in input order (keep_outcomes)

    def count(self, status: str) -> int:
        return int(self.counts.get(status, 0))

    def to_dict(self) -> dict:
        out = {"collection": self.collection, "gallery": self.gallery, "images": self.images,
               "enrolled": self.count("enrolled"), "duplicates": self.count("duplicate"),
               "refused": self.count("refused"), "errors": self.count("error"), "workers": self.workers,
               "seconds": round(self.seconds, 2), "worker_cpu_s": round(self.worker_cpu_s, 2),
               "faces_per_s": round(self.count("enrolled") / self.seconds, 2) if self.seconds > 0 else None,
               "problems": [o.to_dict() for o in self.problems], "warnings": [w.to_dict() for w in self.warnings]}
        if self.outcomes is not None:
            out["images_detail"] = [o.to_dict() for o in self.outcomes]
        return out


@dataclass(frozen=True, slots=True)
class BulkOutputReport:
    kind: str  # embed | analyze
    out: str
    images: int
    computed: int  # images computed by this run
    skipped: int  # already in the output (by sha256)
    duplicates: int  # the same bytes as an image earlier in this run
    no_face: int
    errors: int
    faces: int
    workers: int
    seconds: float
    worker_cpu_s: float = 0.0
    parts: tuple[str, ...] = ()
    problems: tuple[dict, ...] = field(default=())  # {"path", "code", "message"} per unreadable image

    def to_dict(self) -> dict:
        return {"kind": self.kind, "out": self.out, "images": self.images, "computed": self.computed,
                "skipped": self.skipped, "duplicates": self.duplicates, "no_face": self.no_face,
                "errors": self.errors, "faces": self.faces, "workers": self.workers, "seconds": round(self.seconds, 2),
                "worker_cpu_s": round(self.worker_cpu_s, 2),
                "parts": list(self.parts), "problems": list(self.problems)}


# -- Ray plumbing -----------------------------------------------------------------
@contextlib.contextmanager
def _ordered_data_context(rd):
    """Results come back in input order (the commit chunks are then the same as
    a plain enroll's) and Ray draws no progress bars (the caller's progress does)."""
    ctx = rd.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    try:
        yield ctx
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _results(rd, items: Sequence[EnrollItem], worker_cls, constructor: dict, workers: int, batch_size: int,
             cpu: list[float]):
    """Each output batch as {position: unpickled payload}, in input order; the
    actors' CPU seconds are added to cpu[0]."""
    rows = [{"pos": i, "path": str(it.path), "person": it.person} for i, it in enumerate(items)]
    # Blocks of a few batches: each actor task returns one block, so results reach the driver (and its
    # commits and progress) as a steady stream rather than in a few large bursts.
    blocks = max(1, math.ceil(len(rows) / (BLOCK_BATCHES * batch_size)))
    ds = rd.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(worker_cls, fn_constructor_kwargs=constructor, batch_size=batch_size, batch_format="numpy",
                        compute=rd.ActorPoolStrategy(size=workers), num_cpus=1)
    for out in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        cpu[0] += float(out["cpu_s"].sum())
        yield {int(pos): pickle.loads(payload) for pos, payload in zip(out["pos"], out["payload"], strict=True)}


def _workers(ray, requested: int | None) -> int:
    if requested is not None:
        if int(requested) < 1:
            raise BulkError(f"workers must be at least 1 (got {requested})", code="bad_workers", value=requested)
        return int(requested)
    return cluster_cpus(ray)


# -- enroll -------------------------------------------------------------------------
def bulk_enroll(items: Sequence[EnrollItem], gallery, collection: str = "default", *, embedder: str | None = None,
                detector: str | None = None, options: EnrollOptions | None = None, workers: int | None = None,
                address: str | None = None, num_cpus: int | None = None, temp_dir=None,
                progress: Progress | None = None, keep_outcomes: bool = False) -> BulkEnrollReport:
    """Enroll (image, person) items into `gallery` (an open vultus.gallery.Gallery) on Ray.

    `workers` actors (default: one per CPU of the cluster), on the Ray at `address`
    or a local one with `num_cpus` CPUs (vultus.bulk.runtime.ray_session). The
    refused and unreadable images are in the report's `problems`; with
    `keep_outcomes`, every image's outcome, as Gallery.enroll reports it."""
    from vultus.bulk.workers import EnrollWorker, KnownImages

    t0 = time.perf_counter()
    items = named_items(items)  # a bad name anywhere refuses the job before any work, as enroll does
    run = gallery.begin_enrollment(collection, embedder=embedder, detector=detector, options=options,
                                   keep_outcomes=keep_outcomes)
    coll = run.collection
    gallery.check_contract(coll, coll.contract.name)
    counts: Counter = Counter()
    problems: list[tuple[int, EnrollOutcome]] = []
    warnings: list[EnrollWarning] = []

    def record(pairs):
        for pos, o in pairs:
            counts[o.status] += 1
            if o.status in ("refused", "error"):
                problems.append((pos, o))
        if progress and pairs:
            progress(len(pairs))

    def commit(chunk: list[Processed]):
        outcomes, warns = run.commit(chunk)
        record(list(zip([p.position for p in chunk], outcomes, strict=True)))
        warnings.extend(warns)

    with ray_session(address, num_cpus=num_cpus, temp_dir=temp_dir) as ray:
        if client_mode(ray) and "://" not in gallery.location:
            raise BulkError(f"a Ray client's job runs its driver side on the cluster, which cannot open the gallery "
                            f"file {gallery.location}; use a database gallery (postgresql://...), or run this on a "
                            "node of the cluster with --ray auto", code="gallery_unreachable",
                            gallery=gallery.location)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        n_workers = _workers(ray, workers)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        known = ray.remote(num_cpus=0, scheduling_strategy=here)(KnownImages).remote(gallery.location, coll.name)
        _, rd = ray_modules()
        pending: list[Processed] = []
        cpu = [0.0]
        with _ordered_data_context(rd):
            constructor = {"detector": run.detector, "embedder": coll.contract.name, "options": run.options,
                           "known": known}
            for rows in _results(rd, items, EnrollWorker, constructor, n_workers, CHUNK, cpu):
                order = sorted(rows)
                todo, screened = run.screen([(pos, items[pos], rows[pos][0]) for pos in order])
                todo_pos = {pos for pos, _ in todo}
                record([(pos, o) for pos, o in zip([p for p in order if p not in todo_pos], screened, strict=True)])
                for pos, item in todo:
                    processed = rows[pos][1]
                    if processed is None:  # enrolled when its actor asked, gone now (forgotten meanwhile)
                        o = EnrollOutcome(str(item.path), item.person, "error",
                                          "was enrolled when this job reached it and has been removed since; "
                                          "enroll it again")
                        if keep_outcomes:
                            run.outcomes[pos] = o
                        record([(pos, o)])
                        continue
                    pending.append(processed)
                    if len(pending) >= CHUNK:
                        commit(pending[:CHUNK])
                        pending = pending[CHUNK:]
            if pending:
                commit(pending)
        run.save()
        with contextlib.suppress(Exception):
            ray.kill(known)
    problems.sort(key=lambda t: t[0])
    return BulkEnrollReport(collection=coll.name, gallery=gallery.location, images=len(items), counts=dict(counts),
                            workers=n_workers, seconds=time.perf_counter() - t0, worker_cpu_s=cpu[0],
                            problems=tuple(o for _, o in problems), warnings=tuple(warnings),
                            outcomes=run.report(len(items)).outcomes if keep_outcomes else None)


# -- embed / analyze --------------------------------------------------------------
def bulk_embed(items: Sequence[EnrollItem], out: str | Path, *, detector: str = "yunet", embedder: str = "sface",
               workers: int | None = None, address: str | None = None, num_cpus: int | None = None, temp_dir=None,
               batch_size: int = IMAGE_BATCH, flush_every: int = FLUSH_EVERY,
               progress: Progress | None = None) -> BulkOutputReport:
    """Every face of every image with its embedding, into Parquet parts under `out`."""
    from vultus.bulk.workers import EmbedWorker
    from vultus.models.registry import get_spec

    get_spec(detector, task="detect")
    get_spec(embedder, task="embed")
    return _to_parquet("embed", items, out, EmbedWorker, {"detector": detector, "embedder": embedder},
                       {"model": embedder}, workers, address, num_cpus, temp_dir, batch_size, flush_every, progress)


def bulk_analyze(items: Sequence[EnrollItem], out: str | Path, *, detector: str = "yunet", embedder: str = "sface",
                 actions: Sequence[str] | None = None, stability: bool = True, workers: int | None = None,
                 address: str | None = None, num_cpus: int | None = None, temp_dir=None,
                 batch_size: int = IMAGE_BATCH, flush_every: int = FLUSH_EVERY,
                 progress: Progress | None = None) -> BulkOutputReport:
    """Every face of every image with its attributes (as `vultus analyze`), into Parquet parts under `out`."""
    from vultus.attributes.analyze import check_actions
    from vultus.bulk.workers import AnalyzeWorker
    from vultus.models.registry import get_spec

    get_spec(detector, task="detect")
    actions = check_actions(None if actions is None else list(actions))
    return _to_parquet("analyze", items, out, AnalyzeWorker,
                       {"detector": detector, "embedder": embedder, "actions": actions, "stability": stability},
                       {}, workers, address, num_cpus, temp_dir, batch_size, flush_every, progress)


def _to_parquet(kind, items, out, worker_cls, constructor, extra, workers, address, num_cpus, temp_dir, batch_size,
                flush_every, progress) -> BulkOutputReport:
    t0 = time.perf_counter()
    folder = output.prepare(out)
    done = output.done_sha256s(folder, kind)
    writer = output.PartWriter(folder, kind, flush_every)
    seen: set[str] = set()
    n = Counter()
    problems: list[dict] = []
    cpu = [0.0]
    with ray_session(address, num_cpus=num_cpus, temp_dir=temp_dir) as ray:
        n_workers = _workers(ray, workers)
        _, rd = ray_modules()
        try:
            with _ordered_data_context(rd):
                for rows in _results(rd, items, worker_cls, constructor | {"skip": frozenset(done)}, n_workers,
                                     batch_size, cpu):
                    for pos in sorted(rows):
                        sha, result = rows[pos]
                        path = str(items[pos].path)
                        base = {"path": path, "sha256": sha if isinstance(sha, str) else None, "face": -1} | extra
                        if isinstance(sha, str) and sha in done:
                            n["skipped"] += 1
                        elif isinstance(sha, str) and sha in seen:
                            n["duplicates"] += 1
                        else:
                            if isinstance(sha, str):
                                seen.add(sha)
                            status, value = result
                            n["computed"] += 1
                            if status == "error":
                                n["errors"] += 1
                                problems.append({"path": path} | value)
                                writer.add([base | {"status": "error", "error_code": value["code"],
                                                    "error": value["message"]}])
                            elif not value:
                                n["no_face"] += 1
                                writer.add([base | {"status": "no_face"}])
                            else:
                                n["faces"] += len(value)
                                writer.add([base | {"status": "ok"} | row for row in value])
                    if progress:
                        progress(len(rows))
        finally:
            writer.flush()  # every image finished so far is kept, even when the job stops
    return BulkOutputReport(kind=kind, out=str(folder), images=len(items), computed=n["computed"],
                            skipped=n["skipped"], duplicates=n["duplicates"], no_face=n["no_face"],
                            errors=n["errors"], faces=n["faces"], workers=n_workers,
                            seconds=time.perf_counter() - t0, worker_cpu_s=cpu[0],
                            parts=tuple(str(p) for p in writer.written),
                            problems=tuple(problems))


__all__ = ["BulkEnrollReport", "BulkOutputReport", "bulk_analyze", "bulk_embed", "bulk_enroll"]

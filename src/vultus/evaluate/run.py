"""The evaluation protocols end to end: images -> cached embeddings -> typed reports.

These are what `vultus evaluate`, `vultus calibrate` and `vultus model-card` call; each takes an Engine
(its detector and embedder are what is being evaluated) and returns a report dataclass.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.embeddings import EmbeddedImages, Progress, embed_images
from vultus.evaluate.groups import LabelTable, check_coverage
from vultus.evaluate.lfw import Pair, read_lfw_pairs
from vultus.evaluate.verification import (
    FMR_TARGETS,
    VerificationReport,
    evaluate_verification,
    pair_labels,
    read_pairs_csv,
    score_pairs,
)


def shipped_operating_point(model: str) -> list[tuple[str, float, float | None]]:
    """The calibrated threshold `vultus verify` uses by default, if the embedder has one."""
    from vultus.models.calibration import operating_point

    try:
        p = operating_point(model)
    except VultusError:
        return []
    return [(f"shipped default (FMR {p.fmr:g} on {p.source})", p.threshold, p.fmr)]


def evaluate_pairs(engine, pairs: list[Pair], *, dataset: str, labels: LabelTable | None = None,
                   pick: str = "largest", use_cache: bool = True, cache_root: Path | None = None,
                   n_boot: int = 1000, targets=FMR_TARGETS, progress: Progress | None = None,
                   workers: int | None = None) -> tuple[VerificationReport, EmbeddedImages]:
    """Verification metrics over labelled pairs (LFW or a user's CSV)."""
    if not pairs:
        raise VultusError(f"{dataset}: no pairs to evaluate")
    t0 = time.perf_counter()
    paths = [p.path_a for p in pairs] + [p.path_b for p in pairs]
    embedded = embed_images(engine, paths, pick=pick, use_cache=use_cache, cache_root=cache_root,
                            progress=progress, workers=workers)
    t1 = time.perf_counter()
    scores, failed = score_pairs(embedded, pairs)
    labels_a = labels_b = None
    if labels is not None:
        check_coverage(labels, embedded.paths, dataset)
        labels_a, labels_b = pair_labels(labels, pairs)
    report = evaluate_verification(
        scores, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]),
        failed, dataset=dataset, model=engine.embedder_name, detector=engine.detector_spec.name, targets=targets,
        n_boot=n_boot, labels_a=labels_a, labels_b=labels_b,
        extra_thresholds=shipped_operating_point(engine.embedder_name),
        failed_images={str(p): why for p, why in embedded.errors.items()})
    t2 = time.perf_counter()
    report.timing.update({"embed": t1 - t0, "metrics": t2 - t1, "total": t2 - t0})
    report.notes.extend(_embedding_notes(embedded))
    if labels is not None:
        report.notes.append(f"groups from {labels.source}" + (" (predicted by a model, not self-reported)"
                                                              if labels.predicted else ""))
    return report, embedded


def _embedding_notes(e: EmbeddedImages) -> list[str]:
    notes = [f"{len(e.paths)} images: {len(e.paths) - len(e.errors)} embedded, {len(e.errors)} failed; "
             f"{e.cache_hits} from the embedding cache"]
    if e.n_multi_face:
        rule = "nearest the image centre" if e.pick == "center" else "largest"
        notes.append(f"{e.n_multi_face} images show more than one face; the {rule} face was used")
    return notes


def evaluate_lfw(engine, root, **options) -> tuple[VerificationReport, EmbeddedImages]:
    """LFW View 2: the 6000 pairs of pairs.txt in their 10 official folds."""
    root = Path(root)
    pairs = read_lfw_pairs(root)
    options.setdefault("pick", "center")
    return evaluate_pairs(engine, pairs, dataset=f"LFW View 2 ({root})", **options)


def evaluate_pairs_file(engine, csv_path, **options) -> tuple[VerificationReport, EmbeddedImages]:
    """A user's pairs CSV (path_a, path_b, same[, fold]); folds are assigned at random when absent."""
    return evaluate_pairs(engine, read_pairs_csv(csv_path), dataset=str(csv_path), **options)


def evaluate_identify(engine, root, *, labels: LabelTable | None = None, pick: str = "largest", enrol: int = 1,
                      holdout: float = 0.2, seed: int = 0, use_cache: bool = True, cache_root: Path | None = None,
                      n_boot: int = 1000, progress: Progress | None = None, workers: int | None = None):
    """Open-set 1:N on a folder of people (see evaluate/identification.py for the protocol)."""
    from vultus.evaluate.identification import evaluate_identification, read_people, search_scores, split_people

    t0 = time.perf_counter()
    people = read_people(root)
    split = split_people(people, enrol=enrol, holdout=holdout, seed=seed)
    gallery = [(p, name) for name, imgs in split.gallery.items() for p in imgs]
    probes = split.mated + split.nonmated
    embedded = embed_images(engine, [p for p, _ in gallery] + [p for p, _ in probes], pick=pick, use_cache=use_cache,
                            cache_root=cache_root, progress=progress, workers=workers)
    t1 = time.perf_counter()
    g_vec = embedded.vectors[embedded.indices([p for p, _ in gallery])]
    p_vec = embedded.vectors[embedded.indices([p for p, _ in probes])]
    mated = np.array([True] * len(split.mated) + [False] * len(split.nonmated))
    search = search_scores(p_vec, [n for _, n in probes], mated, g_vec, [n for _, n in gallery])
    probe_labels = None
    if labels is not None:
        check_coverage(labels, embedded.paths, str(root))
        probe_labels = {a: labels.column([p for p, _ in probes], a) for a in labels.attributes}
    g_ok = np.isfinite(g_vec).all(axis=1)
    enrolled = len({n for (_, n), ok in zip(gallery, g_ok, strict=True) if ok})
    rep = evaluate_identification(
        search, dataset=str(root), model=engine.embedder_name, detector=engine.detector_spec.name,
        n_people=len(people), n_enrolled=enrolled, n_gallery_images=len(gallery),
        n_gallery_failed=int((~g_ok).sum()), n_boot=n_boot, seed=seed, probe_labels=probe_labels,
        extra_thresholds=[(n, t, None) for n, t, _ in shipped_operating_point(engine.embedder_name)],
        protocol={"enrolled photos per person": enrol, "held-out share of people": holdout, "seed": seed,
                  "people held out": len(split.held_out), "face choice": pick},
        failed_images={str(p): why for p, why in embedded.errors.items()})
    rep.notes.extend(_embedding_notes(embedded))
    if labels is not None:
        rep.notes.append(f"groups from {labels.source}" + (" (predicted by a model, not self-reported)"
                                                           if labels.predicted else ""))
    t2 = time.perf_counter()
    rep.timing.update({"embed": t1 - t0, "metrics": t2 - t1, "total": t2 - t0})
    return rep


def calibrate_source(engine, source, *, targets=(1e-3,), pick: str = "largest", use_cache: bool = True,
                     cache_root: Path | None = None, n_boot: int = 1000, progress: Progress | None = None,
                     workers: int | None = None):
    """`vultus calibrate`: a pairs CSV or a folder of people -> CalibrationReport."""
    from vultus.evaluate.calibrate import (
        CalibrationReport,
        all_pairs,
        calibrate_pairs,
        calibrate_people,
        tail_size_for,
    )
    from vultus.evaluate.identification import read_people
    from vultus.evaluate.metrics import _check_rate

    try:
        targets = sorted({_check_rate(t) for t in targets}, reverse=True)
    except ValueError as exc:
        raise VultusError(str(exc)) from None
    source = Path(source)
    t0 = time.perf_counter()
    notes: list[str] = []
    if source.is_dir():
        people = read_people(source)
        names = sorted(people)
        paths = [p for n in names for p in people[n]]
        person = np.array([i for i, n in enumerate(names) for _ in people[n]])
        embedded = embed_images(engine, paths, pick=pick, use_cache=use_cache, cache_root=cache_root,
                                progress=progress, workers=workers)
        t1 = time.perf_counter()
        vec = embedded.vectors[embedded.indices(paths)]
        ok = np.isfinite(vec).all(axis=1)
        counts = np.bincount(person[ok], minlength=len(names)).astype(np.int64)
        n_imp = int((counts.sum() ** 2 - np.sum(counts ** 2)) // 2)
        pairs = all_pairs(vec[ok], person[ok], tail_size_for(targets, n_imp))
        points, ci_method, more = calibrate_people(pairs, targets, n_boot=n_boot)
        notes += more
        rep = CalibrationReport(
            source=str(source), model=engine.embedder_name, detector=engine.detector_spec.name, design="people",
            n_images=len(paths), n_failed_images=len(embedded.errors), n_people=len(names),
            n_genuine=int(pairs.genuine.size), n_impostor=pairs.n_impostor, points=points, ci_method=ci_method,
            notes=notes, failed_images={str(p): w for p, w in embedded.errors.items()},
            genuine_scores=pairs.genuine.astype(np.float64),
            impostor_scores=np.concatenate([pairs.sample, pairs.tail[:1000]]).astype(np.float64))
    elif source.is_file():
        pair_list = read_pairs_csv(source)
        paths = [p.path_a for p in pair_list] + [p.path_b for p in pair_list]
        embedded = embed_images(engine, paths, pick=pick, use_cache=use_cache, cache_root=cache_root,
                                progress=progress, workers=workers)
        t1 = time.perf_counter()
        scores, failed = score_pairs(embedded, pair_list)
        same = np.array([p.same for p in pair_list])
        points, ci_method = calibrate_pairs(scores, same, failed, targets, n_boot=n_boot)
        if failed.any():
            notes.append(f"{int(failed.sum())} pairs could not be compared (no face) and take no part in the fit")
        ok = ~failed
        rep = CalibrationReport(
            source=str(source), model=engine.embedder_name, detector=engine.detector_spec.name, design="pairs",
            n_images=len(embedded.paths), n_failed_images=len(embedded.errors), n_people=None,
            n_genuine=int((same & ok).sum()), n_impostor=int((~same & ok).sum()), points=points,
            ci_method=ci_method, notes=notes, failed_images={str(p): w for p, w in embedded.errors.items()},
            genuine_scores=scores[same & ok], impostor_scores=scores[~same & ok])
    else:
        raise VultusError(f"{source}: no such file or folder; give a pairs CSV or a folder of people")
    rep.notes.extend(_embedding_notes(embedded))
    t2 = time.perf_counter()
    rep.timing.update({"embed": t1 - t0, "metrics": t2 - t1, "total": t2 - t0})
    return rep

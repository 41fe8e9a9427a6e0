"""Open-set 1:N identification on a folder of people (one sub-folder per person).

Protocol (as NIST FRVT 1:N reports it):
- People with more than `enrol` photos are split at random (seeded): a `holdout` share is kept out of the
  gallery; the others have their first `enrol` photos (in file-name order) enrolled, and every other photo
  of theirs is a *mated* probe. People with `enrol` photos or fewer, and the held-out people, give
  *non-mated* probes: searches for someone who is not in the gallery.
- A search returns the gallery identities ranked by their best-matching enrolled photo.
- Rank-k / CMC: share of mated probes whose mate is among the first k (closed-set view, no threshold).
- FPIR(t): share of non-mated probes whose best candidate scores >= t (someone unknown is "recognised").
- FNIR(t): share of mated probes whose mate is not returned at rank 1 with a score >= t.
- Photos that fail (no face) are counted, never dropped: a failed mated probe, or a mated probe whose
  person could not be enrolled at all, is a miss; a failed non-mated probe raises no alarm.

With mated probes scored by their rank-1 mate score (or -inf when the mate is not first) and non-mated
probes by their best score, FNIR = 1 - TAR and FPIR = FMR of the verification machinery, so the same
threshold rules, bootstrap intervals and resolvability limits apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.groups import MIN_GENUINE
from vultus.evaluate.metrics import (
    bootstrap_ci,
    resolvable,
    roc,
    tar_at_fmr,
    wilson_interval,
)
from vultus.evaluate.results import Estimate, _round, rate_label

FPIR_TARGETS = (1e-1, 1e-2, 1e-3)
CMC_RANKS = (1, 2, 3, 5, 10, 20, 50, 100)


def read_people(root) -> dict[str, list[Path]]:
    """identity -> its photos (sorted) for a folder with one sub-folder per person."""
    from vultus.imageio import list_images

    root = Path(root)
    if not root.is_dir():
        raise VultusError(f"{root}: no such folder; expected one sub-folder of photos per person")
    people = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = list_images(d)
        if imgs:
            people[d.name] = imgs
    if len(people) < 2:
        raise VultusError(f"{root}: found {len(people)} sub-folders with photos; identification needs at least two "
                          "people, one sub-folder each")
    return people


@dataclass(frozen=True)
class Split:
    gallery: dict[str, list[Path]]  # enrolled photos per identity
    mated: list[tuple[Path, str]]  # (probe, its identity in the gallery)
    nonmated: list[tuple[Path, str]]  # (probe, identity not in the gallery)
    held_out: list[str]


def split_people(people: dict[str, list[Path]], *, enrol: int = 1, holdout: float = 0.2, seed: int = 0) -> Split:
    if enrol < 1:
        raise VultusError("--enrol must be at least 1")
    if not 0.0 <= holdout < 1.0:
        raise VultusError("--holdout must be between 0 and 1")
    multi = sorted(n for n, imgs in people.items() if len(imgs) > enrol)
    if not multi:
        raise VultusError(f"no person has more than {enrol} photo(s): there is nobody to enrol and search for")
    rng = np.random.default_rng(seed)
    order = list(multi)
    rng.shuffle(order)
    n_hold = int(round(holdout * len(order)))
    if n_hold >= len(order):
        n_hold = len(order) - 1
    held = set(order[:n_hold])
    gallery, mated, nonmated = {}, [], []
    for name in sorted(people):
        imgs = people[name]
        if name in held or len(imgs) <= enrol:
            nonmated.extend((p, name) for p in imgs)
        else:
            gallery[name] = imgs[:enrol]
            mated.extend((p, name) for p in imgs[enrol:])
    return Split(gallery=gallery, mated=mated, nonmated=nonmated, held_out=sorted(held))


@dataclass(frozen=True)
class SearchScores:
    """Per probe: the score used for the open-set decision and whether it is mated."""

    score: np.ndarray  # mated: rank-1 mate score or -inf; non-mated: best score (-inf when failed)
    mated: np.ndarray  # bool
    rank: np.ndarray  # mated: rank of the mate (1-based; 0 = never found); non-mated: 0
    failed: np.ndarray  # bool: the probe image failed, or (mated) its person could not be enrolled


def search_scores(probe_vectors: np.ndarray, probe_ids: list[str], mated: np.ndarray, gallery_vectors: np.ndarray,
                  gallery_ids: list[str]) -> SearchScores:
    """Rank gallery identities for every probe (best template per identity; ties count against the mate).

    probe_vectors / gallery_vectors may hold NaN rows (failed images): failed gallery photos are not
    enrolled, failed probes are misses (mated) or raise no alarm (non-mated)."""
    g_ok = np.isfinite(gallery_vectors).all(axis=1)
    names = sorted(set(np.asarray(gallery_ids)[g_ok].tolist()))
    col = {n: i for i, n in enumerate(names)}
    n_probe = probe_vectors.shape[0]
    p_ok = np.isfinite(probe_vectors).all(axis=1)
    ident = np.full((n_probe, max(1, len(names))), -np.inf)
    if names and p_ok.any():
        sims = probe_vectors[p_ok].astype(np.float64) @ gallery_vectors[g_ok].astype(np.float64).T
        g_col = np.array([col[n] for n in np.asarray(gallery_ids)[g_ok]])
        order = np.argsort(g_col, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(g_col[order]) != 0])
        ident[p_ok] = np.maximum.reduceat(sims[:, order], starts, axis=1)  # best template per identity
    score = np.full(n_probe, -np.inf)
    rank = np.zeros(n_probe, np.int64)
    failed = ~p_ok.copy()
    for i in range(n_probe):
        if not p_ok[i]:
            continue
        if mated[i]:
            c = col.get(probe_ids[i])
            if c is None:  # the person's enrolment failed: the search cannot find them
                failed[i] = True
                continue
            s = ident[i, c]
            others = np.delete(ident[i], c)
            rank[i] = 1 + int(np.sum(others >= s))
            score[i] = s if rank[i] == 1 else -np.inf
        else:
            score[i] = ident[i].max() if names else -np.inf
    return SearchScores(score=score, mated=np.asarray(mated, bool), rank=rank, failed=failed)


@dataclass(frozen=True)
class FnirAt:
    target_fpir: float
    fnir: Estimate
    threshold: float
    n_nonmated: int
    resolvable: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"target_fpir": self.target_fpir, "fnir": self.fnir.to_dict(), "threshold": _round(self.threshold),
                "n_nonmated": self.n_nonmated, "resolvable": self.resolvable, "note": self.note}


@dataclass(frozen=True)
class IdGroupRates:
    group: str
    n_mated: int
    n_nonmated: int
    rank1: Estimate | None
    fnir: Estimate | None
    fpir: Estimate | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"group": self.group, "n_mated": self.n_mated, "n_nonmated": self.n_nonmated,
                "rank1": self.rank1.to_dict() if self.rank1 else None,
                "fnir": self.fnir.to_dict() if self.fnir else None,
                "fpir": self.fpir.to_dict() if self.fpir else None, "warnings": self.warnings}


@dataclass(frozen=True)
class IdGroupAnalysis:
    attribute: str
    threshold: float
    threshold_name: str
    target_fpir: float | None
    groups: list[IdGroupRates]
    n_unlabelled: int
    fnir_ratio: float | None
    fpir_ratio: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "threshold": _round(self.threshold), "threshold_name": self.threshold_name,
                "target_fpir": self.target_fpir, "groups": [g.to_dict() for g in self.groups],
                "n_unlabelled": self.n_unlabelled, "fnir_ratio_worst_to_best": _round(self.fnir_ratio),
                "fpir_ratio_worst_to_best": _round(self.fpir_ratio), "notes": self.notes}


@dataclass(frozen=True)
class IdentificationReport:
    dataset: str
    model: str
    detector: str
    n_people: int
    n_enrolled: int
    n_gallery_images: int
    n_gallery_failed: int
    n_mated: int
    n_nonmated: int
    n_probe_failed: int
    rank1: Estimate
    cmc_ranks: list[int]
    cmc: list[float]
    rates: list[FnirAt]
    groups: list[IdGroupAnalysis] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protocol: dict = field(default_factory=dict)
    failed_images: dict[str, str] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    search: SearchScores = field(default=None, repr=False)  # type: ignore[assignment]

    def to_dict(self) -> dict:
        s = self.search
        r = roc(s.score, s.mated)
        return {
            "kind": "identification", "dataset": self.dataset, "model": self.model, "detector": self.detector,
            "protocol": self.protocol,
            "n_people": self.n_people, "n_enrolled": self.n_enrolled, "n_gallery_images": self.n_gallery_images,
            "n_gallery_failed": self.n_gallery_failed, "n_mated_probes": self.n_mated,
            "n_nonmated_probes": self.n_nonmated, "n_probe_failed": self.n_probe_failed,
            "rank1": self.rank1.to_dict(),
            "cmc": [{"rank": k, "rate": _round(v)} for k, v in zip(self.cmc_ranks, self.cmc, strict=True)],
            "fnir_at_fpir": [x.to_dict() for x in self.rates],
            "groups": [g.to_dict() for g in self.groups],
            "det": {"fpir": [_round(v) for v in r.fmr[:: max(1, r.fmr.size // 400)]],
                    "fnir": [_round(1 - v) for v in r.tar[:: max(1, r.tar.size // 400)]]},
            "failed_images": self.failed_images, "notes": self.notes,
            "timing_s": {k: _round(v, 3) for k, v in self.timing.items()},
        }


def cmc_curve(rank: np.ndarray, mated: np.ndarray, ranks=CMC_RANKS, n_ids: int | None = None):
    """Share of mated probes whose mate is at rank <= k (0 = never found counts as a miss)."""
    r = rank[mated]
    ks = [k for k in ranks if n_ids is None or k <= n_ids] or [1]
    return ks, [float(np.mean((r >= 1) & (r <= k))) for k in ks]


def _fnir_note(n_nonmated: int, target: float) -> str:
    if resolvable(n_nonmated, target):
        return ""
    return f"too few non-mated probes for FPIR {target:g}: {n_nonmated} (need {int(round(1 / target))})"


def evaluate_identification(search: SearchScores, *, dataset: str, model: str, detector: str, n_people: int,
                            n_enrolled: int, n_gallery_images: int, n_gallery_failed: int, targets=FPIR_TARGETS,
                            n_boot: int = 1000, seed: int = 0, probe_labels: dict[str, np.ndarray] | None = None,
                            extra_thresholds=(), protocol: dict | None = None,
                            failed_images: dict[str, str] | None = None) -> IdentificationReport:
    s = search
    n_mated, n_non = int(s.mated.sum()), int((~s.mated).sum())
    if n_mated == 0 or n_non == 0:
        raise VultusError(f"{dataset}: open-set identification needs mated and non-mated probes "
                          f"(found {n_mated} mated, {n_non} non-mated)")
    boot = f"bootstrap over probes, {n_boot} resamples, 95%"
    hits = (s.rank == 1) & s.mated
    lo, hi = bootstrap_ci(np.mean, hits[s.mated], n=n_boot, seed=seed)
    rank1 = Estimate(float(hits[s.mated].mean()), lo, hi, boot)
    ks, cmc = cmc_curve(s.rank, s.mated, n_ids=n_enrolled)
    rates = []
    for target in targets:
        ra = tar_at_fmr(s.score, s.mated, target)
        lo, hi = bootstrap_ci(lambda x, y, t=target: 1 - tar_at_fmr(x, y, t).tar, s.score, s.mated, n=n_boot, seed=seed)
        rates.append(FnirAt(target, Estimate(1 - ra.tar, lo, hi, boot), ra.threshold, n_non,
                            ra.resolvable, _fnir_note(n_non, target)))
    notes = []
    if s.failed.any():
        notes.append(f"{int(s.failed.sum())} probes failed (no face, or their person could not be enrolled): "
                     "mated ones count as misses, non-mated ones raise no alarm")
    groups = []
    if probe_labels:
        thresholds = [(f"FPIR {rate_label(r.target_fpir)} on all probes", r.threshold, r.target_fpir)
                      for r in rates if r.resolvable] + list(extra_thresholds)
        for attr, labels in probe_labels.items():
            for name, t, fpir in thresholds:
                groups.append(_id_groups(s, labels, attr, t, name, fpir))
    return IdentificationReport(
        dataset=dataset, model=model, detector=detector, n_people=n_people, n_enrolled=n_enrolled,
        n_gallery_images=n_gallery_images, n_gallery_failed=n_gallery_failed, n_mated=n_mated, n_nonmated=n_non,
        n_probe_failed=int(s.failed.sum()), rank1=rank1, cmc_ranks=ks, cmc=cmc, rates=rates, groups=groups,
        notes=notes, protocol=protocol or {}, failed_images=dict(failed_images or {}), search=s)


def _id_groups(s: SearchScores, labels: np.ndarray, attribute: str, threshold: float, name: str,
               target_fpir: float | None) -> IdGroupAnalysis:
    accepted = s.score >= threshold
    groups, fnirs, fpirs = [], [], []
    for g in sorted(set(labels[labels != ""].tolist())):
        m = labels == g
        mt, nm = m & s.mated, m & ~s.mated
        n_m, n_n = int(mt.sum()), int(nm.sum())
        warnings = []
        rank1 = fnir = fpir = None
        if n_m:
            k = int((s.rank[mt] == 1).sum())
            rank1 = Estimate(k / n_m, *wilson_interval(k, n_m), "Wilson 95%")
            miss = int((~accepted[mt]).sum())
            fnir = Estimate(miss / n_m, *wilson_interval(miss, n_m), "Wilson 95%")
            if n_m < MIN_GENUINE:
                warnings.append(f"only {n_m} mated probes (fewer than {MIN_GENUINE}): FNIR too uncertain to compare")
            else:
                fnirs.append(fnir.value)
        else:
            warnings.append("no mated probes in this group")
        if n_n:
            k = int(accepted[nm].sum())
            fpir = Estimate(k / n_n, *wilson_interval(k, n_n), "Wilson 95%")
            if target_fpir is not None and not resolvable(n_n, target_fpir):
                warnings.append(f"{n_n} non-mated probes cannot measure an FPIR of {target_fpir:g}")
            else:
                fpirs.append(fpir.value)
        else:
            warnings.append("no non-mated probes in this group")
        groups.append(IdGroupRates(g, n_m, n_n, rank1, fnir, fpir, warnings))
    notes: list[str] = []
    from vultus.evaluate.groups import _ratio

    return IdGroupAnalysis(attribute=attribute, threshold=float(threshold), threshold_name=name,
                           target_fpir=target_fpir, groups=groups, n_unlabelled=int((labels == "").sum()),
                           fnir_ratio=_ratio(fnirs, "FNIR", notes), fpir_ratio=_ratio(fpirs, "FPIR", notes),
                           notes=notes)


GLOSSARY_IDENTIFICATION = """
<h2>How to read this report</h2>
<ul>
<li><b>Gallery</b>: the enrolled people. <b>Mated probe</b>: a photo of an enrolled person, not itself enrolled.
<b>Non-mated probe</b>: a photo of someone not in the gallery. Each probe is one search.</li>
<li><b>Rank-k / CMC</b>: share of mated searches whose right person is among the first k candidates, whatever
the score (closed-set view).</li>
<li><b>FPIR</b> (false-positive identification rate): share of non-mated searches whose best candidate scores at
or above the threshold, i.e. an unknown person is taken for someone in the gallery.
<b>FNIR</b> (false-negative identification rate): share of mated searches where the right person is not returned
first with a score at or above the threshold.</li>
<li><b>FNIR @ FPIR 1e-2</b> uses the threshold at which 1% of non-mated searches raise a false alarm; a rate of
1e-3 needs at least 1000 non-mated searches to be measured at all.</li>
<li>Failed photos (no face) count: a failed mated probe is a miss, a person whose enrolment failed cannot be
found, a failed non-mated probe raises no alarm. Intervals: bootstrap over probes (overall) and Wilson
score intervals (per group).</li>
</ul>
"""


def identification_sections(rep: IdentificationReport) -> list[str]:
    from vultus.evaluate import plots
    from vultus.evaluate.report import _draw, est_pct, figure, table, warnings_html

    out = []
    rows = [("people", rep.n_people), ("enrolled people (gallery)", rep.n_enrolled),
            ("gallery photos (failed)", f"{rep.n_gallery_images} ({rep.n_gallery_failed})"),
            ("mated probes", rep.n_mated), ("non-mated probes", rep.n_nonmated),
            ("probes that failed", rep.n_probe_failed), ("rank-1 identification rate", est_pct(rep.rank1))]
    out.append("<h2>Summary</h2>" + table(["", "value"], rows))
    out.append("<p>Protocol: " + ", ".join(f"{k} = {v}" for k, v in rep.protocol.items()) + "</p>")
    out.append("<h2>FNIR at FPIR</h2>" + table(
        ["target FPIR", "FNIR [95% CI]", "threshold", "non-mated probes", "resolvable", "note"],
        [(rate_label(r.target_fpir), est_pct(r.fnir), f"{r.threshold:.4f}", r.n_nonmated,
          "yes" if r.resolvable else "NOT RESOLVABLE", r.note) for r in rep.rates]))
    out.append("<h2>CMC</h2>" + table(["rank", "identification rate"],
                                      [(k, f"{100 * v:.2f}%") for k, v in zip(rep.cmc_ranks, rep.cmc, strict=True)]))
    s = rep.search
    r = roc(s.score, s.mated)
    figs = [figure(_draw(plots.det_png, [(rep.model, r.fmr, 1 - r.tar)], xlabel="FPIR", ylabel="FNIR"),
                   "open-set identification DET: FNIR against FPIR"),
            figure(_draw(plots.cmc_png, np.array(rep.cmc_ranks), np.array(rep.cmc)), "CMC"),
            figure(_draw(plots.histogram_png, s.score[s.mated & (s.rank == 1)], s.score[~s.mated & ~s.failed],
                         [(f"FPIR {rate_label(x.target_fpir)}", x.threshold) for x in rep.rates if x.resolvable],
                         labels=("mated, mate at rank 1", "non-mated, best candidate")),
                   "scores of mated (rank-1 mate) and non-mated (best candidate) searches")]
    out.append("<h2>Curves</h2><div class='figs'>" + "".join(figs) + "</div>")
    if rep.groups:
        parts = []
        for ga in rep.groups:
            rows = [(g.group, g.n_mated, g.n_nonmated, est_pct(g.rank1), est_pct(g.fnir),
                     "" if g.fpir is None else f"{g.fpir.value:.2e} [{g.fpir.low:.2e}, {g.fpir.high:.2e}]",
                     "; ".join(g.warnings)) for g in ga.groups]
            ratio = (f"worst/best FNIR ratio: {'n/a' if ga.fnir_ratio is None else f'{ga.fnir_ratio:.2f}'} · "
                     f"worst/best FPIR ratio: {'n/a' if ga.fpir_ratio is None else f'{ga.fpir_ratio:.2f}'}")
            parts.append(f"<h3>{ga.attribute} at threshold {ga.threshold:.4f} ({ga.threshold_name})</h3><p>{ratio}</p>"
                         + table(["group", "mated", "non-mated", "rank-1", "FNIR", "FPIR", "warnings"], rows)
                         + warnings_html(ga.notes))
        out.append("<h2>Per group</h2>" + "".join(parts))
    if rep.notes:
        out.append("<h2>Notes</h2>" + warnings_html(rep.notes))
    if rep.failed_images:
        items = list(rep.failed_images.items())[:100]
        out.append("<h2>Images that failed</h2>" + table(["image", "why"], items, numeric_from=9))
    out.append(GLOSSARY_IDENTIFICATION)
    return out

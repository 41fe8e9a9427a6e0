"""Per-group error rates at a global threshold, and the labels files that define the groups.

A labels file is a CSV with a `path` column and one column per attribute (e.g. gender, race, age_band);
paths are absolute or relative to the CSV's folder. Every rate is measured per group at the threshold
chosen for the whole data set (what a deployment uses), and each attribute gets the ratio of the worst
to the best group: the measure NIST FRVT uses for demographic differentials. A comparison belongs to a
group when both its images do; impostor pairs across groups are counted separately (they rarely match,
so mixing them in would make every group's false-match rate look lower than it is).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vultus.errors import VultusError
from vultus.evaluate.metrics import resolvable, wilson_interval
from vultus.evaluate.results import Estimate, _round

# Below this many genuine comparisons a group's false-non-match rate is anecdote, not measurement.
MIN_GENUINE = 30

UTKFACE_GENDER = {"0": "male", "1": "female"}
UTKFACE_RACE = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}
AGE_BANDS = ((0, 17, "0-17"), (18, 29, "18-29"), (30, 44, "30-44"), (45, 59, "45-59"), (60, 200, "60+"))


def age_band(age: float) -> str:
    """The band of an age in years; fractional (predicted) ages fall in the band whose lower end they
    have reached, so 29.6 is still 18-29."""
    if not 0 <= age <= AGE_BANDS[-1][1]:
        raise ValueError(f"age {age} is outside 0-{AGE_BANDS[-1][1]}")
    for lo, _, name in reversed(AGE_BANDS):
        if age >= lo:
            return name
    raise AssertionError("unreachable: the first band starts at 0")


@dataclass(frozen=True)
class LabelTable:
    """Group labels per image: attribute name -> value ('' where unknown)."""

    attributes: list[str]
    labels: dict[Path, dict[str, str]]
    source: str = ""
    predicted: bool = False  # True when the labels come from a model, not from the people themselves

    def of(self, path, attribute: str) -> str:
        row = self.labels.get(Path(path))
        return "" if row is None else row.get(attribute, "")

    def column(self, paths: Iterable, attribute: str) -> np.ndarray:
        return np.array([self.of(p, attribute) for p in paths], dtype=object)


def _resolve(p: str, base: Path) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def read_labels(path, *, base: Path | None = None) -> LabelTable:
    """Read a labels CSV (path + group columns). Raises VultusError with the line at fault."""
    path = Path(path)
    if not path.is_file():
        raise VultusError(f"{path}: labels file not found")
    base = Path(base) if base is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise VultusError(f"{path}: not a UTF-8 text file; a labels file is a CSV with a 'path' column") from None
    rows = list(csv.reader(text.splitlines()))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise VultusError(f"{path}: empty labels file; expected a header 'path,<group columns>'")
    header = [h.strip() for h in rows[0]]
    if "path" not in header:
        raise VultusError(f"{path}:1: no 'path' column in the header {header}; expected 'path,<group columns>'")
    if len(set(header)) != len(header):
        raise VultusError(f"{path}:1: repeated column names in the header {header}")
    attributes = [h for h in header if h != "path"]
    if not attributes:
        raise VultusError(f"{path}:1: no group columns besides 'path' (e.g. path,gender,age_band)")
    if any(not a for a in attributes):
        raise VultusError(f"{path}:1: a column has no name")
    ip = header.index("path")
    labels: dict[Path, dict[str, str]] = {}
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise VultusError(f"{path}:{n}: {len(r)} fields where the header has {len(header)}")
        if not r[ip].strip():
            raise VultusError(f"{path}:{n}: empty path")
        p = _resolve(r[ip].strip(), base)
        row = {h: r[i].strip() for i, h in enumerate(header) if i != ip}
        if p in labels and labels[p] != row:
            raise VultusError(f"{path}:{n}: {r[ip].strip()} is listed twice with different labels")
        labels[p] = row
    if not labels:
        raise VultusError(f"{path}: no rows below the header")
    # columns written by `vultus evaluate labels --from predicted` say that a model made them
    predicted = all(a.startswith("predicted_") for a in attributes)
    return LabelTable(attributes=attributes, labels=labels, source=str(path), predicted=predicted)


def write_labels(table: LabelTable, path) -> Path:
    """Write a labels CSV (absolute paths) that read_labels reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", *table.attributes])
        for p, row in table.labels.items():
            w.writerow([str(Path(p).resolve()), *(row.get(a, "") for a in table.attributes)])
    return path


_UTK = re.compile(r"^(\d+)_([01])_([0-4])_")


def utkface_labels(paths: Iterable) -> LabelTable:
    """Gender, race and age band from UTKFace file names '<age>_<gender>_<race>_<date>.jpg'."""
    labels = {}
    for p in paths:
        p = Path(p)
        m = _UTK.match(p.name)
        if not m:
            raise VultusError(f"{p.name}: not a UTKFace file name '<age>_<gender>_<race>_<date>.jpg'")
        age = int(m.group(1))
        labels[p] = {"gender": UTKFACE_GENDER[m.group(2)], "race": UTKFACE_RACE[m.group(3)],
                     "age_band": age_band(age), "age": str(age)}
    return LabelTable(attributes=["gender", "race", "age_band"], labels=labels,
                      source="UTKFace file names (labels from the data set, not self-reported)")


def check_coverage(table: LabelTable, paths: Iterable, what: str) -> int:
    """How many of `paths` carry labels; raises when none do (a wrong base folder, most often)."""
    paths = list(paths)
    n = sum(1 for p in paths if Path(p) in table.labels)
    if n == 0:
        example = next(iter(table.labels))
        raise VultusError(f"none of the {len(paths)} images of {what} is in the labels file {table.source} "
                          f"(it lists e.g. {example}); paths must be absolute or relative to the labels file")
    return n


# -- verification per group ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRates:
    group: str
    n_genuine: int
    n_impostor: int
    fmr: Estimate | None  # None when the group has no impostor pairs
    fnmr: Estimate | None  # None when the group has no genuine pairs
    accuracy: Estimate | None = None  # share of right decisions at the threshold
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"group": self.group, "n_genuine": self.n_genuine, "n_impostor": self.n_impostor,
                "fmr": self.fmr.to_dict() if self.fmr else None,
                "fnmr": self.fnmr.to_dict() if self.fnmr else None,
                "accuracy": self.accuracy.to_dict() if self.accuracy else None, "warnings": self.warnings}


@dataclass(frozen=True)
class GroupAnalysis:
    """One attribute's groups at one global threshold."""

    attribute: str
    threshold: float
    threshold_name: str  # what the threshold is, e.g. "FMR 1e-03 on all pairs"
    target_fmr: float | None
    groups: list[GroupRates]
    n_cross_group: int  # comparisons whose two images fall in different groups
    n_unlabelled: int  # comparisons with an image that has no label for this attribute
    fmr_ratio: float | None  # worst / best group FMR among groups large enough to measure it
    fnmr_ratio: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "threshold": _round(self.threshold), "threshold_name": self.threshold_name,
                "target_fmr": self.target_fmr, "groups": [g.to_dict() for g in self.groups],
                "n_cross_group": self.n_cross_group, "n_unlabelled": self.n_unlabelled,
                "fmr_ratio_worst_to_best": _round(self.fmr_ratio), "fnmr_ratio_worst_to_best": _round(self.fnmr_ratio),
                "notes": self.notes}


def _ratio(values: list[float], what: str, notes: list[str]) -> float | None:
    if len(values) < 2:
        notes.append(f"{what} ratio: fewer than two groups large enough to compare")
        return None
    best, worst = min(values), max(values)
    if best == 0:
        if worst == 0:
            return 1.0
        notes.append(f"{what} ratio unbounded: the best group had no errors at all")
        return None
    return worst / best


def verification_groups(scores: np.ndarray, same: np.ndarray, failed: np.ndarray, group_a: np.ndarray,
                        group_b: np.ndarray, attribute: str, threshold: float, threshold_name: str,
                        target_fmr: float | None = None) -> GroupAnalysis:
    """FMR and FNMR per group at one threshold. Failed comparisons (no face) are rejections: a false
    non-match for a genuine pair, a correct rejection for an impostor pair."""
    accepted = (scores >= threshold) & ~failed
    labelled = (group_a != "") & (group_b != "")
    within = labelled & (group_a == group_b)
    groups, fmrs, fnmrs = [], [], []
    for g in sorted(set(group_a[within].tolist())):
        m = within & (group_a == g)
        gen, imp = m & same, m & ~same
        n_gen, n_imp = int(gen.sum()), int(imp.sum())
        warnings = []
        fmr = fnmr = None
        if n_imp:
            k = int(accepted[imp].sum())
            lo, hi = wilson_interval(k, n_imp)
            fmr = Estimate(k / n_imp, lo, hi, "Wilson 95%")
            if target_fmr is not None and not resolvable(n_imp, target_fmr):
                warnings.append(f"{n_imp} impostor pairs cannot measure an FMR of {target_fmr:g} "
                                f"(need {int(round(1 / target_fmr))}): FMR too uncertain to compare")
            else:
                fmrs.append(fmr.value)
        else:
            warnings.append("no impostor pairs within this group: FMR not measured")
        if n_gen:
            k = int((~accepted[gen]).sum())
            lo, hi = wilson_interval(k, n_gen)
            fnmr = Estimate(k / n_gen, lo, hi, "Wilson 95%")
            if n_gen < MIN_GENUINE:
                warnings.append(f"only {n_gen} genuine pairs (fewer than {MIN_GENUINE}): FNMR too uncertain "
                                "to compare")
            else:
                fnmrs.append(fnmr.value)
        else:
            warnings.append("no genuine pairs within this group: FNMR not measured")
        right = int((accepted[m] == same[m]).sum())
        lo, hi = wilson_interval(right, n_gen + n_imp)
        accuracy = Estimate(right / (n_gen + n_imp), lo, hi, "Wilson 95%")
        groups.append(GroupRates(g, n_gen, n_imp, fmr, fnmr, accuracy, warnings))
    notes: list[str] = []
    fmr_ratio = _ratio(fmrs, "FMR", notes)
    fnmr_ratio = _ratio(fnmrs, "FNMR", notes)
    return GroupAnalysis(attribute=attribute, threshold=float(threshold), threshold_name=threshold_name,
                         target_fmr=target_fmr, groups=groups, n_cross_group=int((labelled & ~within).sum()),
                         n_unlabelled=int((~labelled).sum()), fmr_ratio=fmr_ratio, fnmr_ratio=fnmr_ratio, notes=notes)


def people_group_rates(vectors: np.ndarray, person: np.ndarray, group: np.ndarray, attribute: str,
                       thresholds: list[tuple[str, float, float | None]], *, block: int = 2048) -> list[GroupAnalysis]:
    """Per-group FMR and FNMR over *every* pair of photos (the all-pairs design): within each group, all
    pairs of photos of one person are genuine comparisons and all pairs of photos of two people impostor
    comparisons. vectors: unit rows (no NaN); person: person index per row; group: the row's group ('' =
    unlabelled). With many more impostor comparisons than a pair list, FMRs down to 1e-4 can be resolved
    per group. Returns one GroupAnalysis per threshold."""
    group = np.asarray(group, dtype=object)
    names = sorted(set(group[group != ""].tolist()))
    ts = np.array([t for _, t, _ in thresholds], np.float64)
    per: dict[str, dict] = {}
    for g in names:
        idx = np.flatnonzero(group == g)
        v, p = vectors[idx].astype(np.float32), person[idx]
        fm = np.zeros(ts.size, np.int64)
        fnm = np.zeros(ts.size, np.int64)
        n_gen = n_imp = 0
        for start in range(0, idx.size, block):
            stop = min(idx.size, start + block)
            sims = v[start:stop] @ v[start:].T
            r, c = np.triu_indices(stop - start, k=1, m=idx.size - start)
            s = sims[r, c].astype(np.float64)
            same = p[start + r] == p[start + c]
            gs, im = np.sort(s[same]), np.sort(s[~same])
            n_gen += gs.size
            n_imp += im.size
            fm += im.size - np.searchsorted(im, ts, side="left")  # impostors accepted
            fnm += np.searchsorted(gs, ts, side="left")  # genuine rejected
        per[g] = {"n_gen": n_gen, "n_imp": n_imp, "fm": fm, "fnm": fnm}
    sizes = np.array([int(np.sum(group == g)) for g in names], np.int64)
    n_cross = int((sizes.sum() * (sizes.sum() - 1) - np.sum(sizes * (sizes - 1))) // 2)
    out = []
    for k, (name, t, fmr_target) in enumerate(thresholds):
        groups, fmrs, fnmrs = [], [], []
        for g in names:
            d = per[g]
            warnings = []
            fmr = fnmr = None
            if d["n_imp"]:
                fmr = Estimate(d["fm"][k] / d["n_imp"], *wilson_interval(int(d["fm"][k]), d["n_imp"]), "Wilson 95%")
                if fmr_target is not None and not resolvable(d["n_imp"], fmr_target):
                    warnings.append(f"{d['n_imp']} impostor comparisons cannot measure an FMR of {fmr_target:g}")
                else:
                    fmrs.append(fmr.value)
            else:
                warnings.append("no impostor comparisons within this group")
            if d["n_gen"]:
                fnmr = Estimate(d["fnm"][k] / d["n_gen"], *wilson_interval(int(d["fnm"][k]), d["n_gen"]),
                                "Wilson 95%")
                if d["n_gen"] < MIN_GENUINE:
                    warnings.append(f"only {d['n_gen']} genuine comparisons (fewer than {MIN_GENUINE}): FNMR too "
                                    "uncertain to compare")
                else:
                    fnmrs.append(fnmr.value)
            groups.append(GroupRates(g, d["n_gen"], d["n_imp"], fmr, fnmr, None, warnings))
        notes: list[str] = []
        out.append(GroupAnalysis(attribute=attribute, threshold=float(t), threshold_name=name, target_fmr=fmr_target,
                                 groups=groups, n_cross_group=n_cross, n_unlabelled=int(np.sum(group == "")),
                                 fmr_ratio=_ratio(fmrs, "FMR", notes),
                                 fnmr_ratio=_ratio(fnmrs, "FNMR", notes) if fnmrs else None, notes=notes))
    return out

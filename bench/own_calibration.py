"""Is the calibration right for these photos? The collection's own impostor pairs, on LFW as it is
and on LFW degraded to low-resolution greyscale.

    python bench/own_calibration.py     # section "own-calibration" of bench/results/identify.md

Protocol (as bench/identify.py's FPIR section). Galleries of n people drawn from LFW's people with
two or more photos, their first photo enrolled (one face each); mated searches: their other photos;
non-mated searches: every person with one photo plus the first photo of every enrollable person left
out of the gallery. Two conditions: the photos as they are, and every photo (gallery and searches)
turned grey, shrunk to 40x40 pixels and scaled back to 250x250 (a face of about 16 pixels of detail):
photos unlike the ones SFace's calibration was measured on. The collection decides by FPIR 1% (the
default) or, for the smallest galleries, by FMR 1e-3 per comparison.

Per gallery, through the gallery's own code: the stated FPIR (embedder's LFW calibration) against
the measured one; `Gallery.check_calibration` (what `vultus gallery stats` shows: measured vs stated
FMR on the gallery's own impostor pairs, Wilson 95% interval, warning or not); then
`Gallery.calibrate` when there are enough pairs (else the pairs it asks for), and the stated vs
measured FPIR with the refitted threshold. The strangers that measure FPIR are never enrolled, so
the refit (fitted on pairs of enrolled faces) is tested on other people.

Embeddings (YuNet, the face nearest the centre, SFace) of both conditions are cached in the model
cache dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp, write_section  # noqa: E402
from vultus.data import data_root  # noqa: E402

DEGRADE_SIDE = 40
PLAN = [  # (gallery people, draws, target kind, target rate)
    (40, 5, "fmr", 1e-3), (100, 5, "fmr", 1e-3), (100, 5, "fpir", 0.01), (300, 3, "fpir", 0.01),
    (1000, 5, "fpir", 0.01), (None, 1, "fpir", 0.01), (None, 1, "fpir", 0.001)]


def degrade(img: np.ndarray, side: int = DEGRADE_SIDE) -> np.ndarray:
    """Grey, shrunk to side x side and scaled back: a low-resolution greyscale photo."""
    import cv2

    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(up, cv2.COLOR_GRAY2RGB)


def embed_lfw(paths: list[Path], degraded: bool, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ok) of the face nearest the centre of every photo."""
    from vultus import Engine
    from vultus.imageio import load_image

    rel = np.array([f"{p.parent.name}/{p.name}" for p in paths])
    if cache.is_file():
        d = np.load(cache)
        if list(d["rel"]) == list(rel):
            print(f"embeddings from {cache}", flush=True)
            return d["V"], d["ok"]
    engine = Engine()
    V = np.zeros((len(paths), 128), np.float32)
    ok = np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for s in range(0, len(paths), 16):
        imgs = [load_image(p) for p in paths[s:s + 16]]
        if degraded:
            imgs = [degrade(i) for i in imgs]
        for k, (img, r) in enumerate(zip(imgs, engine.embed_batch(imgs), strict=True)):
            if r.ok and r.value:
                h, w = img.shape[:2]
                f = min(r.value, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - w / 2) ** 2
                        + ((f.box.y1 + f.box.y2) / 2 - h / 2) ** 2)
                V[s + k], ok[s + k] = f.embedding.vector, True
        if s % 1600 == 0:
            print(f"  {'degraded' if degraded else 'original'}: {s}/{len(paths)}, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.npz")
    np.savez(tmp, rel=rel, V=V, ok=ok)
    os.replace(tmp, cache)
    return V, ok


def run_condition(label: str, paths, V, ok, db: Path, seed: int = 0) -> list[dict]:
    from vultus.gallery import Gallery
    from vultus.gallery.errors import GalleryError
    from vultus.gallery.types import NewFace
    from vultus.types import Box, Face

    names = [p.parent.name for p in paths]
    rows_of: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if ok[i]:
            rows_of.setdefault(n, []).append(i)
    all_rows: dict[str, int] = {}
    for n in names:
        all_rows[n] = all_rows.get(n, 0) + 1
    enrollable = sorted(p for p, rs in rows_of.items() if len(rs) >= 2)
    singles = [rs[0] for p, rs in rows_of.items() if len(rs) == 1 and all_rows[p] == 1]
    face = Face(box=Box(0, 0, 1, 1), score=1.0, landmarks=np.zeros((5, 2), np.float32), detector="yunet")
    rng = np.random.default_rng(seed)
    out = []
    with Gallery(db) as g:
        for size, draws, kind, rate in PLAN:
            n_people = len(enrollable) if size is None else size
            acc = {k: 0 for k in ("fp_before", "fp_after", "non", "miss_before", "miss_after", "mated",
                                  "warned", "calibrated", "checked")}
            stated_b, stated_a, ratios, ratios_lo, thr_b, thr_a, needed, secs_check, secs_cal = \
                [], [], [], [], [], [], [], [], []
            direct = []
            for d in range(draws):
                members = sorted(rng.choice(enrollable, n_people, replace=False).tolist())
                cname = f"{label}-{kind}{rate:g}-{n_people}-{d}"
                coll = g.create_collection(cname, **({"target_fmr": rate} if kind == "fmr" else
                                                     {"target_fpir": rate}))
                g.store.add_faces(coll.id, coll.contract.key, [
                    NewFace(person=p, image_sha256=f"{label}:{p}", image_path=None, face=face,
                            vector=V[rows_of[p][0]], quality={}) for p in members])
                inside = set(members)
                mated = [r for p in members for r in rows_of[p][1:]]
                non = singles + [rows_of[p][0] for p in enrollable if p not in inside]
                coll = g.collection(cname)
                top_m = [m[0] if m else None for m in g.match_vectors(coll, V[mated], top_k=1)]
                sim_n = np.array([m[0].similarity if m else -1.0 for m in g.match_vectors(coll, V[non], top_k=1)])
                sim_m = np.array([m.similarity if m else -1.0 for m in top_m])
                hit_m = np.array([m is not None and m.person == names[r] for m, r in zip(top_m, mated, strict=True)])
                before = g.decision(coll)
                t0 = time.perf_counter()
                check = g.check_calibration(coll)
                secs_check.append(time.perf_counter() - t0)
                acc["non"] += len(non)
                acc["mated"] += len(mated)
                acc["fp_before"] += int((sim_n >= before.threshold).sum())
                acc["miss_before"] += int((~(hit_m & (sim_m >= before.threshold))).sum())
                stated_b.append(before.expected_fpir)
                thr_b.append(before.threshold)
                if check.verdict is not None:
                    acc["checked"] += 1
                    ratios.append(check.verdict.ratio)
                    ratios_lo.append((check.verdict.low / check.verdict.stated_fmr,
                                      check.verdict.high / check.verdict.stated_fmr, check.verdict.stated_fmr,
                                      check.verdict.at_decision, check.verdict.pairs_above))
                acc["warned"] += int(check.optimistic)
                t0 = time.perf_counter()
                try:
                    rep = g.calibrate(cname)
                except GalleryError as exc:
                    if exc.code != "too_few_pairs":
                        raise
                    needed.append((exc.data["pairs"], exc.data["pairs_needed"], exc.data["faces_needed"]))
                    continue
                secs_cal.append(time.perf_counter() - t0)
                after = rep.after
                acc["calibrated"] += 1
                direct.append(rep.direct)
                acc["fp_after"] += int((sim_n >= after.threshold).sum())
                acc["miss_after"] += int((~(hit_m & (sim_m >= after.threshold))).sum())
                stated_a.append(after.expected_fpir)
                thr_a.append(after.threshold)
                non_after = len(non)
                acc.setdefault("non_after", 0)
                acc["non_after"] += non_after
                acc.setdefault("mated_after", 0)
                acc["mated_after"] += len(mated)
            row = {"condition": label, "size": n_people, "draws": draws, "kind": kind, "rate": rate,
                   "stated_before": float(np.mean(stated_b)), "threshold_before": float(np.mean(thr_b)),
                   "measured_before": acc["fp_before"] / acc["non"], "fp_before": acc["fp_before"],
                   "non": acc["non"], "fnir_before": acc["miss_before"] / acc["mated"], "warned": acc["warned"],
                   "checked": acc["checked"], "ratio": float(np.mean(ratios)) if ratios else None,
                   "ratio_detail": ratios_lo, "calibrated": acc["calibrated"], "needed": needed,
                   "seconds_check": float(np.mean(secs_check)),
                   "seconds_calibrate": float(np.mean(secs_cal)) if secs_cal else None, "direct": direct}
            if acc["calibrated"]:
                row |= {"stated_after": float(np.mean(stated_a)), "threshold_after": float(np.mean(thr_a)),
                        "measured_after": acc["fp_after"] / acc["non_after"], "fp_after": acc["fp_after"],
                        "non_after": acc["non_after"], "fnir_after": acc["miss_after"] / acc["mated_after"]}
            out.append(row)
            print(f"{label} {kind} {rate:g} n={n_people} x{draws}: stated {row['stated_before']:.4f} measured "
                  f"{row['measured_before']:.4f}; warned {acc['warned']}/{draws}; calibrated {acc['calibrated']}"
                  + (f": stated {row['stated_after']:.4f} measured {row['measured_after']:.4f}"
                     if acc["calibrated"] else f" (needed {needed[:1]})"), flush=True)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def write_lines(rows: list[dict], n_images: int, seconds: dict) -> list[str]:
    from vultus.gallery import own_calibration as own

    lines = [
        "## Is the calibration right for these photos? The gallery's own impostor pairs",
        "",
        f"- Date: {stamp()}; machine: {machine()}; load average {load_average()}",
        f"- Data: LFW deep-funneled ({n_images} photos), as it is and **degraded**: every photo (enrolled and "
        f"searched) turned grey, shrunk to {DEGRADE_SIDE}x{DEGRADE_SIDE} pixels and scaled back to 250x250. "
        "Galleries of n people, first photo enrolled; strangers: every single-photo person and the left-out "
        "enrollable people (never enrolled, so the refit is tested on other people than it was fitted on). Draws "
        "are pooled.",
        "- Check (`vultus gallery stats`, `Gallery.check_calibration`): the share of the gallery's impostor pairs "
        "(faces of two different enrolled people) at or above a threshold, against the calibration's stated rate, "
        f"with a Wilson 95% interval; measured at the decision's threshold when the calibration expects at least "
        f"{own.CHECK_MIN_EXPECTED} pairs above it, else at the lowest calibration rung where it does. Warns when the "
        f"interval's lower end is above the stated rate and the ratio is at least {own.WARN_RATIO:g}.",
        f"- Refit (`vultus gallery calibrate`): needs at least 3 / f impostor pairs for the per-comparison rate f "
        f"the target needs now; the curve is measured down to the rate with {own.MIN_RUNG_PAIRS} pairs above it "
        "and below that follows the shape of SFace's shipped calibration, anchored at that rung (a factor 10/3 at "
        "most with 3/f pairs; `extrapolated` in the table). With an FPIR target the threshold is re-derived from "
        "the refitted curve as the gallery grows.",
        "",
        "| photos | gallery | draws | target | threshold (LFW cal.) | stated FPIR | measured FPIR (false ids / "
        "searches) | check: measured / stated FMR [95%] at | warned | refit threshold | stated FPIR after | "
        "measured FPIR after | FNIR before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = f"{'FPIR' if r['kind'] == 'fpir' else 'FMR'} {r['rate']:g}"
        if r["ratio_detail"]:
            lo = np.mean([x[0] for x in r["ratio_detail"]])
            hi = np.mean([x[1] for x in r["ratio_detail"]])
            where = "the decision" if all(x[3] for x in r["ratio_detail"]) else \
                f"rung {min(x[2] for x in r['ratio_detail']):g}"
            pairs = int(np.mean([x[4] for x in r["ratio_detail"]]))
            check = f"{r['ratio']:.2f}x [{lo:.2f}, {hi:.2f}] at {where} (~{pairs} pairs above)"
        else:
            check = "too few pairs"
        if r["calibrated"]:
            how = "" if all(r["direct"]) else " (extrapolated)" if not any(r["direct"]) else " (partly extrapolated)"
            refit = (f"{r['threshold_after']:.4f}{how}", _pct(r["stated_after"]),
                     f"{_pct(r['measured_after'])} ({r['fp_after']} / {r['non_after']})",
                     f"{_pct(r['fnir_before'])} / {_pct(r['fnir_after'])}")
            if r["calibrated"] < r["draws"]:
                refit = (refit[0] + f" ({r['calibrated']} of {r['draws']} draws)", *refit[1:])
        else:
            have, need, faces = r["needed"][0]
            refit = (f"refused: {have:,} pairs, needs {need:,} (about {faces:,} people)", "", "",
                     f"{_pct(r['fnir_before'])} / -")
        lines.append(f"| {r['condition']} | {r['size']} | {r['draws']} | {target} | {r['threshold_before']:.4f} | "
                     f"{_pct(r['stated_before'])} | {_pct(r['measured_before'])} ({r['fp_before']} / {r['non']}) | "
                     f"{check} | {r['warned']} of {r['draws']} | {' | '.join(refit)} |")
    lines += [
        "",
        "FNIR counts mated searches whose mate is not rank 1 at or above the threshold. A rate resting on fewer than "
        "about 10 false identifications is rough (the counts are shown).",
        "",
        "Cost (mean per gallery, this run): "
        + "; ".join(f"{k}: {v}" for k, v in seconds.items()) + ".",
        "",
        "Caveats: the pairs are gallery faces against gallery faces, the strangers' searches are probes against "
        "the gallery: when the searched photos are worse than the enrolled ones (the gate only checks the "
        "enrolled), the measured FPIR can still exceed what the refit states. Pairs share faces and people, so the "
        "Wilson interval is somewhat too narrow. The same person enrolled under two names counts as an impostor "
        "pair that matches, which makes the check warn and the refit stricter than it should.",
        "",
        "Command: `python bench/own_calibration.py`",
    ]
    return lines


def main() -> int:
    from vultus.models.registry import cache_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None)
    args = ap.parse_args()
    root = args.lfw or (data_root() / "lfw")
    paths = sorted(root.glob("images/*/*.jpg"))
    rows = []
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, degraded in (("original", False), ("degraded", True)):
            V, ok = embed_lfw(paths, degraded, cache_dir() / "bench-own-calibration" / f"{label}.npz")
            got = run_condition(label, paths, V, ok, Path(tmp) / f"{label}.db")
            rows += got
            big = [r for r in got if r["size"] >= 1000 and r["seconds_calibrate"]]
            if big:
                seconds[f"{label}, {big[-1]['size']} faces"] = (f"check {big[-1]['seconds_check']:.2f} s, calibrate "
                                                                f"{big[-1]['seconds_calibrate']:.2f} s")
    out = RESULTS / "identify.md"
    write_section(out, "own-calibration", write_lines(rows, len(paths), seconds))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Open-set identification on LFW through the gallery, per embedder, and enroll speed.

    python bench/identify.py                    # results to bench/results/identify.md
    python bench/identify.py --embedders sface  # one embedder

Protocol: every LFW person with at least two images is enrolled with one image
(the first by file name); their other images are mated searches; every image
of a person with a single image is a non-mated search (never enrolled).
Searches go through the gallery's real search path (ANN candidates, exact
re-rank, best-face aggregation) against a SQLite gallery.

Reported per embedder: rank-1 identification rate, FNIR at FPIR = 1% and 0.1%
(the threshold set on the non-mated searches; FNIR counts mated searches whose
mate is not the rank-1 candidate at or above it), and at the collection's
calibrated threshold (target false-match rate 1e-3 and 1e-5 per comparison)
the measured FPIR next to the one the gallery states. Enroll throughput is a
folder of LFW images through `Gallery.enroll_folder`, in-process and with one
worker process per core.

LFW embeddings (detection by YuNet, the face nearest the centre) are cached in
the same files as bench/lfw.py, so the two benchmarks share one embedding run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, kept_sections, load_average, machine, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402


def lfw_paths(root: Path) -> list[Path]:
    """The LFW images in the order bench/lfw.py caches them (sorted pair paths)."""
    from vultus.evaluate.lfw import read_lfw_pairs

    pairs = read_lfw_pairs(root)
    return sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})


def lfw_embeddings(name: str, root: Path, *, workers: int = 2, cache: Path | None = None):
    """(paths, vectors, ok) for every LFW image, from bench/lfw.py's cache or computed
    (and cached) the same way. `fused` is combined from its two components."""
    from vultus.models.registry import cache_dir

    cache = cache or cache_dir() / "bench-lfw"
    paths = lfw_paths(root)
    if name == "fused":
        from vultus.embed.fused import combine, fusion_weights
        from vultus.models.registry import get_spec

        parts = {n: lfw_embeddings(n, root, workers=workers, cache=cache) for n in get_spec("fused").components}
        ok = np.logical_and.reduce([oks for _, _, oks in parts.values()])
        return paths, combine({n: vs for n, (_, vs, _) in parts.items()}, fusion_weights()), ok
    from vultus.models.registry import get_spec

    f = cache / f"{name}.npz"
    rel = [str(p.relative_to(root)) for p in paths]
    spec = get_spec(name)
    contract = f"{spec.name}|{spec.version}|{spec.input.alignment}"  # as bench/lfw.py keys its cache
    if f.is_file():
        data = np.load(f)
        if list(data["paths"]) == rel and str(data.get("contract", "")) == contract:
            print(f"{name}: LFW embeddings from {f}", flush=True)
            return paths, data["V"], data["ok"]
    from lfw import embed_paths

    print(f"{name}: embedding {len(paths)} LFW images with {workers} processes ...", flush=True)
    vectors, ok, seconds, _ = embed_paths(paths, name, workers)
    print(f"{name}: {len(paths) / seconds:.1f} img/s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f".{f.stem}.{os.getpid()}.npz")  # bench/lfw.py may read the same file: replace it whole
    np.savez(tmp, V=vectors, ok=ok, paths=np.array(rel), contract=np.array(contract))
    os.replace(tmp, f)
    return paths, vectors, ok


def split(paths: list[Path], ok: np.ndarray):
    """(enrolled, mated, non_mated) as lists of row numbers."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_person.setdefault(p.parent.name, []).append(i)
    enrolled, mated, non_mated = [], [], []
    for rows in by_person.values():
        rows = [r for r in rows if ok[r]]
        if len(rows) >= 2:
            enrolled.append(rows[0])
            mated.extend(rows[1:])
        elif len(rows) == 1 and len(by_person[paths[rows[0]].parent.name]) == 1:
            non_mated.append(rows[0])
    return enrolled, mated, non_mated


def run_protocol(name: str, paths, vectors, ok, db: Path) -> dict:
    from vultus.gallery import Gallery
    from vultus.gallery.types import NewFace
    from vultus.types import Box, Face

    enrolled, mated, non_mated = split(paths, ok)
    names = [p.parent.name for p in paths]
    face = Face(box=Box(0, 0, 1, 1), score=1.0, landmarks=np.zeros((5, 2), np.float32), detector="yunet")
    with Gallery(db) as g:
        coll = g.create_collection(name, embedder=name)
        batch = [NewFace(person=names[i], image_sha256=f"lfw:{paths[i].name}", image_path=str(paths[i]),
                         face=face, vector=vectors[i], quality={}) for i in enrolled]
        g.store.add_faces(coll.id, coll.contract.key, batch)
        coll = g.collection(name)
        t0 = time.perf_counter()
        top_mated = [m[0] if m else None for m in g.match_vectors(coll, vectors[mated], top_k=1)]
        top_non = [m[0] if m else None for m in g.match_vectors(coll, vectors[non_mated], top_k=1)]
        search_s = time.perf_counter() - t0
        n_searches = len(mated) + len(non_mated)
        mated_sims = np.array([m.similarity if m else -1 for m in top_mated])
        mated_hit = np.array([m is not None and m.person == names[i] for m, i in zip(top_mated, mated, strict=True)])
        non_sims = np.sort(np.array([m.similarity if m else -1 for m in top_non]))[::-1]
        out = {"name": name, "enrolled": len(enrolled), "mated": len(mated), "non_mated": len(non_mated),
               "rank1": float(mated_hit.mean()), "search_ms": 1000 * search_s / n_searches, "at_fpir": [],
               "stated": []}
        for fpir in (0.01, 0.001):
            k = int(np.floor(fpir * len(non_sims)))
            t = float(non_sims[k]) + 1e-6 if k < len(non_sims) else -1.0  # k non-mated searches at or above t
            fnir = float(1 - (mated_hit & (mated_sims >= t)).mean())
            out["at_fpir"].append((fpir, k, t, fnir))
        for fmr in (1e-3, 1e-5):
            try:
                g.set_target_fmr(name, fmr)
                d = g.decision(g.collection(name))
            except Exception as exc:  # no calibration for this embedder: say so in the table
                out["stated"].append((fmr, None, None, None, None, str(exc).split(";")[0]))
                continue
            measured_fpir = float((non_sims >= d.threshold).mean())
            fnir = float(1 - (mated_hit & (mated_sims >= d.threshold)).mean())
            out["stated"].append((fmr, d.threshold, d.expected_fpir, measured_fpir, fnir, ""))
    return out


FPIR_TARGETS = (0.01, 0.001)
FPIR_SIZES = (100, 1000, None)  # None: every enrollable person
DRAWS = {100: 10, 1000: 3}  # random galleries drawn per size (pooled); one for "all"
KEEP_TOP = 50_000  # highest impostor scores kept per block of the held-out calibration


def fpir_at_sizes(name: str, paths, vectors, ok, db: Path, seed: int = 0) -> list[dict]:
    """Stated vs measured FPIR (and FNIR) with the collection deciding by an FPIR target,
    for galleries of several sizes, through the gallery's own decision and search.

    A gallery of size n: n people drawn from those with two or more images, their first
    image enrolled; mated searches: their other images; non-mated searches: every person
    with a single image plus the first image of every enrollable person left out of this
    gallery (one search per stranger). Rates are pooled over the draws."""
    from vultus.gallery import Gallery
    from vultus.gallery.types import NewFace
    from vultus.types import Box, Face

    enrolled_all, _, singles = split(paths, ok)
    names = [p.parent.name for p in paths]
    rows_of: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if ok[i]:
            rows_of.setdefault(n, []).append(i)
    people = [names[r] for r in enrolled_all]
    face = Face(box=Box(0, 0, 1, 1), score=1.0, landmarks=np.zeros((5, 2), np.float32), detector="yunet")
    rng = np.random.default_rng(seed)
    out = []
    with Gallery(db) as g:
        for size in FPIR_SIZES:
            n_people = len(people) if size is None else size
            draws = 1 if size is None else DRAWS.get(size, 1)
            acc = {fp: {"fp": 0, "non": 0, "miss": 0, "mated": 0, "thr": [], "stated": [], "fmr": [],
                        "extrap": False} for fp in FPIR_TARGETS}
            for d in range(draws):
                chosen = sorted(rng.choice(len(people), n_people, replace=False).tolist())
                members = {people[j] for j in chosen}
                coll_name = f"{name}-{n_people}-{d}"
                coll = g.create_collection(coll_name, embedder=name)
                batch = [NewFace(person=p, image_sha256=f"lfw:{paths[rows_of[p][0]].name}",
                                 image_path=str(paths[rows_of[p][0]]), face=face, vector=vectors[rows_of[p][0]],
                                 quality={}) for p in sorted(members)]
                g.store.add_faces(coll.id, coll.contract.key, batch)
                coll = g.collection(coll_name)
                mated = [r for p in sorted(members) for r in rows_of[p][1:]]
                non = list(singles) + [rows_of[p][0] for p in people if p not in members]
                top_m = [m[0] if m else None for m in g.match_vectors(coll, vectors[mated], top_k=1)]
                top_n = np.array([m[0].similarity if m else -1.0
                                  for m in g.match_vectors(coll, vectors[non], top_k=1)])
                sim_m = np.array([m.similarity if m else -1.0 for m in top_m])
                hit_m = np.array([m is not None and m.person == names[r] for m, r in zip(top_m, mated, strict=True)])
                for fp in FPIR_TARGETS:
                    g.set_target_fpir(coll_name, fp)
                    dec = g.decision(coll_name)
                    a = acc[fp]
                    a["fp"] += int((top_n >= dec.threshold).sum())
                    a["non"] += len(non)
                    a["miss"] += int((~(hit_m & (sim_m >= dec.threshold))).sum())
                    a["mated"] += len(mated)
                    a["thr"].append(dec.threshold)
                    a["stated"].append(dec.expected_fpir)
                    a["fmr"].append(dec.fmr)
                    a["extrap"] |= dec.extrapolated
            for fp, a in acc.items():
                row = {"size": n_people, "draws": draws, "target": fp, "stated": float(np.mean(a["stated"])),
                       "threshold": float(np.mean(a["thr"])), "fmr": float(np.mean(a["fmr"])),
                       "extrapolated": a["extrap"], "false_ids": a["fp"], "non_mated": a["non"],
                       "measured": a["fp"] / a["non"], "fnir": a["miss"] / max(1, a["mated"]), "mated": a["mated"]}
                out.append(row)
                print(f"{name}: gallery {n_people} x{draws}, FPIR target {fp:g}: t={row['threshold']:.4f} "
                      f"stated {row['stated']:.4f} measured {row['measured']:.4f} ({a['fp']}/{a['non']}), "
                      f"FNIR {row['fnir']:.4f}", flush=True)
    return out


def held_out_fpir(name: str, paths, vectors, ok, seed: int = 0) -> dict:
    """The same model with a calibration that never saw the people it is tested on:
    LFW's people split in two halves; the FMR ladder is measured on every impostor pair
    inside one half, and galleries of the other half's people are searched by that
    half's strangers (plain numpy: one face per person, so best-face = the face)."""
    from vultus.gallery import decision as decide

    names = np.array([p.parent.name for p in paths])
    people = sorted(set(names[ok]))
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(people)[: len(people) // 2].tolist())
    cal_rows = np.flatnonzero(ok & np.isin(names, list(half)))
    test_rows = np.flatnonzero(ok & ~np.isin(names, list(half)))
    # the calibration half's impostor scores: every pair of images of different people
    V = vectors[cal_rows]
    lab = names[cal_rows]
    tops = []
    for s in range(0, len(V), 512):
        sims = V[s:s + 512] @ V.T
        same = lab[s:s + 512, None] == lab[None, :]
        upper = np.arange(s, min(s + 512, len(V)))[:, None] < np.arange(len(V))[None, :]
        tops.append(np.sort(sims[~same & upper])[-KEEP_TOP:])
    _, per_person = np.unique(lab, return_counts=True)
    n_imp = len(lab) * (len(lab) - 1) // 2 - int((per_person * (per_person - 1) // 2).sum())
    top = np.sort(np.concatenate(tops))[::-1]
    ladder = []
    for fmr in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6):
        k = int(np.floor(fmr * n_imp))
        if k < 10 or k >= KEEP_TOP:  # fewer than 10 impostors above: not a measured rung
            continue
        ladder.append({"fmr": fmr, "threshold": float(top[k]) + 1e-6})
    # the test half: galleries of its enrollable people, its single-image people as strangers
    by_person: dict[str, list[int]] = {}
    for r in test_rows:
        by_person.setdefault(names[r], []).append(int(r))
    enrollable = sorted(p for p, rs in by_person.items() if len(rs) >= 2)
    singles = [rs[0] for p, rs in by_person.items() if len(rs) == 1]
    rows = []
    for size in (100, 500, len(enrollable)):
        draws = 1 if size == len(enrollable) else 5
        for fp in FPIR_TARGETS:
            false_ids = searches = 0
            stated, thr = [], []
            for _ in range(draws):
                members = rng.choice(enrollable, size, replace=False)
                G = vectors[[by_person[p][0] for p in members]]
                probes = singles + [by_person[p][0] for p in enrollable if p not in set(members)]
                best = (vectors[probes] @ G.T).max(axis=1)
                point = decide.fpir_point(ladder, fp, size)
                false_ids += int((best >= point.threshold).sum())
                searches += len(probes)
                stated.append(decide.fpir_for_fmr(point.fmr, size))
                thr.append(point.threshold)
            rows.append({"size": size, "draws": draws, "target": fp, "stated": float(np.mean(stated)),
                         "threshold": float(np.mean(thr)), "false_ids": false_ids, "non_mated": searches,
                         "measured": false_ids / searches})
            print(f"{name} held-out: gallery {size} x{draws}, FPIR {fp:g}: measured {false_ids}/{searches}",
                  flush=True)
    return {"people_calibration": len(half), "people_test": len(people) - len(half), "impostor_pairs": n_imp,
            "lowest_rung": ladder[-1]["fmr"], "rows": rows}


def enroll_throughput(root: Path, n_images: int, workers_list: list[int]) -> list[tuple[int, int, int, float]]:
    """Faces/s through Gallery.enroll_folder for a folder of LFW images (symlinks)."""
    from vultus.gallery import Gallery

    src = sorted(root.glob("images/*/*.jpg"))[:n_images]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "people"
        for img in src:
            link = folder / img.parent.name / img.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(img)
        # warm model files (hash check) so the first timing is not a cold start
        with Gallery(Path(tmp) / "warm.db") as g:
            g.enroll_image(src[0], "warm-up", workers=0)
        for workers in workers_list:
            with Gallery(Path(tmp) / f"w{workers}.db") as g:
                t0 = time.perf_counter()
                report = g.enroll_folder(folder, workers=workers)
                seconds = time.perf_counter() - t0
            reasons = Counter(o.reason.split(" (")[0].split(";")[0] for o in report.outcomes if o.status != "enrolled")
            rows.append((workers, len(src), report.enrolled, seconds, dict(reasons)))
            print(f"enroll {len(src)} images, workers={workers}: {report.enrolled} faces in {seconds:.1f}s "
                  f"({report.enrolled / seconds:.1f} faces/s)", flush=True)
    return rows


def write_report(results: list[dict], throughput, n_images: int, args, fpir_rows=(), held_out=()) -> Path:
    out = RESULTS / "identify.md"
    lines = [
        "# Open-set identification on LFW, and enroll throughput",
        "",
        f"- Date: {stamp()}",
        f"- Machine: {machine()}; load average at the end {load_average()} (above 2, other jobs "
        "shared the 2 cores and timings are pessimistic)",
        f"- Data: LFW deep-funneled, {n_images} images. Enrolled: the first image of every person with at least two "
        "images; mated searches: their other images; non-mated searches: every person with one image (never "
        "enrolled). Images where YuNet found no face are left out of all three sets.",
        "- Search: the gallery's own path, `Gallery.match_vectors` with its defaults (at this size the index is "
        "scanned exhaustively; candidates re-ranked exactly from SQLite; best-face aggregation). FNIR counts a "
        "mated search as missed unless its mate is rank 1 at or above the threshold.",
        "",
        "## Rank-1 and FNIR at fixed FPIR",
        "",
        "| embedder | enrolled | mated | non-mated | rank-1 | FNIR @ FPIR 1% | FNIR @ FPIR 0.1% | search ms/face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [f"{fnir * 100:.2f}% (t={t:.3f}, {k} non-mated above)" for _, k, t, fnir in r["at_fpir"]]
        lines.append(f"| {r['name']} | {r['enrolled']} | {r['mated']} | {r['non_mated']} | {r['rank1'] * 100:.2f}% | "
                     f"{cells[0]} | {cells[1]} | {r['search_ms']:.2f} |")
    lines += [
        "",
        "FPIR 0.1% rests on very few non-mated searches above the threshold (the count is shown), so its FNIR is "
        "a rough figure.",
        "",
        "## At the collection's calibrated threshold: stated vs measured",
        "",
        "The gallery states, for its threshold, the false-match rate per comparison (from the embedder's LFW "
        "calibration) and the chance that an unenrolled face matches someone, 1 - (1 - FMR)^n for n enrolled faces. "
        "With over a thousand people enrolled, a per-comparison FMR of 1e-3 means most strangers match someone: "
        "large galleries need a stricter target (`vultus gallery threshold --fmr 1e-5`).",
        "",
        "| embedder | target FMR | threshold | stated FPIR | measured FPIR | FNIR |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for fmr, thr, stated, measured, fnir, why in r["stated"]:
            if thr is None:
                lines.append(f"| {r['name']} | {fmr:g} | n/a: {why} | | | |")
            else:
                lines.append(f"| {r['name']} | {fmr:g} | {thr:.4f} | {stated * 100:.2f}% | {measured * 100:.2f}% | "
                             f"{fnir * 100:.2f}% |")
    if fpir_rows:
        lines += [
            "",
            "## Deciding by FPIR: stated vs measured at several gallery sizes",
            "",
            "A new collection decides by a false-positive identification rate (FPIR, 1% by default): the chance "
            "that a face of someone never enrolled is named as somebody. The threshold is derived from the "
            "embedder's calibration (FMR per comparison, measured on LFW's impostor pairs down to 1e-6 for SFace "
            "and 1e-5 for the other embedders, its tail extended as an exponential below that; `extrapolated` in "
            "the table) and the collection's size: FPIR = 1 - (1 - FMR)^n with n enrolled faces, so "
            "the threshold is the one whose FMR is 1 - (1 - FPIR)^(1/n). Each row goes through the gallery's own "
            "`decision` and `match_vectors`. Galleries of 100 and 1,000 people are drawn at random (the draws are "
            "pooled); non-mated searches are every single-image person plus the first image of every enrollable "
            "person left out of that gallery. **Overlap:** the shipped calibration was measured on all of LFW, so "
            "it has seen every person here; the held-out check below removes that overlap.",
            "",
            "| embedder | gallery | draws | target FPIR | threshold | FMR per comparison | stated FPIR | "
            "measured FPIR (false ids / searches) | measured / stated | FNIR (mated searches) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, rows in fpir_rows:
            for r in rows:
                ratio = r["measured"] / r["stated"] if r["stated"] else float("nan")
                lines.append(
                    f"| {name} | {r['size']} | {r['draws']} | {r['target']:g} | {r['threshold']:.4f} | "
                    f"{r['fmr']:.2e}{' (extrapolated)' if r['extrapolated'] else ''} | {100 * r['stated']:.2f}% | "
                    f"{100 * r['measured']:.2f}% ({r['false_ids']} / {r['non_mated']}) | {ratio:.2f} | "
                    f"{100 * r['fnir']:.2f}% ({r['mated']}) |")
        lines += ["", "A rate resting on fewer than about 10 false identifications (the count is shown) is rough: "
                  "its 95% interval spans a factor of 2 or more."]
    if held_out:
        lines += [
            "",
            "## The same model with a calibration that never saw these people",
            "",
            "LFW's people split at random in two halves. The FMR ladder is measured on every impostor pair inside "
            "one half; galleries are drawn from the other half's people and searched by that half's strangers, "
            "thresholds derived by the same code (`vultus.gallery.decision.fpir_point`). No person is in both.",
            "",
            "| embedder | calibration people / impostor pairs | lowest measured FMR | gallery | draws | target FPIR | "
            "threshold | stated FPIR | measured FPIR (false ids / searches) | measured / stated |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, h in held_out:
            for r in h["rows"]:
                ratio = r["measured"] / r["stated"] if r["stated"] else float("nan")
                lines.append(
                    f"| {name} | {h['people_calibration']} / {h['impostor_pairs']:,} | {h['lowest_rung']:g} | "
                    f"{r['size']} | {r['draws']} | {r['target']:g} | {r['threshold']:.4f} | "
                    f"{100 * r['stated']:.2f}% | {100 * r['measured']:.2f}% ({r['false_ids']} / {r['non_mated']}) "
                    f"| {ratio:.2f} |")
    if throughput:
        lines += [
            "",
            "## Enroll throughput (a folder, end to end)",
            "",
            "Detection, gate, embedding (SFace), aligned crop kept, one SQLite transaction per 8 images, index "
            "updated and saved.",
            "",
            "| workers | images | faces enrolled | seconds | faces/s |",
            "|---|---|---|---|---|",
        ]
        for workers, n, enrolled, seconds, _ in throughput:
            label = "0 (in process, models on all cores)" if workers == 0 else f"{workers} (one thread each)"
            lines.append(f"| {label} | {n} | {enrolled} | {seconds:.1f} | {enrolled / seconds:.1f} |")
        refused = throughput[-1][4]
        lines += ["", "Not enrolled: " + ", ".join(f"{v} {k}" for k, v in sorted(refused.items())) + ". On a "
                  "machine whose 2 cores were already busy with other jobs, worker processes cannot add cores; "
                  "on an idle machine they scale with the cores (each worker runs its own models on one thread)."]
    lines += ["", f"Command: `python bench/identify.py {' '.join(args)}`".rstrip(), ""]
    # sections other bench scripts write into this file (bench/own_calibration.py, bench/enroll_subject.py)
    kept = kept_sections(out.read_text()) if out.is_file() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "".join(f"\n{k}\n" for k in kept))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None)
    ap.add_argument("--embedders", default="sface,dlib-resnet,fused")
    ap.add_argument("--enroll-images", type=int, default=600, help="folder size for the enroll throughput")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-fpir", action="store_true", help="leave out the stated-vs-measured FPIR sections")
    args = ap.parse_args()
    root = args.lfw or (data_root() / "lfw")
    results, fpir_rows, held_out = [], [], []
    n_images = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.embedders.split(","):
            paths, vectors, ok = lfw_embeddings(name, root, workers=args.workers)
            n_images = len(paths)
            r = run_protocol(name, paths, vectors, ok, Path(tmp) / "lfw.db")
            print(f"{name}: rank-1 {r['rank1'] * 100:.2f}%, " + ", ".join(
                f"FNIR@FPIR{fp:g} {fnir * 100:.2f}%" for fp, _, _, fnir in r["at_fpir"]), flush=True)
            results.append(r)
            if not args.skip_fpir:
                fpir_rows.append((name, fpir_at_sizes(name, paths, vectors, ok, Path(tmp) / "fpir.db")))
                held_out.append((name, held_out_fpir(name, paths, vectors, ok)))
    throughput = [] if args.skip_throughput else enroll_throughput(root, args.enroll_images,
                                                                   sorted({0, args.workers}))
    out = write_report(results, throughput, n_images, sys.argv[1:], fpir_rows, held_out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

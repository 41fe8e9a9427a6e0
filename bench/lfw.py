"""LFW View 2 benchmark: accuracy, TAR@FAR and end-to-end throughput per embedder,
side by side with the face_recognition package as its users run it.

    python bench/lfw.py                       # everything, results to bench/results/lfw.md
    python bench/lfw.py --write-calibration   # also refit src/vultus/models/calibration.json

Accuracy follows the LFW protocol: 10 folds of 600 pairs, the threshold of each
fold chosen on the other nine. A pair whose image yields no face counts as a
wrong decision (it is not dropped). Calibration uses every LFW image pair: all
pairs of one person as genuine, all pairs of two people as impostors (about
29.6 million), so thresholds down to FMR 1e-5 rest on hundreds of comparisons.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402
from vultus.evaluate.lfw import read_lfw_pairs  # noqa: E402
from vultus.evaluate.metrics import kfold_accuracy, logistic_fusion_weights, tar_at_fmr  # noqa: E402
from vultus.models.registry import get_spec  # noqa: E402

FMR_LADDER = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]  # 1e-6: ~30 of 29.6M pairs
CALIBRATION = Path(__file__).resolve().parents[1] / "src/vultus/models/calibration.json"


# -- end-to-end embedding in worker processes --------------------------------
_ENGINE = None


def _init_worker(embedder: str, detector: str) -> None:
    global _ENGINE
    from vultus import Engine

    _ENGINE = Engine(detector=detector, embedder=embedder, threads=1)


def central_face(faces, shape):
    """LFW images are 250x250 crops centred on the labelled person."""
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - cx) ** 2 + ((f.box.y1 + f.box.y2) / 2 - cy) ** 2)


def _embed_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    from vultus.imageio import load_image

    cpu0 = time.process_time()
    images = [load_image(p) for p in paths]
    detected = _ENGINE.detector.detect(images)
    picks = [central_face(fs, img.shape) for fs, img in zip(detected, images, strict=True)]
    ok = np.array([f is not None for f in picks])
    vectors = np.zeros((len(paths), _ENGINE.embedder_spec.dim), np.float32)
    items = [(img, f) for img, f in zip(images, picks, strict=True) if f is not None]
    if items:
        vectors[ok] = _ENGINE.embedder.embed(items)
    return vectors, ok, time.process_time() - cpu0


def embed_paths(paths: list[Path], embedder: str, workers: int, detector: str = "yunet", chunk: int = 32):
    """(vectors, ok, seconds, cpu_seconds) for every path, end to end from file to embedding.

    cpu_seconds is the CPU time the workers spent (each runs one thread), which
    other load on the machine does not inflate the way it inflates wall time."""
    chunks = [[str(p) for p in paths[i:i + chunk]] for i in range(0, len(paths), chunk)]
    t0 = time.perf_counter()
    if workers == 1:
        _init_worker(embedder, detector)
        parts = [_embed_chunk(c) for c in chunks]
    else:
        with mp.get_context("spawn").Pool(workers, _init_worker, (embedder, detector)) as pool:
            parts = pool.map(_embed_chunk, chunks, chunksize=1)
    seconds = time.perf_counter() - t0
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), seconds,
            sum(p[2] for p in parts))


def warm_up(embedder: str, workers: int, sample: list[Path]) -> None:
    """Load models (and hash weights) once so throughput excludes first-load cost."""
    embed_paths(sample[: 4 * workers], embedder, workers)


# -- face_recognition, as its README tells users to run it --------------------
def _fr_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    import face_recognition

    cpu0 = time.process_time()
    vectors = np.zeros((len(paths), 128), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        img = face_recognition.load_image_file(p)
        locations = face_recognition.face_locations(img)  # HOG, upsample 1
        if not locations:
            continue
        h, w = img.shape[:2]
        top, right, bottom, left = min(locations, key=lambda b: ((b[1] + b[3]) / 2 - w / 2) ** 2
                                       + ((b[0] + b[2]) / 2 - h / 2) ** 2)
        enc = face_recognition.face_encodings(img, [(top, right, bottom, left)])[0]
        vectors[i] = enc / np.linalg.norm(enc)
        ok[i] = True
    return vectors, ok, time.process_time() - cpu0


def fr_embed(paths: list[Path], workers: int, chunk: int = 32):
    chunks = [[str(p) for p in paths[i:i + chunk]] for i in range(0, len(paths), chunk)]
    t0 = time.perf_counter()
    if workers == 1:
        parts = [_fr_chunk(c) for c in chunks]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_fr_chunk, chunks, chunksize=1)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            time.perf_counter() - t0, sum(p[2] for p in parts))


def _contract(name: str) -> str:
    spec = get_spec(name)
    return f"{spec.name}|{spec.version}|{spec.input.alignment}"  # a new version or alignment invalidates the cache


def cached_embeddings(cache: Path, name: str, paths: list[Path], root: Path):
    """(vectors, ok) of an earlier run for exactly these images and this model version, or None."""
    cached = cache / f"{name}.npz"
    if not cached.is_file():
        return None
    data = np.load(cached)
    if (list(data["paths"]) != [str(p.relative_to(root)) for p in paths]
            or str(data.get("contract", "")) != _contract(name)):
        return None
    return data["V"], data["ok"]


# -- scoring -------------------------------------------------------------------
def pair_scores(vectors, ok, index, pairs):
    ia = np.array([index[p.path_a] for p in pairs])
    ib = np.array([index[p.path_b] for p in pairs])
    scores = (vectors[ia] * vectors[ib]).sum(axis=1)
    failed = ~(ok[ia] & ok[ib])
    # A failure to enrol is a wrong decision at any threshold: give it the score
    # that is wrong for its label (lowest for genuine, highest for impostor).
    same = np.array([p.same for p in pairs])
    scores[failed & same] = -2.0
    scores[failed & ~same] = 2.0
    return scores, same, np.array([p.fold for p in pairs]), int(failed.sum())


def all_pair_scores(vectors, ok, identities):
    """Genuine and impostor similarities over every pair of successfully embedded images."""
    v = vectors[ok]
    ids = np.asarray(identities)[ok]
    _, labels = np.unique(ids, return_inverse=True)
    genuine, impostor = [], []
    for start in range(0, len(v), 1024):
        block = v[start:start + 1024] @ v.T
        rows = np.arange(start, min(start + 1024, len(v)))
        upper = np.arange(len(v))[None, :] > rows[:, None]
        same = labels[rows][:, None] == labels[None, :]
        genuine.append(block[upper & same])
        impostor.append(block[upper & ~same])
    return np.concatenate(genuine), np.concatenate(impostor)


def calibrate(genuine: np.ndarray, impostor: np.ndarray) -> list[dict]:
    imp_sorted = np.sort(impostor)[::-1]
    points = []
    for fmr in FMR_LADDER:
        k = int(np.floor(fmr * len(impostor)))  # at most k impostors may reach the threshold
        threshold = float(imp_sorted[k]) + 1e-6 if k < len(imp_sorted) else float(imp_sorted[-1])
        points.append({"fmr": fmr, "threshold": round(threshold, 6),
                       "impostors_above": int((impostor >= threshold).sum()),
                       "tar": round(float((genuine >= threshold).mean()), 5)})
    return points


def fit_fusion(first, second, same, folds):
    """Fusion weights by linear logistic regression on the two cosines: for each fold, fitted on
    the other nine; returns (fold-wise fused scores, weights fitted on all folds).

    Chosen on LFW View 1 (2026-11-24) over picking the z-score weight with the best accuracy on a
    0.05 grid, which swung from 0.02 to 0.12 between View 1's two files: 99.62% against 99.34%
    View 1 pair accuracy, and higher TAR at FMR 1e-3 and 1e-4."""
    fused = np.zeros_like(first)
    for k in np.unique(folds):
        train = folds != k
        w = logistic_fusion_weights(np.column_stack([first[train], second[train]]), same[train])
        fused[~train] = w[0] * first[~train] + w[1] * second[~train]
    return fused, logistic_fusion_weights(np.column_stack([first, second]), same)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: shared data)")
    ap.add_argument("--write-calibration", action="store_true")
    ap.add_argument("--throughput-images", type=int, default=2000)
    ap.add_argument("--skip-face-recognition", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--cache", type=Path, default=None, help="where full-LFW embeddings are kept between runs")
    ap.add_argument("--no-cache", action="store_true", help="re-embed LFW even when cached embeddings exist")
    args = ap.parse_args()
    root = args.lfw or (data_root() / "lfw")
    if args.cache is None:
        from vultus.models.registry import cache_dir

        args.cache = cache_dir() / "bench-lfw"
    pairs = read_lfw_pairs(root)
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    identities = [p.parent.name for p in paths]
    workers = min(2, os.cpu_count() or 1)
    print(f"LFW: {len(pairs)} pairs over {len(paths)} images; {workers} worker processes", flush=True)

    rows, throughput, cal, emb = [], [], {}, {}
    fused_parts = get_spec("fused").components  # (sface-flip, dlib-resnet-jitter)
    embedders = list(dict.fromkeys(["sface", "sface-flip", "dlib-resnet", "dlib-resnet-jitter", *fused_parts]))
    for name in embedders:
        hit = None if args.no_cache else cached_embeddings(args.cache, name, paths, root)
        if hit is not None:
            emb[name] = hit
            print(f"{name}: embeddings from {args.cache / f'{name}.npz'} (use --no-cache to recompute)", flush=True)
            continue
        warm_up(name, workers, paths)
        vectors, ok, seconds, cpu = embed_paths(paths, name, workers)
        emb[name] = (vectors, ok)
        args.cache.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache / f"{name}.npz", V=vectors, ok=ok,
                 paths=np.array([str(p.relative_to(root)) for p in paths]), contract=np.array(_contract(name)))
        print(f"{name}: embedded {len(paths)} images in {seconds:.1f}s ({len(paths) / seconds:.1f} img/s), "
              f"{int((~ok).sum())} without a face", flush=True)
        throughput.append((name, workers, len(paths), seconds, cpu))
    # Fusion: weights by logistic regression on the component cosines, fitted per fold.
    scored = {}
    for name, (vectors, ok) in emb.items():
        scored[name] = pair_scores(vectors, ok, index, pairs)
    same, folds = scored["sface"][1], scored["sface"][2]
    first, second = fused_parts
    fused_scores, w = fit_fusion(scored[first][0], scored[second][0], same, folds)
    weights = {first: round(float(w[0]), 4), second: round(float(w[1]), 4)}
    from vultus.embed.fused import combine

    ok_f = emb[first][1] & emb[second][1]
    emb["fused"] = (combine({n: emb[n][0] for n in fused_parts}, weights), ok_f)
    scored["fused"] = pair_scores(*emb["fused"], index, pairs)
    # The fold-fitted z-fusion is the honest 10-fold figure; the shipped weights are refitted on all folds.
    kf_fold_fitted = kfold_accuracy(fused_scores, same, folds)

    for name in [*embedders, "fused"]:
        s, same_, folds_, failed = scored[name]
        kf = kfold_accuracy(s, same_, folds_) if name != "fused" else kf_fold_fitted
        t3 = tar_at_fmr(s, same_, 1e-3)
        genuine, impostor = all_pair_scores(*emb[name], identities)
        points = calibrate(genuine, impostor)
        at3 = next(p for p in points if p["fmr"] == 1e-3)
        rows.append((name, kf.mean, kf.std, t3.tar, t3.n_negatives, at3["tar"], failed))
        cal[name] = {
            "source": f"LFW ({len(paths)} images, {len(genuine):,} genuine / {len(impostor):,} impostor pairs)",
            "default_fmr": 1e-3, "n_genuine": int(len(genuine)), "n_impostor": int(len(impostor)),
            "lfw_accuracy": round(float(kf.mean), 5), "lfw_accuracy_std": round(float(kf.std), 5),
            "points": points,
        }
        print(f"{name}: LFW accuracy {kf.mean * 100:.2f}% ± {kf.std * 100:.2f}, TAR@FAR1e-3 (pairs) "
              f"{t3.tar * 100:.2f}%, TAR@FMR1e-3 (all pairs) {at3['tar'] * 100:.2f}%", flush=True)
    cal["fused"]["weights"] = weights

    # Throughput at 1 and 2 processes on a fixed subset.
    subset = paths[: args.throughput_images]
    for name in [] if args.skip_throughput else ["sface", "dlib-resnet", "dlib-resnet-jitter", "fused"]:
        for n in sorted({1, workers}):
            warm_up(name, n, subset)
            _, _, sec, cpu = embed_paths(subset, name, n)
            throughput.append((name, n, len(subset), sec, cpu))
            print(f"throughput {name} x{n}: {len(subset) / sec:.1f} img/s wall, {cpu / len(subset) * 1000:.1f} "
                  f"CPU ms/img, load {load_average()}", flush=True)

    fr_rows = []
    if not args.skip_face_recognition:
        try:
            import face_recognition  # noqa: F401
        except ImportError:
            print("face_recognition not installed (pip install --no-deps face_recognition); skipping it")
        else:
            vectors, ok, sec, cpu = fr_embed(paths, workers)
            s, same_, folds_, failed = pair_scores(vectors, ok, index, pairs)
            kf = kfold_accuracy(s, same_, folds_)
            t3 = tar_at_fmr(s, same_, 1e-3)
            fr_rows.append(("face_recognition (HOG + dlib ResNet)", kf.mean, kf.std, t3.tar, t3.n_negatives, None,
                            failed))
            throughput.append(("face_recognition", workers, len(paths), sec, cpu))
            _, _, sec1, cpu1 = fr_embed(subset[:500], 1)
            throughput.append(("face_recognition", 1, 500, sec1, cpu1))
            print(f"face_recognition: {kf.mean * 100:.2f}% ± {kf.std * 100:.2f}, "
                  f"{len(paths) / sec:.1f} img/s x{workers}", flush=True)

    write_report(rows + fr_rows, throughput, weights, len(paths), len(pairs))
    if args.write_calibration:
        CALIBRATION.write_text(json.dumps(cal, indent=1) + "\n")
        print(f"wrote {CALIBRATION}")
    return 0


# The bars (#2): accuracy per embedder, SFace images/s with 2 processes.
# The dlib bar is shown for both dlib embedders: the fast one and the jittered one.
BARS = {"sface": 0.993, "dlib-resnet": 0.993, "dlib-resnet-jitter": 0.993, "fused": 0.996}
SFACE_IMAGES_PER_S = 100.0

# Why the bars that are not met are not met: prose written from measured figures (the runs it cites),
# kept with the report so that every run of this bench carries it.
WHY_SHORT = """## Why two bars are short

- **dlib >= 99.3%** (dlib-resnet 99.17%, dlib-resnet-jitter 99.02%). dlib publishes 99.13% for its network with one
  descriptor per face, 99.3% with 10 jitters and 99.38% with 100. bench/dlib_published.py ran that recipe as dlib
  documents it (raw descriptors averaged over `dlib.jitter_image`) on these images
  (bench/results/dlib-published.md): with the 5-point chip dlib documents today, 98.92% with one descriptor, 99.10%
  with 10 jitters, 99.20% with 100; with the 68-point chip dlib used when it published the figures (February 2017;
  the 5-point model came with dlib 19.7 in September 2017), 99.07%, 99.25% and 99.30%. On these deep-funneled images
  the network reaches 99.3% only by dlib's costliest recipe: a chip from the 68-point predictor, whose training data
  (iBUG 300-W) is licensed for research only, and 100 network runs per face. vultus's fast dlib-resnet (the 5-point
  chip and its mirror, two network runs) reads 99.17%, above dlib's own one-descriptor recipe on the same chip
  (98.92%) and two pairs below its 100-jitter one (99.20%). We ship neither a research-only chip in an embedder nor
  a recipe chosen on View 2 that costs 50 times the network time (the rule, written before that run was scored, is
  in its report).
- **fused >= 99.6%** (99.58%: 25 of 6,000 pairs wrong where the bar allows 24). bench/lfw_errors.py lists them
  (bench/results/lfw-errors.md). Two are the pairs Jim_OBrien_0001 / _0002 and _0001 / _0003, labelled as one
  person: _0001 shows a different man (two basketball coaches share the name; LFW's errata list Jim_OBrien). Fused
  rejects both, as the pictures warrant; the protocol counts them wrong and so does this report. With those two
  labels corrected the same decisions would score 5,977 of 6,000 (99.62%). Of the other 23, 10 are wrong for both
  networks alone. The 15 rejected same-person pairs are mostly occlusion (sunglasses, caps, a towel), faces turned
  up or away, and photos taken years apart; the 8 accepted pairs of different people are look-alikes. One pair is
  well inside the fold std (0.34 points, 20 pairs); the figure stands as measured rather than re-chosen on View 2."""

BARS_NOTE = """## Notes on these figures

- dlib-resnet's chip (since 2026-11-24): dlib's own 5-point predictor run on the box dlib's HOG detector would
  draw, derived from YuNet's landmarks, then `dlib.get_face_chip` (150 px, padding 0.25): the chip the network was
  trained on, without losing the faces HOG misses. It was chosen on LFW View 1, the protocol's development pairs
  (bench/results/dlib-alignment.md), over the earlier warp of YuNet's 5 points onto dlib's chip geometry and over
  the 68-point predictor, by a rule fixed before View 2 was scored. On View 2 it reads 99.17% (earlier chip:
  99.15%), and its TAR at FMR 1e-3 rises from 93.15% to 94.17% over all LFW pairs and from 96.83% to 97.60% on
  pairs.txt: fewer genuine pairs missed at strict thresholds. The 99.3% bar is not met, by this fast two-view
  embedder nor by dlib-resnet-jitter (below). Each face is also
  embedded mirrored and the two vectors averaged (+0.23 points when measured with the earlier chip). Measured
  worse before: dlib's 5-point predictor on YuNet's own box (98.68%; the predictor expects HOG's framing) and
  eyes+nose alignment (98.38%).
- dlib-resnet speed (since 2026-11-24, session 4): the network runs in onnxruntime from a graph vultus builds at
  load time from dlib's own .dat file (vultus.models.dlib_onnx); its descriptors equal dlib's to 3e-7, so every
  accuracy figure is unchanged (99.17%). dlib-bin is built without BLAS and ran the network at about 53 ms per chip,
  one chip at a time: end to end this bench measured 108.8 CPU ms per image, 9.2 images/s with one process and 18.1
  with two, before the change.
- dlib-resnet-jitter (since 2026-11-24, session 4): the same network averaged over ten fixed dlib-style jitters of
  the chip (dlib.jitter_image's ranges: up to 2% shift, 3 degrees of rotation, 0-3% zoom) and ten of its mirror
  image, twenty network runs per face: dlib's own "more accurate, slower" option (num_jitters), made
  deterministic. Chosen on LFW View 1 by a rule fixed before scoring, one candidate only (beat plain dlib-resnet on
  every column: pair accuracy 99.24% against 99.02%, TAR at FMR 1e-2 / 1e-3 / 1e-4 over all View 1 pairs 99.16 /
  95.09 / 84.15% against 99.09 / 94.46 / 82.89%; bench/results/dlib-alignment.md). `dlib-resnet` stays the fast
  two-view embedder; `fused` takes the jittered one, by a second rule fixed before scoring (on View 1 fused pair
  accuracy 99.73% against 99.62%, TAR at FMR 1e-3 equal at 98.98%). On View 2 the accuracy gain did not carry
  over: dlib-resnet-jitter reads 99.02% against 99.17% for plain dlib-resnet (9 pairs of 6,000, inside the fold
  std of 0.3 points), while its gain at strict thresholds did: TAR at FMR 1e-3 94.94% against 94.17% over all LFW
  pairs and 98.17% against 97.60% on pairs.txt. vultus's thresholds sit at such false-match rates (FMR 1e-3 by
  default), which is why we keep it as chosen on View 1 rather than re-choose on View 2. Fused with it reads
  99.58% (99.57% with plain dlib-resnet in the run before, both with logistic-regression weights): the 99.6% bar
  is one pair short.
- fused weights (since 2026-11-24, session 4) are fitted by logistic regression on the two cosines, not by picking
  the z-score weight with the best accuracy on a 0.05 grid. The choice was made on LFW View 1 by a rule fixed
  before View 2 was scored (take logistic regression only if it is at least as good in View 1 pair accuracy and in
  TAR at FMR 1e-3): 99.62% against 99.34% pair accuracy, TAR at FMR 1e-3 98.98% against 97.93%, and the grid weight
  swung from 0.02 to 0.12 between View 1's two files while logistic regression gave 0.14 and 0.18. On View 2, with
  plain dlib-resnet, the fold-fitted fused figure moved from 99.55% (grid) to 99.57% (logistic regression).
- fused with the dlib chip of 2026-11-24 read 99.55% against 99.62% with the earlier chip (grid-fitted weights):
  4 pairs of 6,000, inside the fold std (0.32 points). On View 1 the new chip did better inside fused (pair
  accuracy 99.51% against 99.45%, TAR at FMR 1e-4 98.11% against 97.83%), so we kept the chip chosen there rather
  than the one that read higher on View 2.
- Tried with the earlier chip (2026-11-24), hand-picked view averaging scored on View 2: chips zoomed to 0.97, 1.0
  and 1.03, each also mirrored (six views). The 37 combinations scored 98.80-99.27% for dlib-resnet (all six:
  99.22%) and 99.47-99.65% fused, scattered by a few pairs either way: within fold noise (std 0.38 points), and
  picking the best of 37 would be fitting LFW's test pairs. Not adopted: it costs up to three times the network
  time.
- sface-flip averages each SFace embedding with that of the mirrored face (one pre-chosen variant, the same
  flip dlib-resnet uses): +0.07 points over sface alone. It halves SFace's throughput, so `sface` stays the fast
  default and only `fused`, the accuracy-first embedder, uses it.
- SFace speed: since 2026-11-24 vultus rewrites SFace's 27 PRelu activations as a*x + (1-a)*Relu(x) when it
  loads the graph (vultus.models.onnx_tools.prelu_as_relu; same outputs to float rounding), so onnxruntime keeps
  the whole network in its blocked layout. Before the rewrite this bench measured SFace at 18.2-19.9 CPU ms per
  image end to end and 98.7-105.0 images/s with 2 processes in three runs the same day.
- face_recognition: HOG found no face in images of 63 pairs; counted as wrong decisions, the impostor pairs among
  them alone exceed the 3 false accepts that FAR 1e-3 allows on pairs.txt, hence its TAR of 0 there."""


def bars_section(rows, throughput) -> list[str]:
    """Each bar of the issue, the measured figure, and whether it is met."""
    lines = ["## Against the bars", "", "| bar | measured | met |", "|---|---|---|"]
    for name, acc, *_ in rows:
        if name in BARS:
            lines.append(f"| {name} LFW accuracy >= {BARS[name] * 100:.1f}% | {acc * 100:.2f}% | "
                         f"{'yes' if acc >= BARS[name] else '**no**'} |")
    for name, n, count, sec, _cpu in throughput:
        if name == "sface" and n == 2:
            rate = count / sec
            lines.append(f"| sface >= {SFACE_IMAGES_PER_S:.0f} images/s end to end, 2 processes | {rate:.1f} "
                         f"({count} images) | {'yes' if rate >= SFACE_IMAGES_PER_S else '**no**'} |")
    return lines + [""]


def write_report(rows, throughput, weights, n_images, n_pairs) -> None:
    out = RESULTS / "lfw.md"
    lines = [
        "# LFW View 2: accuracy and end-to-end speed",
        "",
        f"- Date: {stamp()}",
        f"- Machine: {machine()}; load average at the end {load_average()}",
        f"- Data: LFW deep-funneled, {n_pairs} pairs (10 folds) over {n_images} images",
        "- Pipeline: YuNet detection (the face nearest the image centre), alignment, embedding;"
        " a pair with a failed image counts as wrong.",
        "- Produced by `python bench/lfw.py`.",
        "",
        "## Accuracy",
        "",
        "| pipeline | 10-fold accuracy | ± std | TAR @ FAR 1e-3 (pairs.txt) | negatives | "
        "TAR @ FMR 1e-3 (all LFW pairs) | failed pairs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, acc, std, tar, nneg, tar_all, failed in rows:
        tar_all_s = f"{tar_all * 100:.2f}%" if tar_all is not None else "-"
        lines.append(f"| {name} | {acc * 100:.2f}% | {std * 100:.2f} | {tar * 100:.2f}% | {nneg} | {tar_all_s} | "
                     f"{failed} |")
    lines += [
        "",
        "Fused = score-level fusion " + " + ".join(f"{w:.3f} x {n} cosine" for n, w in weights.items()) + ";"
        " its 10-fold accuracy uses weights fitted on the other nine folds each time.",
        "With 3,000 negative pairs per run, TAR at FAR 1e-3 on pairs.txt rests on 3 impostor pairs; the all-pairs"
        " column uses every cross-identity pair of the 7,701 images (about 29.6 million) and is the one"
        " the shipped thresholds (src/vultus/models/calibration.json) come from.",
        "",
        "## Throughput (end to end: file -> decode -> detect -> align -> embed)",
        "",
        "Wall-clock figures depend on what else the machine runs (see the load average above). CPU ms/img is the"
        " CPU time the worker processes (one thread each) spent per image; 'CPU-bound ceiling' is"
        " processes x 1000 / (CPU ms/img), what the same work reaches when each process has a core to itself.",
        "",
        "| pipeline | processes | images | wall s | images/s (wall) | CPU ms/img | CPU-bound ceiling, images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, count, sec, cpu in throughput:
        ms = cpu / count * 1000
        lines.append(f"| {name} | {n} | {count} | {sec:.1f} | {count / sec:.1f} | {ms:.1f} | {n * 1000 / ms:.0f} |")
    lines += ["", *bars_section(rows, throughput), WHY_SHORT, "", BARS_NOTE, ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())

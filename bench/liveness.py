"""Liveness (presentation attack detection) measured as ISO/IEC 30107-3 asks.

    python bench/liveness.py             # features (cached in bench/out/), fit, report -> bench/results/liveness.md
    python bench/liveness.py --dev-only  # only the development comparison (no held-out figures)

Data: ../shared/data/antispoof (see its MANIFEST.md).
- NUAA (600 webcam frames, print attacks, 16 subjects), split BY SUBJECT:
  training subjects 0001-0008, held-out subjects 0009-0016. Nothing of the
  held-out subjects is used to fit, choose or adopt anything.
- micro_print_screen (6 people x live, paper print, screen replay; 18 crops):
  held out entirely; the only screen replays with labels, reported separately
  with their (tiny) counts.

Every image's largest face is found by YuNet (an image where it finds none is
tried again with a border added, then with that bordered image shrunk:
vultus.liveness.api.detect_for_liveness); how each face was found is reported,
and an image without a face is a failure to acquire, counted and reported,
never dropped silently.

Two scores are compared:
- reference: the MiniFASNet pair exactly as its authors run it (box enlarged
  2.7x and 4.0x, 80x80, BGR 0-255, softmaxes averaged, live when class 1 wins the
  argmax; test.py of Silent-Face-Anti-Spoofing). The one difference: the authors'
  Caffe RetinaFace detector is not in the shared data, so YuNet's box is used,
  converted to their integer (left, top, width, height).
- vultus: the logistic fusion of vultus.liveness.fusion over both networks'
  log-odds and the image cues, fitted on the training subjects.

Development split = the training subjects, scored leave-one-subject-out (each
subject scored by a fusion fitted on the other seven), so the fusion is never
scored on a subject it saw. The operating points of both scores are chosen on
the training subjects (TARGETS: the share of their live faces each may refuse);
the error rates at them are then counted once on the held-out subjects. The
shipped files this writes: src/vultus/models/liveness.json (adopted model,
operating points) and src/vultus/models/weights/liveness-fusion-v1.json (the
fusion; its sha256 is pinned in catalog.py, so a change must update it there).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
CACHE = OUT / "liveness-features.npz"
MD_PATH = RESULTS / "liveness.md"
JSON_PATH = RESULTS / "liveness.json"
DET_PNG = RESULTS / "liveness-det.png"
FUSION_JSON = ROOT / "src" / "vultus" / "models" / "weights" / "liveness-fusion-v1.json"
SHIPPED_JSON = ROOT / "src" / "vultus" / "models" / "liveness.json"
TRAIN_SUBJECTS = {f"{i:04d}" for i in range(1, 9)}
# Operating point name: the share of live training faces it may refuse (BPCER on the training subjects).
# Placed from the live side because the training attacks (NUAA prints) sit far below every live face: a
# threshold fixed at APCER 1% or 5% on them lands at the bottom of that gap (0.03 and 0.005 on the first
# run), where attacks unlike them (screen replays, the authors' print sample at 0.22) pass.
TARGETS = {"door": 0.10, "check-in": 0.02}

# Written before the final (held-out) run, and not changed after it:
ADOPTION_RULE = (
    "vultus's fusion is adopted only if, on the development split (training subjects, scored "
    "leave-one-subject-out), its BPCER at APCER = 5% is lower than the reference pair's on the same "
    "faces AND its BPCER at APCER = 1% is not higher. Otherwise the reference pair is shipped. "
    "The held-out subjects are scored once, after this decision, and do not change it.")

# Written on 2026-12-06 before the first run with the shrink steps of detect_for_liveness, and not changed
# after it. (The NUAA held-out figures are not clean any more: the operating points were re-chosen after a
# first run that printed them; see the note at the end of the report.)
NEVER_SCORED_RULE = (
    "The presentations that every earlier run of this script failed to acquire (no face found with a "
    "border added) and that are found now only once the bordered image is shrunk had never been scored "
    "when the operating points were chosen. The operating points are chosen on the training subjects "
    "exactly as before, and this run checks they come out unchanged. At them, the APCER of those "
    "presentations, per attack type, is reported once as the only figures on attacks no choice has "
    "seen. Caveats: the shrink steps were designed by looking at these images (at the detector's "
    "output on them, not at liveness scores), and their liveness scores were first seen in a CLI check "
    "shortly before this run, after the thresholds were fixed. This checks the thresholds, not the "
    "detection, and on few presentations.")


def rows(data: Path) -> list[dict]:
    out = []
    for sub in ("nuaa", "micro_print_screen"):
        with open(data / "antispoof" / sub / "labels.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                held_out = sub != "nuaa" or r["subject_id"] not in TRAIN_SUBJECTS
                out.append({"path": f"{sub}/{r['path']}", "live": r["label"] == "live",
                            "attack": r["attack_type"], "subject": f"{sub}:{r['subject_id']}",
                            "set": sub, "part": "held-out" if held_out else "train"})
    return out


def extract(data: Path, items: list[dict]) -> dict:
    """Per image: the networks' probabilities, the cues, and the seconds each step took."""
    from vultus.engine import Engine
    from vultus.imageio import load_image
    from vultus.liveness.api import detect_helped
    from vultus.liveness.cues import CUES, face_cues
    from vultus.liveness.passive import authors_box, to_bgr
    from vultus.models.cache import get_model

    engine = Engine()
    pair = get_model("minifasnet", task="liveness")
    probs = np.full((2, len(items), 3), np.nan)
    cues = np.full((len(items), len(CUES)), np.nan)
    found = np.zeros(len(items), bool)
    t_net, t_cue = [], []
    how = np.full(len(items), "", dtype=object)
    for i, it in enumerate(items):
        img = load_image(data / "antispoof" / it["path"])
        faces = engine.detector.detect([img])[0]
        how[i] = "plain" if faces else ""
        if not faces:
            faces, how[i] = detect_helped(engine.detector, img)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box.area)
        found[i] = True
        start = time.perf_counter()
        patches = pair.patches([(img, face)])
        probs[:, i] = pair.probabilities_of_patches(patches)[:, 0]
        t_net.append(time.perf_counter() - start)
        start = time.perf_counter()
        cues[i] = face_cues(to_bgr(img), authors_box(face.box), patches[-1][0])
        t_cue.append(time.perf_counter() - start)
    return {"probs": probs, "cues": cues, "found": found, "how": how.astype(str),
            "ms_networks": 1000 * np.median(t_net),
            "ms_cues": 1000 * np.median(t_cue), "timed": f"{stamp()}, load average {load_average()}"}


# -- ISO/IEC 30107-3 figures --------------------------------------------------------------------


def threshold_at_apcer(attack_scores: np.ndarray, target: float) -> float:
    """The lowest threshold (live = score >= t) whose APCER on these attacks is at most `target`."""
    s = np.sort(attack_scores)[::-1]
    allowed = int(np.floor(target * len(s)))  # attacks that may pass
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))


def threshold_at_bpcer(live_scores: np.ndarray, target: float) -> float:
    """The highest threshold (live = score >= t) whose BPCER on these live faces is at most `target`."""
    s = np.sort(live_scores)
    return float(s[min(int(np.floor(target * len(s))), len(s) - 1)])


def rate(errors: int, n: int) -> dict:
    from vultus.evaluate.metrics import wilson_interval

    if n == 0:
        return {"errors": 0, "n": 0, "rate": None, "ci": None}
    lo, hi = wilson_interval(errors, n)
    return {"errors": int(errors), "n": int(n), "rate": errors / n, "ci": [lo, hi]}


def figures(score: np.ndarray, live: np.ndarray, attack: np.ndarray, thresholds: dict[str, float]) -> dict:
    """APCER per attack type and BPCER at each threshold; BPCER at APCER 1% and 5% on these faces."""
    out = {"at": {}}
    for name, t in thresholds.items():
        entry = {"threshold": t, "bpcer": rate(int((score[live] < t).sum()), int(live.sum()))}
        for kind in sorted(set(attack[~live])):
            m = (~live) & (attack == kind)
            entry[f"apcer_{kind}"] = rate(int((score[m] >= t).sum()), int(m.sum()))
        entry["apcer_all"] = rate(int((score[~live] >= t).sum()), int((~live).sum()))
        out["at"][name] = entry
    for target in (0.01, 0.05):
        t = threshold_at_apcer(score[~live], target)
        out[f"bpcer_at_apcer_{target:g}"] = rate(int((score[live] < t).sum()), int(live.sum())) | {"threshold": t}
    return out


def det_curve(score: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts = np.unique(np.concatenate([score, [np.inf]]))
    apcer = np.array([(score[~live] >= t).mean() for t in ts])
    bpcer = np.array([(score[live] < t).mean() for t in ts])
    return apcer, bpcer


def loso_scores(x: np.ndarray, y: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    from vultus.liveness.fusion import apply_logistic, fit_logistic

    out = np.zeros(len(y))
    for s in np.unique(subjects):
        m = subjects == s
        out[m] = apply_logistic(fit_logistic(x[~m], y[~m]), x[m])
    return out


def _same_weights(a: dict, b: dict, tol: float = 1e-9) -> bool:
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        try:
            x, y = np.asarray(x, float), np.asarray(y, float)
        except (TypeError, ValueError):  # names, notes
            if x != y:
                return False
            continue
        if x.shape != y.shape or not np.allclose(x, y, rtol=0, atol=tol):
            return False
    return True


HOW_ORDER = ("plain", "border")


def _how_key(how: str) -> tuple:
    return (HOW_ORDER.index(how), 0.0) if how in HOW_ORDER else (len(HOW_ORDER), -float(how.rsplit(" ", 1)[-1]))


def pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "n/a"
    return f"{100 * r['rate']:.1f}% [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] ({r['errors']}/{r['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--refresh", action="store_true", help="recompute the cached features")
    ap.add_argument("--dev-only", action="store_true")
    args = ap.parse_args()
    data = args.data or data_root()
    from vultus.liveness.fusion import feature_matrix, fit_logistic
    from vultus.liveness.passive import reference_is_live, reference_score

    items = rows(data)
    from vultus.liveness import api as live_api

    # The cache is keyed by the images and by how faces are looked for (a change there changes the faces).
    detection = [live_api.PAD_SHARE, "halved", live_api.MIN_SHRUNK_SIDE]
    key = hashlib.sha256(json.dumps([items, detection, "timed"]).encode()).hexdigest()[:16]
    if CACHE.exists() and not args.refresh and str(np.load(CACHE)["key"]) == key:
        z = np.load(CACHE)
        ext = {k: z[k] for k in ("probs", "cues", "found", "how")} | {"ms_networks": float(z["ms_networks"]),
                                                                 "ms_cues": float(z["ms_cues"]),
                                                                 "timed": str(z["timed"])}
    else:
        t0 = time.perf_counter()
        ext = extract(data, items)
        print(f"features of {len(items)} images in {time.perf_counter() - t0:.0f} s")
        OUT.mkdir(exist_ok=True)
        np.savez(CACHE, key=key, **ext)
    found = ext["found"]
    live = np.array([it["live"] for it in items])
    attack = np.array([it["attack"] for it in items])
    subjects = np.array([it["subject"] for it in items])
    part = np.array([it["part"] for it in items])
    x = feature_matrix(ext["probs"], ext["cues"])
    ref = reference_score(ext["probs"])
    ref_live = reference_is_live(ext["probs"])

    train = (part == "train") & found
    held = (part == "held-out") & found
    # Development: both scores on the training subjects, the fusion leave-one-subject-out.
    dev_fusion = loso_scores(x[train], live[train].astype(float), subjects[train])
    dev = {"reference": figures(ref[train], live[train], attack[train], {}),
           "vultus": figures(dev_fusion, live[train], attack[train], {})}
    d_ref, d_vul = dev["reference"], dev["vultus"]
    adopt = (d_vul["bpcer_at_apcer_0.05"]["rate"] < d_ref["bpcer_at_apcer_0.05"]["rate"]
             and d_vul["bpcer_at_apcer_0.01"]["rate"] <= d_ref["bpcer_at_apcer_0.01"]["rate"])
    print("development BPCER@APCER5%: reference", pct(d_ref["bpcer_at_apcer_0.05"]), "vultus",
          pct(d_vul["bpcer_at_apcer_0.05"]), "-> adopt" if adopt else "-> keep the reference")
    print("development BPCER@APCER1%: reference", pct(d_ref["bpcer_at_apcer_0.01"]), "vultus",
          pct(d_vul["bpcer_at_apcer_0.01"]))
    if args.dev_only:
        return

    # The final fusion: fitted on every training subject.
    weights = fit_logistic(x[train], live[train].astype(float))
    from vultus.liveness.fusion import apply_logistic

    fused = apply_logistic(weights, x)
    thresholds = {}
    for name, s in (("reference", ref), ("vultus", fused)):
        thresholds[name] = {p: threshold_at_bpcer(s[train & live], t) for p, t in TARGETS.items()}
    thresholds["reference"]["authors"] = 0.5  # reporting only: the argmax rule, checked below
    sets_of = np.array([i["set"] for i in items])
    how = ext["how"]
    # The operating points the last run shipped, to check this run left them as they were.
    before = json.loads(SHIPPED_JSON.read_text())["models"] if SHIPPED_JSON.exists() else {}
    report = {"generated": stamp(), "machine": machine(), "load": load_average(), "rule": ADOPTION_RULE,
              "adopted": "vultus-liveness" if adopt else "minifasnet", "development": dev,
              "acquisition": {s: {"images": int((sets_of == s).sum()),
                                  "found": {h: int(((how == h) & found & (sets_of == s)).sum())
                                            for h in sorted(set(how[found & (sets_of == s)]), key=_how_key)},
                                  "missed": int(((~found) & (sets_of == s)).sum())}
                              for s in ("nuaa", "micro_print_screen")},
              "ms_per_face": {"reference": ext["ms_networks"], "vultus": ext["ms_networks"] + ext["ms_cues"],
                              "timed": ext["timed"]},
              "held_out": {}, "thresholds": thresholds}
    sets = {"NUAA held-out subjects": held & (np.array([i["set"] for i in items]) == "nuaa"),
            "micro_print_screen (all held out)": held & (np.array([i["set"] for i in items]) == "micro_print_screen")}
    for label, m in sets.items():
        report["held_out"][label] = {name: figures(s[m], live[m], attack[m], thresholds[name])
                                     for name, s in (("reference", ref), ("vultus", fused))}
    # Presentations no choice has seen (NEVER_SCORED_RULE): faces found only by a shrink step.
    never = found & np.char.startswith(how.astype(str), "border, shrunk")
    report["never_scored"] = {"rule": NEVER_SCORED_RULE, "n": int(never.sum()), "live": int((never & live).sum()),
                              "by": {name: figures(s[never], live[never], attack[never],
                                                   {p: thresholds[name][p] for p in TARGETS})
                                     for name, s in (("reference", ref), ("vultus", fused))}}
    report["points_unchanged"] = {
        model: all(abs(before.get(model, {}).get("points", {}).get(p, {}).get("threshold", np.nan)
                       - thresholds[name][p]) < 1e-9 for p in TARGETS)
        for name, model in (("reference", "minifasnet"), ("vultus", "vultus-liveness"))}
    print("operating points unchanged:", report["points_unchanged"])
    # The authors' argmax rule against the 0.5 threshold on the mean: the same decision for 3 classes only
    # when no other class wins; record how often they differ.
    report["authors_rule_vs_half"] = int((ref_live[found] != (ref[found] >= 0.5)).sum())
    # What `vultus liveness` says on every labelled image (training subjects included): a description of the
    # issue's "says live for the live samples and spoof for the attacks", not an estimate of any rate.
    every = {}
    for pname in TARGETS:
        t = thresholds["reference"][pname]
        every[pname] = {s: {"live_refused": int((found & live & (sets_of == s) & (ref < t)).sum()),
                            "live": int((found & live & (sets_of == s)).sum()),
                            "attacks_accepted": int((found & ~live & (sets_of == s) & (ref >= t)).sum()),
                            "attacks": int((found & ~live & (sets_of == s)).sum())}
                        for s in ("nuaa", "micro_print_screen")}
    report["every_image"] = {"at": every, "lowest_live": float(ref[found & live].min()),
                             "highest_attack": float(ref[found & ~live].max())}
    weights["trained_on"] = "NUAA subjects 0001-0008 (shared data antispoof/nuaa), bench/liveness.py"
    # Rewritten only when the fit changed beyond float noise: the file's sha256 is pinned in catalog.py.
    old_weights = json.loads(FUSION_JSON.read_text()) if FUSION_JSON.exists() else {}
    if not _same_weights(old_weights, weights):
        FUSION_JSON.write_text(json.dumps(weights, indent=1) + "\n")
        print(f"{FUSION_JSON} changed: update its sha256 in src/vultus/models/catalog.py")
    m = sets["NUAA held-out subjects"]
    shipped = {"adopted": report["adopted"], "default_point": "door",
               "measured_on": f"NUAA held-out subjects 0009-0016 ({int((m & live).sum())} live, "
                              f"{int((m & ~live).sum())} print attacks), bench/liveness.py {stamp()[:10]}",
               "models": {}}
    for name, model in (("reference", "minifasnet"), ("vultus", "vultus-liveness")):
        at = report["held_out"]["NUAA held-out subjects"][name]["at"]
        shipped["models"][model] = {"points": {p: {"threshold": thresholds[name][p],
                                                   "apcer": at[p]["apcer_all"]["rate"],
                                                   "bpcer": at[p]["bpcer"]["rate"]} for p in TARGETS}}
    SHIPPED_JSON.write_text(json.dumps(shipped, indent=1) + "\n")
    JSON_PATH.write_text(json.dumps(report, indent=1, default=float) + "\n")
    curves = []
    for label, m in sets.items():
        if (m & live).any() and (m & ~live).any():
            for name, s in (("reference", ref), ("vultus", fused)):
                a, b = det_curve(s[m], live[m])
                curves.append((f"{name}, {label.split(' ')[0]}", a, b))
    try:
        from vultus.evaluate.plots import det_png

        DET_PNG.write_bytes(det_png(curves, xlabel="APCER (attacks accepted)", ylabel="BPCER (live refused)"))
    except ImportError:
        pass
    MD_PATH.write_text(render(report))
    print(MD_PATH)


def render(r: dict) -> str:
    lines = [
        "# Liveness (presentation attack detection), ISO/IEC 30107-3 figures",
        "",
        f"*{r['generated']} by `python bench/liveness.py`; {r['machine']}; load average {r['load']} "
        "(the machine is shared: latency figures are under load).*",
        "",
        "Data: `../shared/data/antispoof`. NUAA split by subject: training subjects 0001-0008 (fit, thresholds, "
        "adoption), held-out subjects 0009-0016 (reported; not clean, see the note at the end). "
        "micro_print_screen is held out entirely (the only labelled screen replays; 6 per type: far too few "
        "for a rate, shown for what they are).",
        "",
        "Terms: **APCER** = share of attack presentations accepted as live (per attack type); **BPCER** = share "
        "of live presentations refused. 95% Wilson intervals in brackets, then (errors/presentations).",
        "",
        "## Adoption rule (written before the held-out run)",
        "",
        r["rule"],
        "",
        "Development split (training subjects; vultus scored leave-one-subject-out):",
        "",
        "| score | BPCER @ APCER 1% | BPCER @ APCER 5% |",
        "|---|---|---|",
    ]
    for name in ("reference", "vultus"):
        d = r["development"][name]
        lines.append(f"| {name} | {pct(d['bpcer_at_apcer_0.01'])} | {pct(d['bpcer_at_apcer_0.05'])} |")
    lines += ["", f"**Outcome: `{r['adopted']}` is shipped** as the score `Engine.liveness` uses.", ""]
    lines += ["## Acquisition", "",
              "How each image's face was found (vultus.liveness.api.detect_for_liveness): `plain` by YuNet on "
              "the image; `border` once a border is added (a tight crop); `border, shrunk k` once that "
              "bordered image is also shrunk to k of its size with area averaging (a face too large for the detector, "
              "or hidden by a print's halftone or a screen's moire). A failure to acquire (no face at all) is "
              "left out of the rates below and counted here.", "",
              "| set | images | found: how (count) | failures to acquire |", "|---|---|---|---|"]
    for k, v in r["acquisition"].items():
        lines.append(f"| {k} | {v['images']} | " + ", ".join(f"{h} ({n})" for h, n in v["found"].items())
                     + f" | {v['missed']} |")
    lines.append("")
    for label, by in r["held_out"].items():
        lines += [f"## Held out: {label}", ""]
        for name in ("reference", "vultus"):
            f = by[name]
            kinds = [k for k in next(iter(f["at"].values())) if k.startswith("apcer_") and k != "apcer_all"]
            lines += [f"**{name}**" + (" (the authors' rule: live when class 1 wins the argmax, "
                                        "reported at threshold 0.5 on the mean live probability)" if name == "reference"
                                        else ""), "",
                      "| operating point | threshold | " + " | ".join(k.replace("apcer_", "APCER ") for k in kinds)
                      + " | BPCER |", "|---" * (3 + len(kinds)) + "|"]
            for p, e in f["at"].items():
                lines.append(f"| {p} | {e['threshold']:.4f} | " + " | ".join(pct(e[k]) for k in kinds)
                             + f" | {pct(e['bpcer'])} |")
            lines += ["", f"BPCER @ APCER 1% on these faces: {pct(f['bpcer_at_apcer_0.01'])}; "
                          f"@ APCER 5%: {pct(f['bpcer_at_apcer_0.05'])}.", ""]
    ns = r["never_scored"]
    lines += ["## Held out and clean: the presentations never scored before", "", "Rule (written before this "
              "run): " + ns["rule"], "",
              "Operating points unchanged from the previous run: "
              + ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in r["points_unchanged"].items()) + ". "
              f"Presentations: {ns['n']} ({ns['live']} live).", ""]
    for name in ("reference", "vultus"):
        f = ns["by"][name]
        kinds = [k for k in next(iter(f["at"].values())) if k.startswith("apcer_") and k != "apcer_all"]
        lines += [f"**{name}**", "", "| operating point | threshold | "
                  + " | ".join(k.replace("apcer_", "APCER ") for k in kinds) + " |", "|---" * (2 + len(kinds)) + "|"]
        for pname, e in f["at"].items():
            lines.append(f"| {pname} | {e['threshold']:.4f} | " + " | ".join(pct(e[k]) for k in kinds) + " |")
        lines.append("")
    lines += ["No other presentation in `../shared/data/antispoof` is clean: its MANIFEST lists NUAA (all 16 "
              "subjects are used here, and the held-out subjects' figures were printed before the operating "
              "points were re-chosen), micro_print_screen (its acquired crops were reported in that same first "
              "run), the two videos and `antispoof_samples` (looked at when the operating points were placed). "
              "A clean estimate of APCER and BPCER needs a new data set or new subjects.", ""]
    ev = r["every_image"]
    lines += ["## Every labelled image, as `vultus liveness` calls it (reference, the shipped score)", "",
              "Training subjects included: this describes the issue's \"live for the live samples, spoof for "
              "the attacks\", it estimates nothing (the training subjects' live refusals at each point are "
              "its definition: 10% and 2%).", "",
              "| operating point | set | live refused | attacks accepted |", "|---|---|---|---|"]
    for pname, by in ev["at"].items():
        for sname, e in by.items():
            lines.append(f"| {pname} | {sname} | {e['live_refused']} of {e['live']} | "
                         f"{e['attacks_accepted']} of {e['attacks']} |")
    lines += ["", f"No threshold calls every image right: the lowest live score is {ev['lowest_live']:.3f} and the "
              f"highest attack's {ev['highest_attack']:.3f}.", ""]
    ms = r["ms_per_face"]
    lines += ["## Latency", "",
              f"Per face, median, after detection: reference (both networks) {ms['reference']:.2f} ms; "
              f"vultus (both networks + cues) {ms['vultus']:.2f} ms. One face at a time, timed when the features were "
              f"extracted ({ms['timed']}; the features are cached in bench/out/, `--refresh` times them again).", "",
              "## DET curve", "", "![DET](liveness-det.png)", "",
              "Operating points, chosen on the training subjects: `door` = the threshold that refuses 10% of "
              "their live faces, `check-in` = 2% (the default is `door`). They are placed from the live side "
              "because the training attacks (NUAA prints) all score far below every live face: a threshold "
              "at APCER 1% or 5% on them would sit at the bottom of that gap (0.033 and 0.005 for the "
              "reference on the first run of this script, 2026-11-29 15:16 UTC), where attacks unlike NUAA's "
              "pass: the authors' own print sample image_F1 scores 0.22, four of the five screen replays then acquired "
              "0.04-0.08. "
              "That first run also used those thresholds for its held-out tables, which were then replaced: "
              "the held-out figures at the operating points above are therefore not clean (the points were "
              "chosen on the training subjects only, but after the held-out figures of other thresholds had "
              "been seen). The adoption decision (development split only) is the same in both runs. "
              f"The authors' argmax rule and a 0.5 threshold on the mean live probability differ on "
              f"{r['authors_rule_vs_half']} face(s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Which face of a photo is the person: subject-choice policies for enroll, measured on LFW.

    python bench/enroll_subject.py      # section "enroll-subject" of bench/results/identify.md

Protocol. Every LFW person with at least two images: their first photo (by file name) is
enrolled, their second is the check. A policy (vultus.gallery.inference.choose_subject) takes one
face of the first photo or refuses it. A taken face is *verified* when it matches the face nearest
the centre of the second photo (LFW's deep-funneled photos are cropped around the named person) at
the SFace threshold for a false-match rate of 1e-3 per comparison (LFW calibration); a taken face
that does not is *unverified*: the wrong person enrolled under the label (a background face), or the
right one that does not match its second photo (about 2% of people at this rate, whatever the
policy, which the single-face photos show).

Constants. LFW's people are split at random (seed 0) in two halves. On half A the center_largest
constants are chosen over a grid (area share 0.5..0.9, centre margin 0..0.2 of the half-diagonal)
by this rule, written before the run: maximise verified - 10 x unverified (a face enrolled under the
wrong name costs ten people not enrolled); on a tie the larger area share, then the larger margin.
Half B reports today's policy ("only") against center_largest with the chosen constants, and
"largest" and "central" for reference; then both through the real `Gallery.enroll` (detection,
choice, quality gate, storage), the stored face verified against the second photo the same way.

Detections and embeddings of every face of both photos are cached in the model cache dir.
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

GRID_SHARE = (0.5, 0.6, 0.7, 0.8, 0.9)
GRID_MARGIN = (0.0, 0.05, 0.1, 0.15, 0.2)
WRONG_COST = 10
CHECK_FMR = 1e-3


def people_photos(root: Path) -> list[tuple[str, Path, Path]]:
    out = []
    for d in sorted((root / "images").iterdir()):
        photos = sorted(d.glob("*.jpg"))
        if len(photos) >= 2:
            out.append((d.name, photos[0], photos[1]))
    return out


def detect_all(people, cache: Path):
    """Per person: (faces of photo 1 with embeddings, shape 1, reference vector of photo 2 or None)."""
    from vultus import Engine
    from vultus.imageio import load_image
    from vultus.types import Box, Face

    rel = np.array([f"{p}|{a.name}|{b.name}" for p, a, b in people])
    if cache.is_file():
        d = np.load(cache, allow_pickle=False)
        if list(d["rel"]) == list(rel):
            print(f"detections from {cache}", flush=True)
            return _unpack(d, len(people), Box, Face)
    engine = Engine()
    rows_box, rows_score, rows_vec, rows_owner, shapes, refs = [], [], [], [], [], []
    t0 = time.perf_counter()
    for s in range(0, len(people), 16):
        chunk = people[s:s + 16]
        imgs1 = [load_image(a) for _, a, _ in chunk]
        imgs2 = [load_image(b) for _, _, b in chunk]
        r1 = engine.embed_batch(imgs1)
        r2 = engine.embed_batch(imgs2)
        for k, (img1, img2, a, b) in enumerate(zip(imgs1, imgs2, r1, r2, strict=True)):
            i = s + k
            shapes.append(img1.shape[:2])
            for f in a.value if a.ok else []:
                rows_box.append(f.box.as_tuple())
                rows_score.append(f.score)
                rows_vec.append(f.embedding.vector)
                rows_owner.append(i)
            faces2 = b.value if b.ok else []
            if faces2:
                h, w = img2.shape[:2]
                c = min(faces2, key=lambda f: ((f.box.x1 + f.box.x2) / 2 - w / 2) ** 2
                        + ((f.box.y1 + f.box.y2) / 2 - h / 2) ** 2)
                refs.append(c.embedding.vector)
            else:
                refs.append(np.full(128, np.nan, np.float32))
        print(f"  {min(len(people), s + 16)}/{len(people)} people, {time.perf_counter() - t0:.0f} s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.npz")
    np.savez(tmp, rel=rel, box=np.array(rows_box, np.float32).reshape(-1, 4), score=np.array(rows_score, np.float32),
             vec=np.array(rows_vec, np.float32).reshape(-1, 128), owner=np.array(rows_owner, np.int64),
             shape=np.array(shapes, np.int64), ref=np.array(refs, np.float32))
    os.replace(tmp, cache)
    return _unpack(np.load(cache), len(people), Box, Face)


def _unpack(d, n, Box, Face):
    faces = [[] for _ in range(n)]
    vecs = [[] for _ in range(n)]
    for box, score, vec, owner in zip(d["box"], d["score"], d["vec"], d["owner"], strict=True):
        faces[owner].append(Face(box=Box(*map(float, box)), score=float(score),
                                 landmarks=np.zeros((5, 2), np.float32), detector="yunet"))
        vecs[owner].append(vec)
    refs = d["ref"]
    return [(faces[i], tuple(d["shape"][i]), np.array(vecs[i]), None if np.isnan(refs[i]).any() else refs[i])
            for i in range(n)]


def evaluate(data, members, options, threshold) -> dict:
    from vultus.gallery.inference import choose_subject

    c = {"people": len(members), "taken": 0, "verified": 0, "unverified": 0, "refused_none": 0,
         "refused_unclear": 0, "multi": 0, "multi_taken": 0, "multi_verified": 0, "multi_unverified": 0,
         "no_reference": 0}
    for i in members:
        faces, shape, vecs, ref = data[i]
        multi = len(faces) > 1
        c["multi"] += multi
        idx, _ = choose_subject(faces, options, shape)
        if idx is None:
            c["refused_none" if not faces else "refused_unclear"] += 1
            continue
        c["taken"] += 1
        c["multi_taken"] += multi
        if ref is None:
            c["no_reference"] += 1
            continue
        ok = float(vecs[idx] @ ref) >= threshold
        c["verified" if ok else "unverified"] += 1
        if multi:
            c["multi_verified" if ok else "multi_unverified"] += 1
    return c


def through_gallery(people, data, members, subject: str, threshold: float, tmp: Path) -> dict:
    """The first photos of `members` through Gallery.enroll (CSV), then each stored face
    verified against the person's second photo."""
    from vultus.gallery import Gallery

    csv = tmp / f"{subject}.csv"
    lines = ["path,person"] + [f"{people[i][1]},{people[i][0]}" for i in members]
    csv.write_text("\n".join(lines) + "\n")
    with Gallery(tmp / f"{subject}.db") as g:
        t0 = time.perf_counter()
        report = g.enroll_csv(csv, allow_outside=True, workers=0, subject=subject)
        seconds = time.perf_counter() - t0
        coll = g.collection("default")
        pv = g.store.person_vectors(coll.id, coll.contract.key, [p.id for p in g.people()])
        names = {p.id: p.name for p in g.people()}
    ref_of = {people[i][0]: data[i][3] for i in members}
    verified = unverified = 0
    for pid, v in zip(pv.person_ids, pv.vectors, strict=True):
        ref = ref_of[names[int(pid)]]
        if ref is None:
            continue
        if float(v @ ref) >= threshold:
            verified += 1
        else:
            unverified += 1
    reasons: dict[str, int] = {}
    for o in report.outcomes:
        if o.status != "enrolled":
            key = ("no face clearly the subject" if o.reason.startswith("no face is clearly")
                   else "several faces of similar size" if "faces of similar size" in o.reason
                   else o.reason.split(" (")[0].split(";")[0])
            reasons[key] = reasons.get(key, 0) + 1
    return {"subject": subject, "images": len(members), "enrolled": report.enrolled, "verified": verified,
            "unverified": unverified, "reasons": reasons, "seconds": seconds,
            "multi_taken": sum(1 for o in report.outcomes if o.subject is not None and o.subject.faces > 1
                               and o.status == "enrolled")}


def main() -> int:
    from dataclasses import replace

    from vultus.gallery.inference import EnrollOptions
    from vultus.models.calibration import operating_point
    from vultus.models.registry import cache_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None)
    ap.add_argument("--skip-gallery", action="store_true", help="leave out the run through Gallery.enroll")
    args = ap.parse_args()
    root = args.lfw or (data_root() / "lfw")
    people = people_photos(root)
    data = detect_all(people, cache_dir() / "bench-enroll-subject" / "lfw-first-second.npz")
    threshold = operating_point("sface", CHECK_FMR).threshold
    rng = np.random.default_rng(0)
    order = rng.permutation(len(people))
    half_a, half_b = sorted(order[: len(people) // 2].tolist()), sorted(order[len(people) // 2:].tolist())
    base = EnrollOptions()
    grid = []
    for share in GRID_SHARE:
        for margin in GRID_MARGIN:
            c = evaluate(data, half_a, replace(base, subject="center_largest", subject_area_share=share,
                                               subject_centre_margin=margin), threshold)
            grid.append((c["verified"] - WRONG_COST * c["unverified"], share, margin, c))
    best = max(grid, key=lambda g: (g[0], g[1], g[2]))
    _, share, margin, _ = best
    print(f"chosen on half A: area share {share}, centre margin {margin}", flush=True)
    policies = [("only (today's default)", replace(base, subject="only")),
                (f"center_largest ({share:g}, {margin:g})", replace(base, subject="center_largest",
                                                                     subject_area_share=share,
                                                                     subject_centre_margin=margin)),
                ("largest", replace(base, subject="largest")), ("central", replace(base, subject="central"))]
    results = [(name, evaluate(data, half_b, opts, threshold)) for name, opts in policies]
    a_only = evaluate(data, half_a, replace(base, subject="only"), threshold)
    gallery_rows = []
    if not args.skip_gallery:
        if (share, margin) != (base.subject_area_share, base.subject_centre_margin):
            print("note: the shipped constants differ from the chosen ones; the gallery run uses the shipped ones",
                  flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for subject in ("only", "center_largest"):
                r = through_gallery(people, data, half_b, subject, threshold, Path(tmp))
                gallery_rows.append(r)
                print(f"gallery {subject}: {r}", flush=True)
    lines = write_lines(people, half_a, half_b, grid, best, a_only, results, gallery_rows, threshold, base)
    out = RESULTS / "identify.md"
    write_section(out, "enroll-subject", lines)
    print(f"wrote {out}")
    return 0


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def write_lines(people, half_a, half_b, grid, best, a_only, results, gallery_rows, threshold, base) -> list[str]:
    _, share, margin, ca = best
    lines = [
        "## Enrolling the right face: subject choice at enroll",
        "",
        f"- Date: {stamp()}; machine: {machine()}; load average {load_average()}",
        f"- Data: the {len(people)} LFW people with two or more photos; the first photo (by file name) is enrolled, "
        "the second checks it. A face taken from the first photo is *verified* when it matches the face nearest "
        f"the centre of the second at the SFace threshold for FMR {CHECK_FMR:g} ({threshold:.4f}); *unverified* "
        "taken faces are the wrong person enrolled under the label, or the right person not matching their second "
        "photo (the single-face photos show how often that happens whatever the policy).",
        f"- Split: people at random in two halves (seed 0): A ({len(half_a)}) chooses the center_largest constants, "
        f"B ({len(half_b)}) reports. Rule, written before the run: maximise verified - {WRONG_COST} x unverified "
        "on A; ties to the larger area share, then the larger margin.",
        "",
        f"Chosen on A: area share **{share:g}** (faces at least that share of the largest face's area compete), "
        f"centre margin **{margin:g}** of the half-diagonal (the nearest competitor must be that much nearer the "
        f"centre than the next). On A: {ca['verified']} verified, {ca['unverified']} unverified, "
        f"{ca['refused_unclear']} refused as unclear (today's `only`: {a_only['verified']} verified, "
        f"{a_only['unverified']} unverified, {a_only['refused_unclear']} refused).",
        "",
        "Grid on half A (score = verified - 10 x unverified; refused = no face clearly the subject):",
        "",
    ]
    if len({g[0] for g in grid}) == 1:
        lines += ["Every setting scored the same on A: in LFW's photos the named person is at the centre and the "
                  "other faces are well away from it, so neither constant ever decides; the rule's tie-break chose. "
                  "LFW therefore supports center_largest over `only` but does not pin its constants; a photo "
                  "with two faces of similar size near its centre is refused with any of them.", ""]
    lines += [
        "| area share | " + " | ".join(f"margin {m:g}" for m in GRID_MARGIN) + " |",
        "|---|" + "---|" * len(GRID_MARGIN),
    ]
    for s in GRID_SHARE:
        cells = []
        for m in GRID_MARGIN:
            g = next(x for x in grid if x[1] == s and x[2] == m)
            cells.append(f"{g[0]} ({g[3]['unverified']} unv., {g[3]['refused_unclear']} ref.)")
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Half B ({len(half_b)} people), the choice alone (no quality gate):",
        "",
        "| policy | face taken | verified | unverified | refused: no face | refused: none clearly the subject | "
        "photos with 2+ faces | of those taken | verified | unverified |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in results:
        lines.append(f"| {name} | {c['taken']} ({_pct(c['taken'], c['people'])}) | {c['verified']} | "
                     f"{c['unverified']} ({_pct(c['unverified'], c['taken'])}) | {c['refused_none']} | "
                     f"{c['refused_unclear']} | {c['multi']} | {c['multi_taken']} | {c['multi_verified']} | "
                     f"{c['multi_unverified']} |")
    if results and results[0][1]["no_reference"]:
        lines += ["", f"{results[0][1]['no_reference']} people's second photo had no detected face: a face taken "
                  "for them is counted as taken but neither verified nor unverified."]
    if gallery_rows:
        lines += [
            "",
            f"Half B through `Gallery.enroll` (a CSV of the first photos: detection, choice, quality gate, storage; "
            f"shipped constants {base.subject_area_share:g} / {base.subject_centre_margin:g}), each stored face "
            "verified against the second photo:",
            "",
            "| subject | images | enrolled | of them from a photo with 2+ faces | verified | unverified | "
            "not enrolled, why | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in gallery_rows:
            why = ", ".join(f"{v} {k}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {r['subject']} | {r['images']} | {r['enrolled']} ({_pct(r['enrolled'], r['images'])}) | "
                         f"{r['multi_taken']} | {r['verified']} | {r['unverified']} | {why} | {r['seconds']:.0f} |")
    lines += [
        "",
        "Caveat: LFW's photos are cropped around the named person, so the subject is near the centre by "
        "construction; on photos framed otherwise (a group photo, a person off to one side) center_largest refuses "
        "more or takes the wrong face more often than here, and `only` (`--subject only`) stays available.",
        "",
        "The enroll throughput section above was measured before center_largest became the default: its "
        "photos refused as \"faces of similar size\" were refused by `only`. The seconds in the last table are "
        "wall time on a shared, loaded machine (load average above), not a speed comparison.",
        "",
        "Command: `python bench/enroll_subject.py`",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())

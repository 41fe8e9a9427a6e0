"""Make the synthetic decoy identities `vultus cloak` pulls faces toward by default.

    python train/cloak_decoys.py          # writes src/vultus/models/weights/cloak-decoys-v1.json (about 10 minutes)

A cloak pushes a face away from its own identity and toward a distant "decoy" identity (Fawkes,
CLIP2Protect). Fawkes ships photos of celebrities as decoys; vultus ships no person's face or embedding.
Its decoys are synthetic identities, one unit vector per embedder of the search (sface, dlib-resnet):

1. Every LFW image of the *development* people (the split bench/cloak.py uses: sha1 of the name, even
   first byte; the cloak is reported on the other half) is embedded by both networks, face nearest the
   centre, as vultus runs them.
2. A joint Gaussian (mean and covariance of the 256 numbers [sface; dlib-resnet], shrunk slightly towards
   its diagonal) is fitted to those vectors: aggregate statistics, no one's vector is kept. Drawing from it
   gives a pair of vectors that sit where faces sit in both spaces and co-vary as one face's do.
3. Candidates are drawn (seed fixed) and rejected when any development image matches them at the
   embedder's threshold for FMR 1e-3 (calibration.json), in either space: a decoy is nobody in that data,
   and "plausible" (their cosine to the mean face direction inside the 2nd-98th percentile of real images').
4. DECOYS of the survivors are kept by farthest-point selection on the summed cosine, so that every face
   has a decoy far from it; no two decoys match each other at FMR 1e-3.

The JSON holds the vectors (7 decimals), the seed and what they were made from; its sha256 is pinned in
src/vultus/models/catalog.py (entry `cloak-decoys`), so a change must update it there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "vultus" / "models" / "weights" / "cloak-decoys-v1.json"
EMBEDDERS = ("sface", "dlib-resnet")
DECOYS = 32
CANDIDATES = 20000
SEED = 2026
SHRINK = 0.05  # covariance shrinkage towards its diagonal: 256 dimensions from a few thousand images


def development_images(lfw: Path) -> list[Path]:
    """Every image of the LFW people bench/cloak.py does not report on (even first sha1 byte)."""
    out = []
    for d in sorted(p for p in (lfw / "images").iterdir() if p.is_dir()):
        if hashlib.sha1(d.name.encode()).digest()[0] % 2 == 0:
            out.extend(sorted(d.glob("*.jpg")))
    return out


def nearest_centre(faces, shape):
    h, w = shape[:2]
    return min(faces, key=lambda f: (f.box.x1 + f.box.x2 - w) ** 2 + (f.box.y1 + f.box.y2 - h) ** 2)


def embed_all(paths: list[Path], cache: Path) -> dict[str, np.ndarray]:
    """Per embedder, (N, 128) unit vectors of the face nearest each image's centre (rows of images where
    YuNet finds no face are dropped from both)."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    rel = np.array([str(p) for p in paths])
    if cache.is_file():
        data = np.load(cache)
        if list(data["paths"]) == list(rel):
            return {n: data[n] for n in EMBEDDERS}
    det = get_model("yunet", task="detect", threads=1)
    models = {n: get_model(n, task="embed", threads=1) for n in EMBEDDERS}
    rows: dict[str, list[np.ndarray]] = {n: [] for n in EMBEDDERS}
    t0 = time.time()
    for k in range(0, len(paths), 32):
        imgs = [load_image(p) for p in paths[k:k + 32]]
        items = []
        for img, faces in zip(imgs, det.detect(imgs), strict=True):
            if faces:
                items.append((img, nearest_centre(faces, img.shape)))
        for n, m in models.items():
            rows[n].extend(m.embed(items))
        if k % 640 == 0:
            print(f"  {k + len(imgs)}/{len(paths)} images, {time.time() - t0:.0f} s", flush=True)
    out = {n: np.asarray(v, np.float32) for n, v in rows.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=rel, **out)
    return out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_decoys(vectors: dict[str, np.ndarray], thresholds: dict[str, float], seed: int = SEED,
                n_decoys: int = DECOYS, n_candidates: int = CANDIDATES) -> tuple[dict[str, np.ndarray], dict]:
    rng = np.random.default_rng(seed)
    joint = np.concatenate([vectors[n] for n in EMBEDDERS], axis=1).astype(np.float64)
    mu = joint.mean(axis=0)
    cov = np.cov(joint, rowvar=False)
    cov = (1 - SHRINK) * cov + SHRINK * np.diag(np.diag(cov))
    draws = rng.multivariate_normal(mu, cov, size=n_candidates, method="cholesky")
    dims = [vectors[n].shape[1] for n in EMBEDDERS]
    parts = dict(zip(EMBEDDERS, np.split(draws, np.cumsum(dims)[:-1], axis=1), strict=True))
    cand = {n: unit(p) for n, p in parts.items()}
    keep = np.ones(n_candidates, bool)
    stats = {}
    for n in EMBEDDERS:
        real = vectors[n].astype(np.float64)
        centre = unit(real.mean(axis=0))
        lo, hi = np.percentile(real @ centre, [2, 98])
        along = cand[n] @ centre
        plausible = (along >= lo) & (along <= hi)
        nearest = np.concatenate([(cand[n][s:s + 2000] @ real.T).max(axis=1) for s in range(0, n_candidates, 2000)])
        nobody = nearest < thresholds[n]
        stats[n] = {"plausible": int(plausible.sum()), "match nobody": int(nobody.sum()),
                    "real images' cosine to the mean direction, 2nd-98th percentile": [round(lo, 4), round(hi, 4)]}
        keep &= plausible & nobody
    idx = np.flatnonzero(keep)
    if len(idx) < n_decoys:
        raise SystemExit(f"only {len(idx)} candidates survive; draw more")
    summed = sum(cand[n][idx] @ cand[n][idx].T for n in EMBEDDERS)  # summed cosine between survivors
    chosen = [int(np.argmin(summed.mean(axis=1)))]  # the survivor least like the others starts
    closest = summed[chosen[0]].copy()
    while len(chosen) < n_decoys:
        j = int(np.argmin(closest))  # farthest from every decoy chosen so far
        chosen.append(j)
        closest = np.maximum(closest, summed[j])
    sel = idx[chosen]
    decoys = {n: cand[n][sel].astype(np.float32) for n in EMBEDDERS}
    for n in EMBEDDERS:
        pair = decoys[n] @ decoys[n].T
        np.fill_diagonal(pair, -1)
        stats[n]["largest cosine between two decoys"] = round(float(pair.max()), 4)
        if pair.max() >= thresholds[n]:
            raise SystemExit(f"{n}: two decoys match each other; draw more candidates")
    stats["candidates"] = n_candidates
    stats["survivors"] = int(len(idx))
    return decoys, stats


def as_json(doc: dict) -> str:
    """The file's text: indented, with each decoy's vector on one line."""
    head = {k: v for k, v in doc.items() if k != "embedders"}
    parts = [f' "{n}": [\n' + ",\n".join("  " + json.dumps(r) for r in rows) + "\n ]"
             for n, rows in doc["embedders"].items()]
    return json.dumps(head, indent=1)[:-2] + ',\n "embedders": {\n' + ",\n".join(parts) + "\n }\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="LFW folder (default ../shared/data/lfw)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--cache", default=str(ROOT / "train" / "out" / "cloak-decoys-lfw-dev.npz"))
    args = ap.parse_args()

    from vultus.data import data_root
    from vultus.models.calibration import operating_point

    lfw = Path(args.data) if args.data else data_root() / "lfw"
    paths = development_images(lfw)
    print(f"{len(paths)} LFW images of development people", flush=True)
    vectors = embed_all(paths, Path(args.cache))
    thresholds = {n: operating_point(n, 1e-3).threshold for n in EMBEDDERS}
    decoys, stats = make_decoys(vectors, thresholds)
    doc = {
        "version": "v1",
        "made_by": "train/cloak_decoys.py",
        "seed": SEED,
        "from": f"a joint Gaussian (covariance shrunk {SHRINK} to its diagonal) fitted to the sface and dlib-resnet "
                f"vectors of {len(vectors['sface'])} LFW images of the development people (bench/cloak.py's split); "
                "no person's vector is stored",
        "rejected_when": "any development image matches at the embedder's FMR 1e-3 threshold, or the cosine to the "
                         "mean face direction is outside the real images' 2nd-98th percentile",
        "thresholds_fmr_1e-3": {n: round(t, 6) for n, t in thresholds.items()},
        "stats": stats,
        "embedders": {n: [[round(float(x), 7) for x in row] for row in decoys[n]] for n in EMBEDDERS},
    }
    Path(args.out).write_text(as_json(doc))
    digest = hashlib.sha256(Path(args.out).read_bytes()).hexdigest()
    print(json.dumps(stats, indent=1))
    print(f"wrote {args.out}: {DECOYS} decoys, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

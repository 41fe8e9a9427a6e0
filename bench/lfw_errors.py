"""The LFW View 2 pairs that fused gets wrong, and what its two components say of each.

    python bench/lfw.py           # first: embeds LFW and caches the embeddings
    python bench/lfw_errors.py    # seconds; results to bench/results/lfw-errors.md

Uses the decisions bench/lfw.py scores: each fold's threshold fitted on the other nine, fused's
weights too. A pair is listed by its position in pairs.txt (0-based, file order) with both images,
each component's cosine and whether that component alone decides it wrongly. Pairs whose label is
known to be wrong are marked (KNOWN_LABEL_ERRORS); they still count as errors, as the protocol says.
Lists names of the people in LFW, never images: the data stays outside the project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, stamp  # noqa: E402
from lfw import cached_embeddings, fit_fusion, pair_scores  # noqa: E402
from vultus.data import data_root  # noqa: E402
from vultus.evaluate.lfw import read_lfw_pairs  # noqa: E402
from vultus.evaluate.metrics import kfold_accuracy  # noqa: E402
from vultus.models.registry import cache_dir, get_spec  # noqa: E402

# Images whose LFW label names the wrong person, with what shows that. Looked at by eye, and only
# entered where a public source agrees.
KNOWN_LABEL_ERRORS = {
    "Jim_OBrien/Jim_OBrien_0001.jpg": "a different man from Jim_OBrien_0002 and _0003 (two basketball coaches "
    "share the name); LFW's errata list Jim_OBrien",
}


def wrong_decisions(scores, same, folds) -> np.ndarray:
    """True where the pair's decision at its fold's threshold (fitted on the other folds) is wrong."""
    kf = kfold_accuracy(scores, same, folds)
    return (scores >= kf.thresholds[folds]) != same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: shared data)")
    ap.add_argument("--cache", type=Path, default=None, help="bench/lfw.py's embedding cache")
    ap.add_argument("--out", type=Path, default=RESULTS / "lfw-errors.md")
    args = ap.parse_args()
    root = args.lfw or (data_root() / "lfw")
    cache = args.cache or cache_dir() / "bench-lfw"
    pairs = read_lfw_pairs(root)
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    first, second = get_spec("fused").components
    scored = {}
    for name in (first, second):
        hit = cached_embeddings(cache, name, paths, root)
        if hit is None:
            print(f"error: no cached {name} embeddings for this LFW and model version in {cache}; "
                  "run python bench/lfw.py first", file=sys.stderr)
            return 2
        scored[name] = pair_scores(*hit, index, pairs)
    same, folds = scored[first][1], scored[first][2]
    fused, _ = fit_fusion(scored[first][0], scored[second][0], same, folds)
    wrong = {first: wrong_decisions(scored[first][0], same, folds),
             second: wrong_decisions(scored[second][0], same, folds),
             "fused": wrong_decisions(fused, same, folds)}
    rel = {p: str(p.relative_to(root / "images")) for p in paths}
    label_error = np.array([rel[p.path_a] in KNOWN_LABEL_ERRORS or rel[p.path_b] in KNOWN_LABEL_ERRORS
                            for p in pairs])
    write_report(args.out, pairs, rel, same, folds, scored, fused, wrong, label_error, first, second)
    print(f"wrote {args.out}")
    return 0


def write_report(out, pairs, rel, same, folds, scored, fused, wrong, label_error, first, second) -> None:
    f = wrong["fused"]
    lines = [
        "# The LFW View 2 pairs fused gets wrong",
        "",
        f"{stamp()}. Produced by `python bench/lfw_errors.py` from bench/lfw.py's cached embeddings: the same "
        "decisions as bench/results/lfw.md (each fold's threshold, and fused's weights, fitted on the other nine "
        "folds).",
        "",
        "| pipeline | wrong pairs of 6000 | same person, rejected | different people, accepted |",
        "|---|---:|---:|---:|",
    ]
    for name, w in wrong.items():
        lines.append(f"| {name} | {int(w.sum())} | {int((w & same).sum())} | {int((w & ~same).sum())} |")
    both = wrong[first] & wrong[second]
    lines += [
        "",
        f"Of fused's {int(f.sum())} errors, {int((f & wrong[first]).sum())} are also wrong for {first} alone, "
        f"{int((f & wrong[second]).sum())} for {second} alone, {int((f & both).sum())} for both and "
        f"{int((f & ~wrong[first] & ~wrong[second]).sum())} for neither. Both components are wrong together on "
        f"{int(both.sum())} pairs, and fused is wrong on {int((both & f).sum())} of those: fusion rescues pairs "
        "that one network gets right, rarely pairs that both get wrong.",
        "",
    ]
    if (f & label_error).any():
        n = int((f & label_error).sum())
        lines += [
            f"{n} of fused's errors are pairs whose label is known to be wrong (marked below): fused decides them "
            "the way the pictures warrant, and the protocol counts them as errors, as does lfw.md. With those "
            f"labels corrected the same decisions would score {6000 - int(f.sum()) + n} of 6000 "
            f"({(6000 - int(f.sum()) + n) / 60:.2f}%).",
            "",
        ]
    lines += [
        f"| pair | fold | label | image a | image b | {first} cosine | {second} cosine | wrong alone for | note |",
        "|---:|---:|---|---|---|---:|---:|---|---|",
    ]
    for i in np.flatnonzero(f):
        p = pairs[i]
        alone = ", ".join(n for n in (first, second) if wrong[n][i]) or "neither"
        note = "; ".join(KNOWN_LABEL_ERRORS[rel[x]] for x in (p.path_a, p.path_b) if rel[x] in KNOWN_LABEL_ERRORS)
        lines.append(f"| {i} | {folds[i] + 1} | {'same' if same[i] else 'different'} | {rel[p.path_a]} | "
                     f"{rel[p.path_b]} | {scored[first][0][i]:.3f} | {scored[second][0][i]:.3f} | {alone} | "
                     f"{note} |")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

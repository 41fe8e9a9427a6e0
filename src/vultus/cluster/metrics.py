"""How close a clustering is to the truth: BCubed, pairwise and NMI.

Faces labelled -1 (unsorted) count as clusters of one: leaving a face alone is a decision, and it
costs recall when the person has other faces.

- BCubed (Bagga and Baldwin 1998; Amigo et al. 2009): per face, precision is the share of its
  cluster that is its person, recall the share of its person that is in its cluster; averaged over
  faces. Every face weighs the same, so many small people count as much as one large one.
- Pairwise: over all pairs of faces put together, the share that are one person (precision); over
  all pairs of one person, the share put together (recall). Large people dominate (pairs grow
  with the square of size): the figure Otto et al. report (0.87 on LFW for approximate rank-order).
- NMI: mutual information between clusters and people over the square root of their entropies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterScores:
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    nmi: float
    clusters: int  # clusters of two or more faces
    unsorted: int  # faces left alone
    people: int  # people in the truth
    people_with_several: int  # people with two or more faces

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _singletons_apart(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, np.int64).copy()
    alone = pred < 0
    pred[alone] = pred.max(initial=-1) + 1 + np.arange(int(alone.sum()))
    return pred


def score_clusters(pred, truth) -> ClusterScores:
    """Compare predicted labels (-1 = unsorted) with true identities (any hashable labels)."""
    pred = np.asarray(pred)
    _, truth_ids = np.unique(np.asarray(truth), return_inverse=True)
    n = len(pred)
    p = _singletons_apart(pred)
    _, p = np.unique(p, return_inverse=True)
    # Contingency counts: cell (cluster, person).
    cell = p.astype(np.int64) * (truth_ids.max() + 1) + truth_ids
    _, cell_idx, cell_n = np.unique(cell, return_inverse=True, return_counts=True)
    cluster_n = np.bincount(p)
    person_n = np.bincount(truth_ids)
    per_face_cell = cell_n[cell_idx]
    bp = float(np.mean(per_face_cell / cluster_n[p]))
    br = float(np.mean(per_face_cell / person_n[truth_ids]))
    pairs = lambda x: x.astype(np.float64) * (x - 1) / 2  # noqa: E731
    tp = pairs(cell_n).sum()
    pred_pairs, true_pairs = pairs(cluster_n).sum(), pairs(person_n).sum()
    pp = float(tp / pred_pairs) if pred_pairs else 1.0
    pr = float(tp / true_pairs) if true_pairs else 1.0
    # NMI (sqrt normalisation).
    pc, pt, pj = cluster_n / n, person_n / n, cell_n / n
    hc = -np.sum(pc * np.log(pc))
    ht = -np.sum(pt * np.log(pt))
    rows = np.unique(cell) // (truth_ids.max() + 1)
    cols = np.unique(cell) % (truth_ids.max() + 1)
    mi = float(np.sum(pj * np.log(pj / (pc[rows] * pt[cols]))))
    # One side without entropy (everything in one cluster, or one person): NMI is 0 unless both are.
    nmi = mi / np.sqrt(hc * ht) if hc > 0 and ht > 0 else float(hc == ht)
    return ClusterScores(
        bcubed_precision=bp, bcubed_recall=br, bcubed_f=_f(bp, br),
        pairwise_precision=pp, pairwise_recall=pr, pairwise_f=_f(pp, pr), nmi=float(nmi),
        clusters=int(len(np.unique(pred[pred >= 0]))), unsorted=int((pred < 0).sum()),
        people=int(len(person_n)), people_with_several=int((person_n > 1).sum()))

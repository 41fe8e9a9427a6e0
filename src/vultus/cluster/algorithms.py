"""Clustering algorithms over unit face embeddings (cosine similarity = dot product).

The shipped one is `average_linkage_knn`: average-linkage agglomeration whose candidate merges come
from a k-nearest-neighbour graph (built by the gallery's vector index, never an all-pairs matrix),
with cannot-link constraints. Average linkage on dot products has a closed form: the mean similarity
between every face of A and every face of B is sum(A) . sum(B) / (|A| |B|), so each cluster keeps only
the sum of its unit vectors and a merge is scored exactly, however many pairs the kNN graph missed.
Greedy best-first merging is correct for average linkage because it is reducible (merging two
clusters never brings a third closer than it was to one of them).

The others are here so bench/cluster.py compares them on the same embeddings: DBSCAN (what Immich,
PhotoPrism and Nextcloud do), dlib's chinese whispers (face_recognition's example), exact dense
average linkage (scipy), and approximate rank-order clustering (Otto et al. 2017).

Every function returns int64 labels, one per face, with -1 for faces left alone ("unsorted").
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Queries per block when the kNN graph is built: bounds the (block x n) similarity matrix an exact
# index computes at once (512 x 1M float32 = 2 GB would be too much; 256 x 1M = 1 GB).
KNN_BLOCK = 256


@dataclass(frozen=True)
class KnnGraph:
    """The k nearest other faces of each face in `rows` (all faces when None): (len(rows), k)
    indices (-1 where fewer) and similarities."""

    neighbors: np.ndarray
    similarities: np.ndarray
    rows: np.ndarray | None = None

    def sources(self) -> np.ndarray:
        return np.arange(len(self.neighbors)) if self.rows is None else self.rows


def knn_graph(vectors: np.ndarray, k: int, *, index_kind: str = "exact", block: int | None = None,
              index=None, rows: np.ndarray | None = None, min_similarity: float | None = None) -> KnnGraph:
    """The k nearest neighbours of every row (or of `rows` only: an incremental run needs the
    neighbours of its new faces, not of every face), found by the gallery's vector index (search/):
    exact (a blocked matrix product) or HNSW. A prebuilt `index` whose keys are row numbers can be
    passed instead (a gallery collection's, for example). With `min_similarity`, neighbours below it
    are left out (the shipped algorithm never uses them), which the exact index does much faster."""
    from vultus.gallery.search import make_index

    vectors = np.ascontiguousarray(vectors, np.float32)
    n = len(vectors)
    if index is None:
        index = make_index(index_kind, vectors.shape[1])
        index.add(np.arange(n, dtype=np.int64), vectors)
    block = block or max(16, min(KNN_BLOCK, (1 << 28) // max(1, 4 * n)))
    if rows is None and min_similarity is not None and hasattr(index, "neighbors_above"):
        # Every face's neighbours: the exact index's self-join computes each pair once.
        nbr, sim = index.neighbors_above(k, min_similarity, block=block)
        order = np.argsort(index.keys(), kind="stable")  # keys are row numbers: back to row order
        return KnnGraph(nbr[order], sim[order])
    want = min(k + 1, n)
    src = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    nbr = np.full((len(src), k), -1, np.int64)
    sim = np.full((len(src), k), -np.inf, np.float32)
    for s in range(0, len(src), block):
        part = src[s:s + block]
        if min_similarity is None:
            ids, vals = index.search(vectors[part], want, exact=index_kind == "exact")
        else:
            ids, vals = index.search_above(vectors[part], want, min_similarity, exact=index_kind == "exact")
        for r in range(len(ids)):
            keep = (ids[r] != part[r]) & (ids[r] >= 0)  # a face is not its own neighbour
            got_ids, got_vals = ids[r][keep][:k], vals[r][keep][:k]
            nbr[s + r, :len(got_ids)] = got_ids
            sim[s + r, :len(got_vals)] = got_vals
    return KnnGraph(nbr, sim, None if rows is None else src)


def _edges(graph: KnnGraph, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges (i < j) of the graph at or above `threshold`, each once."""
    k = graph.neighbors.shape[1]
    src = np.repeat(graph.sources(), k)
    dst = graph.neighbors.ravel()
    keep = (dst >= 0) & (graph.similarities.ravel() >= threshold)
    a, b = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    pairs = np.unique(np.stack([a, b], axis=1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
    return pairs[:, 0], pairs[:, 1]


class Constraints:
    """Which faces may never share a cluster.

    `groups`: one id per face (the photo it comes from, -1 for none): two faces of one photo are two
    people. `cannot_link`: pairs of faces a person said are different people. Checked per merge with
    sets that are merged smaller-into-larger, so the cost stays near linear."""

    def __init__(self, n: int, groups: np.ndarray | None = None,
                 cannot_link: Sequence[tuple[int, int]] = ()):
        self.n = n
        self.group_of: dict[int, int] = {}
        if groups is not None:
            groups = np.asarray(groups)
            values, counts = np.unique(groups[groups >= 0], return_counts=True)
            shared = set(values[counts > 1].tolist())  # only photos with several faces can conflict
            self.group_of = {i: int(g) for i, g in enumerate(groups.tolist()) if g in shared}
        self.forbid: dict[int, set[int]] = {}
        for a, b in cannot_link:
            if a != b:
                self.forbid.setdefault(int(a), set()).add(int(b))
                self.forbid.setdefault(int(b), set()).add(int(a))

    @property
    def empty(self) -> bool:
        return not self.group_of and not self.forbid


def average_linkage_knn(vectors: np.ndarray, threshold: float, *, k: int = 30, graph: KnnGraph | None = None,
                        constraints: Constraints | None = None, min_size: int = 2,
                        index_kind: str = "exact", seeds: Sequence[Sequence[int]] = (),
                        sealed: Sequence[bool] | None = None) -> np.ndarray:
    """Average linkage at `threshold` (a cosine similarity) over a kNN graph, with constraints.

    `seeds`: groups of faces that start as one cluster (clusters kept from an earlier run, faces a
    person placed); `sealed[i]` True: seed i never merges with another sealed seed (earlier clusters
    keep their identity; only a person merges them), but new faces may join it. Clusters smaller than
    `min_size` are labelled -1 (unsorted), except seeds."""
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    labels = np.full(n, -1, np.int64)
    if n == 0:
        return labels
    if graph is None:
        graph = knn_graph(vectors, min(k, max(1, n - 1)), index_kind=index_kind, min_similarity=threshold)
    cons = constraints or Constraints(n)
    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    sums = vectors.astype(np.float64)
    size = np.ones(n, np.int64)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    groups: dict[int, set[int]] = {i: {g} for i, g in cons.group_of.items()}
    forbidden: dict[int, set[int]] = {i: set(f) for i, f in cons.forbid.items()}
    is_sealed = np.zeros(n, bool)

    def conflict(a: int, b: int) -> bool:
        ga, gb = groups.get(a), groups.get(b)
        if ga and gb and not ga.isdisjoint(gb):
            return True
        fa, fb = forbidden.get(a), forbidden.get(b)
        if fa and any(find(f) == b for f in fa):
            return True
        return bool(fb and any(find(f) == a for f in fb))

    def union(a: int, b: int) -> int:
        """Merge roots a and b; the larger survives. Returns the new root."""
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        sums[a] += sums[b]
        size[a] += size[b]
        members[a].extend(members.pop(b))
        for store in (groups, forbidden):
            if b in store:
                store.setdefault(a, set()).update(store.pop(b))
        is_sealed[a] = is_sealed[a] or is_sealed[b]
        return a

    sealed = list(sealed) if sealed is not None else [False] * len(seeds)
    for seed, seal in zip(seeds, sealed, strict=True):
        seed = [int(i) for i in seed]
        if not seed:
            continue
        root = find(seed[0])
        for i in seed[1:]:
            r = find(i)
            if r != root:
                root = union(root, r)
        is_sealed[root] = is_sealed[root] or seal

    ea, eb = _edges(graph, threshold)
    adj: dict[int, set[int]] = {}
    for a, b in zip(ea.tolist(), eb.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            adj.setdefault(ra, set()).add(rb)
            adj.setdefault(rb, set()).add(ra)
    version = np.zeros(n, np.int64)
    heap: list[tuple[float, int, int, int, int]] = []

    def push_links(a: int, others: list[int]) -> None:
        if not others:
            return
        o = np.asarray(others, np.int64)
        link = (sums[o] @ sums[a]) / (size[o] * size[a])
        for c, s in zip(o.tolist(), link.tolist(), strict=True):
            if s >= threshold:
                x, y = (a, c) if a < c else (c, a)
                heapq.heappush(heap, (-s, x, y, int(version[x]), int(version[y])))

    for a in list(adj):
        push_links(a, [c for c in adj[a] if c > a])
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if version[a] != va or version[b] != vb or parent[a] != a or parent[b] != b:
            continue  # stale: one side changed since this link was computed
        if (is_sealed[a] and is_sealed[b]) or conflict(a, b):
            continue  # never: constraints only tighten as clusters grow
        nb = (adj.pop(a, set()) | adj.pop(b, set())) - {a, b}
        root = union(a, b)
        version[root] += 1
        for c in nb:
            s = adj.get(c)
            if s is not None:
                s.discard(a)
                s.discard(b)
                s.add(root)
        adj[root] = nb
        push_links(root, list(nb))

    next_label = 0
    seeded = {find(int(s[0])) for s in seeds if len(s)}
    roots = sorted({find(i) for i in range(n)}, key=lambda r: (-size[r], min(members[r])))
    for r in roots:
        if size[r] >= min_size or r in seeded:
            labels[members[r]] = next_label
            next_label += 1
    return labels


def dbscan(vectors: np.ndarray, threshold: float, min_faces: int = 3, *, k: int = 30,
           graph: KnnGraph | None = None) -> np.ndarray:
    """DBSCAN as Immich runs it: a face with at least `min_faces` faces (itself included) within
    the distance is a core face; cores within the distance of each other form one cluster, and a
    border face joins the cluster of a core near it. Neighbourhoods come from the kNN graph (k caps a
    core's neighbourhood, which changes nothing once k >= min_faces)."""
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if graph is None:
        graph = knn_graph(vectors, min(k, max(1, n - 1)))
    within = (graph.similarities >= threshold) & (graph.neighbors >= 0)
    core = within.sum(axis=1) + 1 >= min_faces
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.repeat(np.arange(n), graph.neighbors.shape[1])[within.ravel()]
    cols = graph.neighbors.ravel()[within.ravel()]
    both = core[rows] & core[cols]
    mat = coo_matrix((np.ones(int(both.sum())), (rows[both], cols[both])), shape=(n, n))
    _, comp = connected_components(mat, directed=False)
    labels = np.full(n, -1, np.int64)
    labels[core] = comp[core]
    # Border faces: the cluster of their most similar core neighbour.
    for i in np.flatnonzero(~core):
        for j, s in zip(graph.neighbors[i], graph.similarities[i], strict=True):
            if j >= 0 and s >= threshold and core[j]:
                labels[i] = comp[j]
                break
    return _relabel(labels)


def chinese_whispers(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """dlib's chinese whispers (face_recognition's clustering example): edges join faces whose
    Euclidean distance is below the distance equivalent to `threshold` (for unit vectors,
    d = sqrt(2 - 2 s)). dlib builds its graph from all pairs."""
    import dlib

    dist = float(np.sqrt(max(0.0, 2.0 - 2.0 * threshold)))
    descriptors = [dlib.vector(v.astype(np.float64).tolist()) for v in np.asarray(vectors, np.float32)]
    labels = np.asarray(dlib.chinese_whispers_clustering(descriptors, dist), np.int64)
    return _singletons_unsorted(labels)


def average_linkage_dense(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Exact average linkage over every pair (scipy), cut at `threshold` (cosine similarity). Needs
    n(n-1)/2 distances in memory: a reference for the kNN version, not for large libraries."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    v = np.asarray(vectors, np.float64)
    if len(v) < 2:
        return np.full(len(v), -1, np.int64)
    z = linkage(pdist(v, "cosine"), method="average")
    labels = fcluster(z, t=1.0 - threshold, criterion="distance").astype(np.int64)
    return _singletons_unsorted(labels)


def rank_order(vectors: np.ndarray, threshold: float, *, k: int = 20, graph: KnnGraph | None = None,
               rank_threshold: float | None = None) -> np.ndarray:
    """Approximate rank-order clustering (Otto, Wang and Jain, TPAMI 2017): over each face's top-k
    list, the distance between a and b counts how many of a's neighbours ranked before b are absent
    from b's top-k list (and the reverse), normalised by the smaller of their ranks; pairs below
    `rank_threshold` whose similarity also reaches `threshold` are linked, and clusters are the
    connected components (one pass, as the paper's approximate version)."""
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if graph is None:
        graph = knn_graph(vectors, min(k, max(1, n - 1)))
    nbr = graph.neighbors
    kk = nbr.shape[1]
    rank = [{int(j): r for r, j in enumerate(row) if j >= 0} for row in nbr]
    rows, cols = [], []
    limit = 1.6 if rank_threshold is None else rank_threshold  # the paper's threshold on LFW-scale data
    for a in range(n):
        for ra, b in enumerate(nbr[a].tolist()):
            if b < 0 or graph.similarities[a, ra] < threshold:
                continue
            rb_a = rank[b].get(a, kk)  # a's rank in b's list (kk: absent)
            # d(a, b): a's neighbours up to b that are not in b's list; d(b, a) likewise.
            d_ab = sum(1 for j in nbr[a][:ra + 1].tolist() if j >= 0 and j not in rank[b])
            d_ba = sum(1 for j in nbr[b][:min(rb_a, kk - 1) + 1].tolist() if j >= 0 and j not in rank[a])
            dist = (d_ab + d_ba) / max(1, min(ra + 1, rb_a + 1))
            if dist < limit:
                rows.append(a)
                cols.append(b)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mat = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(mat, directed=False)
    return _singletons_unsorted(comp.astype(np.int64))


def _singletons_unsorted(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, np.int64).copy()
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    alone = values[counts < 2]
    labels[np.isin(labels, alone)] = -1
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels 0.. by decreasing cluster size (ties: first face first); -1 stays."""
    labels = np.asarray(labels, np.int64)
    out = np.full(len(labels), -1, np.int64)
    ok = labels >= 0
    if not ok.any():
        return out
    values, first, inverse, counts = np.unique(labels[ok], return_index=True, return_inverse=True,
                                               return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    out[ok] = rank[inverse]
    return out

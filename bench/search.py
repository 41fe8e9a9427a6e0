"""Gallery search at 100k and 1M enrolled 128-d embeddings: usearch HNSW next to
numpy brute force, in the same run on the same vectors.

    python bench/search.py                          # 100k and 1M, results to bench/results/search.md
    python bench/search.py --compare                # issue 18: every candidate method side by side
    python bench/search.py --sizes 100000 --ef 64,128,256 --out /tmp/tune.md

Vectors: real SFace embeddings of LFW are the starting point. Each synthetic
identity's centre is a real LFW identity centre blended with noise, and each
of its faces is the centre plus noise; the two noise levels are fitted so that
synthetic same-identity and different-identity similarities match the real LFW
distributions (the fit is reported). Enrolled identities have 1 to 5 faces;
a third of the gallery are distractors (one face each, never searched for).
Queries are new faces of enrolled identities (mated) and of new identities.

Measured: build time, index memory and file size, single-query p50/p99 latency
(one thread, k = 10), batch throughput (all cores), recall@10 against exact
search; and the gallery's full path (ANN candidates re-ranked exactly) and
numpy brute force on the same queries.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402
from identify import lfw_embeddings  # noqa: E402
from vultus.data import data_root  # noqa: E402
from vultus.gallery.search.exact import top_k  # noqa: E402
from vultus.gallery.search.hnsw import DEFAULTS, HnswIndex  # noqa: E402
from vultus.models.runtime import default_threads  # noqa: E402

K = 10
RERANK_CANDIDATES = 64  # what Gallery.match_vectors asks the index for


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- realistic synthetic embeddings -------------------------------------------------------
class FaceSpace:
    """New identities and faces drawn like LFW's: identity centres from a Gaussian
    fitted to the real identity centres (so new people are as distinct from each
    other as real ones, with the real space's uneven spread), faces from a
    Gaussian fitted to real faces' deviations from their own person's mean, at a
    level that varies per face as photo quality does. Three scales are fitted so
    that synthetic same-person and different-person similarities match LFW's."""

    def __init__(self, vectors: np.ndarray, names: list[str], rng):
        self.rng = rng
        names = np.asarray(names)
        uniq, labels = np.unique(names, return_inverse=True)
        means = np.stack([vectors[labels == i].mean(axis=0) for i in range(len(uniq))])
        counts = np.bincount(labels)
        self.mu = unit(means).mean(axis=0)
        self.between = np.linalg.cholesky(np.cov(unit(means).T) + 1e-6 * np.eye(vectors.shape[1]))
        several = counts[labels] >= 2
        deviations = vectors[several] - means[labels[several]]
        self.within = np.linalg.cholesky(np.cov(deviations.T) + 1e-6 * np.eye(vectors.shape[1]))
        genuine = []
        for i in np.flatnonzero(counts >= 2):
            v = vectors[labels == i]
            genuine.append((v @ v.T)[np.triu_indices(len(v), 1)])
        a, b = rng.integers(0, len(vectors), (2, 400_000))
        keep = labels[a] != labels[b]
        self.real_genuine = np.concatenate(genuine)
        self.real_impostor = np.sum(vectors[a[keep]] * vectors[b[keep]], axis=1)
        self.s_between, self.s_within, self.spread = 1.0, 1.0, 0.0
        self._fit()

    def identities(self, n: int) -> np.ndarray:
        z = self.rng.standard_normal((n, len(self.mu)), dtype=np.float32)
        return unit(self.mu + self.s_between * z @ self.between.T)

    def faces(self, centres: np.ndarray) -> np.ndarray:
        z = self.rng.standard_normal(centres.shape, dtype=np.float32)
        level = self.s_within * np.exp(self.spread * self.rng.standard_normal((len(centres), 1), dtype=np.float32))
        return unit(centres + level * (z @ self.within.T))

    def _pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.identities(n)
        same = np.sum(self.faces(c) * self.faces(c), axis=1)
        other = np.sum(self.faces(c) * self.faces(self.identities(n)), axis=1)
        return same, other

    def _fit(self) -> None:
        g_q, i_q = [0.01, 0.5, 0.99], [0.5, 0.99, 0.999]
        g_target = np.quantile(self.real_genuine, g_q)
        i_target = np.quantile(self.real_impostor, i_q)
        best = None
        for s_between in np.linspace(0.6, 1.6, 11):
            for s_within in np.linspace(0.6, 2.0, 15):
                for spread in (0.0, 0.2, 0.4):
                    self.s_between, self.s_within, self.spread = s_between, s_within, spread
                    same, other = self._pairs(3000)
                    err = (np.abs(np.quantile(same, g_q) - g_target).sum()
                           + np.abs(np.quantile(other, i_q) - i_target).sum())
                    if best is None or err < best[0]:
                        best = (err, s_between, s_within, spread)
        _, self.s_between, self.s_within, self.spread = best
        same, other = self._pairs(40_000)
        self.fit = {"real_genuine": g_target, "synth_genuine": np.quantile(same, g_q),
                    "real_impostor": i_target, "synth_impostor": np.quantile(other, i_q)}

    def describe(self) -> str:
        f = self.fit
        return (f"scales between {self.s_between:.2f}, within {self.s_within:.2f}, per-face spread {self.spread:.1f}; "
                f"same-person similarity 1/50/99% real {np.round(f['real_genuine'], 3).tolist()}, synthetic "
                f"{np.round(f['synth_genuine'], 3).tolist()}; different people 50/99/99.9% real "
                f"{np.round(f['real_impostor'], 3).tolist()}, synthetic {np.round(f['synth_impostor'], 3).tolist()}")


def lfw_face_space(rng, workers: int | None = None) -> FaceSpace:
    """The FaceSpace fitted to SFace embeddings of every LFW image (cached embeddings)."""
    workers = workers or min(2, os.cpu_count() or 1)
    paths, vectors, ok = lfw_embeddings("sface", data_root() / "lfw", workers=workers)
    names = [p.parent.name for p, good in zip(paths, ok, strict=True) if good]
    return FaceSpace(vectors[ok], names, rng)


def make_gallery(n: int, space: FaceSpace, n_queries: int, rng):
    """(vectors, identity per vector, queries, identity per query: -1e9 for a new person)."""
    n_distractors = n // 3
    n_enrolled_faces = n - n_distractors
    sizes = rng.integers(1, 6, n_enrolled_faces)  # 1..5 faces, mean 3
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_enrolled_faces) + 1]
    sizes[-1] -= sizes.sum() - n_enrolled_faces
    sizes = sizes[sizes > 0]
    n_ids = len(sizes)
    centres = space.identities(n_ids)
    owner = np.repeat(np.arange(n_ids), sizes)
    vectors = np.empty((n, len(space.mu)), np.float32)
    for s in range(0, n_enrolled_faces, 200_000):
        e = min(s + 200_000, n_enrolled_faces)
        vectors[s:e] = space.faces(centres[owner[s:e]])
    for s in range(n_enrolled_faces, n, 200_000):
        e = min(s + 200_000, n)
        vectors[s:e] = space.faces(space.identities(e - s))
    identity = np.concatenate([owner, -1 - np.arange(n_distractors)])
    n_mated = int(n_queries * 0.75)
    q_owner = rng.integers(0, n_ids, n_mated)
    q_mated = space.faces(centres[q_owner])
    q_new = space.faces(space.identities(n_queries - n_mated))
    queries = np.concatenate([q_mated, q_new])
    q_identity = np.r_[q_owner, np.full(n_queries - n_mated, -(10**9))]
    return vectors, identity, queries, q_identity


# -- measurements --------------------------------------------------------------------------
def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 32):
    ids, sims = [], []
    for s in range(0, len(queries), chunk):
        i, v = top_k(queries[s:s + chunk] @ vectors.T, k)
        ids.append(i)
        sims.append(v)
    return np.concatenate(ids), np.concatenate(sims)


def latencies(fn, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and CPU milliseconds per single query. On a shared machine the
    wall-clock tail includes time the scheduler gave to other processes; the CPU
    time of this process (all its threads) is what the search itself cost."""
    for q in queries[:20]:
        fn(q[None, :])  # warm caches
    wall = np.empty(len(queries))
    cpu = np.empty(len(queries))
    for i, q in enumerate(queries):
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        fn(q[None, :])
        wall[i] = time.perf_counter_ns() - t0
        cpu[i] = time.process_time_ns() - c0
    return wall / 1e6, cpu / 1e6


def pct(lat: tuple[np.ndarray, np.ndarray]) -> dict:
    wall, cpu = lat
    return {"p50": float(np.median(wall)), "p99": float(np.percentile(wall, 99)),
            "cpu_p50": float(np.median(cpu)), "cpu_p99": float(np.percentile(cpu, 99))}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def rank1_hits(found: np.ndarray, identity: np.ndarray, q_identity: np.ndarray) -> float:
    """Share of mated queries whose first result is a face of their own identity."""
    mated = q_identity >= 0
    first = found[mated, 0]
    return float(np.mean((first >= 0) & (identity[np.maximum(first, 0)] == q_identity[mated])))


def rerank(index: HnswIndex, vectors: np.ndarray, queries: np.ndarray, candidates: int):
    """The gallery's path: ANN candidates, then exact float32 scores."""
    cand, _ = index.search(queries, candidates)
    out = np.empty((len(queries), K), np.int64)
    for i, row in enumerate(cand):
        row = row[row >= 0]
        sims = vectors[row - 1] @ queries[i]
        order = np.argsort(-sims)[:K]
        out[i] = row[order] - 1
    return out


def bench_size(n: int, space: FaceSpace, args, rng) -> list[dict]:
    print(f"\n== {n:,} embeddings", flush=True)
    vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
    ids = np.arange(1, n + 1, dtype=np.int64)
    t0 = time.perf_counter()
    truth, truth_sims = exact_search(vectors, queries, K)
    exact_batch_s = time.perf_counter() - t0
    exact_rank1 = rank1_hits(truth, identity, q_identity)
    print(f"exact ground truth: {exact_batch_s:.1f}s; mated rank-1 {exact_rank1:.4f}", flush=True)
    brute = latencies(lambda q: top_k(q @ vectors.T, K), queries[: args.brute_queries])
    rows = [{"method": "numpy brute force (float32)", "n": n, "build_s": 0.0, "index_mb": vectors.nbytes / 2**20,
             "file_mb": None, **pct(brute), "qps": len(queries) / exact_batch_s, "recall": 1.0, "ef": None,
             "top1": 1.0, "rank1": exact_rank1,
             "note": f"{len(brute[0])} single queries"}]
    print(f"numpy single query p50 {rows[0]['p50']:.2f} ms, p99 {rows[0]['p99']:.2f} ms", flush=True)

    gc.collect()
    rss0 = rss_bytes()
    index = HnswIndex(vectors.shape[1], dtype=args.dtype, connectivity=args.connectivity,
                      expansion_add=args.expansion_add)
    t0 = time.perf_counter()
    for s in range(0, n, 100_000):
        index.add(ids[s:s + 100_000], vectors[s:s + 100_000])
    build_s = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss0
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "i.usearch"
        index.save(f)
        file_mb = f.stat().st_size / 2**20
        t0 = time.perf_counter()
        HnswIndex.load(f, vectors.shape[1])
        load_s = time.perf_counter() - t0
    mem_mb = index.memory_bytes() / 2**20
    print(f"hnsw build {build_s:.1f}s, memory {mem_mb:.0f} MB (RSS +{rss_delta / 2**20:.0f} MB), "
          f"file {file_mb:.0f} MB, load {load_s:.1f}s", flush=True)
    for ef in args.ef:
        index._index.expansion_search = ef
        lat = latencies(lambda q: index.search(q, K), queries)
        t0 = time.perf_counter()
        found, _ = index.search(queries, K)
        batch_s = time.perf_counter() - t0
        r = recall(found - 1, truth)
        lat_rr = latencies(lambda q: rerank(index, vectors, q, RERANK_CANDIDATES), queries)
        found_rr = rerank(index, vectors, queries, RERANK_CANDIDATES)
        r_rr = recall(found_rr, truth)
        top1 = float(np.mean(found[:, 0] - 1 == truth[:, 0]))
        top1_rr = float(np.mean(found_rr[:, 0] == truth[:, 0]))
        rows.append({"method": f"usearch HNSW ({args.dtype}, M={args.connectivity})", "n": n, "build_s": build_s,
                     "index_mb": mem_mb, "file_mb": file_mb, **pct(lat), "qps": len(queries) / batch_s,
                     "recall": r, "ef": ef, "top1": top1, "rank1": rank1_hits(found - 1, identity, q_identity),
                     "note": f"RSS +{rss_delta / 2**20:.0f} MB during build; load {load_s:.1f}s"})
        rows.append({"method": f"HNSW top-{RERANK_CANDIDATES} + exact re-rank", "n": n,
                     "build_s": build_s, "index_mb": mem_mb, "file_mb": file_mb, **pct(lat_rr), "qps": None,
                     "recall": r_rr, "ef": ef, "top1": top1_rr, "rank1": rank1_hits(found_rr, identity, q_identity),
                     "note": "float32 vectors from memory here; the gallery reads them from SQLite"})
        print(f"ef={ef}: p50 {rows[-2]['p50']:.3f} ms p99 {rows[-2]['p99']:.3f} ms, {rows[-2]['qps']:.0f} q/s, "
              f"recall@10 {r:.4f} top-1 {top1:.4f}; with re-rank p99 {rows[-1]['p99']:.3f} ms recall@10 {r_rr:.4f} "
              f"top-1 {top1_rr:.4f} mated rank-1 {rows[-1]['rank1']:.4f}", flush=True)
    if args.gallery_path and n <= args.gallery_path:
        rows.append(gallery_path(vectors, queries, args))
    return rows


def gallery_path(vectors: np.ndarray, queries: np.ndarray, args) -> dict:
    """Gallery.match_vectors end to end: SQLite store, usearch index, person aggregation."""
    import sqlite3

    from vultus.gallery import Gallery
    from vultus.gallery.api import EXHAUSTIVE_UP_TO
    from vultus.gallery.storage.rows import now

    n = len(vectors)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "g.db"
        with Gallery(db) as g:
            coll = g.create_collection()
        t0 = time.perf_counter()
        # Bulk rows straight into the schema (the enroll path is measured by bench/identify.py).
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA synchronous=OFF")
            stamp_ = now()
            c.executemany("INSERT INTO people (id, collection_id, name, created_at) VALUES (?, 1, ?, ?)",
                          ((i + 1, f"p{i}", stamp_) for i in range(n // 3)))
            lm = np.zeros(10, np.float32).tobytes()
            c.executemany("INSERT INTO faces (id, collection_id, person_id, image_sha256, x1, y1, x2, y2, "
                          "landmarks, detector, detector_score, quality, created_at) "
                          "VALUES (?, 1, ?, ?, 0, 0, 1, 1, ?, 'yunet', 1, '{}', ?)",
                          ((i + 1, i % (n // 3) + 1, f"s{i}", lm, stamp_) for i in range(n)))
            c.executemany("INSERT INTO embeddings (id, collection_id, embedder, face_id, vector) "
                          "VALUES (?, 1, ?, ?, ?)",
                          ((i + 1, coll.contract.key, i + 1, vectors[i].tobytes()) for i in range(n)))
        load_s = time.perf_counter() - t0
        with Gallery(db, index_options={"dtype": args.dtype, "connectivity": args.connectivity,
                                        "expansion_add": args.expansion_add,
                                        "expansion_search": args.gallery_ef}) as g:
            coll = g.collection()
            t0 = time.perf_counter()
            g.indexes.get(coll)
            build_s = time.perf_counter() - t0
            lat = pct(latencies(lambda q: g.match_vectors(coll, q, top_k=5), queries[:500]))
            g.indexes.save()
        with Gallery(db) as g:
            t0 = time.perf_counter()
            report = g.indexes.report(g.collection())
            open_s = time.perf_counter() - t0
    print(f"gallery path at {n:,}: SQLite rows {load_s:.1f}s, index build {build_s:.1f}s, reopen+verify "
          f"{open_s:.1f}s ({report.action}), match_vectors p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms",
          flush=True)
    how = "exhaustive scan" if n <= EXHAUSTIVE_UP_TO else "HNSW"
    return {"method": f"Gallery.match_vectors (SQLite + {how}, top-5 people)", "n": n, "build_s": build_s,
            "index_mb": None, "file_mb": None, **lat, "qps": None, "recall": None, "ef": args.gallery_ef,
            "top1": None, "rank1": None,
            "note": f"reopen with crc32 + id check {open_s:.1f}s ({report.action}); 500 queries"}


# -- side by side: the candidates for 1M faces in 5 ms (issue 18) ------------------------------------
class IvfFlat:
    """Inverted lists over spherical k-means cells, vectors kept as float32 and scanned
    exactly inside the `nprobe` cells whose centres are nearest the query."""

    def __init__(self, vectors: np.ndarray, nlist: int, rng, train: int = 60_000, iters: int = 8):
        sample = vectors[rng.choice(len(vectors), min(train, len(vectors)), replace=False)]
        centres = sample[rng.choice(len(sample), nlist, replace=False)].copy()
        for _ in range(iters):
            assign = np.concatenate([np.argmax(sample[s:s + 8192] @ centres.T, axis=1)
                                     for s in range(0, len(sample), 8192)])
            sums = np.zeros_like(centres)
            np.add.at(sums, assign, sample)
            empty = np.linalg.norm(sums, axis=1) == 0
            sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
            centres = unit(sums)
        assign = np.concatenate([np.argmax(vectors[s:s + 8192] @ centres.T, axis=1)
                                 for s in range(0, len(vectors), 8192)])
        order = np.argsort(assign, kind="stable")
        self.ids = order.astype(np.int64)
        self.vectors = np.ascontiguousarray(vectors[order])
        self.offsets = np.r_[0, np.cumsum(np.bincount(assign, minlength=nlist))]
        self.centres = centres
        self.nprobe = 32

    def memory_bytes(self) -> int:
        return self.vectors.nbytes + self.ids.nbytes + self.centres.nbytes + self.offsets.nbytes

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cells = np.argpartition(-(self.centres @ q), self.nprobe)[: self.nprobe]
        sims, ids = [], []
        for c in cells:
            lo, hi = self.offsets[c], self.offsets[c + 1]
            sims.append(self.vectors[lo:hi] @ q)
            ids.append(self.ids[lo:hi])
        sims, ids = np.concatenate(sims), np.concatenate(ids)
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top])]
        return ids[top], sims[top]


class BinaryPrefilter:
    """Sign bits of the centred vectors (128 bits = 16 bytes a face), Hamming scan for a
    wide candidate list, then the exact float32 similarity of the candidates."""

    def __init__(self, vectors: np.ndarray, candidates: int):
        self.mu = vectors.mean(axis=0)
        self.codes = np.packbits(vectors - self.mu > 0, axis=1).view(np.uint64)
        self.vectors = vectors
        self.candidates = candidates

    def memory_bytes(self) -> int:
        return self.codes.nbytes + self.vectors.nbytes

    def search(self, q: np.ndarray, k: int):
        code = np.packbits(q - self.mu > 0).view(np.uint64)
        dist = np.bitwise_count(self.codes ^ code).sum(axis=1, dtype=np.uint16)
        cand = np.argpartition(dist, self.candidates)[: self.candidates]
        sims = self.vectors[cand] @ q
        top = np.argsort(-sims)[:k]
        return cand[top], sims[top]


class PcaPrefilter:
    """The first `dims` principal components (float32) scanned for a wide candidate list,
    then the exact float32 similarity of the candidates."""

    def __init__(self, vectors: np.ndarray, dims: int, candidates: int, rng):
        sample = vectors[rng.choice(len(vectors), min(50_000, len(vectors)), replace=False)]
        _, _, vt = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
        self.proj = np.ascontiguousarray(vt[:dims].T.astype(np.float32))
        self.reduced = np.ascontiguousarray(np.concatenate([vectors[s:s + 65536] @ self.proj
                                                            for s in range(0, len(vectors), 65536)]))
        self.vectors = vectors
        self.candidates = candidates

    def memory_bytes(self) -> int:
        return self.reduced.nbytes + self.vectors.nbytes

    def search(self, q: np.ndarray, k: int):
        cand = np.argpartition(-(self.reduced @ (q @ self.proj)), self.candidates)[: self.candidates]
        sims = self.vectors[cand] @ q
        top = np.argsort(-sims)[:k]
        return cand[top], sims[top]


def decisions(found: np.ndarray, sims: np.ndarray, identity: np.ndarray, threshold: float) -> np.ndarray:
    """The identification decision per query: the top face's identity, or -2**62 for unknown."""
    top = found[:, 0]
    who = identity[np.maximum(top, 0)]
    return np.where((top >= 0) & (sims[:, 0] >= threshold), who, -(2**62))


def compare_size(n: int, space: FaceSpace, args, rng) -> list[dict]:
    """Every candidate on the same vectors and queries: single-query latency (wall and
    CPU, one thread), decision agreement with exact search at the collection's FPIR-1%
    threshold for this many faces, mated rank-1, memory."""
    from vultus.gallery.decision import embedder_fpir_point
    from vultus.models.calibration import operating_point

    print(f"\n== compare at {n:,} embeddings", flush=True)
    vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
    threshold = embedder_fpir_point("sface", 0.01, n)[0].threshold
    # A looser threshold too (FMR 1e-5 per comparison): at 1M the FPIR-1% threshold is so strict that
    # most mated queries are unknown to exact search too, which makes agreement easy.
    loose = operating_point("sface", 1e-5).threshold
    t0 = time.perf_counter()
    truth, truth_sims = exact_search(vectors, queries, K)
    print(f"exact ground truth {time.perf_counter() - t0:.1f}s; threshold {threshold:.4f} (FPIR 1%, {n:,} faces)",
          flush=True)
    truth_dec = decisions(truth, truth_sims, identity, threshold)
    truth_loose = decisions(truth, truth_sims, identity, loose)
    timed = queries[: args.timed_queries]
    rows = []

    def measure(label: str, fn, mem: float, build_s: float, note: str = "", scan: bool = False) -> None:
        lat = pct(latencies(lambda q2: fn(q2[0]), timed))  # latencies() passes (1, d) queries
        # A full scan costs the same for every query: past 100k its agreement is taken on the timed
        # queries only, to keep the run bounded on a shared machine (the note says so).
        m = len(timed) if scan and n > 100_000 else len(queries)
        out = [fn(q) for q in queries[:m]]
        found = np.full((m, K), -1, np.int64)
        sims = np.full((m, K), -2.0, np.float32)
        for i, (ids, s) in enumerate(out):
            found[i, :len(ids)], sims[i, :len(s)] = ids, s
        agree = float(np.mean(decisions(found, sims, identity, threshold) == truth_dec[:m]))
        agree_loose = float(np.mean(decisions(found, sims, identity, loose) == truth_loose[:m]))
        if m < len(queries):
            note = f"{note}; agreement and rank-1 on {m} queries".lstrip("; ")
        row = {"method": label, "n": n, "build_s": build_s, "index_mb": mem / 2**20, **lat, "queries": m,
               "agree": agree, "rank1": rank1_hits(found, identity[:], q_identity[:m]),
               "exact_rank1": rank1_hits(truth[:m], identity, q_identity[:m]),
               "known": float(np.mean(truth_dec[:m] != -(2**62))), "agree_loose": agree_loose,
               "known_loose": float(np.mean(truth_loose[:m] != -(2**62))), "threshold": threshold,
               "loose": loose, "note": note}
        rows.append(row)
        print(f"{label}: p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} ms (CPU p99 {lat['cpu_p99']:.2f}), "
              f"agreement {agree:.4f}, mated rank-1 {row['rank1']:.4f} (exact {row['exact_rank1']:.4f}), "
              f"{row['index_mb']:.0f} MB", flush=True)

    def exact(q):
        ids, sims = top_k((q @ vectors.T)[None, :], K)
        return ids[0], sims[0]

    measure("exact, numpy float32 (matrix-vector + partial sort)", exact, vectors.nbytes, 0.0, scan=True)
    from usearch.index import MetricKind
    from usearch.index import search as usearch_exact

    for label, data, conv in (("f16", vectors.astype(np.float16), lambda q: q.astype(np.float16)),
                              ("i8", np.round(vectors * 127).astype(np.int8),
                               lambda q: np.round(q * 127).astype(np.int8))):
        def us(q, data=data, conv=conv):
            m = usearch_exact(data, conv(q), K, MetricKind.IP, exact=True, threads=1)
            ids = m.keys.astype(np.int64)
            return ids, vectors[ids] @ q  # re-scored exactly, as the gallery re-ranks from its store

        measure(f"exact, usearch SIMD scan over {label} (usearch.index.search, exact=True)", us,
                data.nbytes + vectors.nbytes, 0.0, "top-10 re-scored in float32", scan=True)
        del data
    for cand in (1000, 4000):
        bp = BinaryPrefilter(vectors, cand)
        measure(f"binary codes (128 bits) top-{cand} + exact re-rank", lambda q, m=bp: m.search(q, K),
                bp.memory_bytes(), 0.0, scan=True)
    pca = PcaPrefilter(vectors, 32, 2000, rng)
    measure("PCA-32 scan top-2000 + exact re-rank", lambda q, m=pca: m.search(q, K), pca.memory_bytes(), 0.0, scan=True)
    del pca
    t0 = time.perf_counter()
    ivf = IvfFlat(vectors, int(round(np.sqrt(n))), rng)
    build = time.perf_counter() - t0
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        measure(f"IVF-flat, {len(ivf.centres)} cells, nprobe {nprobe} (exact inside cells)",
                lambda q, m=ivf: m.search(q, K), ivf.memory_bytes(), build, "k-means on 60k vectors, 8 iterations")
    del ivf
    if n <= args.hnsw_up_to:
        index = HnswIndex(vectors.shape[1], dtype=args.dtype, connectivity=args.connectivity,
                          expansion_add=args.expansion_add)
        t0 = time.perf_counter()
        for s in range(0, n, 100_000):
            index.add(np.arange(s + 1, min(s + 100_000, n) + 1, dtype=np.int64), vectors[s:s + 100_000])
        build = time.perf_counter() - t0
        for ef in (256, 1024):
            index._index.expansion_search = ef

            def hn(q, index=index):
                ids = rerank(index, vectors, q[None, :], 256)[0]
                return ids, vectors[ids] @ q

            measure(f"HNSW (M={args.connectivity}, ef {ef}) top-256 + exact re-rank", hn, index.memory_bytes(),
                    build)
    return rows


def write_compare(rows, space: FaceSpace, args, started_load: str, out: Path) -> None:
    lines = [
        "# Gallery search at 1M: which method meets the goal (issue 18)",
        "",
        f"- Date: {stamp()}",
        f"- Machine: {machine()}. Load average at the start {started_load}, at the end {load_average()}: the 2 "
        "cores were shared with other helpers' tests and benchmarks throughout, so wall-clock tails include "
        "time given to other processes; the CPU columns are what the search itself cost.",
        f"- Vectors: 128-d synthetic faces in the space of SFace's LFW embeddings ({space.describe()}); gallery: "
        "two thirds enrolled identities with 1-5 faces, one third single-face distractors.",
        f"- Queries: {args.queries} (75% new faces of enrolled identities, 25% of new people) for agreement and "
        f"rank-1; the first {args.timed_queries} timed one at a time on one thread (OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}).",
        "- Decision agreement: share of queries whose decision (top person, or unknown) equals exact float32 "
        "search's at the threshold a collection deciding by FPIR 1% uses at this size (best-face aggregation). "
        "Mated rank-1: share of enrolled people's queries whose first result is their own face.",
        "- Goal (issue 18): at 1M, single-query p99 <= 5 ms on one core, agreement >= 99.9%, mated rank-1 within "
        "0.1 points of exact, index memory <= 1 GB.",
        "",
        "| method | faces | build s | memory MB | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | decision agreement "
        "at FPIR 1% (queries; known to exact) | at FMR 1e-5 (known to exact) | mated rank-1 (exact) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['n']:,} | {r['build_s']:.1f} | {r['index_mb']:.0f} | {r['p50']:.2f} | "
                     f"{r['p99']:.2f} | {r['cpu_p50']:.2f} | {r['cpu_p99']:.2f} | "
                     f"{100 * r['agree']:.2f}% ({r['queries']}; t={r['threshold']:.3f}, "
                     f"{100 * r['known']:.0f}% known) | "
                     f"{100 * r['agree_loose']:.2f}% (t={r['loose']:.3f}, {100 * r['known_loose']:.0f}% known) | "
                     f"{r['rank1']:.4f} ({r['exact_rank1']:.4f}) | "
                     f"{r['note']} |")
    lines += ["", f"Command: `python bench/search.py {' '.join(sys.argv[1:])}`", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def write(rows, space: FaceSpace, args, started_load: str, out: Path) -> None:
    lines = [
        "# Gallery search: usearch HNSW vs numpy brute force",
        "",
        f"- Date: {stamp()}",
        f"- Machine: {machine()}",
        f"- Load average at the start {started_load}, at the end {load_average()}. The machine's 2 cores were "
        "shared with other engineers' test and benchmark runs during this benchmark, so latencies are pessimistic "
        "and noisier than on an idle machine.",
        "- Vectors: 128-d, in the space of real SFace embeddings of LFW (7,701 images, 4,281 people): identity "
        "centres drawn from a Gaussian fitted to the real identity centres, faces from a Gaussian fitted to real "
        "faces' deviations from their person's mean, at a per-face level; "
        f"{space.describe()}.",
        "- Gallery: two thirds enrolled identities with 1-5 faces, one third single-face distractors. Queries: "
        f"{args.queries} (75% new faces of enrolled identities, 25% of new identities); k = 10.",
        f"- HNSW: usearch, inner product, {args.dtype} storage, M={args.connectivity}, "
        f"ef_construction={args.expansion_add}. Threads for build and batch search: {default_threads()} "
        f"(VULTUS_THREADS={os.environ.get('VULTUS_THREADS', 'unset')}; numpy BLAS threads: "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}); single queries on one thread.",
        "- Recall@10: share of the exact (float32 brute force) top 10 that the method returns. Top-1 = exact: "
        "share of queries whose first result is the exact first. Mated rank-1: share of queries of enrolled "
        "identities whose first result is a face of the same identity (what identification needs).",
        "",
        "| method | embeddings | ef | build s | index MB (memory) | file MB | single p50 ms | single p99 ms | "
        "CPU p50 ms | CPU p99 ms | batch queries/s | recall@10 | top-1 = exact | mated rank-1 | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x, fmt):
        return "" if x is None else format(x, fmt)

    for r in rows:
        lines.append(f"| {r['method']} | {r['n']:,} | {f(r['ef'], 'd')} | {f(r['build_s'], '.1f')} | "
                     f"{f(r['index_mb'], '.0f')} | {f(r['file_mb'], '.0f')} | {r['p50']:.3f} | {r['p99']:.3f} | "
                     f"{r['cpu_p50']:.3f} | {r['cpu_p99']:.3f} | {f(r['qps'], ',.0f')} | {f(r['recall'], '.4f')} | "
                     f"{f(r['top1'], '.4f')} | {f(r['rank1'], '.4f')} | {r['note']} |")
    lines += ["", f"Command: `python bench/search.py {' '.join(sys.argv[1:])}`".rstrip(), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--brute-queries", type=int, default=200, help="single numpy queries timed (they are slow)")
    ap.add_argument("--ef", default="64,256,1024,2048", help="HNSW search expansions to measure")
    ap.add_argument("--dtype", default=DEFAULTS["dtype"])
    ap.add_argument("--connectivity", type=int, default=DEFAULTS["connectivity"])
    ap.add_argument("--expansion-add", type=int, default=DEFAULTS["expansion_add"])
    ap.add_argument("--gallery-path", type=int, default=100_000,
                    help="also time Gallery.match_vectors (SQLite) up to this size; 0 to skip")
    ap.add_argument("--gallery-ef", type=int, default=DEFAULTS["expansion_search"])
    ap.add_argument("--out", type=Path, default=RESULTS / "search.md")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true",
                    help="the issue-18 side-by-side (exact scans, prefilters + re-rank, IVF, HNSW + re-rank) instead "
                         "of the HNSW sweep; results to bench/results/search.md")
    ap.add_argument("--timed-queries", type=int, default=300, help="queries timed one at a time (--compare)")
    ap.add_argument("--nprobe", default="16,32,64", help="IVF cells probed (--compare)")
    ap.add_argument("--hnsw-up-to", type=int, default=100_000,
                    help="build HNSW only up to this size (--compare; one thread builds 1M in ~30 min)")
    args = ap.parse_args()
    args.ef = [int(x) for x in args.ef.split(",")]
    args.nprobe = [int(x) for x in args.nprobe.split(",")]
    started = load_average()
    rng = np.random.default_rng(args.seed)
    space = lfw_face_space(rng)
    print(f"face space: {space.describe()}", flush=True)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        if args.compare:
            rows += compare_size(n, space, args, rng)
            write_compare(rows, space, args, started, args.out)
        else:
            rows += bench_size(n, space, args, rng)
            write(rows, space, args, started, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

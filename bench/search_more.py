"""Issue 18's measurements that bench/search.py --compare left out, on its
identity-structured synthetic galleries (same generator, bench/search.py):

    python bench/search_more.py hnsw  --size 1000000      # HNSW ef 512/1024/2048 + exact re-rank at 1M
    python bench/search_more.py batch --sizes 100000,1000000   # one scan shared by B concurrent queries
    python bench/search_more.py fpir  --sizes 100000,1000000   # stated vs measured FPIR on the synthetic galleries

Each writes a markdown fragment (--out) that bench/results/search.md or
identify.md quotes; every run records the load average before and after, and
process CPU time next to wall time, because the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine, stamp  # noqa: E402
from search import (  # noqa: E402
    FaceSpace,
    K,
    decisions,
    exact_search,
    latencies,
    lfw_face_space,
    make_gallery,
    pct,
    rank1_hits,
    rss_bytes,
)
from vultus.gallery.search.exact import top_k  # noqa: E402

UNKNOWN = -(2**62)


def thresholds(n_faces: int) -> tuple[float, float]:
    """(FPIR-1% threshold a best-face collection of n_faces uses, FMR-1e-5 threshold)."""
    from vultus.gallery.decision import embedder_fpir_point
    from vultus.models.calibration import operating_point

    return embedder_fpir_point("sface", 0.01, n_faces)[0].threshold, operating_point("sface", 1e-5).threshold


def header(title: str, started: str, space: FaceSpace, extra: list[str]) -> list[str]:
    return [f"### {title}", "", f"- Date: {stamp()}; machine: {machine()}",
            f"- Load average at the start {started}, at the end {load_average()}",
            f"- Vectors: bench/search.py's generator ({space.describe()})", *extra]


# -- (b) HNSW with a wide candidate list + exact re-rank at 1M ------------------------------------
def cmd_hnsw(args) -> list[str]:
    from vultus.gallery.search.hnsw import DEFAULTS, HnswIndex
    from vultus.models.runtime import default_threads

    started = load_average()
    rng = np.random.default_rng(args.seed)
    space = lfw_face_space(rng, workers=1)
    n = args.size
    vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
    t_fpir, t_loose = thresholds(n)
    t0 = time.perf_counter()
    truth, truth_sims = exact_search(vectors, queries, K)
    print(f"exact truth {time.perf_counter() - t0:.1f}s; t={t_fpir:.4f} / {t_loose:.4f}", flush=True)
    truth_dec, truth_loose = decisions(truth, truth_sims, identity, t_fpir), decisions(truth, truth_sims, identity,
                                                                                       t_loose)
    exact_rank1 = rank1_hits(truth, identity, q_identity)
    timed = queries[: args.timed_queries]
    exact_lat = pct(latencies(lambda q: top_k(q @ vectors.T, K), timed))
    print(f"exact numpy: {exact_lat}", flush=True)

    index_file = Path(args.index)
    threads = default_threads()
    gc.collect()
    rss0 = rss_bytes()
    build = {"threads": threads, "load_before": load_average()}
    if index_file.is_file() and not args.rebuild:
        index = HnswIndex.load(index_file, vectors.shape[1])
        build.update(wall_s=float("nan"), cpu_s=float("nan"), note=f"loaded from {index_file}")
    else:
        index = HnswIndex(vectors.shape[1], dtype=DEFAULTS["dtype"], connectivity=DEFAULTS["connectivity"],
                          expansion_add=DEFAULTS["expansion_add"])
        c0, t0 = time.process_time(), time.perf_counter()
        for s in range(0, n, 100_000):
            index.add(np.arange(s + 1, min(s + 100_000, n) + 1, dtype=np.int64), vectors[s:s + 100_000])
            print(f"  built {min(s + 100_000, n):,} in {time.perf_counter() - t0:.0f}s (CPU "
                  f"{time.process_time() - c0:.0f}s), load {load_average()}", flush=True)
        build.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, note="built here")
        index_file.parent.mkdir(parents=True, exist_ok=True)
        index.save(index_file)
    build.update(load_after=load_average(), rss_mb=(rss_bytes() - rss0) / 2**20, mem_mb=index.memory_bytes() / 2**20)
    print(f"hnsw: {build}", flush=True)

    def rerank_one(q: np.ndarray, candidates: int):
        cand, _ = index.search(q, candidates)
        row = cand[0][cand[0] >= 0] - 1
        sims = vectors[row] @ q[0]
        order = np.argsort(-sims)[:K]
        return row[order], sims[order]

    rows = []
    for ef in args.ef:
        index._index.expansion_search = ef
        for cand in args.candidates:
            lat = pct(latencies(lambda q, c=cand: rerank_one(q, c), timed))
            found = np.full((len(queries), K), -1, np.int64)
            sims = np.full((len(queries), K), -2.0, np.float32)
            for i, q in enumerate(queries):
                ids, s = rerank_one(q[None, :], cand)
                found[i, :len(ids)], sims[i, :len(s)] = ids, s
            dec, dec_loose = decisions(found, sims, identity, t_fpir), decisions(found, sims, identity, t_loose)
            row = {"ef": ef, "cand": cand, **lat, "agree": float(np.mean(dec == truth_dec)),
                   "agree_n": int(np.sum(dec == truth_dec)),
                   "agree_loose": float(np.mean(dec_loose == truth_loose)),
                   "agree_loose_n": int(np.sum(dec_loose == truth_loose)),
                   "rank1": rank1_hits(found, identity, q_identity),
                   "top1": float(np.mean(found[:, 0] == truth[:, 0]))}
            rows.append(row)
            print(f"ef {ef} top-{cand}: {row}", flush=True)
    known = float(np.mean(truth_dec != UNKNOWN))
    known_loose = float(np.mean(truth_loose != UNKNOWN))
    lines = header(f"HNSW with a wide candidate list + exact re-rank at {n:,} faces", started, space, [
        f"- Index: usearch HNSW, {DEFAULTS['dtype']}, M={DEFAULTS['connectivity']}, ef_construction="
        f"{DEFAULTS['expansion_add']}; build on {threads} threads: {build['wall_s']:.0f} s wall, "
        f"{build['cpu_s']:.0f} s CPU ({build['note']}; load {build['load_before']} before, "
        f"{build['load_after']} after); memory {build['mem_mb']:.0f} MB (RSS +{build['rss_mb']:.0f} MB)",
        f"- Queries: {len(queries)} (75% mated), of which {len(timed)} timed one at a time on one thread; "
        f"agreement on all {len(queries)}. Thresholds: FPIR 1% for {n:,} faces t={t_fpir:.3f} "
        f"({100 * known:.0f}% of queries known to exact search), FMR 1e-5 t={t_loose:.3f} "
        f"({100 * known_loose:.0f}% known)",
        f"- Exact numpy float32 on the same queries, same run: p50 {exact_lat['p50']:.2f} ms, p99 "
        f"{exact_lat['p99']:.2f} ms, CPU p50 {exact_lat['cpu_p50']:.2f} ms, CPU p99 {exact_lat['cpu_p99']:.2f} ms; "
        f"mated rank-1 {exact_rank1:.4f}",
        "",
        "| method | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | agreement at FPIR 1% (count) | at FMR 1e-5 (count) | "
        "top-1 = exact | mated rank-1 (exact) | memory MB |",
        "|---|---|---|---|---|---|---|---|---|---|"])
    for r in rows:
        lines.append(f"| HNSW ef {r['ef']} top-{r['cand']} + exact re-rank | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['cpu_p50']:.2f} | {r['cpu_p99']:.2f} | {100 * r['agree']:.2f}% ({r['agree_n']}/"
                     f"{len(queries)}) | {100 * r['agree_loose']:.2f}% ({r['agree_loose_n']}/{len(queries)}) | "
                     f"{r['top1']:.4f} | {r['rank1']:.4f} ({exact_rank1:.4f}) | {build['mem_mb']:.0f} |")
    lines += ["", f"Command: `python bench/search_more.py {' '.join(sys.argv[1:])}`", ""]
    return lines


# -- (a) batching of concurrent queries: one scan shared by B queries --------------------------------
BLOCK = 65_536  # gallery rows per block: a block of B x 65,536 similarities stays small


class BlockScan:
    """An exact scan of the whole gallery for a batch of queries as one matrix
    product per block of gallery rows, keeping each query's running top-k: only
    similarities above a query's current k-th best are looked at again, so after
    the first block the selection costs one comparison per element. The stored
    copy is float32, float16 or int8 (x127); the two reduced ones are upcast to
    float32 a block at a time (numpy has no half or int8 BLAS) and their best
    `rescore` candidates re-scored in float32, as the gallery re-ranks from its store."""

    def __init__(self, vectors: np.ndarray, dtype: str, rescore: int = 32):
        self.vectors = vectors
        self.dtype = dtype
        if dtype == "f32":
            self.stored = vectors
        elif dtype == "f16":
            self.stored = vectors.astype(np.float16)
        else:
            self.stored = np.round(vectors * 127).astype(np.int8)
        self.rescore = rescore

    def memory_bytes(self) -> int:
        return self.stored.nbytes

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        keep = k if self.dtype == "f32" else max(k, self.rescore)
        b = len(q)
        best_v = np.full((b, keep), -np.inf, np.float32)
        best_i = np.full((b, keep), -1, np.int64)
        for s in range(0, len(self.stored), BLOCK):
            block = self.stored[s:s + BLOCK]
            if self.dtype != "f32":
                block = block.astype(np.float32)
            sims = q @ block.T
            if s == 0:
                i, v = top_k(sims, keep)
                best_i[:, :i.shape[1]], best_v[:, :v.shape[1]] = i, v
                continue
            bar = best_v[:, -1]
            rows, cols = np.nonzero(sims > bar[:, None])
            if rows.size == 0:
                continue
            for r in np.unique(rows):
                c = cols[rows == r]
                vals = np.concatenate([best_v[r], sims[r, c]])
                ids = np.concatenate([best_i[r], c + s])
                top = np.argsort(-vals, kind="stable")[:keep]
                best_v[r], best_i[r] = vals[top], ids[top]
        if self.dtype == "f32":
            return best_i, best_v
        exact = np.einsum("bkd,bd->bk", self.vectors[np.maximum(best_i, 0)], q)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(best_i, order, 1), np.take_along_axis(exact, order, 1)


class UsearchExact:
    """usearch's exact SIMD scan (usearch.index.search, exact=True) over f16 or i8, one call per
    batch on one thread; its top `rescore` re-scored in float32."""

    def __init__(self, vectors: np.ndarray, dtype: str, rescore: int = 32):
        self.vectors = vectors
        self.dtype = dtype
        self.stored = vectors.astype(np.float16) if dtype == "f16" else np.round(vectors * 127).astype(np.int8)
        self.rescore = rescore

    def memory_bytes(self) -> int:
        return self.stored.nbytes

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from usearch.index import MetricKind
        from usearch.index import search as usearch_search

        qq = q.astype(np.float16) if self.dtype == "f16" else np.round(q * 127).astype(np.int8)
        m = usearch_search(self.stored, qq, self.rescore, MetricKind.IP, exact=True, threads=1)
        keys = np.asarray(m.keys, np.int64).reshape(len(q), -1)
        exact = np.einsum("bkd,bd->bk", self.vectors[np.maximum(keys, 0)], q)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(keys, order, 1), np.take_along_axis(exact, order, 1)


def batch_costs(method, queries: np.ndarray, batch: int, budget_cpu_s: float):
    """Run the queries through `method` in batches of `batch` until all are done or the CPU
    budget is spent (at least 3 batches): (ids, sims, wall ms per batch, CPU ms per batch)."""
    method.search(queries[:batch], K)  # warm
    ids, sims, wall, cpu = [], [], [], []
    spent = 0.0
    for s in range(0, len(queries) - batch + 1, batch):
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        i, v = method.search(queries[s:s + batch], K)
        wall.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.process_time_ns() - c0) / 1e6)
        ids.append(i)
        sims.append(v)
        spent += cpu[-1] / 1e3
        if spent > budget_cpu_s and len(wall) >= 3:
            break
    return np.concatenate(ids), np.concatenate(sims), np.array(wall), np.array(cpu)


def simulate(service_ms: dict[int, float], cap: int, rate: float, max_wait_ms: float, n: int, rng) -> dict:
    """Per-query latency (arrival to answer) under dynamic batching on one core: Poisson arrivals at
    `rate`/s; a batch starts when the core is free and either `cap` queries wait or the oldest has
    waited `max_wait_ms`; a batch of b costs service_ms interpolated linearly in b between measured
    batch sizes. Returns p50/p99 latency, mean batch size and the core's utilisation, or unstable."""
    sizes = np.array(sorted(service_ms))
    costs = np.array([service_ms[b] for b in sizes])

    def cost(b: int) -> float:
        return float(np.interp(b, sizes, costs))

    arrivals = np.cumsum(rng.exponential(1000.0 / rate, n))
    lat = np.empty(n)
    free_at, i, busy, batches = 0.0, 0, 0.0, 0
    while i < n:
        # the batch's start: the core is free and (cap waiting or the oldest has waited max_wait)
        full_at = arrivals[i + cap - 1] if i + cap - 1 < n else np.inf
        start = max(free_at, min(arrivals[i] + max_wait_ms, full_at))
        j = min(int(np.searchsorted(arrivals, start, side="right")), i + cap, n)
        j = max(j, i + 1)
        c = cost(j - i)
        lat[i:j] = start + c - arrivals[i:j]
        free_at, busy, batches, i = start + c, busy + c, batches + 1, j
        if free_at - arrivals[i - 1] > 10_000:  # 10 s behind: the queue only grows
            return {"unstable": True, "util": float("inf")}
    span = max(free_at, arrivals[-1]) - arrivals[0]
    return {"unstable": False, "p50": float(np.median(lat)), "p99": float(np.percentile(lat, 99)),
            "mean_batch": n / batches, "util": busy / span}


def cmd_batch(args) -> list[str]:
    started = load_average()
    rng = np.random.default_rng(args.seed)
    space = lfw_face_space(rng, workers=1)
    batches = [int(x) for x in args.batches.split(",")]
    rates = [float(x) for x in args.rates.split(",")]
    lines = header("Batching concurrent queries: one exact scan shared by a batch", started, space, [
        f"- One thread (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}). Each batch of B "
        "queries is one matrix product per block of 65,536 gallery rows with a running top-10 per query "
        "(BlockScan); float16 and int8 copies are upcast a block at a time and their top 32 re-scored in float32. "
        "usearch rows: `usearch.index.search(exact=True, threads=1)` with the whole batch in one call.",
        f"- Per batch size, batches run until all {args.queries} queries are done or {args.budget:.0f} s of CPU "
        "are spent (at least 3 batches); agreement is over the queries run (count given).",
        "- Decision agreement: the decision (top person or unknown) equals plain exact float32 search's "
        "(matrix-vector product + partial sort, one query at a time) at the FPIR-1% threshold for that many "
        "faces and at FMR 1e-5.",
        "- Latency with waiting: a simulation of dynamic batching on one dedicated core, fed the CPU ms per batch "
        "measured here (median, linear between the measured batch sizes): Poisson arrivals at the stated rate, a "
        f"batch starts when the core is free and either B queries wait or the oldest has waited {args.max_wait:g} "
        "ms. 'unstable': the core cannot keep up (the queue grows without bound). These latencies are modelled "
        "from measured costs, not measured end to end.",
        ""])
    for n in [int(x) for x in args.sizes.split(",")]:
        vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
        t_fpir, t_loose = thresholds(n)
        truth, truth_sims = exact_search(vectors, queries, K)
        truth_dec = decisions(truth, truth_sims, identity, t_fpir)
        truth_loose = decisions(truth, truth_sims, identity, t_loose)
        print(f"== {n:,}: t={t_fpir:.4f} / {t_loose:.4f}, load {load_average()}", flush=True)
        lines += [f"#### {n:,} faces (load at the start of this size {load_average()})", "",
                  "| method | B | memory MB | batch wall p50 / p99 ms | batch CPU p50 / p99 ms | CPU ms per query "
                  "| queries/s per core | agreement at FPIR 1% (count) | at FMR 1e-5 (count) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        sims_rows = []
        methods = [("exact float32 (BlockScan)", BlockScan, "f32"),
                   ("exact over float16 (BlockScan, top-32 re-scored)", BlockScan, "f16"),
                   ("exact over int8 (BlockScan, top-32 re-scored)", BlockScan, "i8"),
                   ("usearch exact over f16 (top-32 re-scored)", UsearchExact, "f16"),
                   ("usearch exact over i8 (top-32 re-scored)", UsearchExact, "i8")]
        for label, kind, dtype in methods:
            method = kind(vectors, dtype)
            service = {}
            for b in batches:
                ids, sims, wall, cpu = batch_costs(method, queries, b, args.budget)
                m = len(ids)
                dec = decisions(ids, sims, identity, t_fpir)
                dec_loose = decisions(ids, sims, identity, t_loose)
                agree = int(np.sum(dec == truth_dec[:m]))
                agree_loose = int(np.sum(dec_loose == truth_loose[:m]))
                service[b] = float(np.median(cpu))
                per_q = service[b] / b
                lines.append(f"| {label} | {b} | {method.memory_bytes() / 2**20:.0f} | {np.median(wall):.1f} / "
                             f"{np.percentile(wall, 99):.1f} | {np.median(cpu):.1f} / {np.percentile(cpu, 99):.1f} | "
                             f"{per_q:.2f} | {1000 / per_q:,.0f} | {100 * agree / m:.2f}% ({agree}/{m}) | "
                             f"{100 * agree_loose / m:.2f}% ({agree_loose}/{m}) |")
                print(lines[-1], flush=True)
            sims_rows.append((label, service))
            del method
            gc.collect()
        lines += ["", f"Latency per query including the wait for the batch (modelled, {n:,} faces; max-wait "
                  f"{args.max_wait:g} ms; p50 / p99 ms, mean batch, core utilisation):", "",
                  "| method | cap B | " + " | ".join(f"{r:g} queries/s" for r in rates) + " |",
                  "|---|---|" + "---|" * len(rates)]
        for label, service in sims_rows:
            for cap in batches:
                cells = []
                for r in rates:
                    s = simulate({b: service[b] for b in batches if b <= max(cap, batches[0])}, cap, r,
                                 args.max_wait, 20_000, np.random.default_rng(1))
                    cells.append("unstable" if s["unstable"] else f"{s['p50']:.1f} / {s['p99']:.1f} "
                                 f"(batch {s['mean_batch']:.1f}, {100 * s['util']:.0f}%)")
                lines.append(f"| {label} | {cap} | " + " | ".join(cells) + " |")
        lines.append("")
        del vectors
        gc.collect()
    lines += [f"Load average at the end {load_average()}.", "",
              f"Command: `python bench/search_more.py {' '.join(sys.argv[1:])}`", ""]
    return lines


# -- (c) stated vs measured FPIR on the synthetic galleries --------------------------------------------
def cmd_fpir(args) -> list[str]:
    from vultus.gallery import decision as decide
    from vultus.models.calibration import calibration_for

    started = load_average()
    rng = np.random.default_rng(args.seed)
    space = lfw_face_space(rng, workers=1)
    cal = sorted(calibration_for("sface")["points"], key=lambda p: p["fmr"])
    lines = header("Stated vs measured FPIR on bench/search.py's synthetic galleries", started, space, [
        "- Gallery: two thirds enrolled identities with 1-5 faces, one third single-face distractors (each its own "
        "person); best-face aggregation, so a stranger has one comparison per enrolled face. Thresholds from "
        "`vultus.gallery.decision` (comparisons('max', faces, people), then embedder_fpir_point on SFace's "
        "shipped LFW calibration) for this gallery's size. Search: exact float32 scan.",
        f"- Non-mated searches: faces of {args.strangers:,} new identities (never enrolled, not distractors); mated: "
        f"{int(args.queries * 0.75):,} new faces of enrolled identities (FNIR: own identity not rank 1 at or above "
        "the threshold).",
        ""])
    lines += ["| faces | people | target FPIR | threshold | FMR per comparison | stated FPIR | measured FPIR "
              "(false ids / searches) | measured / stated | FNIR (mated searches) |",
              "|---|---|---|---|---|---|---|---|---|"]
    ladders = []
    for n in [int(x) for x in args.sizes.split(",")]:
        vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
        mated = q_identity >= 0
        people = len(np.unique(identity))
        comps = decide.comparisons("max", n, people)
        strangers = space.faces(space.identities(args.strangers))
        c0, t0 = time.process_time(), time.perf_counter()
        best = np.empty(len(strangers), np.float32)
        # every stranger-face comparison counted at the calibration's own thresholds: the synthetic
        # per-comparison FMR next to LFW's, over n * strangers comparisons
        rungs = [float(p["threshold"]) for p in cal]
        points = {"fpir": [decide.embedder_fpir_point("sface", f, comps)[0] for f in args.targets]}
        counted = rungs + [p.threshold for p in points["fpir"]]
        floor = min(t for t in counted if t >= 0.35)  # the tail from FMR ~1e-3 down is counted exactly
        counted = [t for t in counted if t >= floor]
        above = np.zeros(len(counted), np.int64)
        for s in range(0, len(strangers), 32):
            sims = strangers[s:s + 32] @ vectors.T
            best[s:s + 32] = sims.max(axis=1)
            tail = sims[sims >= floor]
            above += np.array([(tail >= t).sum() for t in counted])
        m_ids, m_sims = exact_search(vectors, queries[mated], 1)
        print(f"== {n:,}: {time.perf_counter() - t0:.0f}s wall, {time.process_time() - c0:.0f}s CPU, "
              f"load {load_average()}", flush=True)
        for target, point in zip(args.targets, points["fpir"], strict=True):
            stated = decide.fpir_for_fmr(point.fmr, comps)
            false_ids = int(np.sum(best >= point.threshold))
            measured = false_ids / len(strangers)
            hit = (identity[m_ids[:, 0]] == q_identity[mated]) & (m_sims[:, 0] >= point.threshold)
            lines.append(f"| {n:,} | {people:,} | {target:g} | {point.threshold:.4f} | {point.fmr:.2e}"
                         f"{' (extrapolated)' if point.extrapolated else ''} | {100 * stated:.2f}% | "
                         f"{100 * measured:.3f}% ({false_ids} / {len(strangers):,}) | {measured / stated:.2f} | "
                         f"{100 * (1 - hit.mean()):.2f}% ({int(mated.sum()):,}) |")
            print(lines[-1], flush=True)
        lines.append(f"| {n:,} | {people:,} | (the synthetic gallery's own) | strangers' best score: 99th "
                     f"percentile {np.quantile(best, 0.99):.4f}, 99.9th {np.quantile(best, 0.999):.4f}, "
                     f"max {best.max():.4f} | | | | | |")
        total = n * len(strangers)
        ladders.append((n, total, list(zip(counted, above.tolist(), strict=True))))
        del vectors
        gc.collect()
    lines += ["", "Per-comparison false-match rate of the synthetic vectors at the thresholds of SFace's LFW "
              "calibration (its rungs, then the FPIR thresholds above): every stranger against every gallery face.",
              "", "| faces | comparisons | threshold | LFW calibration FMR | synthetic FMR (pairs at or above) |",
              "|---|---|---|---|---|"]
    for n, total, counts in ladders:
        fmr_at = {float(p["threshold"]): float(p["fmr"]) for p in cal}
        for t, c in counts:
            ref = f"{fmr_at[t]:.0e}" if t in fmr_at else "(FPIR threshold)"
            lines.append(f"| {n:,} | {total:.2e} | {t:.4f} | {ref} | {c / total:.2e} ({c:,}) |")
    lines += ["", f"Load average at the end {load_average()}.", "",
              f"Command: `python bench/search_more.py {' '.join(sys.argv[1:])}`", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("hnsw", "batch", "fpir"))
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--timed-queries", type=int, default=300)
    ap.add_argument("--ef", default="512,1024,2048")
    ap.add_argument("--candidates", default="256")
    ap.add_argument("--index", default="/tmp/i18-hnsw-1m.usearch", help="HNSW index file, reused if present")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", default="1,8,32,128")
    ap.add_argument("--rates", default="100,500")
    ap.add_argument("--max-wait", type=float, default=2.0, help="ms a batch waits to fill")
    ap.add_argument("--budget", type=float, default=20.0, help="CPU seconds per batch size and method (batch)")
    ap.add_argument("--strangers", type=int, default=10_000, help="non-mated searches (fpir)")
    ap.add_argument("--targets", default="0.01,0.001", help="FPIR targets (fpir)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.ef = [int(x) for x in args.ef.split(",")]
    args.candidates = [int(x) for x in args.candidates.split(",")]
    args.targets = [float(x) for x in args.targets.split(",")]
    lines = {"hnsw": cmd_hnsw, "batch": cmd_batch, "fpir": cmd_fpir}[args.what](args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

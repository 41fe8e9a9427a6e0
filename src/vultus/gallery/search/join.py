"""Every pair of stored vectors at or above a similarity (a similarity self-join), fast and exact.

Clustering needs, for every face, its neighbours above a strict threshold: O(n^2) dot products, but
only a few hundred-thousandths of them pass. At 1M faces float32 matrix products plus numpy's
threshold test cost more than the 30-minute budget on two cores, and most of the time goes to
writing and re-reading a float32 similarity per pair. So the join runs in two passes:

1. **An int8 prefilter with a proven error bound.** Every vector is scaled by one factor c (its
   largest component maps to 127) and rounded to int8; onnxruntime's MatMulInteger (uint8 x int8,
   VNNI instructions where the CPU has them) computes the integer dot products tile by tile, about
   four times as many pairs per second as float32 here. Rounding moves each vector by at most
   e = |round(c x) - c x| (measured per vector), so for any pair
   |q_x . q_y - c^2 x . y| <= c |x| e_y + c |y| e_x + e_x e_y. Every pair whose exact similarity
   reaches the threshold therefore reaches the integer threshold c^2 t minus that bound (taken with
   the largest e and norm): the prefilter cannot lose a pair, it only lets through some that miss.
   This needs the integer products to be exact: int8_levels() checks that once per process (CPUs
   without VNNI saturate at full range, so codes are then limited to +-63).
2. **Exact re-scoring** of the candidates in float32; those below the threshold are dropped.

The result is the same pair set as the float32 join (up to float32 rounding of pairs within about
1e-6 of the threshold). Tiles are sized to stay in the L2/L3 caches; two or more threads (one
onnxruntime session each, one intra-op thread) share the row blocks, since both onnxruntime and
numpy release the GIL. Measured in bench/results/cluster.md.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vultus.models.runtime import default_threads, onnxruntime

# Rows (queries) and columns per tile: a 512 x 2048 int32 tile is 4 MB, near the L2 and well inside
# the L3, so the row-maximum pass reads it back from cache. Measured against 1024 x 4096 (16 MB):
# about 1.4 times the pairs per CPU-second.
TILE_ROWS = 512
TILE_COLS = 2048
# The exact index uses this join from this many vectors (below, both take a few milliseconds).
# Measured CPU time of ExactIndex.neighbors_above at threshold 0.465 on generator vectors: 1,000
# vectors 54 / 14 ms (float32 / int8), 4,000 234 / 43 ms, 16,000 1,169 / 154 ms.
MIN_VECTORS = 1024

_sessions = threading.local()


def _session():
    """One MatMulInteger session per thread: A uint8 (rows, d) with zero point 128 (so A is int8
    shifted), B int8 (d, cols), Y int32. Built in memory: an arithmetic kernel, not a model."""
    sess = getattr(_sessions, "sess", None)
    if sess is None:
        ort = onnxruntime()
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B", "za"], ["Y"])], "int8_join",
            [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, None]),
             helper.make_tensor_value_info("B", TensorProto.INT8, [None, None])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None])],
            initializer=[helper.make_tensor("za", TensorProto.UINT8, [], [128])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        _sessions.sess = sess
    return sess


def _tile_runner(sess, rows: int, cols: int):
    """A function (A, B) -> int32 tile. Full-size tiles are written into one buffer per thread
    (onnxruntime's I/O binding): a fresh output per tile costs its page faults again each time
    (measured at 1024 x 4096: the product ran at 2.3 G pairs per CPU-second allocating, 2.8 bound).
    Partial tiles (the last row or column block) get a fresh array."""
    ort = onnxruntime()
    buf = getattr(_sessions, "buf", None)
    if buf is None or buf.shape != (rows, cols):
        buf = np.empty((rows, cols), np.int32)
        binding = sess.io_binding()
        binding.bind_ortvalue_output("Y", ort.OrtValue.ortvalue_from_numpy(buf))
        _sessions.buf, _sessions.binding = buf, binding
    binding = _sessions.binding

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.shape[0] != rows or b.shape[1] != cols:
            return sess.run(None, {"A": a, "B": b})[0]
        binding.bind_cpu_input("A", a)
        binding.bind_cpu_input("B", b)
        sess.run_with_iobinding(binding)
        return buf

    return run


_levels: list[int] = []
_levels_lock = threading.Lock()


def int8_levels() -> int:
    """The largest code magnitude whose products this CPU's MatMulInteger computes exactly: 127, or
    63 where it saturates, or 0 where neither is exact (the join is then not used). On x86 CPUs
    without VNNI, uint8 x int8 kernels built on VPMADDUBSW add pairs of products in int16 with
    saturation (255 x 127 x 2 overflows it); codes of at most 63 keep every pair sum below 2^15.
    Checked once per process with the extreme values, against numpy's int64 product (this machine,
    AMD EPYC with AVX512-VNNI: 127)."""
    with _levels_lock:
        if not _levels:
            rng = np.random.default_rng(0)
            sess, found = _session(), 0
            for levels in (127, 63):
                a = rng.integers(-levels, levels + 1, (64, 128))
                a[:8], a[8:16] = levels, -levels
                b = rng.integers(-levels, levels + 1, (128, 96))
                b[:, :8], b[:, 8:16] = levels, -levels
                got = sess.run(None, {"A": (a + 128).astype(np.uint8), "B": b.astype(np.int8)})[0]
                if np.array_equal(got.astype(np.int64), a @ b):
                    found = levels
                    break
            _levels.append(found)
        return _levels[0]


def quantize(vectors: np.ndarray, levels: int = 127) -> tuple[np.ndarray, float, float]:
    """(int8 codes of magnitude at most `levels`, scale c, integer-unit error bound of any pair's dot
    product)."""
    v = np.asarray(vectors, np.float32)
    top = float(np.abs(v).max()) if v.size else 0.0
    c = levels / top if top > 0 else 1.0
    q = np.empty(v.shape, np.int8)
    err_max, norm_max = 0.0, 0.0
    for s in range(0, len(v), 65_536):  # in chunks: no float64 copy of the whole set
        part = v[s:s + 65_536].astype(np.float64) * c
        r = np.rint(part)
        q[s:s + 65_536] = r.astype(np.int8)
        err_max = max(err_max, float(np.sqrt(((r - part) ** 2).sum(axis=1)).max()))
        norm_max = max(norm_max, float(np.sqrt((part ** 2).sum(axis=1)).max()) / c)
    bound = 2.0 * c * norm_max * err_max + err_max ** 2
    return q, c, bound


def pairs_above(vectors: np.ndarray, min_similarity: float, *, threads: int | None = None,
                tile_rows: int = TILE_ROWS, tile_cols: int = TILE_COLS,
                levels: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j with vectors[i] . vectors[j] >= min_similarity: (i, j, similarity), with
    float32 similarities computed exactly. Row-major order is not promised. `levels`: the code
    magnitude (default int8_levels(); callers check that it is not 0)."""
    v = np.ascontiguousarray(vectors, np.float32)
    n = len(v)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    levels = levels or int8_levels()
    if not levels:
        raise RuntimeError("this CPU's MatMulInteger is not exact; use the float32 join")
    q, c, bound = quantize(v, levels)
    # Integer threshold: c^2 t minus the bound, minus 2 for float rounding in computing it.
    t_int = int(np.floor(c * c * float(min_similarity) - bound)) - 2
    a_u8 = (q.astype(np.int16) + 128).astype(np.uint8)
    col_blocks = [np.ascontiguousarray(q[s:s + tile_cols].T) for s in range(0, n, tile_cols)]
    starts = list(range(0, n, tile_rows))

    def row_block(s: int):
        sess = _session()
        e = min(n, s + tile_rows)
        a = a_u8[s:e]
        tile = _tile_runner(sess, e - s, tile_cols)
        out_i, out_j = [], []
        first = s // tile_cols  # column blocks that hold a column > some row of this block
        for b in range(first, len(col_blocks)):
            c0 = b * tile_cols
            y = tile(a, col_blocks[b])
            hit_rows = np.flatnonzero(y.max(axis=1) >= t_int)
            if not hit_rows.size:
                continue
            rr, cc = np.nonzero(y[hit_rows] >= t_int)
            i, j = hit_rows[rr] + s, cc + c0
            upper = j > i
            out_i.append(i[upper])
            out_j.append(j[upper])
        if not out_i:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        i, j = np.concatenate(out_i), np.concatenate(out_j)
        sims = np.einsum("ij,ij->i", v[i], v[j])
        keep = sims >= min_similarity
        return i[keep], j[keep], sims[keep]

    workers = max(1, threads or default_threads())
    if workers == 1:
        parts = [row_block(s) for s in starts]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(row_block, starts))
    i, j, sims = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return i.astype(np.int64), j.astype(np.int64), sims.astype(np.float32)

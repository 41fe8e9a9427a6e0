"""Names: one check for every way a person or collection name enters the gallery,
and no control character from a name or a file name reaching the terminal raw.

Fast tests use vectors made here (no models) or stop before any model runs;
the ones marked slow run the detector and embedder on real photos.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from conftest import need_data
from vultus.cli import main
from vultus.cli.common import print_table
from vultus.gallery import MAX_NAME_LENGTH, EnrollItem, Gallery, GalleryError, check_name, csv_items, folder_items
from vultus.gallery.storage.sqlite import SQLiteStore
from vultus.gallery.types import NewFace
from vultus.types import Box, Face

KNN = ("face_recognition", "examples", "knn_examples")
LONG = "x" * 10_000
# A clear-screen, a window-title change, and a line break that forges a table row.
HOSTILE = ["bob\x1b[2J", "a\x1b]0;pwned\x07", "eve\nmallory  99  2026-01-01", "x\u202egnp.exe", "tab\there",
           "del\x7f", "c1\x9b31m"]
ESCAPE_BYTES = ("\x1b", "\x07", "\x7f", "\x9b", "\u202e")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_raw_controls(text: str) -> None:
    for ch in ESCAPE_BYTES:
        assert ch not in text, repr(text)


def new_face(person: str, tag: str, seed: int = 0) -> NewFace:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(128).astype(np.float32)
    face = Face(box=Box(10, 20, 110, 140), score=0.9, landmarks=np.zeros((5, 2), np.float32), detector="yunet")
    return NewFace(person=person, image_sha256=f"sha-{tag}", image_path=None, face=face,
                   vector=v / np.linalg.norm(v), quality={"face_px": 100.0})


# -- the check -----------------------------------------------------------------
def test_check_name_says_what_is_wrong_with_data():
    assert check_name("  Ada Lovelace \t") == "Ada Lovelace"
    assert check_name("Zoë Ñúñez 李小龍") == "Zoë Ñúñez 李小龍"
    assert check_name("x" * MAX_NAME_LENGTH) == "x" * 200
    cases = [(LONG, "too_long"), ("x" * 201, "too_long"), ("", "empty"), ("  \t ", "empty"),
             *((h, "control_character") for h in HOSTILE), (None, "not_text")]
    for name, reason in cases:
        with pytest.raises(GalleryError) as info:
            check_name(name, "person")
        err = info.value
        assert err.code == "invalid_name", name
        assert err.data["kind"] == "person" and err.data["reason"] == reason and err.data["limit"] == 200
        assert_no_raw_controls(str(err))
        assert len(str(err)) < 300  # a 10,000-character name is not echoed back
    with pytest.raises(GalleryError) as info:
        check_name(LONG, "collection")
    assert info.value.data == {"kind": "collection", "reason": "too_long", "length": 10_000, "limit": 200}


# -- every way in ---------------------------------------------------------------
def test_every_way_a_name_enters_is_checked(tmp_path):
    image = tmp_path / "face.jpg"
    image.write_bytes(b"not read: the name is refused first")
    with Gallery(tmp_path / "g.db") as g:
        for bad in (LONG, *HOSTILE, "   "):
            with pytest.raises(GalleryError) as info:  # one image (the CLI's --person), or any list of items
                g.enroll([EnrollItem(image, "ok"), EnrollItem(image, bad)])
            assert info.value.code == "invalid_name" and info.value.data["file"] == str(image)
            with pytest.raises(GalleryError, match="name"):
                g.enroll_image(image, bad)
            with pytest.raises(GalleryError) as info:  # create, and --collection on any command that creates
                g.create_collection(bad)
            assert info.value.code == "invalid_name" and info.value.data["kind"] == "collection"
            with pytest.raises(GalleryError) as info:
                g.ensure_collection(bad)
            assert info.value.code == "invalid_name"
        assert g.collections() == []  # nothing was created on the way
        coll = g.ensure_collection("default")
        g.store.add_faces(coll.id, coll.contract.key, [new_face("alice", "a")])
        for bad in (LONG, *HOSTILE):
            with pytest.raises(GalleryError) as info:
                g.rename("alice", bad)
            assert info.value.code == "invalid_name"
        assert [p.name for p in g.people()] == ["alice"]


def test_the_store_checks_names_too(tmp_path):
    """A service (or any caller) that talks to the store directly gets the same check."""
    store = SQLiteStore(tmp_path / "g.db")
    try:
        coll = Gallery(store=store).ensure_collection("default")
        for bad in (LONG, *HOSTILE, " padded "):
            with pytest.raises(GalleryError) as info:
                store.add_faces(coll.id, coll.contract.key, [new_face(bad, "b")])
            assert info.value.code == "invalid_name"
            if bad == " padded ":
                continue
            with pytest.raises(GalleryError) as info:
                store.create_collection(bad, coll.contract, "yunet", 1e-3, True, "max")
            assert info.value.code == "invalid_name"
        store.add_faces(coll.id, coll.contract.key, [new_face("alice", "a")])
        for bad in (LONG, *HOSTILE, ""):
            with pytest.raises(GalleryError) as info:
                store.rename_person(coll.id, "alice", bad)
            assert info.value.code == "invalid_name"
        assert [p.name for p in store.people(coll.id)] == ["alice"]
        assert [c.name for c in store.collections()] == ["default"]
    finally:
        store.close()


def test_folder_and_csv_names_are_checked(tmp_path):
    src = need_data(*KNN, "train", "obama", "obama.jpg")
    for bad in ("evil\x1b[2J", "x" * 201):
        root = tmp_path / f"folder{len(bad)}"
        (root / bad).mkdir(parents=True)
        shutil.copy(src, root / bad / "a.jpg")
        with pytest.raises(GalleryError) as info:
            folder_items(root)
        assert info.value.code == "invalid_name"
        assert_no_raw_controls(str(info.value))
        sheet = tmp_path / f"people{len(bad)}.csv"
        sheet.write_text(f"path,person\n{src},{bad}\n")
        with pytest.raises(GalleryError) as info:
            csv_items(sheet)
        assert info.value.code == "invalid_name"


def test_cli_refuses_bad_names_in_one_line_and_stores_nothing(capsys, tmp_path):
    image = need_data(*KNN, "train", "obama", "obama.jpg")
    db = tmp_path / "g.db"
    g = ("--gallery", db)
    cases = [("gallery", "enroll", image, "--person", LONG, *g),  # the limit --person skipped
             ("gallery", "enroll", image, "--person", "bob\x1b[2J", *g),
             ("gallery", "enroll", image, "--person", "ok", "--collection", "c\x1b]0;x\x07", *g),
             ("gallery", "create", "--collection", LONG, *g),
             ("gallery", "create", "--collection", "two\nlines", *g)]
    for argv in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "", (argv, err)
        assert err.startswith("vultus: error: ") and err.count("\n") == 1, err
        assert_no_raw_controls(err)
        assert len(err) < 400
    if db.exists():
        with sqlite3.connect(db) as c:
            assert c.execute("SELECT count(*) FROM people").fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM collections").fetchone()[0] == 0


# -- output ---------------------------------------------------------------------
def test_error_lines_escape_file_names(capsys, tmp_path):
    bad = tmp_path / "notes\x1b]0;title\x07.jpg"
    bad.write_text("not an image")
    for command in ("detect", "analyze"):
        code, out, err = run(capsys, command, bad)
        assert code == 2 and "not an image" in err, err
        assert_no_raw_controls(out + err)
        assert "notes\\x1b]0;title\\x07.jpg" in err


def test_print_table_escapes_every_cell(capsys):
    print_table(["name\x1b[31m", "n"], [("bob\x1b[2J", 1), ("eve\nmallory", 2.5), ("x\u202egnp", None)])
    out = capsys.readouterr().out
    assert_no_raw_controls(out)
    lines = out.splitlines()
    assert len(lines) == 5  # header, rule, three rows: no row forged by "\n"
    assert "bob\\x1b[2J" in out and "eve\\x0amallory" in out and "x\\u202egnp" in out


@pytest.fixture()
def legacy_gallery(tmp_path):
    """A gallery written before names were checked: names with escapes, put there with raw SQL."""
    db = tmp_path / "old.db"
    with Gallery(db) as g:
        coll = g.ensure_collection("default")
        g.store.add_faces(coll.id, coll.contract.key, [new_face("alice", "a", 1), new_face("bob", "b", 2)])
        g.rename("bob", "robert")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE people SET name = ? WHERE name = 'alice'", ("al\x1b[2Jice\nforged  9  row",))
        c.execute("UPDATE faces SET image_path = ?", ("/photos/\x1b]0;owned\x07.jpg",))
        cols = ("embedder, embedder_version, embedder_alignment, dim, detector, target_fmr, keep_crops, "
                "aggregation, created_at")
        c.execute(f"INSERT INTO collections (name, {cols}) SELECT ?, {cols} FROM collections", ("c\x1b[2J",))
        c.execute("UPDATE audit SET detail = ? WHERE action = 'rename'",
                  (json.dumps({"person_id": 2, "from": "b\x1b[2Job", "to": "robert"}),))
    return db


def test_human_output_escapes_names_already_stored(capsys, legacy_gallery):
    g = ("--gallery", legacy_gallery)
    evil = "al\x1b[2Jice\nforged  9  row"
    for argv in [("gallery", "list", *g), ("gallery", "show", evil, *g), ("gallery", "audit", *g),
                 ("gallery", "list", "--collections", *g), ("gallery", "rename", evil, "alice", *g)]:
        code, out, err = run(capsys, *argv)
        assert code == 0, (argv, err)
        assert_no_raw_controls(out + err)
        assert "\\x1b" in out, (argv, out)
    # the legacy name could still be looked up (and renamed, above); the new one is clean
    code, out, _ = run(capsys, "gallery", "list", *g)
    assert "alice" in out and "forged" not in out
    code, out, _ = run(capsys, "gallery", "forget", "robert", *g)
    assert code == 0 and "forgot 'robert'" in out


def test_json_output_keeps_names_exact(capsys, legacy_gallery):
    code, out, _ = run(capsys, "gallery", "list", "--gallery", legacy_gallery, "--json")
    assert code == 0
    assert sorted(p["name"] for p in json.loads(out)) == ["al\x1b[2Jice\nforged  9  row", "robert"]
    code, out, _ = run(capsys, "gallery", "show", "al\x1b[2Jice\nforged  9  row", "--gallery", legacy_gallery,
                       "--json")
    assert json.loads(out)["face_records"][0]["image_path"] == "/photos/\x1b]0;owned\x07.jpg"


@pytest.mark.slow
def test_identify_and_detect_escape_names_and_file_names(capsys, tmp_path):
    """Real photos: a stored name with escapes (raw SQL) and an image file whose
    name holds escapes go through identify, detect and enroll's report lines."""
    db = tmp_path / "g.db"
    g = ("--gallery", db)
    code, _, err = run(capsys, "gallery", "enroll", need_data(*KNN, "train"), *g)
    assert code == 0, err
    with sqlite3.connect(db) as c:
        c.execute("UPDATE people SET name = ? WHERE name = 'obama'", ("ob\x1b[2Jama\nfake row",))
    photo = tmp_path / "group\x1b]0;title\x07\n.jpg"
    shutil.copy(need_data(*KNN, "test", "obama_and_biden.jpg"), photo)
    code, out, err = run(capsys, "gallery", "identify", photo, *g)
    assert code == 0, err
    assert_no_raw_controls(out + err)
    assert "ob\\x1b[2Jama\\x0afake row" in out and "group\\x1b]0;title\\x07\\x0a.jpg" in out
    code, out, err = run(capsys, "gallery", "identify", photo, *g, "--json")
    assert {f["person"] for f in json.loads(out)[0]["faces"]} >= {"ob\x1b[2Jama\nfake row", "biden"}
    code, out, err = run(capsys, "detect", photo)
    assert code == 0, err
    assert_no_raw_controls(out + err)
    assert "group\\x1b]0;title\\x07\\x0a.jpg" in out
    # a threshold's source is free text, shown by `gallery threshold` and `verify`
    code, out, err = run(capsys, "gallery", "threshold", "--threshold", "0.5", "--fmr", "1e-3", "--source",
                         "lab\x1b[2J", *g)
    assert code == 0 and "lab\\x1b[2J" in out, err
    obama = need_data(*KNN, "train", "obama", "obama.jpg")
    code, out, err = run(capsys, "verify", obama, photo, "--collection", "default", "--largest", *g)
    assert code == 0 and "lab\\x1b[2J" in out, err
    assert_no_raw_controls(out + err)
    # enroll's report lines name the file (a refusal: no face in a blank image)
    blank = tmp_path / "blank\x1b[2J.png"
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(blank)
    code, out, err = run(capsys, "gallery", "enroll", blank, "--person", "nobody", *g)
    assert "blank\\x1b[2J.png" in err
    assert_no_raw_controls(out + err)

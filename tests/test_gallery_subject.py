"""Which face of a photo is the person: subject choice at enroll (center_largest by default)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_data
from vultus.cli import main
from vultus.gallery import EnrollItem, EnrollOptions, Gallery
from vultus.gallery.errors import GalleryError
from vultus.gallery.inference import process_items
from vultus.models.calibration import operating_point

# LFW first photos with a second, smaller face that today's `only` refuses (bench/enroll_subject.py
# found them): (person, enrolled photo, check photo).
TWO_FACES = [("Alex_Penelas", "Alex_Penelas_0001.jpg", "Alex_Penelas_0002.jpg"),
             ("Andrew_Niccol", "Andrew_Niccol_0001.jpg", "Andrew_Niccol_0002.jpg"),
             ("Bertrand_Bonello", "Bertrand_Bonello_0001.jpg", "Bertrand_Bonello_0002.jpg")]
DEEPFACE = ("deepface", "tests", "unit", "dataset")


def lfw(person: str, photo: str):
    return need_data("lfw", "images", person, photo)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_center_largest_takes_the_subject_that_only_refuses_and_it_is_the_named_person(engine, tmp_path):
    items = [(i, EnrollItem(lfw(p, a), p)) for i, (p, a, _) in enumerate(TWO_FACES)]
    only = process_items(engine, items, EnrollOptions(subject="only"))
    assert [o.status for o in only] == ["refused"] * 3, [o.reason for o in only]
    chosen = process_items(engine, items, EnrollOptions())  # center_largest
    threshold = operating_point("sface", 1e-3).threshold
    for (person, photo, check), p in zip(TWO_FACES, chosen, strict=True):
        assert p.status == "ok", p.reason
        assert p.subject.faces >= 2 and 0 <= p.subject.index < p.subject.faces
        assert p.subject.box == p.new_face.face.box
        # the taken face is the named person: it matches the largest face of their second photo,
        # which no other face of the enrolled photo does
        ref = max(engine.embed(lfw(person, check)), key=lambda f: f.box.area).embedding.vector
        assert float(p.new_face.vector @ ref) >= threshold, person
        others = [f for i, f in enumerate(engine.embed(lfw(person, photo))) if i != p.subject.index]
        assert len(others) == p.subject.faces - 1
        assert all(float(f.embedding.vector @ ref) < threshold for f in others), person


def test_refuses_no_face_and_no_clear_subject_and_says_why(engine, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (120, 120, 120)).save(blank)
    couple = need_data(*DEEPFACE, "couple.jpg")
    out = process_items(engine, [(0, EnrollItem(blank, "x")), (1, EnrollItem(couple, "x"))], EnrollOptions())
    assert out[0].status == "refused" and out[0].reason == "no face found" and out[0].subject is None
    assert out[1].status == "refused" and out[1].reason.startswith("no face is clearly the subject")
    assert "2 of the 2 faces" in out[1].reason and out[1].subject is None
    # the other policies still take one of the couple, and say by which rule
    for subject, word in (("largest", "largest"), ("central", "centre")):
        got = process_items(engine, [(0, EnrollItem(couple, "x"))], EnrollOptions(subject=subject))[0]
        assert got.status == "ok" and got.subject.faces == 2 and word in got.subject.reason


def test_subject_names_are_checked_and_the_older_pick_still_works():
    assert EnrollOptions().subject == "center_largest"
    assert EnrollOptions(pick="one").subject == "only"
    assert EnrollOptions(pick="central").subject == "central"
    with pytest.raises(ValueError, match="subject must be one of"):
        EnrollOptions(subject="first")


def test_api_subject_option_and_report_say_which_face(engine, tmp_path):
    person, photo, _ = TWO_FACES[0]
    with Gallery(tmp_path / "g.db") as g:
        with pytest.raises(GalleryError) as exc:
            g.enroll([EnrollItem(lfw(person, photo), person)], engine=engine, workers=0, subject="first")
        assert exc.value.code == "bad_subject" and g.collections() == []  # refused before anything was made
        refused = g.enroll([EnrollItem(lfw(person, photo), person)], engine=engine, workers=0, subject="only")
        assert refused.enrolled == 0 and refused.outcomes[0].subject is None
        report = g.enroll([EnrollItem(lfw(person, photo), person)], engine=engine, workers=0)
        (o,) = report.outcomes
        assert o.status == "enrolled" and o.subject.faces == 2
        d = report.to_dict()["images"][0]["face"]
        assert d["index"] == o.subject.index and d["faces_found"] == 2 and d["why"] == o.subject.reason
        stored = g.faces(person=person)[0]
        assert np.allclose(stored.box.as_tuple(), o.subject.box.as_tuple(), atol=0.05)


def test_cli_folder_enroll_table_and_json_say_which_face(capsys, tmp_path):
    folder = tmp_path / "people"
    for person, photo, _ in TWO_FACES[:2]:
        (folder / person).mkdir(parents=True)
        (folder / person / photo).symlink_to(lfw(person, photo))
    db = tmp_path / "g.db"
    code, out, err = run(capsys, "gallery", "enroll", folder, "--gallery", db, "--subject", "only")
    assert code == 2 and err.count("faces of similar size") == 2
    code, out, err = run(capsys, "gallery", "enroll", folder, "--gallery", db)
    assert code == 0, err
    assert "why this face" in out and "box x1,y1,x2,y2" in out
    for person, _, _ in TWO_FACES[:2]:
        row = next(line for line in out.splitlines() if person in line)
        assert "enrolled" in row and "faces" in row
    code, out, err = run(capsys, "gallery", "enroll", folder, "--gallery", tmp_path / "h.db", "--json")
    assert code == 0, err
    images = json.loads(out)["images"]
    assert all(i["status"] == "enrolled" and i["face"]["faces_found"] == 2 and len(i["face"]["box"]) == 4
               for i in images)

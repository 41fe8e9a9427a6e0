"""The enrollment gate on real photos: what it keeps and what it refuses."""

from __future__ import annotations

from dataclasses import replace

import cv2
import pytest

from conftest import need_data
from vultus.gallery.gate import GateThresholds, check, measure
from vultus.gallery.inference import EnrollOptions, process_items
from vultus.gallery.types import EnrollItem
from vultus.imageio import load_image
from vultus.quality import assess_quality


@pytest.mark.slow
def test_defaults_keep_almost_all_of_lfw(engine):
    root = need_data("lfw", "images")
    paths = sorted(root.rglob("*.jpg"))[::60]  # 129 images spread over the alphabet
    items = []
    for p in paths:
        img = load_image(p)
        items.append((img, max(engine.detect(img), key=lambda f: f.box.area)))
    measures = measure(items, engine.embedder)
    assert all(m.mirror_cosine is not None for m in measures)  # SFace: stability is part of the score
    kept = sum(not check(m, GateThresholds()) for m in measures)
    assert kept / len(paths) >= 0.97


def test_gate_uses_the_quality_score(engine):
    img = load_image(need_data("face_recognition", "tests", "test_images", "obama.jpg"))
    face = engine.detect(img)[0]
    (m,) = measure([(img, face)], engine.embedder)
    (q,) = assess_quality([(img, face)], engine.embedder)
    assert m.quality == pytest.approx(q.score) and m.sharpness == pytest.approx(q.blur_var)
    assert check(m, GateThresholds()) == ()
    reasons = check(m, replace(GateThresholds(), min_quality=0.999))
    assert len(reasons) == 1 and reasons[0].startswith("low quality")


def test_refuses_blurred_and_small_faces(engine, tmp_path):
    src = need_data("face_recognition", "tests", "test_images", "obama.jpg")
    img = load_image(src)
    blurred = tmp_path / "person" / "blurred.png"
    small = tmp_path / "person" / "small.png"
    blurred.parent.mkdir()
    cv2.imwrite(str(blurred), cv2.cvtColor(cv2.GaussianBlur(img, (0, 0), 8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(small), cv2.cvtColor(cv2.resize(img, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA),
                                         cv2.COLOR_RGB2BGR))
    items = [(0, EnrollItem(src, "obama")), (1, EnrollItem(blurred, "obama")), (2, EnrollItem(small, "obama"))]
    out = process_items(engine, items, EnrollOptions())
    assert [p.status for p in out] == ["ok", "refused", "refused"]
    assert "too blurred" in out[1].reason
    assert "face too small" in out[2].reason
    stored = out[0].new_face.quality
    assert stored["face_px"] > 200 and stored["quality"] > 0.8 and stored["mirror_cosine"] > 0.9
    # The thresholds are the caller's to change.
    loose = EnrollOptions(gate=replace(GateThresholds(), min_quality=0, min_face_px=20, min_sharpness=1))
    assert [p.status for p in process_items(engine, items, loose)] == ["ok", "ok", "ok"]
    strict = EnrollOptions(gate=replace(GateThresholds(), max_yaw_deg=1))
    assert "turned too far" in process_items(engine, items[:1], strict)[0].reason


def test_refuses_photos_that_do_not_say_who(engine, tmp_path):
    couple = need_data("deepface", "tests", "unit", "dataset", "couple.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    items = [(0, EnrollItem(couple, "someone")), (1, EnrollItem(text, "someone")),
             (2, EnrollItem(tmp_path / "gone.jpg", "someone"))]
    out = process_items(engine, items, EnrollOptions())
    # center_largest (the default): two faces of similar size, about as near the centre
    assert out[0].status == "refused" and "no face is clearly the subject" in out[0].reason
    assert "faces of similar size" in process_items(engine, items[:1], EnrollOptions(subject="only"))[0].reason
    assert out[1].status == "error" and "not an image" in out[1].reason
    assert out[2].status == "error" and out[2].reason == "no such file"
    assert process_items(engine, items[:1], EnrollOptions(pick="largest"))[0].status == "ok"
    assert process_items(engine, items[:1], EnrollOptions(pick="central"))[0].status == "ok"

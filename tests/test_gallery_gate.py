"""The enrollment gate on real photos: what it keeps and what it refuses."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import need_data
from vultus.align import ARCFACE_112
from vultus.gallery.gate import GateThresholds, check, estimate_yaw, measure
from vultus.gallery.inference import EnrollOptions, process_items
from vultus.gallery.types import EnrollItem
from vultus.imageio import load_image


def test_yaw_from_landmark_geometry():
    frontal = ARCFACE_112.copy()
    assert abs(estimate_yaw(frontal)) < 2.0
    half_eye = (frontal[1, 0] - frontal[0, 0]) / 2
    turned = frontal.copy()
    turned[2, 0] += 0.8 * half_eye  # nose moved sideways by 0.8 half eye-distances: 45 degrees
    assert estimate_yaw(turned) == pytest.approx(45.0, abs=0.5)
    mirrored = frontal.copy()
    mirrored[2, 0] -= 0.8 * half_eye
    assert estimate_yaw(mirrored) == pytest.approx(-45.0, abs=0.5)
    # Rotating the whole face in the image plane (a tilted head) does not read as a turn.
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    assert estimate_yaw(turned @ rot.T) == pytest.approx(45.0, abs=0.5)


def test_defaults_keep_almost_all_of_lfw(engine):
    root = need_data("lfw", "images")
    paths = sorted(root.rglob("*.jpg"))[::60]  # 129 images spread over the alphabet
    kept = 0
    for p in paths:
        img = load_image(p)
        faces = engine.detect(img)
        face = max(faces, key=lambda f: f.box.area)
        kept += not check(measure(img, face), GateThresholds())
    assert kept / len(paths) >= 0.97


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
    assert out[0].new_face.quality["face_px"] > 200
    # The thresholds are the caller's to change.
    loose = EnrollOptions(gate=replace(GateThresholds(), min_face_px=20, min_sharpness=1))
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
    assert out[0].status == "refused" and "faces of similar size" in out[0].reason
    assert out[1].status == "error" and "not an image" in out[1].reason
    assert out[2].status == "error" and "cannot read" in out[2].reason
    assert process_items(engine, items[:1], EnrollOptions(pick="largest"))[0].status == "ok"
    assert process_items(engine, items[:1], EnrollOptions(pick="central"))[0].status == "ok"

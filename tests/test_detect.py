"""Detection on real photos: known boxes, odd inputs, group photos."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need_data
from vultus import Engine
from vultus.imageio import load_image
from vultus.types import Box

FR_TESTS = ("face_recognition", "tests", "test_images")


def fr_box(top, right, bottom, left) -> Box:
    return Box(left, top, right, bottom)


# Boxes face_recognition's own tests assert for dlib HOG (top, right, bottom, left).
EXPECTED_HOG = {
    "obama.jpg": fr_box(142, 617, 409, 349),
    "obama_partial_face.jpg": fr_box(142, 191, 365, 0),
    "obama_partial_face2.jpg": fr_box(142, 551, 409, 349),
}


@pytest.fixture(scope="module")
def hog():
    return Engine(detector="dlib-hog")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_HOG))
def test_hog_reproduces_face_recognition_boxes(hog, name):
    faces = hog.detect(need_data(*FR_TESTS, name))
    assert len(faces) == 1
    # dlib's rectangles are inclusive; face_recognition reports right/bottom as is.
    assert faces[0].box.iou(EXPECTED_HOG[name]) > 0.97
    assert faces[0].landmarks68.shape == (68, 2)


@pytest.mark.parametrize("name", sorted(EXPECTED_HOG))
def test_yunet_agrees_with_expected_boxes(engine, name):
    faces = engine.detect(need_data(*FR_TESTS, name))
    assert len(faces) == 1
    # YuNet's boxes run from hairline to chin (taller than HOG's); the overlap is still large.
    assert faces[0].box.iou(EXPECTED_HOG[name]) > 0.6
    lm = faces[0].landmarks
    assert lm.shape == (5, 2)
    b = faces[0].box
    assert np.all((lm[:, 0] >= b.x1 - 5) & (lm[:, 0] <= b.x2 + 5) & (lm[:, 1] >= b.y1) & (lm[:, 1] <= b.y2))
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left eye and mouth corner first
    assert lm[2, 1] > lm[0, 1] and lm[3, 1] > lm[2, 1]  # nose below eyes, mouth below nose


def test_rgba_png_face_matches_expected_rows(hog, engine):
    path = need_data(*FR_TESTS, "32bit.png")
    (face,) = hog.detect(path)
    assert round(face.box.y1) == 290 and round(face.box.y2) == 559  # face_recognition: top 290, bottom 558
    (face_y,) = engine.detect(path)
    assert face_y.box.iou(face.box) > 0.5


def test_resolution_ladder_finds_the_same_face(engine):
    boxes = {}
    for res in ["240p", "480p", "720p", "1080p"]:
        img = load_image(need_data("face_recognition", "examples", f"obama-{res}.jpg"))
        faces = engine.detect(img)
        assert len(faces) == 1, res
        h, w = img.shape[:2]
        b = faces[0].box
        boxes[res] = Box(b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h)  # relative coordinates
    for res in ["480p", "720p", "1080p"]:
        assert boxes[res].iou(boxes["240p"]) > 0.8


def test_huge_photos_are_resized_for_detection_and_mapped_back(engine):
    for name in ["img49.jpg", "img40.jpg"]:  # 4352x2903 and 3061x4600
        img = load_image(need_data("deepface", "tests", "unit", "dataset", name))
        assert max(img.shape) > 4000
        faces = engine.detect(img)
        assert len(faces) == 1
        b = faces[0].box
        assert b.x2 <= img.shape[1] and b.y2 <= img.shape[0]
        assert b.width > 300  # in original pixels, not in the 1280-pixel detection copy


def test_exif_rotated_photo(engine):
    path = need_data("antispoof_samples", "images", "sample", "image_T1.jpg")
    assert len(engine.detect(path)) == 1
    from PIL import Image

    sideways = np.asarray(Image.open(path).convert("RGB"))  # EXIF ignored: the face lies on its side
    assert len(engine.detect(sideways)) == 0


def test_webp_named_jpg(engine):
    assert len(engine.detect(need_data("deepface", "tests", "unit", "dataset", "img47.jpg"))) == 1


def test_group_photos(engine):
    ds = ("deepface", "tests", "unit", "dataset")
    assert len(engine.detect(need_data(*ds, "couple.jpg"))) == 2
    assert len(engine.detect(need_data("face_recognition", "examples", "two_people.jpg"))) == 2
    many = engine.detect(need_data(*ds, "selfie-many-people.jpg"))
    assert len(many) >= 5
    scores = [f.score for f in many]
    assert scores == sorted(scores, reverse=True)


def test_blank_and_tiny_images_have_no_face(engine):
    assert engine.detect(np.full((300, 300, 3), 128, np.uint8)) == []
    assert engine.detect(np.zeros((1, 1, 3), np.uint8)) == []


def test_batch_equals_one_by_one(engine):
    paths = [need_data(*FR_TESTS, n) for n in ["obama.jpg", "biden.jpg", "obama2.jpg"]]
    batch = engine.detect_batch(paths)
    assert [r.index for r in batch] == [0, 1, 2] and all(r.ok for r in batch)
    for p, faces in zip(paths, (r.value for r in batch), strict=True):
        single = engine.detect(p)
        assert len(single) == len(faces)
        assert all(a.box.iou(b.box) > 0.999 for a, b in zip(single, faces, strict=True))


def test_landmarks68_on_demand(engine):
    faces = engine.landmarks68(need_data(*FR_TESTS, "obama.jpg"))
    assert faces[0].landmarks68.shape == (68, 2)
    # The 68-point eye centres sit near YuNet's own eye landmarks.
    lm68 = faces[0].landmarks68
    eyes = np.stack([lm68[36:42].mean(0), lm68[42:48].mean(0)])
    assert np.abs(eyes - faces[0].landmarks[:2]).max() < 20


@pytest.mark.slow
def test_mmod_detector():
    mmod = Engine(detector="dlib-mmod", max_side=640)
    faces = mmod.detect(need_data("face_recognition", "examples", "obama_small.jpg"))
    assert len(faces) == 1 and faces[0].landmarks.shape == (5, 2)

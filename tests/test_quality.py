"""Face quality: each component reacts to what it measures, on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import need_data
from vultus import load_image
from vultus.quality import Quality, assess_quality, mirrored

FR = ("face_recognition", "tests", "test_images")


@pytest.fixture(scope="module")
def obama(engine):
    image = load_image(need_data(*FR, "obama.jpg"))
    return image, engine.detect(image)[0]


def one(image, engine, embedder=None) -> Quality:
    faces = engine.detect(image)
    assert faces, "the degraded image must still show a face"
    return assess_quality([(image, faces[0])], embedder)[0]


def test_components_in_range_and_stability_only_with_an_embedder(engine, obama):
    image, face = obama
    fast = assess_quality([(image, face)])[0]
    full = assess_quality([(image, face)], engine.embedder)[0]
    assert fast.stability is None and fast.mirror_cosine is None
    assert full.stability is not None and 0.8 < full.mirror_cosine <= 1.0
    for q in (fast, full):
        for name in ("score", "sharpness", "exposure", "size", "pose"):
            assert 0.0 <= getattr(q, name) <= 1.0
    assert full.score > 0.7  # a sharp, well-lit, frontal press photo
    assert full.to_dict()["raw"]["scale_px"] > 100


def test_blur_lowers_sharpness_and_score(engine, obama):
    image, _ = obama
    sharp = one(image, engine)
    blurred = one(cv2.GaussianBlur(image, (0, 0), 6), engine)
    assert blurred.sharpness < sharp.sharpness - 0.3
    assert blurred.score < sharp.score


def test_darkness_lowers_exposure(engine, obama):
    image, _ = obama
    normal = one(image, engine)
    dark = one((image.astype(np.float32) * 0.2).astype(np.uint8), engine)
    assert dark.exposure < normal.exposure - 0.3 and dark.brightness < 50


def test_small_face_lowers_size(engine, obama):
    image, _ = obama
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
    q_small, q_big = one(small, engine), one(image, engine)
    assert q_small.size < q_big.size and q_small.scale_px < 20


def test_profile_scores_lower_than_frontal(engine):
    image = load_image(need_data("deepface", "tests", "unit", "dataset", "img59.jpg"))
    faces = engine.detect(image)
    profile = min(faces, key=lambda f: f.box.x1)
    frontal = load_image(need_data(*FR, "biden.jpg"))
    qp = assess_quality([(image, profile)], engine.embedder)[0]
    qf = one(frontal, engine, engine.embedder)
    assert qp.pose < 0.3 < 0.9 < qf.pose
    assert qp.score < qf.score


def test_batch_equals_one_by_one(engine):
    image = load_image(need_data("deepface", "tests", "unit", "dataset", "couple.jpg"))
    faces = engine.detect(image)
    batch = assess_quality([(image, f) for f in faces], engine.embedder)
    singles = [assess_quality([(image, f)], engine.embedder)[0] for f in faces]
    for a, b in zip(batch, singles, strict=True):
        assert abs(a.score - b.score) < 1e-5 and abs(a.mirror_cosine - b.mirror_cosine) < 1e-5


def test_mirrored_crop_is_an_exact_flip_with_consistent_landmarks(obama):
    image, face = obama
    crop, local = mirrored(image, face)
    h, w = crop.shape[:2]
    # Image-left eye first still, and the same for the mouth corners.
    assert local.landmarks[0, 0] < local.landmarks[1, 0] and local.landmarks[3, 0] < local.landmarks[4, 0]
    # The crop's offset in the image, recovered from the nose tip, is a whole number of pixels ...
    x0 = face.landmarks[2, 0] - ((w - 1) - local.landmarks[2, 0])
    y0 = face.landmarks[2, 1] - local.landmarks[2, 1]
    assert abs(x0 - round(x0)) < 1e-3 and abs(y0 - round(y0)) < 1e-3
    x0, y0 = round(x0), round(y0)
    # ... and every pixel is the original one, mirrored: no resampling.
    assert np.array_equal(crop[:, ::-1], image[y0:y0 + h, x0:x0 + w])
    assert local.box.width == pytest.approx(face.box.width) and local.box.x1 >= 0


def test_empty_batch():
    assert assess_quality([]) == []


def test_a_face_carrying_its_embedding_reuses_it(engine):
    image = load_image(need_data("deepface", "tests", "unit", "dataset", "couple.jpg"))
    plain = engine.detect(image)
    embedded = engine.embed(image, plain)
    assert all(f.embedding is not None for f in embedded)
    fresh = assess_quality([(image, f) for f in plain], engine.embedder)
    reused = assess_quality([(image, f) for f in embedded], engine.embedder)
    for a, b in zip(fresh, reused, strict=True):
        assert abs(a.mirror_cosine - b.mirror_cosine) < 1e-4

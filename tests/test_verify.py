"""Embedding and verification decisions on known pairs of real photos."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need_data
from vultus import Engine
from vultus.errors import ManyFacesError, ModelError, ModelMismatchError, NoFaceError

FR = ("face_recognition", "tests", "test_images")
DF = ("deepface", "tests", "unit", "dataset")

# face_recognition's test_face_distance pairs, and deepface's test_verify pairs.
KNOWN_PAIRS = [
    (FR, "obama.jpg", "obama2.jpg", True),
    (FR, "obama.jpg", "obama3.jpg", True),
    (FR, "obama.jpg", "biden.jpg", False),
    (DF, "img1.jpg", "img2.jpg", True),
    (DF, "img5.jpg", "img6.jpg", True),
    (DF, "img6.jpg", "img7.jpg", True),
    (DF, "img8.jpg", "img9.jpg", True),
    (DF, "img1.jpg", "img11.jpg", True),
    (DF, "img2.jpg", "img11.jpg", True),
    (DF, "img1.jpg", "img3.jpg", False),
    (DF, "img2.jpg", "img3.jpg", False),
    (DF, "img6.jpg", "img8.jpg", False),
    (DF, "img6.jpg", "img9.jpg", False),
]


@pytest.fixture(scope="module")
def fused_engine():
    return Engine(embedder="fused")


@pytest.mark.parametrize("which", ["engine", pytest.param("dlib_engine", marks=pytest.mark.slow),
                                   pytest.param("fused_engine", marks=pytest.mark.slow)])
@pytest.mark.slow
def test_known_pairs(request, which):
    eng = request.getfixturevalue(which)
    wrong = []
    for folder, a, b, same in KNOWN_PAIRS:
        r = eng.verify(need_data(*folder, a), need_data(*folder, b), largest=True)
        if r.same != same:
            wrong.append((a, b, round(r.similarity, 3), round(r.threshold, 3)))
    assert wrong == []


def test_verification_result_is_typed_and_uses_the_calibration(engine):
    r = engine.verify(need_data(*FR, "obama.jpg"), need_data(*FR, "obama2.jpg"))
    point = engine.operating_point()
    assert r.threshold == point.threshold and r.fmr == point.fmr == 1e-3
    assert r.model == "sface" and -1.0 <= r.similarity <= 1.0
    assert r.same == (r.similarity >= r.threshold)
    assert len(r.faces) == 2 and r.faces[0].embedding.model == "sface"
    d = r.to_dict()
    assert d["same"] is True and d["false_match_rate"] == 1e-3


def test_stricter_rates_give_higher_thresholds(engine):
    t = [engine.operating_point(f).threshold for f in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)]
    assert t == sorted(t) and len(set(t)) == 5
    mid = engine.operating_point(3e-3).threshold  # interpolated between rungs
    assert engine.operating_point(1e-2).threshold < mid < engine.operating_point(1e-3).threshold
    with pytest.raises(ModelError, match="outside what the sface calibration measured"):
        engine.operating_point(1e-9)


@pytest.mark.slow
def test_embeddings_are_unit_float32_and_batch_consistent(engine, dlib_engine):
    paths = [need_data(*FR, n) for n in ["obama.jpg", "biden.jpg", "obama2.jpg"]]
    for eng, dim in [(engine, 128), (dlib_engine, 128)]:
        batch = eng.embed_batch(paths)
        assert [r.source for r in batch] == [str(p) for p in paths] and all(r.ok for r in batch)
        for p, faces in zip(paths, (r.value for r in batch), strict=True):
            v = faces[0].embedding.vector
            assert v.dtype == np.float32 and v.shape == (dim,)
            assert abs(np.linalg.norm(v) - 1) < 1e-5
            alone = eng.embed(p)[0].embedding.vector
            assert float(v @ alone) > 0.9999


def test_embeddings_of_different_models_do_not_compare(engine, dlib_engine):
    p = need_data(*FR, "obama.jpg")
    with pytest.raises(ModelMismatchError, match="'sface'.*'dlib-resnet'"):
        engine.embed(p)[0].embedding.similarity(dlib_engine.embed(p)[0].embedding)


@pytest.mark.slow
def test_fused_vector_dot_is_the_weighted_component_score(fused_engine):
    from vultus.embed.fused import fusion_weights

    flip, jitter = Engine(embedder="sface-flip"), Engine(embedder="dlib-resnet-jitter")
    a, b = need_data(*FR, "obama.jpg"), need_data(*FR, "obama3.jpg")
    w = fusion_weights()
    assert set(w) == {"sface-flip", "dlib-resnet-jitter"} and sum(w.values()) == pytest.approx(1.0, abs=1e-3)
    s_flip = flip.embed(a)[0].embedding.similarity(flip.embed(b)[0].embedding)
    s_dlib = jitter.embed(a)[0].embedding.similarity(jitter.embed(b)[0].embedding)
    fa, fb = fused_engine.embed(a)[0].embedding, fused_engine.embed(b)[0].embedding
    assert fa.vector.shape == (256,) and abs(np.linalg.norm(fa.vector) - 1) < 1e-5
    assert fa.similarity(fb) == pytest.approx(w["sface-flip"] * s_flip + w["dlib-resnet-jitter"] * s_dlib, abs=1e-5)


@pytest.mark.slow
def test_dlib_jitter_views_are_fixed_and_differ_from_the_plain_chip(dlib_engine):
    """dlib-resnet-jitter gives a face the same vector every time, close to but not equal to dlib-resnet's."""
    jitter = Engine(embedder="dlib-resnet-jitter")
    a = need_data(*FR, "obama.jpg")
    first, again = jitter.embed(a)[0].embedding, jitter.embed(a)[0].embedding
    plain = dlib_engine.embed(a)[0].embedding
    assert np.array_equal(first.vector, again.vector)
    assert 0.95 < float(first.vector @ plain.vector) < 0.9999


def test_sface_flip_is_the_mean_of_the_face_and_its_mirror(engine):
    from vultus.align import mirrored
    from vultus.imageio import load_image

    img = load_image(need_data(*FR, "obama.jpg"))
    face = engine.detect(img)[0]
    flip = Engine(embedder="sface-flip")
    got = flip.embedder.embed([(img, face)])[0]
    plain = engine.embedder.embed([(img, face), mirrored(img, face)])
    mean = plain.sum(axis=0) / np.linalg.norm(plain.sum(axis=0))
    np.testing.assert_allclose(got, mean, atol=1e-5)
    assert 0.8 < float(plain[0] @ plain[1]) < 0.9999  # the mirror view really differs from the face
    assert flip.operating_point().fmr == 1e-3  # calibrated on LFW like every embedder


def test_one_face_expected(engine):
    couple = need_data(*DF, "couple.jpg")
    with pytest.raises(ManyFacesError, match="couple.jpg: 2 faces found"):
        engine.embed_one(couple)
    face = engine.embed_one(couple, largest=True)
    assert face.embedding is not None
    with pytest.raises(NoFaceError, match="no face"):
        engine.embed_one(np.full((200, 200, 3), 90, np.uint8))

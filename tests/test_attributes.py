"""Age, gender and emotion on real faces, and Engine.analyze / `vultus analyze` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need_data
from vultus import load_image
from vultus.attributes.age_gender import face_chip
from vultus.attributes.analyze import ACTIONS, FaceAnalysis, attribute_model
from vultus.cli import main

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

FR = ("face_recognition", "tests", "test_images")
DEEPFACE = ("deepface", "tests", "unit", "dataset")


def utkface_sample(n: int):
    """Every k-th UTKFace image (sorted names mix ages, genders and races): (path, age, gender)."""
    paths = sorted(need_data("utkface").glob("*.jpg"))
    picked = paths[:: len(paths) // n][:n]
    return [(p, int(p.name.split("_")[0]), "male" if p.name.split("_")[1] == "0" else "female") for p in picked]


@pytest.fixture(scope="module")
def utk_items(engine):
    items, truth = [], []
    for path, age, gender in utkface_sample(60):
        image = load_image(path)
        faces = engine.detect(image)
        if faces:
            items.append((image, max(faces, key=lambda f: f.box.area)))
            truth.append((age, gender))
    assert len(items) >= 57  # YuNet finds the face in (nearly) every aligned UTKFace crop
    return items, truth


def test_age_and_gender_on_utkface(utk_items):
    items, truth = utk_items
    ages = attribute_model("age", "age").predict(items)
    genders = attribute_model("gender", "gender").predict(items)
    mae = np.mean([abs(a.years - t[0]) for a, t in zip(ages, truth, strict=True)])
    acc = np.mean([g.label == t[1] for g, t in zip(genders, truth, strict=True)])
    # bench/results/attributes.md: about 6.8 years and 89% on all 3,000 images.
    assert mae < 9.0, mae
    assert acc >= 0.78, acc
    assert all(0 < a.years < 81 and 0 < a.confidence <= 1 for a in ages)
    assert all(0.5 <= g.probability <= 1 and g.label in ("female", "male") for g in genders)


def test_batching_does_not_change_results(utk_items):
    items, _ = utk_items
    model = attribute_model("age", "age")
    batch = model.probabilities(items[:10])
    singles = np.concatenate([model.probabilities([it]) for it in items[:10]])
    assert np.allclose(batch, singles, atol=1e-5)
    assert model.probabilities([]).shape == (0, 81)


def test_chip_matches_dlibs_own_chip(engine):
    """The chip cut from YuNet's landmarks must look like the dlib chip the networks were trained on."""
    import dlib

    from vultus.landmarks import dlib_rect
    from vultus.models.registry import get_spec

    image = load_image(need_data(*FR, "obama.jpg"))
    face = engine.detect(image)[0]
    predictor = dlib.shape_predictor(str(get_spec("dlib-resnet").paths()["shape_predictor_5_face_landmarks.dat"]))
    shape = predictor(image, dlib_rect(face.box))
    for size in (32, 64):
        theirs = np.asarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, size, 0.2)), np.float64)
        ours = face_chip(image, face, size).astype(np.float64)
        m = size // 8  # compare the inside, where a shift does not roll pixels around the border

        def corr(dx, dy, ours=ours, theirs=theirs, m=m):
            moved = np.roll(ours, (dy, dx), axis=(0, 1))
            return np.corrcoef(moved[m:-m, m:-m].ravel(), theirs[m:-m, m:-m].ravel())[0, 1]

        shifts = {(dx, dy): corr(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)}
        (dx, dy), best = max(shifts.items(), key=lambda kv: kv[1])
        # YuNet's and dlib's landmarks differ face by face, so the chips agree to about a pixel, not exactly.
        assert abs(dx) <= 1 and abs(dy) <= 1 and best > 0.9, (size, dx, dy, best)
        assert shifts[(4, 0)] < best - 0.05  # a clearly misplaced chip would be caught


def test_obama_and_biden(engine):
    image = load_image(need_data("face_recognition", "examples", "two_people.jpg"))
    results = engine.analyze(image, actions=("age", "gender"))
    assert len(results) == 2
    for r in results:
        assert r.gender.label == "male" and r.gender.probability > 0.9
        assert 40 <= r.age.years <= 80  # both were in their 50s and 60s when photographed
        assert r.emotion is None and r.pose is None and r.quality is None


# -- emotion -----------------------------------------------------------------
from vultus.attributes.analyze import emotion_available  # noqa: E402

needs_emotion = pytest.mark.skipif(not emotion_available(),
                                   reason="no emotion model registered yet (train/emotion.py has not shipped one)")
def fer_test_sample(per_class: int):
    import io
    import zipfile

    from PIL import Image

    from vultus.attributes.emotion import EMOTIONS

    xs, ys = [], []
    with zipfile.ZipFile(need_data("fer2013", "fer2013.zip")) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        for c, label in enumerate(EMOTIONS):
            mine = [n for n in names if n.split("/")[1] == label]
            for name in mine[:: max(1, len(mine) // per_class)][:per_class]:
                xs.append(np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("L")))
                ys.append(c)
    return np.stack(xs), np.array(ys)


@needs_emotion
def test_emotion_model_is_shipped_small_and_verified():
    from vultus.models.registry import get_spec

    spec = get_spec("emotion", task="emotion")
    path = spec.path()  # raises if the file is missing or its sha256 differs
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert path.parent.name == "weights"


@needs_emotion
@pytest.mark.slow
def test_emotion_on_fer2013_test_images():
    from vultus.attributes.emotion import EMOTIONS

    x, y = fer_test_sample(per_class=30)
    model = attribute_model("emotion", "emotion")
    probs = model.probabilities_of_crops(x)
    assert probs.shape == (len(x), 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
    acc = float((probs.argmax(1) == y).mean())
    # Balanced classes (30 each) are harder than the test split's mix (disgust, fear are the weak ones);
    # the model card gives the full-split figure.
    assert acc > 0.5, acc
    happy = probs[y == EMOTIONS.index("happy")].argmax(1)
    assert (happy == EMOTIONS.index("happy")).mean() > 0.75


@needs_emotion
@pytest.mark.slow
def test_emotion_through_the_pipeline_and_uncertain_label(engine):
    import cv2

    from vultus.attributes.emotion import UNCERTAIN, EmotionClassifier

    x, y = fer_test_sample(per_class=10)
    items, labels = [], []
    for grey, label in zip(x, y, strict=True):
        big = cv2.copyMakeBorder(cv2.resize(grey, (192, 192), interpolation=cv2.INTER_CUBIC), 48, 48, 48, 48,
                                 cv2.BORDER_REPLICATE)
        rgb = np.repeat(big[..., None], 3, axis=2)
        faces = engine.detect(rgb)
        if faces:
            items.append((rgb, faces[0]))
            labels.append(label)
    assert len(items) >= 0.9 * len(x)
    model = attribute_model("emotion", "emotion")
    results = model.predict(items)
    acc = np.mean([r.top == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")[t]
                   for r, t in zip(results, labels, strict=True)])
    assert acc > 0.45, acc
    for r in results:
        assert (r.label == UNCERTAIN) == (r.confidence < model.uncertain_below)
        assert r.label in (r.top, UNCERTAIN)
    always = EmotionClassifier(model.spec, uncertain_below=1.01).predict(items[:3])
    assert all(r.label == UNCERTAIN and r.top != UNCERTAIN for r in always)


# -- analyze -----------------------------------------------------------------------
@pytest.mark.slow
def test_analyze_returns_every_attribute_for_each_face(engine):
    image = load_image(need_data(*DEEPFACE, "couple.jpg"))
    results = engine.analyze(image)
    assert len(results) == 2
    for r in results:
        assert isinstance(r, FaceAnalysis)
        assert r.face.landmarks68 is not None  # pose used the 68 points
        assert r.age and r.gender and r.pose and r.quality
        assert (r.emotion is not None) == emotion_available()
        assert r.pose.method == "68-point" and r.quality.stability is not None
        d = r.to_dict()
        assert set(ACTIONS) - {"emotion"} <= set(d) and json.dumps(d)
    genders = sorted(r.gender.label for r in results)
    assert genders == ["female", "male"]


def test_analyze_rejects_unknown_actions(engine):
    from vultus.errors import VultusError

    with pytest.raises(VultusError, match="unknown analysis"):
        engine.analyze(np.zeros((64, 64, 3), np.uint8), actions=["beauty"])
    assert engine.analyze(np.full((200, 200, 3), 127, np.uint8)) == []


def test_cli_analyze_table_json_and_annotation(capsys, tmp_path):
    group = need_data(*DEEPFACE, "selfie-many-people.jpg")
    out_img = tmp_path / "annotated.jpg"
    code = main(["analyze", str(group), "--annotate", str(out_img)])
    out, err = capsys.readouterr()
    assert code == 0, err
    header, rule, *rows = out.strip().splitlines()
    for column in ("age", "gender", "yaw pitch roll", "quality") + (("emotion",) if emotion_available() else ()):
        assert column in header
    assert len(rows) >= 5  # a group selfie
    assert out_img.is_file() and out_img.stat().st_size > 10_000
    code = main(["analyze", str(group), "--json", "--fast-quality"])
    data = json.loads(capsys.readouterr().out)
    faces = data[0]["faces"]
    assert code == 0 and len(faces) == len(rows)
    for f in faces:
        assert f["age"]["years"] > 0 and f["gender"]["label"] in ("female", "male")
        if emotion_available():
            assert f["emotion"]["label"] and set(f["emotion"]["probabilities"]) >= {"happy", "neutral"}
        assert -90 <= f["pose"]["yaw"] <= 90 and 0 <= f["quality"]["score"] <= 1
        assert f["quality"]["stability"] is None  # --fast-quality


def test_cli_analyze_bad_input_is_one_line(capsys, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_text("no")
    code = main(["analyze", str(bad)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("vultus: error: ") and err.count("\n") == 1

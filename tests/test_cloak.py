"""`vultus cloak` on real photos: the gradient models equal onnxruntime's, a cloaked face is no longer matched.

Needs torch (the privacy extra); skipped without it. The networks run on CPU; the cloaking test shrinks its
photo to 640 px wide so that one search stays within the suite's budget.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import need_data
from vultus.cli import main

torch = pytest.importorskip("torch")

KNN = ("face_recognition", "examples", "knn_examples")
LFW_FACES = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Lamas/AJ_Lamas_0001.jpg",
             "Abdullah_Gul/Abdullah_Gul_0001.jpg"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _faces():
    """(RGB image, face) for a few LFW photos and a large knn_examples one."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    det = get_model("yunet", task="detect")
    out = []
    for p in [need_data("lfw", "images", *f.split("/")) for f in LFW_FACES] + [need_data(*KNN, "train", "obama",
                                                                                        "obama.jpg")]:
        rgb = load_image(p)
        out.append((rgb, det.detect([rgb])[0][0]))
    return out


def _cos(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_gradient_networks_equal_onnxruntime():
    """The torch networks (run from the same ONNX graphs) give onnxruntime's vectors on the same real crops."""
    from vultus.align import align_batch_112
    from vultus.embed.dlib_resnet import dlib_chip
    from vultus.models.cache import get_model
    from vultus.privacy import cloak_torch as ct

    items = _faces()
    sface = get_model("sface", task="embed")
    dlib = get_model("dlib-resnet", task="embed")
    crops = align_batch_112(items).transpose(0, 3, 1, 2).astype(np.float32)
    chips = np.stack([dlib_chip(dlib._predictor.get(), img, f.landmarks) for img, f in items]).astype(np.float32)
    with torch.no_grad():
        s_torch = ct.network("sface")(torch.from_numpy(crops)).numpy()
        d_torch = ct.network("dlib-resnet")(torch.from_numpy(chips)).numpy()
    s_ort = sface._session.run(np.ascontiguousarray(crops))[0]
    d_ort = dlib.descriptors(chips)
    assert _cos(s_torch, s_ort).min() >= 0.99999
    assert _cos(d_torch, d_ort).min() >= 0.99999
    assert np.abs(d_torch - d_ort).max() < 1e-4


def test_differentiable_pipeline_matches_embedders():
    """Crops cut in torch (grid_sample at align_112's and dlib.get_face_chip's sampling points) give the shipped
    embedders' unit vectors: cosine >= 0.999 (measured: above 0.9995; the rest is cv2's and dlib's fixed-point
    bilinear weights)."""
    from vultus.models.cache import get_model
    from vultus.privacy import cloak_torch as ct

    for rgb, face in _faces():
        geometry = ct.FaceGeometry(sface=ct.sface_crop_to_image(face.landmarks),
                                   sface_mirror=ct.sface_mirror_to_image(face.landmarks, rgb.shape[1]),
                                   dlib=ct.dlib_chip_to_image(rgb, face.landmarks))
        image = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32).copy())[None]
        with torch.no_grad():
            v = ct.embed(image, geometry, ["sface", "dlib-resnet"])
            flip = ct.embed(image, geometry, ["sface"], mirror_sface=True)
        for name in ("sface", "dlib-resnet"):
            ref = get_model(name, task="embed").embed([(rgb, face)])[0]
            assert _cos(v[name].numpy(), ref) >= 0.999, name
        ref = get_model("sface-flip", task="embed").embed([(rgb, face)])[0]
        assert _cos(flip["sface"].numpy(), ref) >= 0.999


def test_jpeg_approximation_is_close_to_a_real_encoder():
    """The search's differentiable JPEG is a fair stand-in for an encoder: on a real photo (shrunk, so its pixels are
    not already on a JPEG grid) its round trip at quality 75 is far closer to Pillow's than the unencoded image is
    (measured: 0.94 against 3.3 mean absolute difference)."""
    import cv2

    from vultus.imageio import load_image
    from vultus.privacy import cloak_torch as ct

    rgb = load_image(need_data(*KNN, "train", "obama", "obama.jpg"))
    rgb = cv2.resize(rgb, (320, 400), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=75)
    real = np.asarray(Image.open(buf).convert("RGB"), np.float32)
    with torch.no_grad():
        approx = ct.jpeg_like(torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32).copy())[None], 75)
    approx = approx[0].permute(1, 2, 0).clamp(0, 255).numpy()
    assert np.abs(approx - real).mean() < 0.5 * np.abs(rgb.astype(np.float32) - real).mean()


@pytest.fixture(scope="module")
def metadata_photo(tmp_path_factory):
    """test/alex_lacamoire1.jpg (it carries an ICC profile and 18 EXIF tags) shrunk to 640 px wide, its ICC
    profile and EXIF written back: a real photo with real metadata, small enough for a quick search."""
    src = need_data(*KNN, "test", "alex_lacamoire1.jpg")
    with Image.open(src) as im:
        icc, exif = im.info["icc_profile"], im.getexif()
        small = im.convert("RGB").resize((640, round(640 * im.height / im.width)), Image.LANCZOS)
    path = tmp_path_factory.mktemp("cloak") / "alex.jpg"
    small.save(path, quality=95, icc_profile=icc, exif=exif.tobytes())
    return path


@pytest.mark.slow
def test_cloaked_photo_is_not_identified(tmp_path, capsys, metadata_photo):
    """`vultus cloak --strength medium`: the cloaked photo is no longer matched to the person's clean gallery photo
    by either embedder in the search (while the clean photo is), its quality holds the stated floors, and the
    output has the input's size, format and colour profile and no EXIF."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model
    from vultus.models.calibration import operating_point
    from vultus.privacy.cloak import STRENGTHS

    det = get_model("yunet", task="detect")
    gallery_rgb = load_image(need_data(*KNN, "train", "alex_lacamoire", "img1.jpg"))
    gallery_face = det.detect([gallery_rgb])[0][0]

    code, out, err = run(capsys, "cloak", metadata_photo, "--out", tmp_path, "--strength", "medium", "--json")
    assert code == 0, err
    report = json.loads(out)[0]
    assert len(report["faces"]) == 1 and report["output"]
    assert "s per face" in err
    written = tmp_path / metadata_photo.name
    with Image.open(written) as im, Image.open(metadata_photo) as orig:
        assert im.size == orig.size and im.format == "JPEG"
        assert len(im.getexif()) == 0 and "exif" not in im.info
        assert im.info.get("icc_profile") == orig.info["icc_profile"]
    clean, cloaked = load_image(metadata_photo), load_image(written)
    for name in ("sface", "dlib-resnet"):
        e = get_model(name, task="embed")
        thr = operating_point(name, 1e-3).threshold
        ref = e.embed([(gallery_rgb, gallery_face)])[0]
        before = float(e.embed([(clean, det.detect([clean])[0][0])])[0] @ ref)
        faces = det.detect([cloaked])[0]
        assert faces, "the cloaked face is still found by vultus's detector"
        after = max(float(v @ ref) for v in e.embed([(cloaked, f) for f in faces]))
        assert before >= thr, (name, before, thr)  # the clean photo is identified ...
        assert after < thr, (name, after, thr)  # ... the cloaked one is not
    # the default search names the synthetic decoy it was to be pulled toward (the pull itself: below)
    assert isinstance(report["faces"][0]["decoy"], int) and report["faces"][0]["decoy_steps"] >= 0
    face = report["faces"][0]
    floor = STRENGTHS["medium"].ssim_floor
    assert face["ssim"] >= floor and face["psnr"] >= 30
    assert face["max_abs_change"] <= STRENGTHS["medium"].epsilon + 1  # +1: JPEG rounding of the written file
    # the same figures from the file on disk, inside the face box (the JPEG write costs a little)
    b = [int(v) for v in face["box"]]
    diff = clean[b[1]:b[3], b[0]:b[2]].astype(np.float64) - cloaked[b[1]:b[3], b[0]:b[2]]
    assert 10 * np.log10(255 ** 2 / (diff ** 2).mean()) >= 30
    assert np.abs(diff).mean() > 0.5  # something was changed


@pytest.mark.slow
def test_shipped_decoys_are_nobody_in_lfw():
    """The synthetic decoys (train/cloak_decoys.py, made from LFW development people, none of whom they match) are
    strangers to the people of the other half too: on 150 LFW test-split people (never seen by the generator) they
    match no face at FMR 1e-5 and at FMR 1e-3 no more often than a stranger's face would (comparisons x 1e-3), in
    either embedder. 32 unit vectors, none matching another."""
    import hashlib

    from vultus.imageio import load_image
    from vultus.models.cache import get_model
    from vultus.models.calibration import operating_point
    from vultus.privacy.decoys import shipped_decoys

    decoys = shipped_decoys(("sface", "dlib-resnet"))
    assert len(decoys) == 32
    root = need_data("lfw", "images")
    test_people = [d for d in sorted(root.iterdir()) if hashlib.sha1(d.name.encode()).digest()[0] % 2 == 1][:150]
    det = get_model("yunet", task="detect")
    items = []
    for d in test_people:
        rgb = load_image(sorted(d.glob("*.jpg"))[0])
        faces = det.detect([rgb])[0]
        items += [(rgb, f) for f in faces]
    assert len(items) >= 150
    for name in ("sface", "dlib-resnet"):
        d = np.stack([v[name] for v in decoys])
        assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
        thr = operating_point(name, 1e-3).threshold
        pair = d @ d.T
        np.fill_diagonal(pair, -1)
        assert pair.max() < thr
        sims = get_model(name, task="embed").embed(items) @ d.T
        assert (sims >= thr).sum() <= sims.size * 1e-3, (name, int((sims >= thr).sum()), sims.size)
        assert sims.max() < operating_point(name, 1e-5).threshold, name


def test_decoy_choice_and_its_options():
    """The default search names the synthetic decoy it pulled toward (the one farthest from the face); --no-decoy
    (decoy="none") names none; a bad decoy kind and --decoy with --no-decoy are refused."""
    from vultus.errors import InvalidArgumentError
    from vultus.models.cache import get_model
    from vultus.privacy.cloak import CloakOptions, cloak
    from vultus.privacy.decoys import shipped_decoys

    rgb, face = _faces()[0]
    pulled = cloak(rgb, CloakOptions(steps=2), faces=[face]).faces[0]
    own = {n: get_model(n, task="embed").embed([(rgb, face)])[0] for n in ("sface", "dlib-resnet")}
    summed = [sum(float(own[n] @ d[n]) for n in own) for d in shipped_decoys(("sface", "dlib-resnet"))]
    assert pulled.decoy == int(np.argmin(summed))
    assert set(pulled.decoy_similarity) == {"sface", "dlib-resnet"}
    pushed = cloak(rgb, CloakOptions(steps=2, decoy="none"), faces=[face]).faces[0]
    assert pushed.decoy is None and pushed.decoy_similarity is None
    with pytest.raises(InvalidArgumentError, match="decoy must be one of synthetic, none"):
        CloakOptions(decoy="celebrity")
    with pytest.raises(InvalidArgumentError, match="decoy steps must be at least 0"):
        CloakOptions(decoy_steps=-1)
    with pytest.raises(SystemExit) as exc:
        main(["cloak", "x.jpg", "--out", "o", "--decoy", "d.jpg", "--no-decoy"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_pull_moves_the_face_toward_its_decoy_and_keeps_it_away_from_itself():
    """Same face, same seed, sface search: with the synthetic decoys the search, once away from itself, takes pull
    steps; the written face (scored by onnxruntime's sface) is nearer to its decoy than the push-only cloak, and
    still below the search's target similarity to its own clean face."""
    from vultus.models.cache import get_model
    from vultus.models.calibration import operating_point
    from vultus.privacy.cloak import TARGET_FMR, CloakOptions, cloak
    from vultus.privacy.decoys import shipped_decoys

    rgb, face = _faces()[0]
    sface = get_model("sface", task="embed")
    own = sface.embed([(rgb, face)])[0]
    pulled = cloak(rgb, CloakOptions(embedders=("sface",)), faces=[face])
    pushed = cloak(rgb, CloakOptions(embedders=("sface",), decoy="none"), faces=[face])
    report = pulled.faces[0]
    assert report.decoy_steps > 0 and report.steps > pushed.faces[0].steps
    decoy = shipped_decoys(("sface",))[report.decoy]["sface"]
    after_pull, after_push = (sface.embed([(c.rgb, face)])[0] for c in (pulled, pushed))
    assert float(after_pull @ decoy) > float(after_push @ decoy) + 0.05
    assert float(after_pull @ own) < operating_point("sface", TARGET_FMR).threshold


def test_photo_without_a_face_is_returned_unchanged(tmp_path, capsys):
    """A crop with no face: written pixel for pixel as it was (PNG, lossless), with a warning; exit status 0."""
    from vultus.imageio import load_image
    from vultus.models.cache import get_model

    rgb = load_image(need_data(*KNN, "test", "obama_and_biden.jpg"))[:300, :300]
    assert not get_model("yunet", task="detect").detect([rgb])[0]
    src = tmp_path / "in" / "wall.png"
    src.parent.mkdir()
    Image.fromarray(rgb).save(src)
    code, out, err = run(capsys, "cloak", src, "--out", tmp_path / "out", "--json")
    assert code == 0, err
    r = json.loads(out)[0]
    assert r["faces"] == [] and any("no face" in w for w in r["warnings"])
    assert "warning" in err and "no face" in err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "wall.png").convert("RGB")), rgb)


def test_decoy_without_a_face_fails_before_any_work(tmp_path, capsys):
    from vultus.imageio import load_image

    wall = tmp_path / "wall.png"
    Image.fromarray(load_image(need_data(*KNN, "test", "obama_and_biden.jpg"))[:300, :300]).save(wall)
    code, _, err = run(capsys, "cloak", need_data(*KNN, "test", "obama1.jpg"), "--out", tmp_path / "out",
                       "--decoy", wall)
    assert code == 2 and "no face" in err and "decoy" in err
    assert not any((tmp_path / "out").iterdir())


def test_bad_inputs_exit_2_and_keep_the_rest(tmp_path, capsys):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"this is not a JPEG")
    code, out, err = run(capsys, "cloak", bad, tmp_path / "missing.jpg", "--out", tmp_path / "out", "--json")
    assert code == 2
    rows = json.loads(out)
    assert len(rows) == 2 and all(r["error"] and r["error_code"] and r["output"] is None for r in rows)
    assert not (tmp_path / "out" / "not-an-image.jpg").exists()
    code, _, err = run(capsys, "cloak", bad, "--out", tmp_path / "out", "--embedders", "arcface")
    assert code == 2 and "sface" in err


def test_missing_torch_is_a_clear_error(monkeypatch, tmp_path):
    """Without torch, cloaking a face fails with the install line, not a traceback."""
    import sys

    from vultus.errors import MissingDependencyError
    from vultus.privacy.cloak import cloak

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"vultus\[privacy\]"):
        cloak(need_data("lfw", "images", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg"))

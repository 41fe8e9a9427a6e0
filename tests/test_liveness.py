"""Passive liveness: the shipped MiniFASNet ONNX pair against the PyTorch reference, and its decisions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from vultus.imageio import load_image
from vultus.liveness.passive import NETWORKS, authors_patch, patch_corners, to_bgr
from vultus.models.cache import get_model

HERE = Path(__file__).resolve().parent
REFERENCE = json.loads((HERE / "data" / "minifasnet_reference.json").read_text())
ROOT = HERE.parent


def _reference_patches():
    rows = []
    for row in REFERENCE["images"]:
        img = load_image(need_data(*row["image"].split("/")))
        bgr = to_bgr(img)
        rows.append((row, [authors_patch(bgr, tuple(row["box_ltwh"]), scale) for _, scale in NETWORKS]))
    return rows


def test_onnx_equals_the_stored_torch_outputs_on_real_images():
    """The shipped ONNX files give the probabilities the original PyTorch networks gave
    (stored by train/convert_minifasnet.py) within 1e-4, run batched over all the faces."""
    pair = get_model("minifasnet", task="liveness")
    rows = _reference_patches()
    probs = pair.probabilities_of_patches([np.stack([p[k] for _, p in rows]) for k in range(len(NETWORKS))])
    for k, (filename, _) in enumerate(NETWORKS):
        want = np.array([row["probabilities"][filename] for row, _ in rows])
        assert np.abs(probs[k] - want).max() < 1e-4, filename


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (pip install -e '.[train]'); the stored outputs are checked above")
def test_onnx_equals_torch_recomputed_from_the_original_weights():
    """The ONNX graphs against the authors' state dicts, run in torch now (not the stored numbers)."""
    import sys

    sys.path.insert(0, str(ROOT / "train"))
    import convert_minifasnet as conv

    for source, _ in conv.PAIRS:
        need_data("models", "silent_face_minifasnet", "resources", "anti_spoof_models", source)
    nets = [conv.build_network(conv.load_state_dict(conv.SOURCE / s)) for s, _ in conv.PAIRS]
    pair = get_model("minifasnet", task="liveness")
    rows = _reference_patches()
    probs = pair.probabilities_of_patches([np.stack([p[k] for _, p in rows]) for k in range(len(NETWORKS))])
    for i, (_, patches) in enumerate(rows):
        want = np.array(conv.torch_probabilities(nets, patches))
        assert np.abs(probs[:, i] - want).max() < 1e-4


def test_the_authors_samples_are_called_as_the_authors_labelled_them():
    """image_T1 is a live person, image_F1 a print, image_F2 a phone screen (the authors' own labels)."""
    from vultus.liveness.passive import reference_is_live, reference_score

    pair = get_model("minifasnet", task="liveness")
    rows = [r for r in _reference_patches() if "antispoof_samples" in r[0]["image"]]
    probs = pair.probabilities_of_patches([np.stack([p[k] for _, p in rows]) for k in range(len(NETWORKS))])
    names = [Path(r["image"]).stem for r, _ in rows]
    live = dict(zip(names, reference_is_live(probs), strict=True))
    score = dict(zip(names, reference_score(probs), strict=True))
    assert live == {"image_T1": True, "image_F1": False, "image_F2": False}
    assert score["image_T1"] > 0.9 and score["image_F2"] < 0.1


def test_patch_box_is_shrunk_and_slid_inside_the_image():
    # Zoomed 4x, a 100 px box near the top-left corner would start at (-140, -50): it slides to (0, 0).
    assert patch_corners(640, 480, (10, 100, 100, 100), 4.0) == (0, 0, 400, 400)
    # A 200 px box cannot grow 4x in a 480 px high image: the zoom drops to 479/200, then the box
    # slides up and left so that both corners are inside.
    assert patch_corners(640, 480, (300, 200, 200, 200), 4.0) == (160, 0, 639, 479)

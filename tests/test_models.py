"""The model registry: checksums, carrier packages, URL models and graph repair."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

from conftest import need_data
from vultus.errors import ModelError
from vultus.models import registry as reg  # the module
from vultus.models.registry import InputContract, ModelFile, ModelSpec, check, get_spec, resolve_file


def test_every_packaged_model_verifies():
    for spec in reg.registry().values():
        if all(f.package for f in spec.files):
            ok, msg = check(spec)
            assert ok, f"{spec.name}: {msg}"


def test_unknown_model_and_wrong_task():
    with pytest.raises(ModelError, match="unknown model 'nope'.*sface"):
        get_spec("nope", task="embed")
    with pytest.raises(ModelError, match="is a detect model, not a embed model"):
        get_spec("yunet", task="embed")


def test_missing_carrier_package_names_the_install():
    f = ModelFile("x.onnx", "0" * 64, package="vultus_no_such_carrier", resource="models/x.onnx",
                  pip_name="no-such-carrier")
    with pytest.raises(ModelError, match="pip install no-such-carrier"):
        resolve_file(f)


def test_checksum_mismatch_is_refused():
    good = get_spec("yunet").files[0]
    bad = ModelFile(good.filename, "f" * 64, package=good.package, resource=good.resource)
    with pytest.raises(ModelError, match="expected f{64}"):
        resolve_file(bad)


def test_sface_as_shipped_fails_in_onnxruntime_and_repaired_runs():
    import onnxruntime as ort

    from vultus.models.onnx_tools import repair

    path = get_spec("sface").path()
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(raw.get_inputs()) > 1  # stale weight names demanded as feeds
    with pytest.raises(ValueError, match="Required inputs"):
        raw.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    fixed = ort.InferenceSession(repair(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in fixed.get_inputs()] == ["data"]
    out = fixed.run(None, {"data": np.random.default_rng(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)})
    assert out[0].shape == (3, 128)  # dynamic batch


def test_prelu_rewrite_computes_the_same_function():
    """PRelu(x, a) == a*x + (1-a)*Relu(x) for slopes inside and outside [0, 1], as SFace has."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from vultus.models.onnx_tools import prelu_as_relu

    slope = np.array([-0.8, 0.0, 0.25, 1.0, 1.12], np.float32).reshape(5, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "a"], ["y"])], "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 4, 4])],
        [numpy_helper.from_array(slope, "a")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.random.default_rng(1).normal(0, 3, (2, 5, 4, 4)).astype(np.float32)
    assert prelu_as_relu(model) == 1
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, np.where(x > 0, x, slope * x), rtol=1e-6, atol=1e-6)


@pytest.fixture()
def model_server(tmp_path, monkeypatch):
    """A local HTTP server over ../shared/data/models/yunet_opencv_zoo, used as the mirror."""
    root = need_data("models", "yunet_opencv_zoo")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("VULTUS_MODEL_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("VULTUS_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    server.shutdown()


def test_url_model_is_downloaded_verified_and_runs(model_server):
    spec = get_spec("yunet-2026may")
    assert check(spec) == (False, "not downloaded (vultus models pull yunet-2026may)")
    path = spec.path()
    assert path.parent == model_server / "models" and path.stat().st_size == 229_738
    assert check(spec)[0]
    from vultus.imageio import load_image

    det = spec.load()
    img = load_image(need_data("face_recognition", "tests", "test_images", "obama.jpg"))
    faces = det.detect([img])[0]
    assert len(faces) == 1 and faces[0].box.iou(get_spec("yunet").load().detect([img])[0][0].box) > 0.7


def test_download_with_wrong_checksum_leaves_nothing(model_server):
    good = get_spec("yunet-2026may").files[0]
    bad = ModelFile(good.filename, "0" * 64, url=good.url)
    with pytest.raises(ModelError, match="was discarded"):
        resolve_file(bad)
    assert not list((model_server / "models").glob("*"))


def test_download_missing_file_is_a_clear_error(model_server):
    spec = ModelSpec("ghost", "detect", (ModelFile("ghost.onnx", "0" * 64, url="http://x/ghost.onnx"),), "MIT",
                     "test", InputContract("any", "BGR", "none"), "vultus.detect.yunet:YuNetDetector")
    with pytest.raises(ModelError, match="could not download ghost.onnx"):
        spec.path()


def test_dlib_resnet_in_onnxruntime_matches_dlib_on_real_faces(fr_images, engine):
    """The graph built from dlib's .dat file gives dlib's own descriptors, face by face."""
    import dlib

    from vultus.embed.dlib_resnet import PREDICTOR5, RECOGNISER, dlib_chip
    from vultus.imageio import load_image

    files = get_spec("dlib-resnet").paths()
    predictor = dlib.shape_predictor(str(files[PREDICTOR5]))
    chips = []
    for name in ["obama.jpg", "biden.jpg", "two_people.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png"]:
        image = load_image(fr_images / "examples" / name)
        chips += [dlib_chip(predictor, image, f.landmarks) for f in engine.detect(image)]
    theirs = np.array(dlib.face_recognition_model_v1(str(files[RECOGNISER])).compute_face_descriptor(chips))
    ours = get_spec("dlib-resnet").load(threads=1).descriptors(np.stack(chips))
    assert len(chips) >= 6 and ours.shape == theirs.shape == (len(chips), 128)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_dlib_converter_refuses_a_file_that_is_not_the_network(tmp_path):
    from vultus.models.dlib_onnx import DlibFormatError, read_dlib_resnet

    with pytest.raises(DlibFormatError, match="expected one input_rgb_image_sized layer, found 0"):
        read_dlib_resnet(get_spec("dlib-resnet").paths()["shape_predictor_5_face_landmarks.dat"])
    whole = get_spec("dlib-resnet").paths()["dlib_face_recognition_resnet_model_v1.dat"].read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DlibFormatError, match=r"cut\.dat: file ends at byte \d+, inside a value .*: truncated"):
        read_dlib_resnet(cut)
    cut.write_bytes(whole[:whole.index(b"\x01\x04fc_2")])  # ends just before the last layer
    with pytest.raises(DlibFormatError, match="expected 29 con_, 29 affine_ and 1 fc_ layers, found 29, 29, 0"):
        read_dlib_resnet(cut)

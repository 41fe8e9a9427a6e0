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


@pytest.mark.slow
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


# -- the sha256 cache (verified.json) -------------------------------------------------------------

YUNET_2026 = ("models", "yunet_opencv_zoo", "face_detection_yunet_2026may.onnx")


@pytest.fixture()
def cached_model(tmp_path, monkeypatch):
    """A copy of a real model file in a fresh VULTUS_CACHE, where the registry looks for
    URL models: (the registry's ModelFile for it, its path). The copy is made, then left
    to settle, so its digest may be remembered."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    monkeypatch.setenv("VULTUS_CACHE", str(cache))
    monkeypatch.setattr(reg, "SETTLED_SECONDS", 0.2, raising=False)
    f = get_spec("yunet-2026may").files[0]
    path = cache / "models" / f.filename
    path.write_bytes(need_data(*YUNET_2026).read_bytes())
    import time

    time.sleep(0.3)
    return f, path


def _tamper_keeping_size_and_mtime(path):
    """Change one byte in place and set the mtime (and atime) back, as `touch -r` would."""
    import os
    import time

    time.sleep(0.05)  # a later clock tick than the copy's, as any real edit is
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_hash_cache_refuses_a_same_size_change_with_the_mtime_restored(cached_model):
    f, path = cached_model
    assert resolve_file(f, fetch=False) == path  # hashed, remembered in memory and in verified.json
    _tamper_keeping_size_and_mtime(path)
    with pytest.raises(ModelError, match="expected " + f.sha256):
        resolve_file(f, fetch=False)  # in the same process
    reg._VERIFIED.clear()  # as a new process would start
    with pytest.raises(ModelError, match="expected " + f.sha256):
        resolve_file(f, fetch=False)


def test_hand_edited_hash_cache_entries_vouch_for_nothing(cached_model):
    import json
    import time

    f, path = cached_model
    cache_file = reg.cache_dir() / "verified.json"
    # A good file whose remembered digest was edited to garbage: re-hashed, still accepted.
    resolve_file(f, fetch=False)
    cache_file.write_text(cache_file.read_text().replace(f.sha256, "0" * 64))
    reg._VERIFIED.clear()
    assert resolve_file(f, fetch=False) == path
    # A tampered file whose remembered digest was edited to the expected one: re-hashed, refused.
    _tamper_keeping_size_and_mtime(path)
    time.sleep(0.3)  # settled, so its digest is remembered
    bad = reg.file_sha256(path)
    assert bad != f.sha256 and bad in cache_file.read_text()
    cache_file.write_text(cache_file.read_text().replace(bad, f.sha256))
    reg._VERIFIED.clear()
    with pytest.raises(ModelError, match=f"has sha256 {bad}, expected {f.sha256}"):
        resolve_file(f, fetch=False)
    # The keyed digest's secret is this install's own, readable by its owner only.
    key = reg.cache_dir() / "verified.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    assert json.loads(cache_file.read_text())["version"] == reg.HASH_CACHE_VERSION


def test_models_verify_rehashes_what_the_cache_remembers(cached_model, capsys):
    """An entry forged with the install's own key (someone who can read the key file) is
    trusted by a plain `vultus models`; `vultus models --verify` hashes again and refuses."""
    import json
    import os

    from vultus.cli import main

    f, path = cached_model
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["yunet-2026may"]["verified"] is True
    _tamper_keeping_size_and_mtime(path)
    identity = reg._identity(path, os.stat(path))
    secret = (reg.cache_dir() / "verified.key").read_bytes()
    cache_file = reg.cache_dir() / "verified.json"
    data = json.loads(cache_file.read_text())
    data["entries"][str(path)] = {"identity": list(identity), "sha256": f.sha256,
                                  "mac": reg._entry_mac(secret, identity, f.sha256)}
    cache_file.write_text(json.dumps(data))
    reg._VERIFIED.clear()
    assert main(["models", "--json"]) == 0  # the forged entry is what a plain listing trusts
    capsys.readouterr()
    code = main(["models", "--verify", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 1 and rows["yunet-2026may"]["verified"] is False
    assert "expected " + f.sha256 in rows["yunet-2026may"]["status"]


# -- licences: what a model loads, and the most restrictive licence over it ------------------------

def test_dlib_detectors_carry_the_68_point_predictors_research_terms():
    from vultus.models.registry import effective_license

    for name in ("dlib-hog", "dlib-mmod"):
        spec = get_spec(name)
        assert "dlib-68" in spec.components
        eff = effective_license(spec)
        assert eff.terms == "research only" and eff.models == ("dlib-68",)
        assert eff.license == get_spec("dlib-68").license
        assert eff.short(name) == "iBUG 300-W terms: research use (via dlib-68)"
    fused = effective_license(get_spec("fused"))
    assert fused.terms == "permissive" and set(fused.models) == {"sface-flip", "dlib-resnet-jitter"}
    assert effective_license(get_spec("emotion")).terms == "check the training data"
    assert effective_license(get_spec("sface")).short("sface") == "Apache-2.0"


@pytest.mark.slow
def test_every_model_loads_only_files_its_registry_entry_declares(monkeypatch):
    """Load every packaged model afresh and record each weight file it resolves: all of them
    must belong to the model or to a component it declares (dlib-hog used to load dlib-68's
    file while declaring only dlib's 5-point predictor)."""
    from vultus.models import cache
    from vultus.models.registry import with_components

    seen: list[str] = []
    original = reg.file_sha256

    def recording(path, **kw):
        seen.append(path.name)
        return original(path, **kw)

    monkeypatch.setattr(reg, "file_sha256", recording)
    for spec in reg.registry().values():
        if not spec.files and not spec.components or any(not f.package for f in spec.files):
            continue  # URL models are covered by the download tests
        cache.clear()
        seen.clear()
        cache.get_model(spec.name)
        declared = {f.filename for s in with_components(spec) for f in s.files}
        assert seen and set(seen) <= declared, f"{spec.name} loaded {set(seen) - declared} undeclared"
    cache.clear()


def test_readme_models_table_shows_the_licence_that_binds():
    """The README's licence column says "research only" exactly for the models whose effective
    licence (their own or a component's) is research-only."""
    from pathlib import Path

    from vultus.models.registry import effective_license

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| name | task | from | licence of what you run |"):].split("\n\n")[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    seen = set()
    for cells in rows:
        for name in cells[0].strip().split(", "):
            seen.add(name)
            research = effective_license(get_spec(name)).terms == "research only"
            assert ("research only" in cells[3]) == research, f"{name}: {cells[3].strip()}"
    assert seen >= {"dlib-hog", "dlib-mmod", "dlib-68", "sface", "fused", "yunet"}

"""The `vultus` command line: outputs for people and machines, and error paths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import need_data
from vultus.cli import main

FR = ("face_recognition", "tests", "test_images")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_same_and_different(capsys):
    code, out, err = run(capsys, "verify", need_data(*FR, "obama.jpg"), need_data(*FR, "obama2.jpg"))
    assert code == 0 and out.startswith("SAME person") and "false-match rate 0.001" in out
    code, out, _ = run(capsys, "verify", need_data(*FR, "obama.jpg"), need_data(*FR, "biden.jpg"), "--json")
    d = json.loads(out)
    assert code == 0 and d["same"] is False and d["model"] == "sface" and d["similarity"] < d["threshold"]


def test_verify_error_paths_give_one_line_and_exit_2(capsys, tmp_path):
    good = need_data(*FR, "obama.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:5000])
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (300, 300), (120, 120, 120)).save(blank)
    couple = need_data("deepface", "tests", "unit", "dataset", "couple.jpg")
    cases = [
        (tmp_path / "missing.jpg", "no such file"),
        (text, "not an image"),
        (cut, "corrupt or truncated"),
        (blank, "no face found"),
        (couple, "2 faces found where one was expected"),
    ]
    for bad, message in cases:
        code, out, err = run(capsys, "verify", good, bad)
        assert code == 2, bad
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("vultus: error: ") and message in err
    code, out, _ = run(capsys, "verify", good, couple, "--largest")
    assert code == 0


def test_detect_table_json_and_annotation(capsys, tmp_path):
    img = need_data("face_recognition", "examples", "two_people.jpg")
    code, out, _ = run(capsys, "detect", img)
    assert code == 0 and out.count("two_people.jpg") == 2
    code, out, _ = run(capsys, "detect", img, "--json", "--landmarks68", "--annotate", tmp_path / "a.jpg")
    d = json.loads(out)
    assert code == 0 and len(d[0]["faces"]) == 2 and len(d[0]["faces"][0]["landmarks68"]) == 68
    from PIL import Image

    assert Image.open(tmp_path / "a.jpg").size == (d[0]["width"], d[0]["height"])


def test_detect_reports_bad_files_but_keeps_going(capsys, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(need_data(*FR, "obama.jpg"), folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff broken")
    code, out, err = run(capsys, "detect", folder, "--json")
    assert code == 2
    good, bad = json.loads(out)  # in input order; the failure is an error object, not a missing entry
    assert good["image"].endswith("a.jpg") and len(good["faces"]) == 1
    assert bad["image"].endswith("b.jpg") and bad["error"]["code"] in ("not_an_image", "bad_image")
    assert set(bad["error"]) == {"code", "message", "details"}
    assert err.count("\n") == 1 and err.startswith("vultus: error: ") and "b.jpg" in err


def test_embed_writes_npy_and_index(capsys, tmp_path):
    out_file = tmp_path / "emb.npy"
    code, out, _ = run(capsys, "embed", need_data(*FR, "obama.jpg"), need_data("face_recognition", "examples",
                                                                             "two_people.jpg"), "--out", out_file)
    arr = np.load(out_file)
    rows = json.loads(out_file.with_suffix(".json").read_text())
    assert code == 0 and arr.shape == (3, 128) and arr.dtype == np.float32
    assert rows["model"] == "sface" and [r["face"] for r in rows["rows"]] == [0, 0, 1]
    code, _, err = run(capsys, "embed", need_data(*FR, "obama.jpg"), "--out", tmp_path / "x.txt")
    assert code == 2 and "must end in .npy" in err


def test_models_lists_every_model_verified(capsys):
    code, out, _ = run(capsys, "models", "--json")
    models = {m["name"]: m for m in json.loads(out)}
    assert code == 0
    for name in ["yunet", "dlib-hog", "dlib-mmod", "dlib-68", "sface", "sface-flip", "dlib-resnet",
                 "dlib-resnet-jitter", "fused", "age", "gender", "emotion"]:
        assert models[name]["verified"], models[name]["status"]
        assert models[name]["license"] and models[name]["source"]
    code, out, _ = run(capsys, "models")
    assert "sface" in out and "verified" in out


def test_unknown_model_is_a_clear_error(capsys):
    code, _, err = run(capsys, "verify", "a.jpg", "b.jpg", "--embedder", "facenet")
    assert code == 2 and "unknown model 'facenet'" in err


def test_console_script_runs():
    # The script pip installs sits beside the interpreter running the tests; CI calls .venv/bin/python
    # without activating the venv, so PATH alone would not find it.
    script = shutil.which("vultus", path=str(Path(sys.executable).parent)) or shutil.which("vultus")
    assert script, f"console script `vultus` not installed beside {sys.executable} nor on PATH"
    r = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.startswith("vultus ")
    r = subprocess.run([sys.executable, "-m", "vultus", "models"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_verify_uses_a_collections_measured_threshold(capsys, tmp_path):
    gallery = tmp_path / "g.db"
    a, b = need_data(*FR, "obama.jpg"), need_data(*FR, "obama2.jpg")
    assert run(capsys, "gallery", "create", "--gallery", gallery, "--collection", "door", "--embedder", "sface")[0] == 0
    code, out, _ = run(capsys, "verify", a, b, "--gallery", gallery, "--collection", "door", "--json")
    d = json.loads(out)
    assert code == 0 and d["same"] is True and d["model"] == "sface"  # the calibration's threshold at FMR 1e-3
    code, _, err = run(capsys, "gallery", "threshold", "--gallery", gallery, "--collection", "door",
                       "--threshold", "0.95", "--fmr", "1e-6", "--source", "our door camera, 2026-11")
    assert code == 0, err
    code, out, _ = run(capsys, "verify", a, b, "--gallery", gallery, "--collection", "door")
    assert code == 0 and out.startswith("DIFFERENT people") and "0.950" in out and "our door camera" in out
    code, _, err = run(capsys, "verify", a, b, "--gallery", gallery, "--collection", "nope")
    assert code == 2 and "nope" in err

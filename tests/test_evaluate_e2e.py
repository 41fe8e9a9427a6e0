"""`vultus evaluate`, `vultus calibrate` end to end on real photos from the shared data."""

from __future__ import annotations

import json
import re

import pytest

from conftest import need_data
from vultus.cli import main

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One embedding cache for this module, so later tests reuse the first ones' embeddings."""
    return tmp_path_factory.mktemp("vultus-cache")


@pytest.fixture
def run(cache, monkeypatch, capsys):
    monkeypatch.setenv("VULTUS_CACHE", str(cache))

    def _run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def _figures(html: str) -> int:
    return len(re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', html))


@pytest.fixture(scope="module")
def lfw_pairs_csv(tmp_path_factory):
    """80 LFW pairs (40 genuine, 40 impostor) from fold 1 as a user's pairs CSV, plus a labels file that
    groups the images by the first letter of the person's name (a stand-in attribute: the test checks the
    per-group mechanics, not a demographic claim)."""
    from vultus.evaluate.lfw import read_lfw_pairs

    root = need_data("lfw")
    pairs = [p for p in read_lfw_pairs(root) if p.fold == 1]
    chosen = [p for p in pairs if p.same][:40] + [p for p in pairs if not p.same][:40]
    d = tmp_path_factory.mktemp("pairs")
    lines = ["path_a,path_b,same"] + [f"{p.path_a},{p.path_b},{int(p.same)}" for p in chosen]
    (d / "pairs.csv").write_text("\n".join(lines) + "\n")
    images = sorted({p.path_a for p in chosen} | {p.path_b for p in chosen})
    rows = ["path,initial"] + [f"{p},{'A-L' if p.parent.name[0] <= 'L' else 'M-Z'}" for p in images]
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.mark.slow
def test_evaluate_pairs_report_and_groups(run, lfw_pairs_csv, tmp_path):
    report = tmp_path / "out" / "pairs.html"
    code, out, err = run("evaluate", "pairs", lfw_pairs_csv / "pairs.csv", "--pick", "center", "--labels",
                         lfw_pairs_csv / "labels.csv", "--report", report, "--bootstrap", 200)
    assert code == 0, err
    assert "accuracy (10-fold)" in out and "TAR @ FMR 1e-02" in out
    assert "NOT RESOLVABLE" in out  # 40 impostor pairs cannot measure 1e-3
    html = report.read_text()
    assert _figures(html) >= 4  # ROC, DET, histogram, per-group bars
    assert "Per group" in html and "worst/best" in html
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["n_pairs"] == 80 and data["n_genuine"] == 40
    assert data["accuracy"]["value"] >= 0.9  # SFace on easy LFW pairs: anything lower means a broken pipeline
    assert {g["attribute"] for g in data["groups"]} == {"initial"}
    assert all(g["n_genuine"] + g["n_impostor"] > 0 for a in data["groups"] for g in a["groups"])
    assert data["tar_at_fmr"][1]["resolvable"] is False


@pytest.mark.slow
def test_second_run_comes_from_the_cache(run, lfw_pairs_csv, tmp_path):
    code, out, err = run("evaluate", "pairs", lfw_pairs_csv / "pairs.csv", "--pick", "center", "--json",
                         "--no-report", "--bootstrap", 50)
    assert code == 0, err
    data = json.loads(out)
    first = data["notes"][0]
    n = int(re.search(r"(\d+) images", first).group(1))
    assert f"{n} from the embedding cache" in first


@pytest.mark.slow
def test_deepface_pairs_with_yes_no_labels(run, tmp_path):
    master = need_data("deepface", "tests", "unit", "dataset", "master.csv")
    code, out, err = run("evaluate", "pairs", master, "--report", tmp_path / "df.html", "--bootstrap", 100)
    assert code == 0, err
    data = json.loads((tmp_path / "df.json").read_text())
    assert data["n_pairs"] == 300 and data["n_genuine"] == 38
    assert data["accuracy"]["value"] > 0.85


def test_bad_inputs_exit_2_with_one_line(run, lfw_pairs_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path_a,path_b,same\na.jpg,b.jpg,perhaps\n")
    code, out, err = run("evaluate", "pairs", bad)
    assert code == 2 and "bad.csv:2: same must be" in err and len(err.strip().splitlines()) == 1
    labels = tmp_path / "labels.csv"
    labels.write_text("file,gender\nx.jpg,f\n")
    code, out, err = run("evaluate", "pairs", lfw_pairs_csv / "pairs.csv", "--labels", labels, "--no-report")
    assert code == 2 and "no 'path' column" in err
    labels.write_text("path,gender\nnowhere/x.jpg,f\n")
    code, out, err = run("evaluate", "pairs", lfw_pairs_csv / "pairs.csv", "--labels", labels, "--no-report")
    assert code == 2 and "none of the" in err and "labels file" in err
    code, out, err = run("evaluate", "lfw", tmp_path)
    assert code == 2 and "pairs.txt" in err
    code, out, err = run("calibrate", tmp_path / "missing")
    assert code == 2 and "no such file or folder" in err
    code, out, err = run("calibrate", lfw_pairs_csv / "pairs.csv", "--fmr", "2")
    assert code == 2 and "between 0 and 1" in err


def test_missing_image_counts_as_failure(run, lfw_pairs_csv, tmp_path):
    lines = (lfw_pairs_csv / "pairs.csv").read_text().splitlines()
    first = lines[1].split(",")
    lines.append(f"{tmp_path / 'gone.jpg'},{first[1]},1")
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    code, out, err = run("evaluate", "pairs", tmp_path / "p.csv", "--pick", "center", "--json", "--no-report",
                         "--bootstrap", 50)
    assert code == 0, err
    data = json.loads(out)
    assert data["n_failed_pairs"] == 1
    assert "no such file" in data["failed_images"][str(tmp_path / "gone.jpg")]


def test_identify_folder_of_people(run, tmp_path):
    train = need_data("face_recognition", "examples", "knn_examples", "train")
    code, out, err = run("evaluate", "identify", train, "--holdout", "0.25", "--report", tmp_path / "id.html",
                         "--bootstrap", 100)
    assert code == 0, err
    assert "rank-1 identification rate" in out and "FNIR @ FPIR" in out
    data = json.loads((tmp_path / "id.json").read_text())
    assert data["n_people"] == 5 and data["n_enrolled"] == 3
    assert data["n_mated_probes"] == 3 and data["n_nonmated_probes"] == 3
    assert data["rank1"]["value"] == 1.0  # Obama, Biden, Kit Harington or Rose Leslie against three others
    assert _figures((tmp_path / "id.html").read_text()) >= 3


def test_calibrate_pairs_and_folder(run, lfw_pairs_csv, tmp_path):
    code, out, err = run("calibrate", lfw_pairs_csv / "pairs.csv", "--pick", "center", "--fmr", "0.05", "--json",
                         "--bootstrap", 100)
    assert code == 0, err
    data = json.loads(out)
    p = data["points"][0]
    assert p["n_impostor"] == 40 and p["resolvable"] and p["achieved_fmr"] <= 0.05
    assert p["threshold_ci"][0] <= p["threshold"] <= p["threshold_ci"][1] + 1e-9
    train = need_data("face_recognition", "examples", "knn_examples", "train")
    code, out, err = run("calibrate", train, "--fmr", "0.1", "--report", tmp_path / "cal.html", "--bootstrap", 100)
    assert code == 0, err
    assert "bootstrap over people" in out and "only 5 people" in out
    assert _figures((tmp_path / "cal.html").read_text()) == 1


@pytest.mark.slow
def test_model_card_quick(run, tmp_path):
    need_data("lfw")
    need_data("utkface")
    code, out, err = run("model-card", "yunet", "--quick", "--out", tmp_path)
    assert code == 0, err
    md = (tmp_path / "yunet.md").read_text()
    for section in ("Model details", "Intended use", "Factors", "Metrics", "Quantitative analyses", "Evaluation data",
                    "Training data", "Ethical considerations", "Caveats and recommendations"):
        assert f"## {section}" in md
    assert "QUICK MODE" in md and "miss rate" in md
    numbers = json.loads((tmp_path / "yunet.json").read_text())
    assert numbers["utkface_detection"]["images"] == 200
    assert 0 < numbers["lfw_detection"]["central_face"] <= numbers["lfw_detection"]["images"]
    code, out, err = run("model-card", "no-such-model", "--out", tmp_path)
    assert code == 2 and "unknown model" in err


@pytest.mark.slow
def test_emotion_model_card_quick(run, tmp_path):
    need_data("fer2013", "fer2013.zip")
    code, out, err = run("model-card", "emotion", "--quick", "--out", tmp_path)
    assert code == 0, err
    md = (tmp_path / "emotion.md").read_text()
    assert "## Quantitative analyses" in md and "FER2013 test split" in md and "Confusion" in md
    numbers = json.loads((tmp_path / "emotion.json").read_text())["fer2013_test"]
    assert numbers["images"] == 359  # every 20th of the 7,178 test faces
    assert sum(c["n"] for c in numbers["per_class"].values()) == numbers["images"]
    assert sum(map(sum, numbers["confusion"])) == numbers["images"]
    assert numbers["accuracy"]["value"] > 0.5  # chance on seven classes is 0.14; the model scores about 0.65
    assert 0 < numbers["coverage"] <= 1


def test_calibrate_collection_refused_clearly(run, tmp_path):
    """Storing on a collection that does not exist (or in a build without a gallery) fails in one clear line
    before anything is measured."""
    train = need_data("face_recognition", "examples", "knn_examples", "train")
    code, out, err = run("calibrate", train, "--collection", "no-such-collection", "--gallery", tmp_path / "g.db")
    assert code == 2 and ("collection" in err or "gallery" in err)
    assert "threshold" not in out  # nothing was measured


def test_labels_from_utkface_names_and_bad_labels_in_identify(run, tmp_path):
    utk = need_data("utkface")
    code, out, err = run("evaluate", "labels", utk, "--from", "utkface", "--out", tmp_path / "utk.csv")
    assert code == 0, err
    from vultus.evaluate.groups import read_labels

    table = read_labels(tmp_path / "utk.csv")
    assert table.attributes == ["gender", "race", "age_band"] and len(table.labels) == 3000
    assert not table.predicted
    train = need_data("face_recognition", "examples", "knn_examples", "train")
    code, out, err = run("evaluate", "identify", train, "--labels", tmp_path / "utk.csv", "--no-report")
    assert code == 2 and "none of the" in err  # UTKFace labels do not cover these photos


@pytest.mark.slow
def test_fused_vectors_from_cached_components_match_the_fused_embedder(tmp_path):
    """The evaluation builds fused vectors from each component's cached vectors; they must equal what the
    FusedEmbedder computes itself."""
    import numpy as np

    from vultus import Engine
    from vultus.evaluate.embeddings import embed_images

    train = need_data("face_recognition", "examples", "knn_examples", "train")
    paths = sorted(train.glob("*/*"))[:4]
    engine = Engine(embedder="fused")
    got = embed_images(engine, paths, pick="largest", cache_root=tmp_path)
    assert got.model == "fused" and got.vectors.shape == (4, 256)
    for p, face in zip(got.paths, got.faces, strict=True):
        direct = engine.embed(p, [face])[0].embedding.vector
        np.testing.assert_allclose(got.vectors[got.index(p)], direct, atol=1e-5)
    again = embed_images(engine, paths, pick="largest", cache_root=tmp_path)
    assert again.cache_hits == 4
    np.testing.assert_array_equal(again.vectors, got.vectors)


def test_predicted_labels_per_person(run, tmp_path):
    from vultus.evaluate.predicted import attribute_models

    if attribute_models() is None:
        pytest.skip("this build has no age/gender models")
    train = need_data("face_recognition", "examples", "knn_examples", "train")
    code, out, err = run("evaluate", "labels", train, "--from", "predicted", "--out", tmp_path / "pred.csv")
    assert code == 0, err
    from vultus.evaluate.groups import read_labels

    table = read_labels(tmp_path / "pred.csv")
    assert table.predicted and table.attributes == ["predicted_gender", "predicted_age_band"]
    assert len(table.labels) == 9
    by_person = {}
    for path, row in table.labels.items():
        by_person.setdefault(path.parent.name, set()).add(row["predicted_gender"])
    assert all(len(v) == 1 for v in by_person.values())  # one group per person (majority)
    assert by_person["obama"] == {"male"} and by_person["rose_leslie"] == {"female"}

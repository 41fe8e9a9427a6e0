"""Decisions by false-positive identification rate (FPIR): the threshold is derived
from the embedder's calibration and the collection's size, and follows the size as
people are enrolled and forgotten; the target round-trips through the API and CLI."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from conftest import need_data
from vultus.cli import main
from vultus.gallery import Gallery
from vultus.gallery import decision as decide
from vultus.gallery.errors import GalleryError
from vultus.models.calibration import calibration_for, operating_point

KNN = ("face_recognition", "examples", "knn_examples")


def run_json(capsys, *argv):
    code = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


# -- the model -------------------------------------------------------------------------------------
def test_fpir_and_fmr_convert_both_ways():
    for fpir, n in ((0.01, 1), (0.01, 1559), (0.001, 10**6), (0.3, 50)):
        fmr = decide.fmr_for_fpir(fpir, n)
        assert decide.fpir_for_fmr(fmr, n) == pytest.approx(fpir, rel=1e-9)
        assert fmr <= fpir and fmr == pytest.approx(fpir / n, rel=0.2 if fpir > 0.1 else 0.01)
    assert decide.fpir_for_fmr(1e-3, 0) == 0.0  # nobody enrolled: nobody to be mistaken for
    assert decide.comparisons("max", faces=30, people=10) == 30
    assert decide.comparisons("mean", faces=30, people=10) == 10


def test_thresholds_inside_the_calibration_are_the_calibrations():
    points = calibration_for("sface")["points"]
    for fmr in (1e-2, 3e-4, 1.7e-4, 1e-5):
        p = decide.threshold_for_fmr(points, fmr)
        assert not p.extrapolated and p.threshold == pytest.approx(operating_point("sface", fmr).threshold)


def test_the_tail_is_extended_below_the_lowest_measured_rate():
    points = calibration_for("sface")["points"]
    lowest = min(points, key=lambda p: p["fmr"])
    deeper = [decide.threshold_for_fmr(points, lowest['fmr'] / f) for f in (2, 10, 100, 1000)]
    assert all(p.extrapolated for p in deeper)
    ts = [lowest["threshold"]] + [p.threshold for p in deeper]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)  # stricter with every decade
    # the fitted line passes close to the rungs it was fitted through
    a, b = decide.tail_fit(points)
    assert math.exp(a + b * lowest["threshold"]) == pytest.approx(lowest["fmr"], rel=0.25)
    # above the highest measured rate the threshold is held there, and the rate stated is that rung's
    top = max(points, key=lambda p: p["fmr"])
    held = decide.threshold_for_fmr(points, 0.5)
    assert (held.threshold, held.fmr) == (top["threshold"], top["fmr"])


# -- the gallery -----------------------------------------------------------------------------------
@pytest.fixture()
def knn_gallery(tmp_path, engine):
    g = Gallery(tmp_path / "people.db")
    report = g.enroll_folder(need_data(*KNN, "train"), engine=engine, workers=0)
    assert report.enrolled == 9
    yield g
    g.close()


def expected_threshold(fpir: float, n: int) -> float:
    return decide.threshold_for_fmr(calibration_for("sface")["points"], decide.fmr_for_fpir(fpir, n)).threshold


def test_threshold_is_rederived_as_people_are_enrolled_and_forgotten(knn_gallery, engine):
    g = knn_gallery
    coll = g.collection()
    assert coll.target_fpir == 0.01  # a new collection decides by FPIR 1%
    d9 = g.decision(coll)
    assert (d9.target, d9.target_rate, d9.comparisons) == ("fpir", 0.01, 9)
    assert d9.threshold == pytest.approx(expected_threshold(0.01, 9))
    assert d9.expected_fpir == pytest.approx(0.01)

    obama = g.person("obama").face_count
    g.forget("obama")
    d_less = g.decision(g.collection())
    assert d_less.comparisons == 9 - obama
    assert d_less.threshold < d9.threshold  # fewer people to be mistaken for: a looser threshold, same FPIR
    assert d_less.threshold == pytest.approx(expected_threshold(0.01, 9 - obama))
    assert d_less.expected_fpir == pytest.approx(0.01)

    more = sorted(need_data("face_recognition", "examples").glob("*.jpg"))[:6]
    added = sum(g.enroll_image(p, f"extra {i}", engine=engine, workers=0).enrolled for i, p in enumerate(more))
    assert added >= 3
    d_more = g.decision(g.collection())
    assert d_more.comparisons == 9 - obama + added
    assert d_more.threshold > d_less.threshold
    assert d_more.threshold == pytest.approx(expected_threshold(0.01, 9 - obama + added))
    # identification uses the threshold of the collection as it is now
    result = g.identify([need_data(*KNN, "test", "obama_and_biden.jpg")], engine=engine)[0].unwrap()
    assert result.decision.threshold == pytest.approx(d_more.threshold)


def test_fpir_target_round_trips_through_the_api(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        assert g.create_collection("a").target_fpir == 0.01
        assert g.create_collection("b", target_fpir=1e-3).target_fpir == 1e-3
        by_fmr = g.create_collection("c", target_fmr=1e-4)
        assert by_fmr.target_fpir is None and g.decision(by_fmr).target == "fmr"
        with pytest.raises(GalleryError, match="not both"):
            g.create_collection("d", target_fmr=1e-4, target_fpir=1e-2)
        assert g.set_target_fpir("c", 0.05).target_fpir == 0.05
        assert g.decision("c").target == "fpir" and g.decision("c").target_rate == 0.05
        back = g.set_target_fmr("c", 1e-4)  # a per-comparison target ends the FPIR target
        assert back.target_fpir is None and g.decision("c").fmr == 1e-4
        for bad in (0.0, 1.0, float("nan")):
            with pytest.raises(GalleryError, match="between 0 and 1") as err:
                g.set_target_fpir("a", bad)
            assert err.value.code == "invalid_rate"
        g.set_threshold("a", 0.5, 1e-4, "my photos")  # a pinned threshold wins over either target
        assert g.decision("a").target == "threshold" and g.decision("a").threshold == 0.5


def test_fpir_target_round_trips_through_the_cli(capsys, tmp_path):
    gallery = ("--gallery", tmp_path / "g.db")
    created = run_json(capsys, "gallery", "create", "--fpir", "0.002", *gallery)
    assert (created["target_fpir"], created["target_fmr"]) == (0.002, 1e-3)
    shown = run_json(capsys, "gallery", "threshold", "--fpir", "0.001", *gallery)
    assert shown["target_fpir"] == 0.001
    assert (shown["decision"]["target"], shown["decision"]["target_rate"]) == ("fpir", 0.001)
    stats = run_json(capsys, "gallery", "stats", *gallery)
    assert stats["collection"]["target_fpir"] == 0.001 and stats["decision"]["target"] == "fpir"
    by_fmr = run_json(capsys, "gallery", "threshold", "--fmr", "1e-4", *gallery)
    assert by_fmr["target_fpir"] is None and by_fmr["decision"]["target"] == "fmr"
    code = main(["gallery", "threshold", "--fpir", "2", *map(str, gallery)])
    assert code == 2 and "between 0 and 1" in capsys.readouterr().err
    code = main(["gallery", "stats", *map(str, gallery)])
    text = capsys.readouterr().out
    assert code == 0 and "target false-match rate 0.0001 per comparison" in text
    assert "stated identification rate" in text


def test_stats_show_target_threshold_and_stated_rates(capsys, knn_gallery):
    code = main(["gallery", "stats", "--gallery", knn_gallery.location])
    text = capsys.readouterr().out
    assert code == 0
    assert "target false-positive identification rate 0.01" in text
    assert "9 comparisons per search" in text
    assert "about 1% of the time" in text


def test_gallery_made_before_fpir_targets_keeps_deciding_by_fmr(tmp_path):
    path = tmp_path / "old.db"
    with Gallery(path) as g:
        g.create_collection("c", target_fmr=1e-4)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE collections DROP COLUMN target_fpir")
    conn.commit()
    conn.close()
    with Gallery(path) as g:
        assert g.collection("c").target_fpir is None and g.decision("c").fmr == 1e-4
        assert g.set_target_fpir("c", 0.01).target_fpir == 0.01

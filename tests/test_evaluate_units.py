"""Group rates, open-set identification, calibration and the embedding cache on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from vultus.errors import VultusError
from vultus.evaluate.cache import CachedImage, EmbeddingCache
from vultus.evaluate.calibrate import _weighted_threshold, all_pairs, calibrate_pairs, calibrate_people
from vultus.evaluate.embeddings import choose_face
from vultus.evaluate.groups import age_band, read_labels, utkface_labels, verification_groups
from vultus.evaluate.identification import cmc_curve, evaluate_identification, search_scores, split_people
from vultus.evaluate.metrics import threshold_at_fmr, wilson_interval
from vultus.evaluate.verification import assign_folds, evaluate_verification, read_pairs_csv

# -- labels files ---------------------------------------------------------------------------------------------


def _labels(tmp_path, text, name="labels.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("", "empty labels file"),
    ("image,gender\na.jpg,f\n", "no 'path' column"),
    ("path\na.jpg\n", "no group columns"),
    ("path,gender\na.jpg,f,extra\n", r"labels.csv:2: 3 fields"),
    ("path,gender\na.jpg,f\na.jpg,m\n", r"labels.csv:3: a.jpg is listed twice"),
    ("path,gender,gender\na.jpg,f,f\n", "repeated column"),
    ("path,gender\n,f\n", r"labels.csv:2: empty path"),
    ("path,gender\n", "no rows"),
])
def test_bad_labels_files(tmp_path, text, message):
    with pytest.raises(VultusError, match=message):
        read_labels(_labels(tmp_path, text))


def test_labels_file_missing_and_binary(tmp_path):
    with pytest.raises(VultusError, match="not found"):
        read_labels(tmp_path / "nope.csv")
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(VultusError, match="UTF-8"):
        read_labels(p)


def test_labels_resolve_relative_to_file(tmp_path):
    table = read_labels(_labels(tmp_path, "path,gender,age_band\nsub/a.jpg,female,18-29\n/abs/b.jpg,male,\n"))
    assert table.attributes == ["gender", "age_band"]
    assert table.of(tmp_path / "sub" / "a.jpg", "gender") == "female"
    assert table.of("/abs/b.jpg", "age_band") == ""
    assert table.of("/elsewhere.jpg", "gender") == ""


def test_utkface_labels_and_age_bands():
    t = utkface_labels(["/x/26_1_2_20170116174525125.jpg", "/x/8_0_4_2017.jpg", "/x/61_0_0_1.jpg"])
    assert t.labels[__import__("pathlib").Path("/x/26_1_2_20170116174525125.jpg")] == {
        "gender": "female", "race": "Asian", "age_band": "18-29", "age": "26"}
    assert t.of("/x/8_0_4_2017.jpg", "race") == "Others"
    assert t.of("/x/61_0_0_1.jpg", "age_band") == "60+"
    assert [age_band(a) for a in (0, 17, 18, 29, 30, 44, 45, 59, 60)] == [
        "0-17", "0-17", "18-29", "18-29", "30-44", "30-44", "45-59", "45-59", "60+"]
    assert age_band(29.6) == "18-29" and age_band(17.99) == "0-17" and age_band(0.25) == "0-17"
    with pytest.raises(ValueError):
        age_band(-1)
    with pytest.raises(VultusError, match="UTKFace"):
        utkface_labels(["/x/portrait.jpg"])


# -- per-group rates -------------------------------------------------------------------------------------------


def test_verification_groups_by_hand():
    scores = np.array([0.9, 0.2, 0.8, 0.6, 0.1, 0.7])
    same = np.array([True, False, True, False, False, True])
    failed = np.zeros(6, bool)
    a = np.array(["x", "x", "y", "y", "y", "x"], dtype=object)
    b = np.array(["x", "x", "y", "y", "y", "y"], dtype=object)  # the last pair crosses groups
    ga = verification_groups(scores, same, failed, a, b, "g", 0.5, "test")
    x, y = ga.groups
    assert (x.group, x.n_genuine, x.n_impostor, x.fmr.value, x.fnmr.value) == ("x", 1, 1, 0.0, 0.0)
    assert (y.group, y.n_genuine, y.n_impostor, y.fmr.value, y.fnmr.value) == ("y", 1, 2, 0.5, 0.0)
    assert y.accuracy.value == pytest.approx(2 / 3)
    assert ga.n_cross_group == 1 and ga.n_unlabelled == 0
    assert ga.fmr_ratio is None and any("unbounded" in n for n in ga.notes)  # best group had no false match
    assert ga.fnmr_ratio is None  # both groups have fewer than 30 genuine pairs
    assert any("fewer than 30" in w for w in x.warnings)
    # Wilson interval for 0 errors out of 1 is not [0, 0]
    assert x.fmr.low == 0.0 and x.fmr.high > 0.5


def test_group_ratio_and_failures():
    rng = np.random.default_rng(0)
    n = 200
    same = np.tile([True, False], n)
    scores = np.where(same, 0.8, 0.1) + rng.normal(0, 0.01, 2 * n)
    g = np.array(["a"] * n + ["b"] * n, dtype=object)
    # group b: 20 of its 100 impostor pairs score high (false matches), 10 genuine pairs failed
    imp_b = np.flatnonzero(~same & (g == "b"))[:20]
    scores[imp_b] = 0.9
    gen_a = np.flatnonzero(same & (g == "a"))[:5]
    scores[gen_a] = 0.2
    failed = np.zeros(2 * n, bool)
    failed[np.flatnonzero(same & (g == "b"))[:10]] = True
    ga = verification_groups(scores, same, failed, g, g, "g", 0.5, "t")
    a, b = ga.groups
    assert a.fmr.value == 0 and b.fmr.value == pytest.approx(0.2)
    assert a.fnmr.value == pytest.approx(0.05) and b.fnmr.value == pytest.approx(0.1)
    assert ga.fnmr_ratio == pytest.approx(2.0)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.037, abs=0.001)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_evaluate_verification_counts_failures_as_errors():
    rng = np.random.default_rng(3)
    same = np.tile([True, False], 100)
    scores = np.where(same, 0.7, 0.1) + rng.normal(0, 0.02, 200)
    folds = np.repeat(np.arange(10), 20)
    clean = evaluate_verification(scores, same, folds, n_boot=50)
    assert clean.accuracy.value == 1.0 and clean.eer.value == 0.0
    failed = np.zeros(200, bool)
    failed[[0, 1]] = True  # one genuine and one impostor pair without a face
    rep = evaluate_verification(scores, same, folds, failed, n_boot=50)
    assert rep.n_failed_pairs == 2
    assert rep.accuracy.value == pytest.approx(1 - 2 / 200)
    r = rep.rates[0]
    assert r.tar.value == pytest.approx(99 / 100)  # the failed genuine pair is a false non-match
    assert not rep.rates[1].resolvable and "too few impostor pairs" in rep.rates[1].note
    with pytest.raises(VultusError, match="genuine and impostor"):
        evaluate_verification(scores[same], same[same])


def test_assign_folds_spreads_classes():
    same = np.array([True] * 30 + [False] * 20)
    f = assign_folds(same)
    for k in range(10):
        assert (same[f == k]).sum() == 3 and (~same[f == k]).sum() == 2


# -- pairs CSV -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("", "empty pairs file"),
    ("a_path,b_path,same\nx,y,1\n", "no first-image column"),
    ("path_a,path_b,same\nx,y,maybe\n", r"pairs.csv:2: same must be"),
    ("path_a,path_b,same\nx,,1\n", r"pairs.csv:2: empty image path"),
    ("path_a,path_b,same,fold\nx,y,1,one\n", "fold must be an integer"),
    ("path_a,path_b,same\nx,y\n", r"pairs.csv:2: 2 fields"),
    ("path_a,path_b,same\n", "no pairs"),
])
def test_bad_pairs_files(tmp_path, text, message):
    with pytest.raises(VultusError, match=message):
        read_pairs_csv(_labels(tmp_path, text, "pairs.csv"))


def test_pairs_csv_layouts(tmp_path):
    pairs = read_pairs_csv(_labels(tmp_path, "file_x,file_y,Decision\na.jpg,b.jpg,Yes\na.jpg,c.jpg,No\n", "p.csv"))
    assert [p.same for p in pairs] == [True, False]
    assert pairs[0].path_a == tmp_path / "a.jpg"
    assert all(0 <= p.fold < 10 for p in pairs)
    pairs = read_pairs_csv(_labels(tmp_path, "path_a,path_b,same,fold\n/a.jpg,b.jpg,0,4\n", "q.csv"))
    assert pairs[0].fold == 4 and not pairs[0].same and str(pairs[0].path_a) == "/a.jpg"


# -- identification --------------------------------------------------------------------------------------------


def test_search_scores_by_hand():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    probes = np.array([[0.8, 0.6], [0.8, 0.6], [0.6, 0.8], [np.nan, np.nan], [1.0, 0.0]])
    ids = ["A", "B", "X", "Y", "C"]
    mated = np.array([True, True, False, False, True])
    s = search_scores(probes, ids, mated, gallery, ["A", "B"])
    assert s.rank.tolist() == [1, 2, 0, 0, 0]
    assert s.score[0] == pytest.approx(0.8) and s.score[1] == -np.inf  # mate not first: never a hit
    assert s.score[2] == pytest.approx(0.8) and s.score[3] == -np.inf
    assert s.failed.tolist() == [False, False, False, True, True]  # C was never enrolled
    ks, cmc = cmc_curve(s.rank, s.mated, ranks=(1, 2, 5), n_ids=2)
    assert ks == [1, 2] and cmc == pytest.approx([1 / 3, 2 / 3])


def test_search_best_template_and_ties_count_against():
    gallery = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    probes = np.array([[0.6, 0.8]])
    s = search_scores(probes, ["A"], np.array([True]), gallery, ["A", "A", "B"])
    # A's best template ties B exactly: the tie is counted against the mate
    assert s.rank.tolist() == [2]


def test_evaluate_identification_by_hand():
    score = np.array([0.9, 0.8, 0.7, -np.inf, 0.75, 0.3, 0.2, 0.1])
    mated = np.array([True, True, True, True, False, False, False, False])
    rank = np.array([1, 1, 1, 3, 0, 0, 0, 0])
    from vultus.evaluate.identification import SearchScores

    s = SearchScores(score=score, mated=mated, rank=rank, failed=np.zeros(8, bool))
    rep = evaluate_identification(s, dataset="t", model="m", detector="d", n_people=6, n_enrolled=4,
                                  n_gallery_images=4, n_gallery_failed=0, targets=(0.25,), n_boot=50)
    assert rep.rank1.value == pytest.approx(0.75)
    # FPIR 0.25 of 4 non-mated: one may alarm, so the threshold sits just above 0.3; mates at .9 .8 .7 are hits
    fa = rep.rates[0]
    assert 0.3 < fa.threshold < 0.3 + 1e-9
    assert fa.fnir.value == pytest.approx(0.25) and fa.resolvable


def test_split_people():
    people = {"a": ["a1", "a2", "a3"], "b": ["b1"], "c": ["c1", "c2"], "d": ["d1", "d2"], "e": ["e1", "e2"]}
    s = split_people(people, enrol=1, holdout=0.25, seed=1)
    assert len(s.held_out) == 1
    assert set(s.gallery) == {"a", "c", "d", "e"} - set(s.held_out)
    assert ("b1", "b") in s.nonmated
    assert all(name in s.gallery for _, name in s.mated)
    assert len(s.mated) + len(s.nonmated) + sum(len(v) for v in s.gallery.values()) == 10
    with pytest.raises(VultusError, match="nobody to enrol"):
        split_people({"a": ["a1"], "b": ["b1"]})


# -- calibration -----------------------------------------------------------------------------------------------


def test_weighted_threshold_matches_unweighted():
    rng = np.random.default_rng(0)
    imp = np.sort(rng.normal(size=5000))[::-1]
    for target in (0.1, 0.01, 0.001):
        t = _weighted_threshold(imp, np.ones(imp.size), float(imp.size), target)
        assert t == threshold_at_fmr(imp, target)


def test_all_pairs_exact_against_brute_force():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(60, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    person = np.repeat(np.arange(20), 3)
    ap = all_pairs(v, person, tail_size=100, block=7)
    sims = v @ v.T
    iu = np.triu_indices(60, k=1)
    same = person[iu[0]] == person[iu[1]]
    assert ap.n_impostor == int((~same).sum()) and ap.genuine.size == int(same.sum())
    imp = np.sort(sims[iu][~same])[::-1]
    np.testing.assert_allclose(ap.tail, imp[:100], rtol=1e-6)
    points, method, notes = calibrate_people(ap, [0.05, 0.01], n_boot=100)
    for p in points:
        assert p.threshold == pytest.approx(threshold_at_fmr(imp, p.target_fmr), abs=1e-6)
        assert p.threshold_ci[0] <= p.threshold_ci[1]
        assert p.achieved_fmr <= p.target_fmr
    assert "bootstrap over people (20)" in method
    assert any("only 20 people" in n for n in notes)


def test_calibrate_pairs_by_hand():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.8, 0.35, np.nan])
    same = np.array([False, False, False, False, True, True, True, True])
    failed = np.array([False] * 7 + [True])
    (p,), _ = calibrate_pairs(scores, same, failed, [0.25], n_boot=50)
    assert 0.3 < p.threshold < 0.3 + 1e-9  # one of four impostors may pass: just above the 2nd highest
    assert p.n_impostor == 4 and p.n_genuine == 3 and p.resolvable
    assert p.tar.value == pytest.approx(1.0)
    (p,), _ = calibrate_pairs(scores, same, failed, [0.01], n_boot=50)
    assert not p.resolvable and "needs at least 100" in p.note


# -- cache and face choice -------------------------------------------------------------------------------------


def test_cache_roundtrip(tmp_path):
    entry = CachedImage(width=250, height=250, boxes=np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),
                        scores=np.array([0.9, 0.8], np.float32), landmarks=np.zeros((2, 5, 2), np.float32),
                        vectors=np.full((2, 4), np.nan, np.float32))
    entry.vectors[1] = [0.5, 0.5, 0.5, 0.5]
    empty = CachedImage(10, 10, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32),
                        np.zeros((0, 4), np.float32))
    with EmbeddingCache(tmp_path / "c.sqlite", 4) as c:
        c.put_many({"h1": entry, "h2": empty})
        assert len(c) == 2
    with EmbeddingCache(tmp_path / "c.sqlite", 4) as c:
        got = c.get_many(["h1", "h2", "h3"])
    assert set(got) == {"h1", "h2"}
    assert not got["h1"].has_vector(0) and got["h1"].has_vector(1)
    np.testing.assert_array_equal(got["h1"].boxes, entry.boxes)
    assert got["h2"].n_faces == 0
    with EmbeddingCache(tmp_path / "c.sqlite", 8) as c:  # another model's dimension never matches
        assert "h1" not in c.get_many(["h1"])


def test_choose_face():
    boxes = np.array([[0, 0, 100, 100], [90, 90, 160, 160]], np.float32)  # big corner face, small central one
    assert choose_face(boxes, 250, 250, "center") == 1
    assert choose_face(boxes, 250, 250, "largest") == 0
    with pytest.raises(VultusError):
        choose_face(boxes, 250, 250, "first")


def test_people_group_rates_against_brute_force():
    from vultus.evaluate.groups import people_group_rates

    rng = np.random.default_rng(2)
    v = rng.normal(size=(40, 6)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    person = np.repeat(np.arange(20), 2)
    group = np.array(["a" if p < 12 else "b" for p in person], dtype=object)
    group[0] = ""  # one unlabelled photo
    (ga,) = people_group_rates(v, person, group, "g", [("t", 0.3, 0.1)], block=5)
    sims = v @ v.T
    for g in ga.groups:
        idx = np.flatnonzero(group == g.group)
        iu = np.triu_indices(idx.size, k=1)
        s = sims[idx][:, idx][iu]
        same = person[idx][iu[0]] == person[idx][iu[1]]
        assert g.n_impostor == int((~same).sum()) and g.n_genuine == int(same.sum())
        assert g.fmr.value == pytest.approx(np.mean(s[~same] >= 0.3))
        assert g.fnmr.value == pytest.approx(np.mean(s[same] < 0.3))
    assert ga.n_unlabelled == 1 and ga.n_cross_group == 23 * 16


def test_identification_per_group_by_hand():
    from vultus.evaluate.identification import SearchScores

    score = np.array([0.9, -np.inf, 0.7, 0.6, 0.95, 0.2, 0.1, 0.3])
    mated = np.array([True, True, True, True, False, False, False, False])
    rank = np.array([1, 3, 1, 1, 0, 0, 0, 0])
    labels = np.array(["a", "a", "b", "b", "a", "a", "b", ""], dtype=object)
    s = SearchScores(score=score, mated=mated, rank=rank, failed=np.zeros(8, bool))
    rep = evaluate_identification(s, dataset="t", model="m", detector="d", n_people=8, n_enrolled=4,
                                  n_gallery_images=4, n_gallery_failed=0, targets=(0.25,), n_boot=50,
                                  probe_labels={"g": labels})
    (ga,) = rep.groups
    assert 0.3 < ga.threshold < 0.3 + 1e-9  # one of four non-mated searches may alarm: just above 0.3
    a, b = ga.groups
    assert (a.group, a.n_mated, a.n_nonmated) == ("a", 2, 2)
    assert a.rank1.value == 0.5 and a.fnir.value == 0.5 and a.fpir.value == 0.5  # 0.95 alarms
    assert (b.group, b.n_mated, b.n_nonmated) == ("b", 2, 1)
    assert b.rank1.value == 1.0 and b.fnir.value == 0.0 and b.fpir.value == 0.0
    assert ga.n_unlabelled == 1

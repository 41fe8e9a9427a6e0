"""Open-set identification on LFW (a subset; bench/identify.py runs all of it):
enroll one image of people who have several, check their other images come
back as them, and that people never enrolled come back `unknown` about as
often as the collection's stated false-match rate says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import need_data
from vultus.gallery import EnrollItem, EnrollOptions, Gallery

ENROLLED = 80  # people enrolled (one image each)
PROBES_PER_PERSON = 2
STRANGERS = 300  # people with a single LFW image, never enrolled


def central(faces, width, height):
    """LFW images are centred on the labelled person; others may be in the frame."""
    if not faces:
        return None
    return min(faces, key=lambda f: ((f.face.box.x1 + f.face.box.x2) / 2 - width / 2) ** 2
               + ((f.face.box.y1 + f.face.box.y2) / 2 - height / 2) ** 2)


@pytest.fixture(scope="module")
def lfw_split():
    root = need_data("lfw", "images")
    people = sorted(p for p in root.iterdir() if p.is_dir())
    images = {p.name: sorted(p.glob("*.jpg")) for p in people}
    several = [n for n in images if len(images[n]) >= 2]
    single = [n for n in images if len(images[n]) == 1]
    several = several[:: len(several) // ENROLLED][:ENROLLED]  # spread over the alphabet
    single = single[:: len(single) // STRANGERS][:STRANGERS]
    return images, several, single


@pytest.mark.slow
def test_open_set_identification_on_lfw(tmp_path, engine, lfw_split):
    images, several, single = lfw_split
    with Gallery(tmp_path / "lfw.db") as g:
        g.create_collection("default", target_fmr=1e-3)  # the per-comparison model first; FPIR below
        report = g.enroll([EnrollItem(images[n][0], n) for n in several], engine=engine, workers=0,
                          options=EnrollOptions(pick="central"))
        enrolled = {o.person for o in report.outcomes if o.status == "enrolled"}
        assert len(enrolled) >= 0.95 * ENROLLED  # the gate refuses only a few LFW faces

        probes = [(p, n) for n in sorted(enrolled) for p in images[n][1:1 + PROBES_PER_PERSON]]
        rank1 = accepted = 0
        for (path, truth), outcome in zip(probes, g.identify([p for p, _ in probes], engine=engine), strict=True):
            result = outcome.unwrap()
            face = central(result.faces, result.width, result.height)
            assert face is not None, path
            rank1 += face.matches[0].person == truth
            accepted += face.person == truth
        n_probes = len(probes)
        assert rank1 / n_probes >= 0.95
        assert accepted / n_probes >= 0.85  # true matches at a false-match rate of 1e-3

        strangers = [images[n][0] for n in single]
        results = [r.unwrap() for r in g.identify(strangers, engine=engine)]
        decision = results[0].decision
        faces = [central(r.faces, r.width, r.height) for r in results]
        faces = [f for f in faces if f is not None]
        false_ids = sum(not f.unknown for f in faces)
        measured = false_ids / len(faces)
        expected = decision.expected_fpir
        # "About the stated rate": within three binomial standard deviations (plus
        # one face) of what the false-match rate predicts for this many enrolled faces.
        sigma = math.sqrt(expected * (1 - expected) / len(faces))
        print(f"LFW subset: rank-1 {rank1 / n_probes:.3f}, accepted {accepted / n_probes:.3f}, "
              f"FPIR measured {measured:.3f} vs expected {expected:.3f} ({len(faces)} strangers)")
        assert abs(measured - expected) <= 3 * sigma + 1 / len(faces), (measured, expected)
        assert 0.01 < expected < 0.2  # the check above would be empty at either extreme

        # Deciding by FPIR instead: the threshold derived for 5% with this many faces enrolled
        g.set_target_fpir("default", 0.05)
        d = g.decision("default")
        assert d.expected_fpir == pytest.approx(0.05) and d.comparisons == len(enrolled)
        measured = sum(f.similarity >= d.threshold for f in faces) / len(faces)
        sigma = math.sqrt(0.05 * 0.95 / len(faces))
        print(f"FPIR target 5%: threshold {d.threshold:.3f}, measured {measured:.3f}")
        assert abs(measured - 0.05) <= 3 * sigma + 1 / len(faces), measured

        # The search the gallery chooses at this size returns the exact top person: brute force over
        # every enrolled vector from the store, best face per person, for the strangers' faces.
        coll = g.collection("default")
        assert g.search_method(coll) == "exact"
        queries = np.stack([f.face.embedding.vector for f in faces])
        found = g.match_vectors(coll, queries, top_k=1)
        pv = g.store.person_vectors(coll.id, coll.contract.key, [p.id for p in g.people("default")])
        sims = queries @ pv.vectors.T
        people = np.array([pv.names[int(pid)] for pid in pv.person_ids])
        assert [m[0].person for m in found] == list(people[sims.argmax(axis=1)])
        assert np.allclose([m[0].similarity for m in found], sims.max(axis=1), atol=1e-5)

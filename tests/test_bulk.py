"""`vultus bulk` on a local Ray with 2 CPUs, on LFW images: a bulk enroll decides
exactly as the plain, single-process enroll (the same outcome for every image,
the same faces stored, the same identifications), survives being killed and
resumes, and embed / analyze write Parquet rows equal to the Engine's own.

The gallery's location is the `gallery_location` fixture, parametrised by
backend: a SQLite file, then a throw-away database on the test suite's embedded
PostgreSQL; every test here runs against both unchanged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from vultus.cli import main
from vultus.errors import VultusError
from vultus.gallery import EnrollItem, EnrollOptions, Gallery

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from vultus.bulk import BulkError, bulk_analyze, bulk_embed, bulk_enroll, read_source  # noqa: E402

PEOPLE = 24  # LFW people with 3+ images, spread over the alphabet
ENROLL_PER_PERSON = 2
OPTIONS = EnrollOptions(pick="central")  # LFW photos are cropped around their subject


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray for the module: 2 CPUs, no dashboard, its files under a tmp path.
    The library's jobs find it initialised and use it as it is."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield ray
    ray.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def gallery_location(request, tmp_path):
    """A function giving a fresh, empty gallery location per name, for each backend: a SQLite
    file, or a throw-away database on the session's embedded PostgreSQL (tests/pg_server.py)."""
    if request.param == "sqlite":
        return lambda name: str(tmp_path / f"{name}.db")
    server = request.getfixturevalue("pg_server")

    def new_database(name: str) -> str:
        url = server.new_database()
        request.addfinalizer(lambda: server.drop_database(url))
        return url

    return new_database


@pytest.fixture(scope="module")
def lfw_people():
    root = need_data("lfw", "images")
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 3)
    people = people[:: max(1, len(people) // PEOPLE)][:PEOPLE]
    return {p.name: sorted(p.glob("*.jpg")) for p in people}


@pytest.fixture(scope="module")
def enroll_folder(tmp_path_factory, lfw_people):
    """A folder with one sub-folder per person (2 LFW photos each), plus what a real
    folder holds: a truncated JPEG, a picture with no face, and the same photo
    under a second name."""
    root = tmp_path_factory.mktemp("people")
    for name, images in lfw_people.items():
        (root / name).mkdir()
        for img in images[:ENROLL_PER_PERSON]:
            shutil.copy(img, root / name / img.name)
    first, second = sorted(lfw_people)[:2]
    data = (root / first / lfw_people[first][0].name).read_bytes()
    (root / second / "truncated.jpg").write_bytes(data[: len(data) // 3])
    from PIL import Image

    Image.new("RGB", (200, 200), (128, 128, 128)).save(root / second / "grey.jpg")
    shutil.copy(root / first / lfw_people[first][0].name, root / second / "same_bytes.jpg")
    return root


def _probes(lfw_people):
    return [(images[ENROLL_PER_PERSON], name) for name, images in lfw_people.items()]


def _stored(location: str) -> dict[str, str]:
    """{image sha256: person} of every face stored in the default collection."""
    with Gallery(location, create=False) as g:
        return {f.image_sha256: p.name for p in g.people() for f in g.faces(person=p.name)}


def _identified(location: str, probes) -> list[tuple]:
    with Gallery(location, create=False) as g:
        out = []
        for r in g.identify([p for p, _ in probes]):
            faces = r.unwrap().faces
            out.append(tuple((f.person, [(m.person, m.similarity) for m in f.matches]) for f in faces))
        return out


def test_bulk_enroll_decides_as_plain_enroll(local_ray, gallery_location, enroll_folder, lfw_people):
    items = read_source(enroll_folder, people=True).items
    plain, bulk = gallery_location("plain"), gallery_location("bulk")
    with Gallery(plain) as g:
        expected = g.enroll(items, options=OPTIONS, workers=0)
        expected_again = g.enroll(items, options=OPTIONS, workers=0)
    with Gallery(bulk) as g:
        done = []
        report = bulk_enroll(items, g, options=OPTIONS, workers=2, keep_outcomes=True, progress=done.append)
        again = bulk_enroll(items, g, options=OPTIONS, workers=2, keep_outcomes=True)

    def outcomes(r):
        return [(o.path, o.person, o.status, o.reason) for o in r.outcomes]

    assert outcomes(report) == outcomes(expected)  # every image: enrolled, duplicate, refused or error, and why
    statuses = {o.status for o in report.outcomes}
    assert statuses == {"enrolled", "duplicate", "refused", "error"}  # the folder exercises every decision
    assert report.count("enrolled") == expected.enrolled >= 0.9 * PEOPLE * ENROLL_PER_PERSON
    assert sum(done) == len(items)  # progress covered every image
    assert [w.to_dict() for w in report.warnings] == [w.to_dict() for w in expected.warnings]
    assert {(p.path, p.status) for p in report.problems} == {(o.path, o.status) for o in expected.outcomes
                                                              if o.status in ("refused", "error")}
    # Run again: nothing is computed twice, and it says so as the plain enroll does
    assert outcomes(again) == outcomes(expected_again)
    assert again.count("enrolled") == 0

    assert _stored(bulk) == _stored(plain)
    probes = _probes(lfw_people)
    got, want = _identified(bulk, probes), _identified(plain, probes)
    assert len(got) == len(want) == len(probes)
    for g_faces, w_faces in zip(got, want, strict=True):
        assert [f[0] for f in g_faces] == [f[0] for f in w_faces]  # the decision: a person or unknown
        for (_, gm), (_, wm) in zip(g_faces, w_faces, strict=True):
            assert [m[0] for m in gm] == [m[0] for m in wm]
            assert np.allclose([m[1] for m in gm], [m[1] for m in wm], atol=1e-5)
    rank1 = sum(any(f[0] == truth for f in faces) for faces, (_, truth) in zip(got, probes, strict=True))
    assert rank1 >= 0.8 * len(probes)  # the probes are other photos of the enrolled people


@pytest.mark.slow
def test_bulk_enroll_resumes_after_being_killed(local_ray, gallery_location, lfw_people, tmp_path):
    """SIGKILL the CLI's job (its own local Ray included) once some chunks are
    committed; running it again computes only what is missing and ends with the
    gallery the plain enroll makes."""
    folder = tmp_path / "people"
    for name, images in lfw_people.items():  # up to 4 photos each, so the job runs long enough to be caught
        (folder / name).mkdir(parents=True)
        for img in images[:4]:
            shutil.copy(img, folder / name / img.name)
    items = read_source(folder, people=True).items
    plain, location = gallery_location("plain"), gallery_location("resumed")
    with Gallery(plain) as g:
        g.enroll(items, options=OPTIONS, workers=0)
    # Ray's socket paths must stay under 108 bytes: a short folder of its own, not under tmp_path
    ray_tmp = tempfile.mkdtemp(prefix="vr")
    env = os.environ | {"RAY_TMPDIR": ray_tmp, "PYTHONPATH": os.pathsep.join(sys.path)}
    log = (tmp_path / "job.log").open("wb")
    job = subprocess.Popen([sys.executable, "-m", "vultus", "bulk", "enroll", str(folder), "--gallery",
                            location, "--pick", "central", "--num-cpus", "2", "--workers", "1"],
                           env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    from vultus.gallery.storage import open_store

    committed = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
            try:
                store = open_store(location, create=False)
                try:
                    committed = store.counts(store.collection("default").id)["faces"]
                finally:
                    store.close()
            except Exception:  # not created yet, or busy: look again
                continue
            if committed >= 8:
                break
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)  # the job's process group: driver, raylet, actors
        job.wait(timeout=30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert 8 <= committed < len(items) - 8, (tmp_path / "job.log").read_text()[-3000:]

    with Gallery(location) as g:
        report = bulk_enroll(items, g, options=OPTIONS, workers=2, keep_outcomes=True)
    already = [o for o in report.outcomes if o.status == "duplicate" and o.reason.startswith("already enrolled")]
    assert len(already) >= committed  # what the killed job committed was skipped, not computed again
    assert _stored(location) == _stored(plain)


def _engine_rows(paths):
    from vultus import Engine

    out = {}
    for p, r in zip(paths, Engine().embed_batch(paths), strict=True):
        out[str(p)] = [f.embedding.vector for f in r.value] if r.ok else r.error.code
    return out


def test_bulk_embed_writes_the_engines_embeddings_and_resumes(local_ray, enroll_folder, tmp_path):
    import pyarrow.dataset as pads

    items = read_source(enroll_folder, people=False).items
    out = tmp_path / "embeddings"
    first = items[: len(items) // 2]  # holds the truncated JPEG, the grey picture and the repeated photo
    half = bulk_embed(first, out, workers=2, flush_every=5)
    assert half.computed + half.duplicates == len(first) and len(half.parts) >= 2
    rest = bulk_embed(items, out, workers=2)
    assert rest.skipped == len(first)  # resumed by sha256: nothing of the first run is computed again
    assert rest.computed == len(items) - len(first)
    assert half.duplicates + rest.duplicates == 1  # same_bytes.jpg repeats a photo
    assert half.errors + rest.errors == 1 and half.no_face + rest.no_face == 1

    table = pads.dataset(out, format="parquet").to_table().to_pylist()
    by_path: dict[str, list] = {}
    for row in table:
        by_path.setdefault(row["path"], []).append(row)
    assert len(by_path) == len(items) - 1  # every image once, but the duplicate
    want = _engine_rows([it.path for it in items])
    for path, rows in by_path.items():
        if isinstance(want[path], str):
            assert [r["status"] for r in rows] == ["error"] and rows[0]["error_code"] == want[path]
        elif not want[path]:
            assert [r["status"] for r in rows] == ["no_face"]
        else:
            got = np.asarray([r["embedding"] for r in sorted(rows, key=lambda r: r["face"])], np.float32)
            assert got.shape == (len(want[path]), 128)
            assert np.allclose(got, np.stack(want[path]), atol=1e-5)
            assert all(r["model"] == "sface" and r["sha256"] for r in rows)


def test_bulk_analyze_rows(local_ray, lfw_people, tmp_path):
    paths = [images[0] for images in list(lfw_people.values())[:4]]
    listing = tmp_path / "list.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": [str(p) for p in paths]}), listing)
    items = read_source(listing, people=False, allow_outside=True).items
    report = bulk_analyze(items, tmp_path / "attrs", actions=["age", "gender", "quality"], workers=2)
    assert report.computed == 4 and report.errors == 0 and report.faces >= 4
    rows = pq.read_table(report.parts[0]).to_pylist()
    from vultus import Engine

    engine = Engine()
    for p in paths:
        mine = [r for r in rows if r["path"] == str(p)]
        theirs = engine.analyze(p, actions=["age", "gender", "quality"])
        assert len(mine) == len(theirs)
        for r, a in zip(sorted(mine, key=lambda r: r["face"]), theirs, strict=True):
            assert r["gender"] == a.gender.label and abs(r["age"] - a.age.years) < 1e-3
            assert abs(r["quality"] - a.quality.score) < 1e-4 and r["emotion"] is None


def test_sources_and_bad_input(tmp_path, capsys, enroll_folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = read_source(enroll_folder, people=True)
    assert folder.kind == "folder" and {it.person for it in folder.items} == {p.name for p in enroll_folder.iterdir()}
    csv = tmp_path / "list.csv"
    csv.write_text("path,person\n" + "".join(f"{it.path},{it.person}\n" for it in folder.items[:3]))
    assert read_source(csv, people=True, allow_outside=True).items == folder.items[:3]
    with pytest.raises(VultusError) as exc:
        read_source(csv, people=True)  # the images lie outside the CSV's folder
    assert exc.value.code == "path_outside"

    no_person = tmp_path / "paths.parquet"
    pq.write_table(pa.table({"path": ["a.jpg"]}), no_person)
    with pytest.raises(BulkError) as exc:
        read_source(no_person, people=True)
    assert exc.value.code == "bad_parquet" and exc.value.data["missing"] == ["person"]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["bulk", "enroll", str(text), "--gallery", str(tmp_path / "g.db")]) == 2
    assert "not a folder, a .csv or a .parquet" in capsys.readouterr().err
    assert main(["bulk", "embed", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(BulkError) as exc:
        bulk_embed([EnrollItem(Path("x.jpg"), "")], busy)
    assert exc.value.code == "bad_output"
    assert (busy / "notes.txt").read_text() == "mine"  # nothing of the user's is touched


def test_cli_bulk_embed_json(local_ray, lfw_people, tmp_path, capsys):
    import json

    folder = tmp_path / "photos"
    folder.mkdir()
    for images in list(lfw_people.values())[:3]:
        shutil.copy(images[0], folder / images[0].name)
    out = tmp_path / "out"
    assert main(["bulk", "embed", str(folder), "--out", str(out), "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["computed"] == 3 and report["errors"] == 0 and report["faces"] >= 3
    assert main(["bulk", "embed", str(folder), "--out", str(out), "--workers", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == 3 and again["computed"] == 0 and again["parts"] == []

"""Batches and streams: one outcome per image (a value or that image's error), in input order, and
streams that pull their input one chunk at a time."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import need_data
from vultus.errors import ImageError, InvalidArgumentError, ManyFacesError, NoFaceError
from vultus.gallery import Gallery
from vultus.gallery.errors import NotFoundError
from vultus.imageio import load_image

FR = ("face_recognition", "tests", "test_images")


@pytest.fixture()
def odd(tmp_path):
    """A missing file, a text file named .jpg, and a photo with no face."""
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (120, 120, 120)).save(blank)
    return tmp_path / "missing.jpg", text, blank


def test_detect_batch_keeps_going_past_bad_images(engine, odd):
    missing, text, _ = odd
    good = need_data(*FR, "obama.jpg")
    arr = load_image(good)
    results = engine.detect_batch([good, missing, text, arr, good.read_bytes()])
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [r.ok for r in results] == [True, False, False, True, True]
    assert results[0].source == str(good) and results[1].source == str(missing) and results[3].source == "<image 3>"
    assert isinstance(results[1].error, ImageError) and "no such file" in results[1].error.message
    assert isinstance(results[2].error, ImageError) and "not an image" in results[2].error.message
    assert results[1].value is None and results[1].width is None
    assert (results[0].width, results[0].height) == (arr.shape[1], arr.shape[0])
    assert results[2].error_dict()["message"] == results[2].error.message
    boxes = [[f.box.as_tuple() for f in results[k].value] for k in (0, 3, 4)]
    assert len(boxes[0]) == 1 and boxes[0] == boxes[1] == boxes[2]
    # The one-image form still raises, and raises the same error the batch reports.
    with pytest.raises(ImageError, match="no such file"):
        engine.detect(missing)
    with pytest.raises(ImageError):
        results[1].unwrap()


@pytest.mark.slow
def test_embed_one_batch_reports_no_face_and_several_faces_per_image(engine, odd):
    _, _, blank = odd
    good, couple = need_data(*FR, "obama.jpg"), need_data("deepface", "tests", "unit", "dataset", "couple.jpg")
    results = engine.embed_one_batch([good, blank, couple])
    assert results[0].ok and results[0].value.embedding.vector.shape == (128,)
    assert isinstance(results[1].error, NoFaceError) and results[1].error.data["file"] == str(blank)
    assert isinstance(results[2].error, ManyFacesError) and results[2].error.data["faces"] == 2
    largest = engine.embed_one_batch([good, blank, couple], largest=True)
    assert largest[2].ok and not largest[1].ok
    alone = engine.embed_one(good).embedding.vector
    assert float(alone @ results[0].value.embedding.vector) > 0.9999


def test_streams_pull_one_chunk_at_a_time_and_equal_the_batch(engine, odd):
    missing, _, _ = odd
    names = ["obama.jpg", "biden.jpg", "obama2.jpg"]
    paths = [need_data(*FR, n) for n in names]
    paths.insert(2, missing)
    pulled = []

    def source():
        for p in paths:
            pulled.append(p)
            yield p

    stream = engine.embed_stream(source(), chunk_size=2)
    first = next(stream)
    assert len(pulled) == 2  # the stream has not read ahead of its first chunk
    results = [first, *stream]
    assert [r.index for r in results] == list(range(len(paths)))
    assert [r.ok for r in results] == [p != missing for p in paths]
    batch = engine.embed_batch(paths)
    for s, b in zip(results, batch, strict=True):
        assert s.source == b.source and s.ok == b.ok
        if s.ok:
            assert len(s.value) == len(b.value)
            for fs, fb in zip(s.value, b.value, strict=True):
                assert float(fs.embedding.vector @ fb.embedding.vector) > 0.9999
    detected = list(engine.detect_stream(iter(paths), chunk_size=3))
    assert [len(r.value) if r.ok else None for r in detected] == [len(r.value) if r.ok else None for r in batch]
    with pytest.raises(InvalidArgumentError):
        engine.detect_stream(paths, chunk_size=0)  # refused when the stream is made


@pytest.mark.slow
def test_analyze_and_verify_batches_report_per_image(engine, odd):
    missing, _, blank = odd
    a, b, c = (need_data(*FR, n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    analysed = engine.analyze_batch([a, missing, blank], actions=["pose"])
    assert analysed[0].ok and analysed[0].value[0].pose is not None
    assert isinstance(analysed[1].error, ImageError) and analysed[2].ok and analysed[2].value == []
    streamed = list(engine.analyze_stream([a, missing], actions=["pose"], chunk_size=1))
    assert streamed[0].value[0].pose == analysed[0].value[0].pose and not streamed[1].ok
    verdicts = engine.verify_batch([(a, b), (a, missing), (a, c), (blank, a)])
    assert verdicts[0].ok and verdicts[0].value.same
    assert isinstance(verdicts[1].error, ImageError) and verdicts[1].source == f"{a} | {missing}"
    assert verdicts[2].ok and not verdicts[2].value.same
    assert isinstance(verdicts[3].error, NoFaceError)
    assert engine.verify(a, b).similarity == pytest.approx(verdicts[0].value.similarity, abs=1e-6)


def test_gallery_identify_gives_an_outcome_per_image(tmp_path, engine, odd):
    missing, text, _ = odd
    obama, obama2, biden = (need_data(*FR, n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    with Gallery(tmp_path / "g.db") as g:
        g.enroll_image(obama, "obama", engine=engine, workers=0)
        results = g.identify([obama2, missing, text, np.asarray(Image.open(biden))], engine=engine)
        assert [r.ok for r in results] == [True, False, False, True]
        assert results[0].value.faces[0].person == "obama" and results[0].value.image == str(obama2)
        assert isinstance(results[1].error, ImageError) and results[1].source == str(missing)
        assert results[3].value.faces[0].unknown and results[3].source == "<image 3>"
        streamed = list(g.identify_stream([missing, obama2], engine=engine, chunk_size=1))
        assert [r.index for r in streamed] == [0, 1] and streamed[1].value.faces[0].person == "obama"
        with pytest.raises(NotFoundError):  # the collection is checked when the stream is made, not later
            g.identify_stream([obama2], "nobody-here", engine=engine)


def test_evaluation_reports_progress_through_a_callback(engine, tmp_path, odd):
    from vultus.evaluate.embeddings import embed_images

    missing, _, _ = odd
    paths = [need_data(*FR, n) for n in ("obama.jpg", "biden.jpg", "obama2.jpg")] + [missing]
    calls = []
    emb = embed_images(engine, paths, pick="largest", cache_root=tmp_path, chunk=2,
                       progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (2, 3), (3, 3)]  # the unreadable file is not work to do
    assert int(emb.ok.sum()) == 3 and missing in emb.errors
    calls.clear()
    embed_images(engine, paths, pick="largest", cache_root=tmp_path, progress=lambda *a: calls.append(a))
    assert calls == []  # everything came from the cache: nothing to report

"""Bad input: every upload a client can send gets a 4xx JSON error, and the service keeps answering."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from service_harness import client, jpeg_bytes, knn_dir, make_app, new_key, png_bomb, upload  # noqa: E402

MAX_IMAGE_BYTES = 1_000_000
MAX_PIXELS = 4_000_000


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    if knn_dir() is None:
        pytest.skip("face_recognition's knn_examples not in the shared data")
    tmp = tmp_path_factory.mktemp("inputs")
    app, settings = make_app(tmp, max_image_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_PIXELS, max_images=3,
                             max_request_pixels=2 * MAX_PIXELS,
                             max_faces=2, max_request_bytes=3_000_000)
    _, admin = new_key(settings, "admin")
    with client(app) as c:
        assert c.post("/v1/collections", headers=admin, json={"name": "default"}).status_code == 201
        r = c.post("/v1/collections/default/people", headers=admin, data={"name": "obama"},
                   files=[upload(knn_dir() / "train" / "obama" / "obama.jpg")])
        assert r.status_code == 201, r.text
        yield c, admin, app


def png_of(path) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(path).save(buf, "PNG")
    return buf.getvalue()


def good():
    return knn_dir() / "test" / "obama1.jpg"


def assert_error(r, status: int, code: str):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


def still_answers(c, admin):
    assert c.get("/v1/health").status_code == 200
    r = c.post("/v1/collections/default/identify", headers=admin, files=[upload(good())])
    assert r.status_code == 200 and r.json()["images"][0]["faces"][0]["person"] == "obama"


ENDPOINTS = ["/v1/detect", "/v1/collections/default/identify", "/v1/analyze"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_broken_uploads(svc, path):
    c, admin, _ = svc
    data = good().read_bytes()
    png = png_of(good())
    cases = [
        (data[: len(data) // 2], 422, "corrupt_image"),  # truncated
        (b"", 422, "empty_file"),
        (b"%PDF-1.4 this is not an image at all\n" * 20, 415, "not_an_image"),
        (png[: len(png) // 2], 422, "corrupt_image"),  # a PNG cut in half
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 415, "not_an_image"),  # a PNG signature and garbage
    ]
    for blob, status, code in cases:
        r = c.post(path, headers=admin, files=[("images", ("x.jpg", blob, "image/jpeg"))])
        err = assert_error(r, status, code)
        assert err["details"].get("image") == "x.jpg"
    still_answers(c, admin)


def test_enroll_of_broken_images_reports_per_image(svc):
    c, admin, _ = svc
    data = good().read_bytes()
    half = ("images", ("half.jpg", data[: len(data) // 2], "image/jpeg"))
    blank = ("images", ("blank.jpg", jpeg_bytes(300, 300), "image/jpeg"))
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "nobody"}, files=[half, blank])
    err = assert_error(r, 422, "nothing_enrolled")
    verdicts = {i["image"]: i for i in err["details"]["images"]}
    assert verdicts["half.jpg"]["status"] == "error" and "truncated" in verdicts["half.jpg"]["reason"]
    assert verdicts["blank.jpg"]["status"] == "refused" and "no face" in verdicts["blank.jpg"]["reason"]
    assert c.get("/v1/collections/default/people?q=nobody", headers=admin).json()["total"] == 0
    # one good photo among bad ones: the person is created, each image has its verdict
    assert c.post("/v1/collections", headers=admin, json={"name": "scratch"}).status_code == 201
    r = c.post("/v1/collections/scratch/people", headers=admin, data={"name": "obama"},
               files=[half, upload(knn_dir() / "train" / "obama" / "obama2.jpg")])
    assert r.status_code == 201, r.text
    assert [i["status"] for i in r.json()["images"]] == ["error", "enrolled"]


def test_over_size_upload(svc):
    c, admin, _ = svc
    big = jpeg_bytes(1900, 1900) + b"\x00" * MAX_IMAGE_BYTES  # a valid JPEG followed by padding
    r = c.post("/v1/detect", headers=admin, files=[("images", ("big.jpg", big, "image/jpeg"))])
    err = assert_error(r, 413, "file_too_large")
    assert err["details"]["limit"] == MAX_IMAGE_BYTES
    still_answers(c, admin)


def test_over_pixel_upload_refused_from_its_header(svc):
    c, admin, _ = svc
    r = c.post("/v1/detect", headers=admin, files=[("images", ("wide.jpg", jpeg_bytes(2500, 2000), "image/jpeg"))])
    err = assert_error(r, 413, "image_too_large")
    assert err["details"]["width"] == 2500 and err["details"]["limit"] == MAX_PIXELS


def test_decompression_bomb(svc):
    c, admin, _ = svc
    bomb = png_bomb(12_000, 12_000)  # ~140 KB on the wire, 144 MP (432 MB as RGB) decoded
    assert len(bomb) < MAX_IMAGE_BYTES
    t0 = time.perf_counter()
    r = c.post("/v1/collections/default/identify", headers=admin, files=[("images", ("bomb.png", bomb, "image/png"))])
    assert_error(r, 413, "image_too_large")
    assert time.perf_counter() - t0 < 5  # refused from the header, never decoded
    still_answers(c, admin)


def test_bomb_past_pillows_own_limit(svc):
    c, admin, _ = svc
    bomb = png_bomb(20_000, 10_000)  # 200 MP: Pillow itself refuses to open it
    r = c.post("/v1/detect", headers=admin, files=[("images", ("bomb.png", bomb, "image/png"))])
    assert_error(r, 413, "image_too_large")


def test_wrong_content_types(svc):
    c, admin, _ = svc
    r = c.post("/v1/detect", headers=admin, json={"images": ["a.jpg"]})
    assert_error(r, 415, "unsupported_media_type")
    r = c.post("/v1/detect", headers={**admin, "Content-Type": "text/plain"}, content=b"hello")
    assert_error(r, 415, "unsupported_media_type")
    r = c.post("/v1/detect", headers=admin, files=[("images", ("a.txt", good().read_bytes(), "text/plain"))])
    assert_error(r, 415, "unsupported_media_type")
    r = c.post("/v1/collections", headers=admin, files=[("name", ("n", b"x", "text/plain"))])
    assert_error(r, 415, "unsupported_media_type")
    r = c.post("/v1/collections", headers={**admin, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code in (400, 422) and r.json()["error"]["code"] == "invalid_request"
    still_answers(c, admin)


def test_missing_and_invalid_fields(svc):
    c, admin, _ = svc
    r = c.post("/v1/detect", headers=admin, files=[("other", ("a.jpg", good().read_bytes(), "image/jpeg"))])
    err = assert_error(r, 422, "invalid_request")
    assert err["details"]["problems"][0]["field"] == "images"
    r = c.post("/v1/collections/default/people", headers=admin, files=[upload(good())])
    assert assert_error(r, 422, "invalid_request")["details"]["problems"][0]["field"] == "name"
    for name in ("   ", "tab\tname", "bidi\u202eeman"):
        r = c.post("/v1/collections/default/people", headers=admin, data={"name": name}, files=[upload(good())])
        assert r.status_code == 422, name
        assert r.json()["error"]["code"] in ("invalid_name", "invalid_request")
    r = c.post("/v1/verify", headers=admin, files=[upload(good(), "image_a")])
    assert_error(r, 422, "invalid_request")
    r = c.post("/v1/collections", headers=admin, json={"name": "bad/name"})
    assert_error(r, 422, "invalid_request")
    r = c.post("/v1/collections", headers=admin, json={"name": "x", "embedder": "no-such-model"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "model_error"
    r = c.post("/v1/collections", headers=admin, json={"name": "x", "target_fmr": 0.9})  # beyond the calibration
    assert r.status_code == 422 and r.json()["error"]["code"] == "model_error"
    assert c.get("/v1/collections/x", headers=admin).status_code == 404  # nothing half-made
    r = c.post("/v1/verify?fmr=0.9", headers=admin, files=[upload(good(), "image_a"), upload(good(), "image_b")])
    assert r.status_code == 422
    r = c.post("/v1/collections/default/identify?top_k=0", headers=admin, files=[upload(good())])
    assert_error(r, 422, "invalid_request")
    r = c.get("/v1/collections/default/people?cursor=not-a-cursor", headers=admin)
    assert_error(r, 422, "invalid_argument")
    r = c.post("/v1/analyze?actions=mood", headers=admin, files=[upload(good())])
    assert_error(r, 422, "invalid_argument")
    r = c.put("/v1/collections/default/target-fmr", headers=admin, json={"target_fmr": 2})
    assert_error(r, 422, "invalid_request")
    r = c.patch("/v1/collections/default/people/1", headers=admin, json={"name": "a\x1b[2Jb"})
    assert_error(r, 422, "invalid_request")
    still_answers(c, admin)


def test_unknown_ids(svc):
    c, admin, _ = svc
    for method, path, kw in (
        ("get", "/v1/collections/nope", {}),
        ("get", "/v1/collections/default/people/999999", {}),
        ("delete", "/v1/collections/default/people/999999", {}),
        ("patch", "/v1/collections/default/people/999999", {"json": {"name": "x"}}),
        ("post", "/v1/collections/default/people/999999/merge", {"json": {"into": 1}}),
        ("get", "/v1/collections/default/faces/999999/crop", {}),
        ("delete", "/v1/collections/default/faces/999999", {}),
        ("post", "/v1/collections/default/faces/999999/move", {"json": {"person_id": 1}}),
        ("get", "/v1/collections/default/faces?person_id=999999", {}),
        ("delete", "/v1/keys/0123456789", {}),
        ("get", "/v1/no/such/endpoint", {}),
    ):
        r = getattr(c, method)(path, headers=admin, **kw)
        assert_error(r, 404, "not_found")
    r = c.post("/v1/collections/default/people/999999/faces", headers=admin, files=[upload(good())])
    assert_error(r, 404, "not_found")
    r = c.post("/v1/verify", headers=admin, data={"collection": "default", "person_id": "999999"},
               files=[upload(good(), "image_a")])
    assert_error(r, 404, "not_found")
    still_answers(c, admin)


def test_no_face_and_too_many(svc):
    c, admin, _ = svc
    blank = ("images", ("blank.jpg", jpeg_bytes(300, 300), "image/jpeg"))
    r = c.post("/v1/verify", headers=admin, files=[("image_a",) + blank[1:], upload(good(), "image_b")])
    err = assert_error(r, 422, "no_face")
    assert err["details"]["file"] == "blank.jpg"
    r = c.post("/v1/detect", headers=admin, files=[upload(good())] * 4)
    assert_error(r, 413, "too_many_images")
    three = ("images", ("big.jpg", jpeg_bytes(1900, 1900), "image/jpeg"))  # 3.6 MP each; 8 MP per request
    assert c.post("/v1/detect", headers=admin, files=[three] * 2).status_code == 200
    assert_error(c.post("/v1/detect", headers=admin, files=[three] * 3), 413, "too_many_pixels")
    group = knn_dir() / "test" / "obama_and_biden.jpg"  # three faces; this service allows two
    r = c.post("/v1/collections/default/identify", headers=admin, files=[upload(group)])
    err = assert_error(r, 422, "too_many_faces")
    assert err["details"]["faces"] == 3 and err["details"]["image"] == "obama_and_biden.jpg"
    assert_error(c.post("/v1/detect", headers=admin, files=[upload(group)]), 422, "too_many_faces")


def test_request_body_limit(svc):
    c, admin, _ = svc
    parts = [("images", (f"{i}.jpg", jpeg_bytes(600, 600) + b"\x00" * 600_000, "image/jpeg")) for i in range(6)]
    r = c.post("/v1/detect", headers=admin, files=parts)
    err = assert_error(r, 413, "payload_too_large")
    assert err["details"]["limit"] == 3_000_000

    def chunks():  # no Content-Length: counted as it arrives
        yield b"--x\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(60):
            yield b"\x00" * 65536

    r = c.post("/v1/detect", headers={**admin, "Content-Type": "multipart/form-data; boundary=x"}, content=chunks())
    assert_error(r, 413, "payload_too_large")
    still_answers(c, admin)


def test_full_queue_answers_429_with_retry_after(svc):
    c, admin, app = svc
    pool = app.state.vultus.pool
    taken = 0
    try:
        while True:  # fill every slot, as that many requests in progress would
            try:
                pool._admit()
                taken += 1
            except Exception:
                break
        r = c.post("/v1/detect", headers=admin, files=[upload(good())])
        assert_error(r, 429, "overloaded")
        assert int(r.headers["retry-after"]) >= 1
    finally:
        for _ in range(taken):
            pool._release()
    still_answers(c, admin)


def test_pool_bounds_queue_and_time():
    from vultus.service.errors import ServiceError
    from vultus.service.inference import InferencePool

    pool = InferencePool(threads=1, queue_size=1, timeout=0.3)
    gate = threading.Event()

    async def scenario():
        first = asyncio.ensure_future(pool.run(gate.wait, 5))
        second = asyncio.ensure_future(pool.run(lambda: "queued"))
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceError) as full:
            await pool.run(lambda: "third")
        assert full.value.code == "overloaded"
        with pytest.raises(ServiceError) as late:
            await first  # runs past the timeout
        assert late.value.code == "timeout"
        with pytest.raises(ServiceError):
            await second  # waited past the timeout in the queue: cancelled, never ran
        gate.set()
        await asyncio.sleep(0.1)
        assert pool.admitted == 0  # every slot given back
        assert await pool.run(lambda: 42) == 42

    asyncio.run(scenario())
    pool.shutdown()
    with pytest.raises(ServiceError) as closed:
        asyncio.run(pool.run(lambda: 1))
    assert closed.value.code == "shutting_down"


def test_no_server_path_is_ever_read(svc, tmp_path):
    c, admin, _ = svc
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(good().read_bytes())
    # a path or URL where an image should be is just bytes that are not an image
    for text in (str(secret), f"file://{secret}", "http://127.0.0.1:1/x.jpg"):
        r = c.post("/v1/detect", headers=admin, files=[("images", ("x.jpg", text.encode(), "image/jpeg"))])
        assert_error(r, 415, "not_an_image")
        r = c.post("/v1/detect", headers=admin, data={"images": text}, files=[("x", ("x", b"x", "image/jpeg"))])
        assert_error(r, 422, "invalid_request")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0,
                    reason="mounting a tiny tmpfs needs root")
def test_full_temporary_disk_is_503_not_500(svc, tmp_path, monkeypatch):
    import subprocess
    import tempfile

    c, admin, _ = svc
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        r = c.post("/v1/collections/default/people", headers=admin, data={"name": "full disk"},
                   files=[upload(knn_dir() / "train" / "obama" / "obama.jpg")])
        err = assert_error(r, 503, "disk_full")
        assert str(small) not in err["message"]
    finally:
        monkeypatch.undo()
        subprocess.run(["umount", str(small)])
    still_answers(c, admin)

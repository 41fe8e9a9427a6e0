"""Units of the service that need no model: settings from flags and environment,
the error table, upload names, the key format, and the gallery calls it added."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")


def test_settings_from_environment():
    from vultus.errors import InvalidArgumentError
    from vultus.service.settings import Settings

    base = Settings(gallery="/srv/g.db", max_images=4)
    env = base.to_env() | {"VULTUS_SERVICE_MAX_PIXELS": "1000000", "VULTUS_SERVICE_PRELOAD": "false",
                           "VULTUS_SERVICE_REQUEST_TIMEOUT": "2.5"}
    s = Settings.from_env(env)
    assert (s.gallery, s.max_images, s.max_pixels, s.preload, s.request_timeout) == ("/srv/g.db", 4, 1_000_000,
                                                                                     False, 2.5)
    assert str(s.keys_path) == "/srv/g.db.keys"
    with pytest.raises(InvalidArgumentError):
        Settings.from_env({"VULTUS_SERVICE_MAX_IMAGES": "many"})
    with pytest.raises(InvalidArgumentError):
        Settings(max_images=0)
    assert Settings(inference_threads=2, model_threads=3).threads_per_model == 3
    assert Settings(inference_threads=64).threads_per_model == 1


def test_every_library_error_code_has_a_4xx_or_503():
    from vultus.service.errors import DEFAULT_STATUS, HTTP_STATUS, status_of

    assert DEFAULT_STATUS == 400
    assert all(400 <= s < 600 and s != 500 for s in HTTP_STATUS.values())
    from vultus.errors import ImageError, NoFaceError
    from vultus.gallery.errors import ConflictError, NotFoundError

    assert status_of(NotFoundError("x")) == 404
    assert status_of(ConflictError("x")) == 409
    assert status_of(NoFaceError("x")) == 422
    assert status_of(ImageError("x", code="image_too_large")) == 413
    assert status_of(ImageError("x", code="some_future_code")) == 400


def test_upload_names_are_reduced_to_safe_base_names():
    from vultus.service.uploads import safe_name

    assert safe_name("../../etc/passwd", 0) == "passwd"
    assert safe_name("C:\\photos\\a b.jpg", 0) == "a b.jpg"
    assert safe_name("\x1b[2Jevil\n.jpg", 3) == "_2Jevil_.jpg"
    assert safe_name("", 3) == "image-3" and safe_name("..", 1) == "image-1"


def test_key_format():
    from vultus.service.keys import parse_key

    assert parse_key("vk_0123456789_" + "a" * 43) == ("0123456789", "a" * 43)
    for bad in ("", "vk_", "vk_xyz_" + "a" * 43, "vk_0123456789_short", "sk_0123456789_" + "a" * 43):
        assert parse_key(bad) is None


def test_delete_collection_and_face_crop(tmp_path, fr_images):
    from vultus.gallery import Gallery
    from vultus.gallery.errors import ConflictError, NotFoundError

    photo = fr_images / "examples" / "knn_examples" / "train" / "obama" / "obama.jpg"
    with Gallery(tmp_path / "g.db") as g:
        g.create_collection("c", keep_crops=True)
        report = g.enroll_image(photo, "obama", "c")
        face_id = report.outcomes[0].face_id
        crop = g.face_crop(face_id, "c")
        assert crop[:2] == b"\xff\xd8"
        with pytest.raises(NotFoundError):
            g.face_crop(face_id + 1000, "c")
        with pytest.raises(ConflictError):  # the store refuses to drop a collection that still has people
            g.store.delete_collection(g.collection("c").id)
        assert list((tmp_path / "g.db.index").glob("c1-*"))  # the collection's index file
        reports = g.delete_collection("c")
        assert [r.person for r in reports] == ["obama"] and reports[0].verified
        with pytest.raises(NotFoundError):
            g.collection("c")
        assert [a.action for a in g.audit_log("c", 3)][:2] == ["delete_collection", "forget"]
        assert not list((tmp_path / "g.db.index").glob("c1-*"))


def test_wrong_secrets_stop_costing_scrypt(tmp_path, monkeypatch):
    import vultus.service.keys as keys
    from vultus.service.errors import ServiceError

    store = keys.KeyStore(tmp_path / "k.keys")
    token, info = store.create("identify")
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    calls = []
    real = keys._hash
    monkeypatch.setattr(keys, "_hash", lambda *a: calls.append(1) or real(*a))
    for _ in range(keys.FAILURES_ALLOWED + 5):
        with pytest.raises(ServiceError):
            store.verify(wrong)
    assert len(calls) == keys.FAILURES_ALLOWED  # the rest were refused without hashing
    # the right key still works (and once verified, keeps working during a flood)
    monkeypatch.setattr(keys, "FAILURE_WINDOW_S", 0.0)
    assert store.verify(token).id == info.id
    monkeypatch.setattr(keys, "FAILURE_WINDOW_S", 60.0)
    for _ in range(keys.FAILURES_ALLOWED + 1):
        with pytest.raises(ServiceError):
            store.verify(wrong)
    assert store.verify(token).id == info.id


def test_a_gallery_that_cannot_open_leaves_the_service_up_and_not_ready(tmp_path):
    from service_harness import client, make_app

    (tmp_path / "gallery.db").write_bytes(b"this is not a SQLite database, it is a text file" * 100)
    app, _ = make_app(tmp_path)
    with client(app) as c:
        assert c.get("/v1/health").status_code == 200
        r = c.get("/v1/ready")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert "gallery" in r.json()["error"]["message"] or "database" in r.json()["error"]["message"]
        assert r.headers["retry-after"]
        r = c.get("/v1/collections", headers={"X-API-Key": "vk_0123456789_" + "a" * 43})
        assert r.status_code in (401, 503)

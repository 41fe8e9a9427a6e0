"""The REST API on real photos: enroll the knn_examples people, identify, verify, manage, forget;
on a SQLite gallery file and on a PostgreSQL gallery (tests/pg_server.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from conftest import BACKENDS  # noqa: E402
from service_harness import client, enroll_knn, knn_dir, make_app, new_key, upload  # noqa: E402


@pytest.fixture(scope="module", params=BACKENDS)
def svc(request, tmp_path_factory):
    if knn_dir() is None:
        pytest.skip("face_recognition's knn_examples not in the shared data")
    tmp = tmp_path_factory.mktemp("svc")
    gallery = None
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        gallery = server.new_database()
        request.addfinalizer(lambda: server.drop_database(gallery))
    app, settings = make_app(tmp, gallery)
    token, admin = new_key(settings, "admin", name="test admin")
    with client(app) as c:
        r = c.post("/v1/collections", headers=admin, json={"name": "default"})
        assert r.status_code == 201, r.text
        enrolled = enroll_knn(c, admin)
        yield c, admin, token, enrolled, settings


def test_health_and_ready(svc):
    c, *_ = svc
    assert c.get("/v1/health").json() == {"status": "ok"}
    r = c.get("/v1/ready")
    assert r.status_code == 200 and r.json()["ready"] is True


def test_enroll_reports_each_image(svc):
    c, admin, _, enrolled, _ = svc
    assert sorted(enrolled) == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    for person, answer in enrolled.items():
        assert answer["person"]["name"] == person
        assert answer["enrolled"] == len(answer["images"]) >= 1
        assert all(i["status"] == "enrolled" and i["face_id"] for i in answer["images"])
        assert all(not i["image"].startswith("/") for i in answer["images"])  # upload names, not server paths
    # the same bytes again: a duplicate, nothing stored twice
    obama = enrolled["obama"]["person"]["id"]
    photo = sorted((knn_dir() / "train" / "obama").iterdir())[0]
    r = c.post(f"/v1/collections/default/people/{obama}/faces", headers=admin, files=[upload(photo)])
    assert r.status_code == 200
    assert r.json()["images"][0]["status"] == "duplicate" and r.json()["enrolled"] == 0


def test_identify_obama_and_biden(svc):
    c, admin, *_ = svc
    r = c.post("/v1/collections/default/identify", headers=admin,
               files=[upload(knn_dir() / "test" / "obama_and_biden.jpg")])
    assert r.status_code == 200, r.text
    image = r.json()["images"][0]
    assert image["image"] == "obama_and_biden.jpg"
    labels = sorted(f["person"] for f in image["faces"])
    assert labels == ["biden", "obama", "unknown"]
    d = image["decision"]
    assert 0 < d["threshold"] < 1 and (d["target"], d["target_rate"]) == ("fpir", 0.01)  # a new collection's default
    assert d["expected_false_positive_identification_rate"] == pytest.approx(0.01, abs=1e-6)
    for f in image["faces"]:
        assert len(f["box"]) == 4 and f["matches"]
        if f["person"] != "unknown":
            assert f["similarity"] >= d["threshold"] and f["person_id"] == f["matches"][0]["person_id"]
        else:
            assert f["similarity"] < d["threshold"] and f["person_id"] is None


def test_identify_several_images_and_top_k(svc):
    c, admin, *_ = svc
    test = knn_dir() / "test"
    r = c.post("/v1/collections/default/identify?top_k=2", headers=admin,
               files=[upload(test / "obama1.jpg"), upload(test / "kit_with_rose.jpg")])
    assert r.status_code == 200, r.text
    first, second = r.json()["images"]
    assert [f["person"] for f in first["faces"]] == ["obama"]
    assert sorted(f["person"] for f in second["faces"]) == ["kit_harington", "rose_leslie"]
    assert all(len(f["matches"]) == 2 for f in second["faces"])


def test_verify_same_and_different(svc):
    c, admin, *_ = svc
    d = knn_dir()
    same = c.post("/v1/verify", headers=admin, files=[upload(d / "test" / "obama1.jpg", "image_a"),
                                                      upload(d / "train" / "obama" / "obama.jpg", "image_b")])
    assert same.status_code == 200, same.text
    assert same.json()["same"] is True and same.json()["similarity"] >= same.json()["threshold"]
    diff = c.post("/v1/verify?fmr=0.0001", headers=admin,
                  files=[upload(d / "test" / "obama1.jpg", "image_a"),
                         upload(d / "train" / "biden" / "biden.jpg", "image_b")])
    assert diff.status_code == 200
    assert diff.json()["same"] is False and diff.json()["false_match_rate"] == 0.0001
    assert len(diff.json()["faces"]) == 2


def test_verify_against_person(svc):
    c, admin, _, enrolled, _ = svc
    d = knn_dir()
    obama = enrolled["obama"]["person"]["id"]
    biden = enrolled["biden"]["person"]["id"]
    r = c.post("/v1/verify", headers=admin, data={"collection": "default", "person_id": str(obama)},
               files=[upload(d / "test" / "obama1.jpg", "image_a")])
    assert r.status_code == 200, r.text
    assert r.json()["same"] is True and r.json()["person"]["name"] == "obama"
    r = c.post("/v1/verify", headers=admin, data={"collection": "default", "person_id": str(biden)},
               files=[upload(d / "test" / "obama1.jpg", "image_a")])
    assert r.json()["same"] is False


def test_verify_group_photo_needs_largest(svc):
    c, admin, *_ = svc
    d = knn_dir()
    files = [upload(d / "test" / "obama_and_biden.jpg", "image_a"), upload(d / "test" / "obama1.jpg", "image_b")]
    r = c.post("/v1/verify", headers=admin, files=files)
    assert r.status_code == 422 and r.json()["error"]["code"] == "many_faces"
    assert r.json()["error"]["details"]["file"] == "obama_and_biden.jpg"
    r = c.post("/v1/verify?largest=true", headers=admin, files=files)
    assert r.status_code == 200


def test_detect_and_analyze(svc):
    c, admin, *_ = svc
    photo = knn_dir() / "test" / "obama_and_biden.jpg"
    r = c.post("/v1/detect", headers=admin, files=[upload(photo)])
    assert r.status_code == 200
    faces = r.json()["images"][0]["faces"]
    assert len(faces) == 3 and all(len(f["landmarks"]) == 5 for f in faces)
    r = c.post("/v1/analyze?actions=age&actions=pose", headers=admin, files=[upload(photo)])
    assert r.status_code == 200, r.text
    for f in r.json()["images"][0]["faces"]:
        assert f["age"]["years"] > 0 and f["pose"] is not None and f["gender"] is None


def test_people_pagination_and_search(svc):
    c, admin, *_ = svc
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = c.get("/v1/collections/default/people", headers=admin, params=params)
        assert r.status_code == 200
        page = r.json()
        assert page["total"] >= 5 and len(page["people"]) <= 2
        seen += [p["name"] for p in page["people"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 5
    r = c.get("/v1/collections/default/people", headers=admin, params={"q": "LESLIE"})
    assert [p["name"] for p in r.json()["people"]] == ["rose_leslie"] and r.json()["total"] == 1


def test_person_faces_and_crop(svc):
    c, admin, _, enrolled, _ = svc
    pid = enrolled["biden"]["person"]["id"]
    r = c.get(f"/v1/collections/default/people/{pid}", headers=admin)
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "biden" and body["faces"] == len(body["face_list"]) == 2
    assert {f["source"] for f in body["face_list"]} == {"biden.jpg", "biden2.jpg"}
    face = body["face_list"][0]
    r = c.get(f"/v1/collections/default/faces/{face['id']}/crop", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert r.headers["cache-control"] == "no-store"
    assert c.get("/v1/collections/default/people", headers=admin).headers["cache-control"] == "no-store"
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(r.content)).size == (256, 256)


def test_collection_info_and_target_rate(svc):
    c, admin, *_ = svc
    r = c.get("/v1/collections/default", headers=admin)
    assert r.status_code == 200
    info = r.json()
    assert info["embedder"]["name"] == "sface" and info["people"] >= 5 and info["decision"]["threshold"] > 0
    r = c.put("/v1/collections/default/target-fmr", headers=admin, json={"target_fmr": 1e-4})
    assert r.status_code == 200 and r.json()["decision"]["false_match_rate"] == 1e-4
    assert r.json()["decision"]["threshold"] > info["decision"]["threshold"]
    c.put("/v1/collections/default/target-fmr", headers=admin, json={"target_fmr": 1e-3})
    listed = c.get("/v1/collections", headers=admin).json()["collections"]
    assert [x["name"] for x in listed] == ["default"]


def test_target_fpir(svc):
    c, admin, *_ = svc
    r = c.put("/v1/collections/default/target-fpir", headers=admin, json={"target_fpir": 1e-3})
    assert r.status_code == 200, r.text
    body = r.json()
    d = body["decision"]
    assert body["target_fpir"] == 1e-3 and (d["target"], d["target_rate"]) == ("fpir", 1e-3)
    assert d["comparisons"] == body["faces"] >= 9  # best-face aggregation: one chance per enrolled face
    assert d["expected_false_positive_identification_rate"] == pytest.approx(1e-3, abs=1e-6)
    assert d["false_match_rate"] == pytest.approx(1 - (1 - 1e-3) ** (1 / d["comparisons"]))
    looser = c.put("/v1/collections/default/target-fpir", headers=admin, json={"target_fpir": 0.05}).json()
    assert looser["decision"]["threshold"] < d["threshold"]
    r = c.put("/v1/collections/default/target-fpir", headers=admin, json={"target_fpir": 1.5})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = c.post("/v1/collections", headers=admin, json={"name": "both", "target_fmr": 1e-3, "target_fpir": 1e-2})
    assert r.status_code == 422 and r.json()["error"]["code"] == "conflicting_targets"
    r = c.post("/v1/collections", headers=admin, json={"name": "by-fmr", "target_fmr": 1e-4})
    assert r.status_code == 201 and r.json()["target_fpir"] is None and r.json()["decision"]["target"] == "fmr"
    c.delete("/v1/collections/by-fmr", headers=admin)
    c.put("/v1/collections/default/target-fpir", headers=admin, json={"target_fpir": 1e-2})


def test_rename_merge_move_delete(svc):
    c, admin, *_ = svc
    d = knn_dir()
    # a scratch person built from two of Kit Harington's photos under another name
    kit = sorted((d / "train" / "kit_harington").iterdir())
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "scratch"},
               files=[upload(d / "test" / "johnsnow_test1.jpg")])
    assert r.status_code == 201, r.text
    scratch = r.json()["person"]["id"]
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "scratch"},
               files=[upload(kit[0])])
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = c.patch(f"/v1/collections/default/people/{scratch}", headers=admin, json={"name": "obama"})
    assert r.status_code == 409
    r = c.patch(f"/v1/collections/default/people/{scratch}", headers=admin, json={"name": "jon snow"})
    assert r.status_code == 200 and r.json()["name"] == "jon snow"
    # move its face to Kit, then back; delete it
    face_id = c.get(f"/v1/collections/default/faces?person_id={scratch}", headers=admin).json()["faces"][0]["id"]
    kit_id = next(p["id"] for p in c.get("/v1/collections/default/people?q=kit", headers=admin).json()["people"])
    r = c.post(f"/v1/collections/default/faces/{face_id}/move", headers=admin, json={"person_id": kit_id})
    assert r.status_code == 200 and r.json()["faces"][0]["person"] == "kit_harington"
    r = c.post(f"/v1/collections/default/faces/{face_id}/move", headers=admin, json={"person_id": scratch})
    assert r.status_code == 200
    # merge scratch into Kit: its face moves, scratch is gone
    r = c.post(f"/v1/collections/default/people/{scratch}/merge", headers=admin, json={"into": kit_id})
    assert r.status_code == 200 and r.json()["faces_moved"] == 1 and r.json()["person"]["name"] == "kit_harington"
    assert c.get(f"/v1/collections/default/people/{scratch}", headers=admin).status_code == 404
    r = c.delete(f"/v1/collections/default/faces/{face_id}", headers=admin)
    assert r.status_code == 204
    assert c.delete(f"/v1/collections/default/faces/{face_id}", headers=admin).status_code == 404


def test_forget_with_proof_then_gone(svc):
    c, admin, _, enrolled, _ = svc
    biden = enrolled["biden"]["person"]["id"]
    r = c.delete(f"/v1/collections/default/people/{biden}", headers=admin)
    assert r.status_code == 200, r.text
    proof = r.json()
    assert proof["person"] == "biden" and proof["person_id"] == biden
    assert proof["faces_removed"] == 2 and proof["embeddings_removed"] == 2 and proof["crops_removed"] == 2
    assert proof["verified"] is True and proof["proof"]["verified"] is True
    assert proof["proof"]["person_still_returned"] is False and proof["proof"]["rows_remaining"] == 0
    assert proof["proof"]["checked_faces"] == 2 and proof["proof"]["lookalikes"] == []
    assert c.get(f"/v1/collections/default/people/{biden}", headers=admin).status_code == 404
    names = [p["name"] for p in c.get("/v1/collections/default/people", headers=admin).json()["people"]]
    assert "biden" not in names
    r = c.post("/v1/collections/default/identify", headers=admin,
               files=[upload(knn_dir() / "test" / "obama_and_biden.jpg")])
    labels = sorted(f["person"] for f in r.json()["images"][0]["faces"])
    assert labels == ["obama", "unknown", "unknown"]
    assert all(m["person"] != "biden" for f in r.json()["images"][0]["faces"] for m in f["matches"])


def test_audit_names_the_key_never_the_secret(svc):
    c, admin, token, *_ = svc
    records = c.get("/v1/audit?limit=1000", headers=admin).json()["records"]
    actions = {r["action"] for r in records}
    assert {"create", "enroll", "rename", "merge", "move", "delete_face", "forget"} <= actions
    key_id = token.split("_")[1]
    service_records = [r for r in records if r["action"] != "create" or r["actor"].startswith("key:")]
    assert all(r["actor"] == f"key:{key_id} (test admin)" for r in service_records)
    secret = token.split("_", 2)[2]
    assert secret not in str(records)


def test_models_and_key_in_use(svc):
    c, admin, *_ = svc
    r = c.get("/v1/models", headers=admin)
    assert r.status_code == 200
    by_name = {m["name"]: m for m in r.json()["models"]}
    assert by_name["sface"]["verified"] is True and by_name["sface"]["license"]
    me = c.get("/v1/keys/me", headers=admin).json()
    assert me["role"] == "admin" and me["collections"] is None and me["name"] == "test admin"


def test_docs_and_schema_are_served_offline(svc):
    c, *_ = svc
    html = c.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    schema = c.get("/openapi.json").json()
    assert "/v1/collections/{collection}/identify" in schema["paths"]
    assert {"bearer", "apiKey"} <= set(schema["components"]["securitySchemes"])


def test_delete_collection_forgets_everyone(svc):
    c, admin, *_ = svc
    assert c.post("/v1/collections", headers=admin, json={"name": "temp"}).status_code == 201
    assert c.post("/v1/collections", headers=admin, json={"name": "temp"}).status_code == 409
    r = c.post("/v1/collections/temp/people", headers=admin, data={"name": "rose"},
               files=[upload(sorted((knn_dir() / "train" / "rose_leslie").iterdir())[0])])
    assert r.status_code == 201
    r = c.delete("/v1/collections/temp", headers=admin)
    assert r.status_code == 200, r.text
    assert [p["person"] for p in r.json()["people_forgotten"]] == ["rose"]
    assert all(p["verified"] for p in r.json()["people_forgotten"])
    assert c.get("/v1/collections/temp", headers=admin).status_code == 404


def test_enroll_subject_choice(svc):
    """`subject` picks the face of a photo with several: center_largest by default, `only` refuses."""
    from conftest import need_data

    c, admin, *_ = svc
    photo = need_data("lfw", "images", "Alex_Penelas", "Alex_Penelas_0001.jpg")  # a second, smaller face
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "alex penelas"},
               files=[upload(photo)], params={"subject": "only"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "nothing_enrolled"
    assert "faces of similar size" in r.json()["error"]["details"]["images"][0]["reason"]
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "alex penelas"},
               files=[upload(photo)], params={"subject": "first"})
    assert r.status_code == 422
    r = c.post("/v1/collections/default/people", headers=admin, data={"name": "alex penelas"},
               files=[upload(photo)])
    assert r.status_code == 201, r.text
    face = r.json()["images"][0]["face"]
    assert face["faces_found"] == 2 and face["index"] in (0, 1) and len(face["box"]) == 4 and face["why"]

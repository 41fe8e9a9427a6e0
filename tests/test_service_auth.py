"""API keys and roles: 401 without a key, 404 (not 403) outside a key's collections,
roles enforced, revocation immediate, only hashes stored."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from service_harness import client, knn_dir, make_app, new_key, upload  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    if knn_dir() is None:
        pytest.skip("face_recognition's knn_examples not in the shared data")
    tmp = tmp_path_factory.mktemp("auth")
    app, settings = make_app(tmp)
    _, admin = new_key(settings, "admin")
    with client(app) as c:
        for name in ("site-a", "site-b"):
            assert c.post("/v1/collections", headers=admin, json={"name": name}).status_code == 201
        obama = sorted((knn_dir() / "train" / "obama").iterdir())[0]
        for name in ("site-a", "site-b"):
            r = c.post(f"/v1/collections/{name}/people", headers=admin, data={"name": "obama"}, files=[upload(obama)])
            assert r.status_code == 201, r.text
        yield c, settings, admin


def photo():
    return upload(knn_dir() / "test" / "obama1.jpg")


def test_no_key_is_401_with_json(svc):
    c, *_ = svc
    for method, path in (("get", "/v1/collections"), ("get", "/v1/models"), ("get", "/v1/collections/site-a/people"),
                         ("get", "/v1/audit"), ("get", "/v1/keys")):
        r = getattr(c, method)(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = c.post("/v1/collections/site-a/identify", files=[photo()])
    assert r.status_code == 401
    assert c.get("/v1/health").status_code == 200  # health and readiness need no key


def test_bad_keys_are_401(svc):
    c, settings, _ = svc
    token, _ = new_key(settings, "identify")
    kid = token.split("_")[1]
    for bad in ("nonsense", "vk_", f"vk_{kid}_" + "x" * 43, token[:-1] + ("A" if token[-1] != "A" else "B"),
                "vk_0000000000_" + "y" * 43):
        r = c.get("/v1/collections", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    r = c.get("/v1/collections", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 401


def test_x_api_key_header_works(svc):
    c, settings, _ = svc
    token, _ = new_key(settings, "identify")
    r = c.get("/v1/collections", headers={"X-API-Key": token})
    assert r.status_code == 200


def test_scoped_key_gets_404_on_other_collections(svc):
    c, settings, admin = svc
    _, key_a = new_key(settings, "manage", ["site-a"])
    assert [x["name"] for x in c.get("/v1/collections", headers=key_a).json()["collections"]] == ["site-a"]
    assert c.get("/v1/collections/site-a/people", headers=key_a).status_code == 200
    assert c.post("/v1/collections/site-a/identify", headers=key_a, files=[photo()]).status_code == 200
    pid_b = c.get("/v1/collections/site-b/people", headers=admin).json()["people"][0]["id"]
    attempts = [
        c.get("/v1/collections/site-b", headers=key_a),
        c.get("/v1/collections/site-b/people", headers=key_a),
        c.get(f"/v1/collections/site-b/people/{pid_b}", headers=key_a),
        c.post("/v1/collections/site-b/identify", headers=key_a, files=[photo()]),
        c.post("/v1/collections/site-b/people", headers=key_a, data={"name": "x"}, files=[photo()]),
        c.delete(f"/v1/collections/site-b/people/{pid_b}", headers=key_a),
        c.get("/v1/collections/site-b/faces", headers=key_a),
        c.post("/v1/verify", headers=key_a, data={"collection": "site-b", "person_id": str(pid_b)},
               files=[upload(knn_dir() / "test" / "obama1.jpg", "image_a")]),
    ]
    missing = c.get("/v1/collections/no-such-site", headers=key_a)
    for r in attempts:
        assert r.status_code == 404, r.text
        # word for word what a collection that does not exist gets: nothing leaks
        assert r.json()["error"]["message"] == missing.json()["error"]["message"].replace("no-such-site", "site-b")
    assert "site-a" not in missing.text and "gallery.db" not in missing.text
    # and site-b's person is untouched
    assert c.get(f"/v1/collections/site-b/people/{pid_b}", headers=admin).status_code == 200


def test_identify_key_cannot_change_anything(svc):
    c, settings, admin = svc
    _, ident = new_key(settings, "identify")
    pid = c.get("/v1/collections/site-a/people", headers=admin).json()["people"][0]["id"]
    assert c.post("/v1/collections/site-a/identify", headers=ident, files=[photo()]).status_code == 200
    assert c.post("/v1/detect", headers=ident, files=[photo()]).status_code == 200
    forbidden = [
        c.post("/v1/collections/site-a/people", headers=ident, data={"name": "x"}, files=[photo()]),
        c.post(f"/v1/collections/site-a/people/{pid}/faces", headers=ident, files=[photo()]),
        c.delete(f"/v1/collections/site-a/people/{pid}", headers=ident),
        c.patch(f"/v1/collections/site-a/people/{pid}", headers=ident, json={"name": "y"}),
        c.post("/v1/collections", headers=ident, json={"name": "new"}),
        c.get("/v1/audit", headers=ident),
        c.post("/v1/keys", headers=ident, json={"role": "admin"}),
    ]
    for r in forbidden:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    assert c.get(f"/v1/collections/site-a/people/{pid}", headers=admin).json()["name"] == "obama"


def test_manage_key_may_enroll_but_not_manage_collections_or_keys(svc):
    c, settings, _ = svc
    _, manage = new_key(settings, "manage")
    assert c.post("/v1/collections", headers=manage, json={"name": "other"}).status_code == 403
    assert c.put("/v1/collections/site-a/target-fmr", headers=manage, json={"target_fmr": 1e-4}).status_code == 403
    assert c.get("/v1/keys", headers=manage).status_code == 403
    _, scoped_admin = new_key(settings, "admin", ["site-a"])
    assert c.get("/v1/keys", headers=scoped_admin).status_code == 403  # could mint itself a wider key
    assert c.post("/v1/collections", headers=scoped_admin, json={"name": "site-c"}).status_code == 403


def test_revoked_key_stops_at_once(svc):
    c, settings, admin = svc
    r = c.post("/v1/keys", headers=admin, json={"role": "identify", "name": "door"})
    assert r.status_code == 201
    token, kid = r.json()["key"], r.json()["info"]["id"]
    h = {"Authorization": f"Bearer {token}"}
    assert c.get("/v1/collections", headers=h).status_code == 200  # verified (and remembered) once
    r = c.delete(f"/v1/keys/{kid}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = c.get("/v1/collections", headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert c.delete("/v1/keys/ffffffffff", headers=admin).status_code == 404
    listed = {k["id"]: k for k in c.get("/v1/keys", headers=admin).json()["keys"]}
    assert listed[kid]["revoked_at"] and "key" not in listed[kid]


def test_revoked_from_the_shell_stops_a_running_service(svc):
    c, settings, _ = svc
    token, h = new_key(settings, "identify", name="shell")
    assert c.get("/v1/collections", headers=h).status_code == 200
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    kid = token.split("_")[1]
    out = subprocess.run([sys.executable, "-m", "vultus", "keys", "revoke", kid, "--gallery", settings.gallery],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert c.get("/v1/collections", headers=h).status_code == 401


def test_store_keeps_only_hashes(svc):
    c, settings, admin = svc
    token, _ = new_key(settings, "admin", name="secretive")
    secret = token.split("_", 2)[2]
    path = Path(settings.keys_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for f in [path, *path.parent.glob(path.name + "-*"), *path.parent.glob("gallery.db*")]:
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
            assert token.encode() not in f.read_bytes(), f


def test_key_changes_are_audited(svc):
    c, _, admin = svc
    r = c.post("/v1/keys", headers=admin, json={"role": "manage", "collections": ["site-a"], "name": "ops"})
    kid = r.json()["info"]["id"]
    records = c.get("/v1/audit?limit=1000", headers=admin).json()["records"]
    made = [x for x in records if x["action"] == "key_create" and x["detail"]["key_id"] == kid]
    assert made and made[0]["detail"]["role"] == "manage" and made[0]["actor"].startswith("key:")
    assert r.json()["key"] not in str(records)


def test_no_auth_only_on_loopback(tmp_path, capsys, monkeypatch):
    from vultus.errors import InvalidArgumentError
    from vultus.service.settings import Settings

    with pytest.raises(InvalidArgumentError) as err:
        Settings(gallery=str(tmp_path / "g.db"), host="0.0.0.0", auth=False)
    assert err.value.code == "auth_required"
    import uvicorn

    from vultus.cli import main

    def started(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    assert main(["serve", "--no-auth", "--host", "0.0.0.0", "--gallery", str(tmp_path / "g.db")]) == 2
    assert "loopback" in capsys.readouterr().err
    app, _ = make_app(tmp_path, auth=False, preload=False)
    with client(app) as c:
        assert c.get("/v1/collections").status_code == 200
        assert c.get("/v1/keys/me").json()["role"] == "admin"


def test_keys_cli_create_list_revoke(tmp_path, capsys):
    from vultus.cli import main

    g = str(tmp_path / "g.db")
    assert main(["keys", "create", "--role", "manage", "--collection", "a", "--collection", "b", "--name", "ops",
                 "--gallery", g]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("vk_")
    assert main(["keys", "list", "--gallery", g]) == 0
    listed = capsys.readouterr().out
    assert "ops" in listed and "a, b" in listed and token not in listed
    kid = token.split("_")[1]
    assert main(["keys", "revoke", kid, "--gallery", g]) == 0
    assert main(["keys", "revoke", "0123456789", "--gallery", g]) == 2
    assert "no key" in capsys.readouterr().err
    from vultus.service.keys import KeyStore

    assert KeyStore(Path(g + ".keys")).get(kid).revoked_at is not None

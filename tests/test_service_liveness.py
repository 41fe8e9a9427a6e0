"""Liveness through the REST API, on real images: the antispoof samples (live, printed photo, phone screen),
liveness=true on verify and identify, a collection's liveness requirement, and the active challenge answered
with frames built from one person's real photos (as tests/test_liveness.py builds them)."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest

# Whole-module end-to-end runs (real models on real data, child processes): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from conftest import need_data  # noqa: E402
from service_harness import client, make_app, new_key, upload  # noqa: E402

SAMPLES = ("antispoof_samples", "images", "sample")


def sample(name: str):
    return need_data(*SAMPLES, name)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc-liveness")
    app, settings = make_app(tmp)
    _, admin = new_key(settings, "admin", name="test admin")
    _, ident = new_key(settings, "identify", name="door")
    with client(app) as c:
        r = c.post("/v1/collections", headers=admin, json={"name": "door"})
        assert r.status_code == 201, r.text
        r = c.post("/v1/collections/door/people", headers=admin, data={"name": "sample person"},
                   files=[upload(sample("image_T1.jpg"))])
        assert r.status_code == 201 and r.json()["enrolled"] == 1, r.text
        yield c, admin, ident, settings, app


# -- passive: POST /v1/liveness ---------------------------------------------------------------------
def test_live_sample_passes_and_print_and_screen_are_refused(svc):
    c, _, ident, *_ = svc
    files = [upload(sample(n)) for n in ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg")]
    r = c.post("/v1/liveness", headers=ident, files=files)
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert [i["image"] for i in images] == ["image_T1.jpg", "image_F1.jpg", "image_F2.jpg"]
    assert all(len(i["faces"]) == 1 for i in images)
    live, printed, screen = (i["faces"][0] for i in images)
    assert live["live"] is True and live["decision"] == "live" and live["reason"] == ""
    for spoof in (printed, screen):
        assert spoof["live"] is False and spoof["decision"] == "spoof"
        assert spoof["score"] < spoof["threshold"] and "presentation attack" in spoof["reason"]
    # the decision says at what operating point and what error rates were measured there
    assert live["operating_point"] == "door" and 0 < live["threshold"] < 1
    assert 0 <= live["apcer"] <= 1 and 0 <= live["bpcer"] <= 1 and live["model"]
    # a full camera frame: the networks saw the surroundings they expect, so no warning
    assert live["zoom"] >= 1.5 and live["warning"] == ""


def test_operating_point_is_chosen_per_request(svc):
    c, _, ident, *_ = svc
    door = c.post("/v1/liveness", headers=ident, files=[upload(sample("image_T1.jpg"))]).json()
    checkin = c.post("/v1/liveness?point=check-in", headers=ident, files=[upload(sample("image_T1.jpg"))]).json()
    d, k = door["images"][0]["faces"][0], checkin["images"][0]["faces"][0]
    assert k["operating_point"] == "check-in" and k["threshold"] < d["threshold"]
    assert k["score"] == d["score"]
    bad = c.post("/v1/liveness?point=bank", headers=ident, files=[upload(sample("image_T1.jpg"))])
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_liveness_needs_a_key_and_an_identify_key_is_enough(svc):
    c, *_ = svc
    assert c.post("/v1/liveness", files=[upload(sample("image_T1.jpg"))]).status_code == 401
    assert c.post("/v1/liveness/challenge").status_code == 401


def test_liveness_refuses_what_is_not_an_image(svc):
    c, _, ident, *_ = svc
    r = c.post("/v1/liveness", headers=ident, files=[("images", ("x.jpg", b"not an image at all", "image/jpeg"))])
    assert r.status_code in (415, 422) and r.json()["error"]["code"] in ("not_an_image", "corrupt_image")


# -- liveness=true on verify and identify --------------------------------------------------------------
def test_verify_with_liveness_says_which_face_is_not_live(svc):
    c, _, ident, *_ = svc
    files = [upload(sample("image_T1.jpg"), "image_a"), upload(sample("image_F2.jpg"), "image_b")]
    plain = c.post("/v1/verify?largest=true", headers=ident, files=files)
    assert plain.status_code == 200, plain.text
    assert plain.json()["liveness"] is None
    r = c.post("/v1/verify?largest=true&liveness=true", headers=ident, files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["same"] is False and body["similarity"] == plain.json()["similarity"]
    lv = body["liveness"]
    assert lv["live"] is False
    assert [f["field"] for f in lv["faces"]] == ["image_a", "image_b"]
    assert lv["faces"][0]["live"] is True and lv["faces"][1]["live"] is False
    assert lv["refused"].startswith("image_b (image_F2.jpg): liveness score")


def test_verify_a_live_face_against_a_person_with_liveness(svc):
    c, admin, ident, *_ = svc
    pid = c.get("/v1/collections/door/people", headers=admin).json()["people"][0]["id"]
    r = c.post("/v1/verify?liveness=true", headers=ident, files=[upload(sample("image_T1.jpg"), "image_a")],
               data={"collection": "door", "person_id": str(pid)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["same"] is True and body["liveness"]["live"] is True and body["liveness"]["refused"] == ""
    assert len(body["liveness"]["faces"]) == 1


def test_point_without_liveness_is_refused(svc):
    c, _, ident, *_ = svc
    files = [upload(sample("image_T1.jpg"), "image_a"), upload(sample("image_T1.jpg"), "image_b")]
    r = c.post("/v1/verify?point=door", headers=ident, files=files)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "point"


def test_identify_with_liveness_refuses_the_spoof_face(svc):
    c, _, ident, *_ = svc
    files = [upload(sample("image_T1.jpg")), upload(sample("image_F2.jpg"))]
    plain = c.post("/v1/collections/door/identify", headers=ident, files=files)
    assert plain.status_code == 200, plain.text
    assert all("liveness" not in f or f["liveness"] is None for i in plain.json()["images"] for f in i["faces"])
    r = c.post("/v1/collections/door/identify?liveness=true", headers=ident, files=files)
    assert r.status_code == 200, r.text
    live_img, spoof_img = r.json()["images"]
    (live,) = live_img["faces"]
    assert live["person"] == "sample person" and live["liveness"]["live"] is True and not live.get("refused")
    (spoof,) = spoof_img["faces"]
    assert spoof["person"] == "refused" and spoof["person_id"] is None
    assert spoof["liveness"]["live"] is False and "presentation attack" in spoof["refused"]


def test_collection_liveness_requirement_is_read_and_set_by_admin_only(svc):
    c, admin, ident, *_ = svc
    assert c.get("/v1/collections/door", headers=admin).json()["liveness"] is None
    r = c.put("/v1/collections/door/liveness", headers=ident, json={"point": "door"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    bad = c.put("/v1/collections/door/liveness", headers=admin, json={"point": "bank"})
    assert bad.status_code == 422
    try:
        r = c.put("/v1/collections/door/liveness", headers=admin, json={"point": "door"})
        assert r.status_code == 200 and r.json()["liveness"] == "door"
        assert c.get("/v1/collections/door", headers=ident).json()["liveness"] == "door"
        # the collection now checks every face, without liveness=true
        r = c.post("/v1/collections/door/identify", headers=ident, files=[upload(sample("image_F1.jpg"))])
        (face,) = r.json()["images"][0]["faces"]
        assert face["person"] == "refused" and face["liveness"]["operating_point"] == "door"
        # a request cannot loosen the collection's requirement: of the two points the stricter decides
        r = c.post("/v1/collections/door/identify?liveness=true&point=check-in", headers=ident,
                   files=[upload(sample("image_F1.jpg")), upload(sample("image_T1.jpg"))])
        printed, live = (i["faces"][0] for i in r.json()["images"])
        assert printed["person"] == "refused" and printed["liveness"]["operating_point"] == "door"
        assert live["person"] == "sample person" and live["liveness"]["live"] is True
        # and a request stricter than the collection is checked at its own point
        c.put("/v1/collections/door/liveness", headers=admin, json={"point": "check-in"})
        r = c.post("/v1/collections/door/identify?liveness=true&point=door", headers=ident,
                   files=[upload(sample("image_T1.jpg"))])
        assert r.json()["images"][0]["faces"][0]["liveness"]["operating_point"] == "door"
        # the change is in the audit log, with the key that made it
        records = c.get("/v1/audit?collection=door", headers=admin).json()["records"]
        assert any(rec["detail"].get("liveness") == "door" and "test admin" in rec["actor"] for rec in records)
    finally:
        r = c.put("/v1/collections/door/liveness", headers=admin, json={"point": None})
        assert r.status_code == 200 and r.json()["liveness"] is None


def test_liveness_of_a_collection_out_of_scope_is_404(svc):
    c, admin, _, settings, _ = svc
    _, scoped = new_key(settings, "admin", ["elsewhere"], name="scoped admin")
    r = c.put("/v1/collections/door/liveness", headers=scoped, json={"point": "door"})
    assert r.status_code == 404


# -- the active challenge ------------------------------------------------------------------------------
def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def poses():
    """One person's real photos (LFW, Jean Chretien) per action, as tests/test_liveness.py picks them: at rest,
    eyes closed, turned to his left, his right turn (the left mirrored), looking up; and another person."""
    from vultus.imageio import load_image

    def lfw(name):
        return need_data("lfw", "images", name.rsplit("_", 1)[0], name)

    left = lfw("Jean_Chretien_0037.jpg")
    files = {"rest": lfw("Jean_Chretien_0034.jpg"), "blink": lfw("Jean_Chretien_0029.jpg"), "turn_left": left,
             "look_up": lfw("Jean_Chretien_0002.jpg"), "other": lfw("Tony_Blair_0134.jpg")}
    out = {k: (p.name, p.read_bytes(), "image/jpeg") for k, p in files.items()}
    out["turn_right"] = ("mirrored.png", _png(np.ascontiguousarray(load_image(left)[:, ::-1])), "image/png")
    return out


def _frames(photos, names):
    return [("frames", photos[n]) for n in names]


def _issue(c, headers, without=("smile",), tries=200) -> dict:
    """A challenge from the endpoint whose actions the test material can show (it has no smiling photo)."""
    for _ in range(tries):
        r = c.post("/v1/liveness/challenge", headers=headers)
        assert r.status_code == 200, r.text
        ch = r.json()
        if not set(ch["actions"]) & set(without):
            return ch
    raise AssertionError("no challenge without a smile in 200 tries")


def test_challenge_is_issued_with_actions_nonce_and_deadline(svc):
    c, _, ident, settings, _ = svc
    r = c.post("/v1/liveness/challenge", headers=ident)
    assert r.status_code == 200, r.text
    ch = r.json()
    assert 2 <= len(ch["actions"]) <= 4 and len(set(ch["actions"])) == len(ch["actions"])
    assert ch["deadline"] > ch["issued_at"] and len(ch["nonce"]) == 32 and "." in ch["token"]
    # the secret and the spent nonces are files beside the key store, the key private to the service's user
    key = settings.keys_path.with_name(settings.keys_path.name + ".challenge.key")
    assert key.is_file() and (key.stat().st_mode & 0o077) == 0 and len(key.read_bytes()) == 32


def test_challenge_answered_in_order_passes_and_a_replay_is_refused(svc):
    c, _, ident, settings, _ = svc
    ch = _issue(c, ident)
    frames = _frames(poses(), ["rest", *ch["actions"]])
    r = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch["token"], "fps": "2.5"},
               files=frames)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["passed"] is True, body["reason"]
    assert body["actions"] == ch["actions"] and body["seen_at_frame"] == list(range(1, len(ch["actions"]) + 1))
    assert len(body["frames"]) == len(frames) and body["frames"][1]["time_s"] == pytest.approx(0.4)
    again = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch["token"], "fps": "2.5"},
                   files=frames)
    assert again.status_code == 200 and again.json()["passed"] is False
    assert "replayed nonce" in again.json()["reason"]
    # another worker process of the same installation (a second app on the same key store) refuses it too
    app2, _ = make_app(settings.gallery_path.parent)
    with client(app2) as c2:
        third = c2.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch["token"], "fps": "2.5"},
                        files=frames)
    assert third.status_code == 200 and "replayed nonce" in third.json()["reason"]


def test_challenge_answered_in_the_wrong_order_fails(svc):
    c, _, ident, _, app = svc
    issuer = app.state.vultus.challenge_issuer()  # the service's own issuer, to fix the order under test
    ch = issuer.issue(["turn_left", "blink"])
    r = c.post("/v1/liveness/challenge/answer", headers=ident,
               data={"token": ch.token, "times": "0,0.4,0.8,1.2,1.6"},
               files=_frames(poses(), ["rest", "blink", "rest", "turn_left", "rest"]))
    assert r.status_code == 200, r.text
    assert r.json()["passed"] is False and "blink not seen in order after turn_left (frame 3)" in r.json()["reason"]


def test_challenge_with_a_swapped_face_fails(svc):
    c, _, ident, _, app = svc
    ch = app.state.vultus.challenge_issuer().issue(["blink", "turn_left"])
    r = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch.token, "fps": "2"},
               files=_frames(poses(), ["rest", "blink", "other", "turn_left"]))
    assert r.status_code == 200 and r.json()["passed"] is False
    assert "frame 2 shows another person" in r.json()["reason"]


def test_challenge_answer_refuses_bad_requests(svc, tmp_path):
    c, _, ident, *_ = svc
    ch = _issue(c, ident, without=())
    frames = _frames(poses(), ["rest", "blink"])
    both = c.post("/v1/liveness/challenge/answer", headers=ident,
                  data={"token": ch["token"], "fps": "2", "times": "0,1"}, files=frames)
    assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_request"
    count = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch["token"], "times": "0,1,2"},
                   files=frames)
    assert count.status_code == 422 and count.json()["error"]["details"]["field"] == "times"
    text = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": ch["token"], "times": "0,nan"},
                  files=frames)
    assert text.status_code == 422
    # a token another installation issued (another secret) is refused as forged
    other_app, _ = make_app(tmp_path)
    foreign = other_app.state.vultus.challenge_issuer().issue(["blink"]).token
    r = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": foreign, "fps": "2"}, files=frames)
    assert r.status_code == 422 and r.json()["error"]["code"] == "challenge_forged"
    junk = c.post("/v1/liveness/challenge/answer", headers=ident, data={"token": "abc.dé", "fps": "2"}, files=frames)
    assert junk.status_code == 422
    # the service keeps answering
    assert c.get("/v1/health").status_code == 200


# -- the library parts the service relies on ------------------------------------------------------------
def test_a_token_with_any_text_is_refused_as_forged_not_a_crash():
    from vultus.errors import VultusError
    from vultus.liveness.challenge import ChallengeIssuer

    for token in ("abc.dé", "é", "x." + "\u202e" * 3):
        with pytest.raises(VultusError) as exc:
            ChallengeIssuer().read(token)
        assert exc.value.code == "challenge_forged"


def _secret_of(folder, barrier, out):
    from vultus.liveness.challenge import install_issuer

    barrier.wait()
    out.put(install_issuer(folder=folder, prefix="svc")._secret)


def test_worker_processes_starting_together_share_one_secret(tmp_path):
    """uvicorn starts its workers at once: each must read the one complete key, never a half-written one."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for attempt in range(8):  # the old race lost about one start in three
        folder = tmp_path / str(attempt)
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_secret_of, args=(folder, barrier, out)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert all(p.exitcode == 0 for p in procs)
        secrets = {out.get(timeout=5) for _ in procs}
        assert len(secrets) == 1 and len(next(iter(secrets))) == 32
        assert (folder / "svc.key").read_bytes() == next(iter(secrets))


@pytest.mark.slow
def test_two_worker_processes_share_the_secret_and_the_spent_nonces(tmp_path):
    """`vultus serve --workers 2`: challenges issued by either worker are answered at either, and a replay is
    refused by whichever worker receives it (each request on a new connection, so both workers take some)."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    from test_service_live import Server
    from vultus.service.keys import KeyStore

    gallery = tmp_path / "g.db"
    token, _ = KeyStore(Path(str(gallery) + ".keys")).create("identify", name="live")
    h = {"Authorization": f"Bearer {token}"}
    server = Server(gallery, "--workers", "2")
    try:
        server.wait_ready()
        photos = poses()
        for _ in range(4):
            ch = httpx.post(server.url + "/v1/liveness/challenge", headers=h, timeout=30).json()
            names = ["rest", *(a if a != "smile" else "rest" for a in ch["actions"])]
            first = httpx.post(server.url + "/v1/liveness/challenge/answer", headers=h, timeout=60,
                               data={"token": ch["token"], "fps": "2"}, files=_frames(photos, names))
            assert first.status_code == 200, first.text  # signed by one worker, read by either: not forged
            assert "replayed" not in first.json()["reason"]
            assert first.json()["passed"] is ("smile" not in ch["actions"]), first.json()["reason"]
            for _ in range(3):
                again = httpx.post(server.url + "/v1/liveness/challenge/answer", headers=h, timeout=60,
                                   data={"token": ch["token"], "fps": "2"}, files=_frames(photos, names))
                assert again.status_code == 200 and "replayed nonce" in again.json()["reason"]
    finally:
        assert server.stop() == 0

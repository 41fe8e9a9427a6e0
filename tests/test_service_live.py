"""`vultus serve` as a real process: worker processes, revocation across them,
graceful shutdown with a request in flight, a consistent gallery afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from service_harness import knn_dir  # noqa: E402

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, gallery: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        self.proc = subprocess.Popen([sys.executable, "-m", "vultus", "serve", "--gallery", str(gallery),
                                      "--port", str(self.port), "--log-level", "warning", *extra],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vultus serve exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("vultus serve did not become ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def files_of(folder: Path):
    return [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(folder.iterdir())]


@pytest.fixture()
def keyed_gallery(tmp_path):
    if knn_dir() is None:
        pytest.skip("face_recognition's knn_examples not in the shared data")
    from vultus.service.keys import KeyStore

    gallery = tmp_path / "g.db"
    token, _ = KeyStore(Path(str(gallery) + ".keys")).create("admin", name="live")
    return gallery, {"Authorization": f"Bearer {token}"}, token


def test_two_workers_share_keys_and_gallery(keyed_gallery):
    gallery, h, token = keyed_gallery
    server = Server(gallery, "--workers", "2")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=120) as c:
            assert c.post("/v1/collections", headers=h, json={"name": "default"}).status_code == 201
            train = knn_dir() / "train"
            for person in ("obama", "biden"):
                r = c.post("/v1/collections/default/people", headers=h, data={"name": person},
                           files=files_of(train / person))
                assert r.status_code == 201, r.text
            photo = (knn_dir() / "test" / "obama_and_biden.jpg").read_bytes()
            for _ in range(4):  # whichever worker answers, it sees what the other enrolled
                r = c.post("/v1/collections/default/identify", headers=h,
                           files=[("images", ("ob.jpg", photo, "image/jpeg"))])
                assert sorted(f["person"] for f in r.json()["images"][0]["faces"]) == ["biden", "obama", "unknown"]
            # 8 clients at once: models shared by the pool's threads give the same answers
            from concurrent.futures import ThreadPoolExecutor

            def identify(_):
                with httpx.Client(base_url=server.url, timeout=120) as cc:
                    r = cc.post("/v1/collections/default/identify", headers=h,
                                files=[("images", ("ob.jpg", photo, "image/jpeg"))])
                    assert r.status_code == 200, r.text
                    return [(f["person"], round(f["similarity"], 4)) for f in r.json()["images"][0]["faces"]]

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(identify, range(8)))
            assert all(a == answers[0] for a in answers)
            r = c.post("/v1/keys", headers=h, json={"role": "identify"})
            other, kid = r.json()["key"], r.json()["info"]["id"]
            oh = {"Authorization": f"Bearer {other}"}
            assert all(c.get("/v1/collections", headers=oh).status_code == 200 for _ in range(6))
            assert c.delete(f"/v1/keys/{kid}", headers=h).status_code == 200
            assert all(c.get("/v1/collections", headers=oh).status_code == 401 for _ in range(6))
    finally:
        assert server.stop() in (0, -signal.SIGTERM)


def test_graceful_shutdown_finishes_the_request_in_flight(keyed_gallery):
    gallery, h, _ = keyed_gallery
    server = Server(gallery, "--threads", "1")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=120) as c:
            assert c.post("/v1/collections", headers=h, json={"name": "default"}).status_code == 201
        train = knn_dir() / "train"
        files = [f for person in sorted(train.iterdir()) for f in files_of(person)][:9]
        result = {}

        def enroll():
            with httpx.Client(base_url=server.url, timeout=120) as c:
                result["r"] = c.post("/v1/collections/default/people", headers=h, data={"name": "everyone"},
                                     files=files, params={"pick": "largest"})

        t = threading.Thread(target=enroll)
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the enroll runs on the pool
            if httpx.get(server.url + "/v1/ready", timeout=5).json()["inference"]["admitted"] >= 1:
                break
            time.sleep(0.05)
        # uvicorn finishes the requests in flight, shuts the app down (the pool drains,
        # the gallery saves and closes), then re-raises the signal: -SIGTERM is its clean exit.
        assert server.stop() in (0, -signal.SIGTERM)
        t.join(60)
        r = result["r"]
        assert r.status_code == 201, r.text
        enrolled = r.json()["enrolled"]
        assert enrolled >= 1
    finally:
        server.stop()
    # the gallery is consistent: the store and the index agree
    from vultus.gallery import Gallery

    with Gallery(gallery) as g:
        stats = g.stats("default")
        assert stats.faces == enrolled and stats.index.indexed == stats.embeddings == enrolled

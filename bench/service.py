"""The service's speed next to the library's: /v1/verify and /v1/collections/{c}/identify.

    python bench/service.py                 # results to bench/results/service.md (about 5 minutes)
    python bench/service.py --seconds 6     # shorter cells

What runs:
- a 1,000-person collection built from LFW (the first image of the first 1,000
  people, by name, with at least two images; the gallery file is cached under
  the user cache dir, `bench-service/`, and the server works on a copy);
- the work: verify = one of 64 LFW View 2 pairs (two 250x250 JPEGs, one face
  each); identify = the second image of one of 64 enrolled people, against the
  1,000-person collection;
- in-process through the library: `Engine.verify(a, b)` and
  `Gallery.identify([image])` on the same bytes, called back to back in this
  process (latency), and in two processes at once (the library's 2-process
  throughput);
- over HTTP: `vultus serve --workers 1|2` on a loopback port, driven by a load
  generator in a separate process (this script, `_load`): 1, 4 and 16
  clients, each with its own keep-alive connection, multipart bodies built
  once; every cell stops after --max-requests requests or --seconds seconds.

The two cells each bar compares (1 client / 1 worker against the library in
this process; 16 clients / 2 workers against the library's 2 processes) run
alternately in --rounds rounds, so load from other work on a shared machine
falls on both sides alike. At 1 client the service's adapter
(vultus.service.library, the same calls the routes make) also runs in-process
each round, and two requests that run no model measure the HTTP stack alone,
so the report can say where any overhead lies. Next to wall-clock figures, CPU time per request
(user + system of the worker processes, or of the library's process) is
reported: it moves far less with the machine's load.

Bars (issue 13): HTTP overhead at concurrency 1 at most 15% of the in-process
time; throughput at 16 clients with 2 workers at least 90% of the library's
2-process throughput. Memory per worker process is its resident set after the
run. Every figure in the results file comes from this script's own run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
COLLECTION = "lfw1000"
PROBES = 64
CONCURRENCY = (1, 4, 16)
WORKERS = (1, 2)
# Requests that run no model: the HTTP stack's own cost, without and with the key check.
FLOOR = {"health": "/v1/health", "key": "/v1/keys/me"}


# ----------------------------------------------------------------- data

def lfw_root() -> Path:
    from vultus.data import data_root

    root = data_root()
    if root is None or not (root / "lfw" / "images").is_dir():
        sys.exit("bench/service.py: LFW not found (../shared/data/lfw or $VULTUS_DATA/lfw)")
    return root / "lfw"


def people_with_two(lfw: Path) -> list[tuple[str, list[Path]]]:
    out = []
    for person in sorted(p for p in (lfw / "images").iterdir() if p.is_dir()):
        images = sorted(person.glob("*.jpg"))
        if len(images) >= 2:
            out.append((person.name, images))
    return out


def build_gallery(lfw: Path, people: int, path: Path) -> tuple[list[Path], int]:
    """A collection of `people` LFW people (first image each) at `path`, built once
    and reused; returns the probe images (each enrolled person's second image) and
    the number of people enrolled."""
    from vultus.gallery import Gallery
    from vultus.gallery.api import EnrollItem
    from vultus.gallery.inference import EnrollOptions

    candidates = people_with_two(lfw)
    with Gallery(path) as g:
        if COLLECTION not in {c.name for c in g.collections()}:
            g.create_collection(COLLECTION, embedder="sface")
        enrolled = {p.name for p in g.people(COLLECTION)}
        pos = 0
        while len(enrolled) < people and pos < len(candidates):
            need = people - len(enrolled)
            batch = [c for c in candidates[pos:pos + need] if c[0] not in enrolled]
            pos += need
            if not batch:
                continue
            t0 = time.perf_counter()
            report = g.enroll([EnrollItem(imgs[0], name) for name, imgs in batch], COLLECTION,
                              options=EnrollOptions(pick="central"))
            print(f"  enrolled {report.enrolled} of {len(batch)} in {time.perf_counter() - t0:.1f} s", flush=True)
            enrolled = {p.name for p in g.people(COLLECTION)}
        by_name = dict(candidates)
        probes = [by_name[name][1] for name in sorted(enrolled)[:PROBES]]
        return probes, len(enrolled)


def verify_pairs(lfw: Path) -> list[tuple[Path, Path]]:
    from vultus.evaluate.lfw import read_lfw_pairs

    pairs = read_lfw_pairs(lfw)
    same = [p for p in pairs if p.same][: PROBES // 2]
    diff = [p for p in pairs if not p.same][: PROBES // 2]
    return [(p.path_a, p.path_b) for pair in zip(same, diff, strict=True) for p in pair]


# ----------------------------------------------------------------- in-process

def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def summarise(latencies: list[float], wall: float, errors: int = 0) -> dict:
    return {"n": len(latencies), "errors": errors, "wall_s": wall,
            "rps": len(latencies) / wall if wall > 0 else 0.0,
            "p50_ms": 1000 * _percentile(latencies, 50), "p99_ms": 1000 * _percentile(latencies, 99),
            "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan")}


def merge_runs(runs: list[dict]) -> dict:
    """Rounds of one cell as one: every latency, requests over the rounds' summed wall time."""
    latencies = [x for r in runs for x in r["latencies"]]
    out = summarise(latencies, sum(r["wall"] for r in runs), errors=sum(r.get("errors", 0) for r in runs))
    cpu, requests = sum(r.get("cpu_s", 0.0) for r in runs), sum(r.get("cpu_requests", 0) for r in runs)
    out["cpu_ms"] = 1000 * cpu / requests if requests else float("nan")
    for extra in ("statuses", "rss_mib"):
        if any(extra in r for r in runs):
            out[extra] = runs[-1].get(extra)
    return out


def _library_call(kind: str, gallery_path: str):
    """A function doing one request's work through the library, on bytes."""
    if kind == "verify":
        from vultus import Engine

        engine = Engine()
        return lambda work: engine.verify(work[0], work[1], largest=True)
    from vultus.gallery import Gallery

    gallery = Gallery(gallery_path, create=False)
    return lambda work: gallery.identify([work[0]], COLLECTION)[0].unwrap()


def _load_work(kind: str, files: list[list[str]]) -> list[tuple[bytes, ...]]:
    return [tuple(Path(f).read_bytes() for f in item) for item in files]


def _adapter_call(kind: str, gallery_path: str):
    """One request's work through the service's own adapter (vultus.service.library:
    upload decoding, the face limit, the same Engine and Gallery calls), without HTTP."""
    from vultus.service.library import Library
    from vultus.service.uploads import Upload

    lib = Library(gallery_path)
    lib.warm_up()
    if kind == "verify":
        return lambda work: lib.verify(Upload("a.jpg", work[0], 0), Upload("b.jpg", work[1], 1), fmr=None,
                                       largest=True)[0]
    return lambda work: lib.identify(COLLECTION, [Upload("a.jpg", work[0], 0)])


class InProcess:
    """The library (or the service's adapter onto it) in this process, models loaded
    once, as a server worker has them."""

    def __init__(self, kind: str, gallery_path: str, files: list[list[str]], *, adapter: bool = False):
        self.call = (_adapter_call if adapter else _library_call)(kind, gallery_path)
        self.work = _load_work(kind, files)
        for item in self.work[:2]:  # load the models and warm the caches, as the server is before it is ready
            self.call(item)

    def run(self, max_requests: int, seconds: float, offset: int = 0) -> dict:
        return timed_calls(self.call, self.work, max_requests, seconds, offset=offset)


def timed_calls(call, work, max_requests: int, seconds: float, *, offset: int = 0) -> dict:
    latencies = []
    cpu0 = time.process_time()
    t_start = time.perf_counter()
    deadline = t_start + seconds
    i = offset
    while len(latencies) < max_requests and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call(work[i % len(work)])
        latencies.append(time.perf_counter() - t0)
        i += 1
    wall = time.perf_counter() - t_start
    return {"latencies": latencies, "wall": wall, "cpu_s": time.process_time() - cpu0, "cpu_requests": len(latencies)}


def _library_worker(kind: str, gallery_path: str, files, offset: int, commands, results, barrier) -> None:
    """A library process: load the models once, then run timed rounds on command."""
    lib = InProcess(kind, gallery_path, files)
    results.put({"ready": True})
    while True:
        command = commands.get()
        if command is None:
            return
        max_requests, seconds = command
        barrier.wait()  # both processes start each round together
        out = lib.run(max_requests, seconds, offset=offset)
        out["rss_mib"] = rss_mib(os.getpid())
        results.put(out)
        offset += 3


class LibraryProcesses:
    """n processes calling the library at once, started together each round;
    a round's throughput is every call over the longest process's wall time."""

    def __init__(self, kind: str, gallery_path: str, files, n: int):
        ctx = mp.get_context("spawn")
        self.n = n
        barrier = ctx.Barrier(n)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(n)]
        self.procs = [ctx.Process(target=_library_worker, daemon=True,
                                  args=(kind, gallery_path, files, 7 * k, self.commands[k], self.results, barrier))
                      for k in range(n)]
        for p in self.procs:
            p.start()
        for _ in range(n):
            self.results.get(timeout=300)

    def run(self, max_requests: int, seconds: float) -> dict:
        for q in self.commands:
            q.put((max(1, max_requests // self.n), seconds))
        results = [self.results.get(timeout=seconds + 300) for _ in range(self.n)]
        return {"latencies": [x for r in results for x in r["latencies"]], "wall": max(r["wall"] for r in results),
                "rss_mib": [r["rss_mib"] for r in results], "cpu_s": sum(r["cpu_s"] for r in results),
                "cpu_requests": sum(r["cpu_requests"] for r in results)}

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)


# ----------------------------------------------------------------- HTTP

def multipart(fields: list[tuple[str, str, bytes]]) -> tuple[str, bytes]:
    """(content type, body) of a multipart/form-data body of files."""
    boundary = "vultus-bench-" + uuid.uuid4().hex
    parts = []
    for name, filename, data in fields:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def load_generator(spec: dict) -> dict:
    """Run in its own process: `concurrency` threads, each with its own keep-alive
    connection, posting the prepared bodies until max_requests or max_seconds."""
    bodies = [(item["content_type"], Path(item["file"]).read_bytes()) for item in spec["bodies"]]
    headers_base = {"Authorization": f"Bearer {spec['key']}", "Connection": "keep-alive"}
    lock = threading.Lock()
    state = {"issued": 0}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    n = spec["concurrency"]
    ready = threading.Barrier(n + 1)
    start_time = [0.0]

    method = spec.get("method", "POST")

    def send(conn, k):
        if not bodies:  # a GET
            conn.request(method, spec["path"], headers=headers_base)
            response = conn.getresponse()
            response.read()
            return response.status
        content_type, body = bodies[k % len(bodies)]
        conn.request(method, spec["path"], body=body, headers=headers_base | {"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        return response.status

    warmed = [0]

    def client(tid: int):
        conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=120)
        try:
            send(conn, tid)  # warm-up: connection open, worker's caches warm; not counted
            with lock:
                warmed[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported in the output, not raised
            errors.append(f"warm-up: {exc!r}")
        ready.wait()
        deadline = time.perf_counter() + spec["max_seconds"]  # every client passes the barrier together
        while True:
            with lock:
                if state["issued"] >= spec["max_requests"] or time.perf_counter() >= deadline:
                    break
                k = state["issued"]
                state["issued"] += 1
            t0 = time.perf_counter()
            try:
                status = send(conn, k)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=120)
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(n)]
    for t in threads:
        t.start()
    ready.wait()  # after every client's warm-up request
    start_time[0] = time.perf_counter()
    # The server's CPU over the timed window only: a worker's first request may load models
    # (the warm-up requests above), which is not what a request costs.
    cpu0 = cpu_seconds(spec.get("pids", []))
    for t in threads:
        t.join()
    wall = time.perf_counter() - start_time[0]
    cpu = cpu_seconds(spec.get("pids", [])) - cpu0
    return {"latencies": latencies, "wall": wall, "statuses": statuses, "error_samples": errors[:3],
            "errors": len(errors) + sum(v for k, v in statuses.items() if k != "200"), "warmed": warmed[0],
            "cpu_s": cpu, "cpu_requests": sum(statuses.values())}


def time_one_request(port: int, path: str, key: str, body: dict) -> float:
    """Milliseconds for one POST on a new connection."""
    data = Path(body["file"]).read_bytes()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", path, body=data, headers={"Authorization": f"Bearer {key}",
                                                   "Content-Type": body["content_type"]})
    conn.getresponse().read()
    conn.close()
    return 1000 * (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with_src(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env | (extra or {})


def vultus(*args: str, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "vultus", *args], env=env or env_with_src(),
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"vultus {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def create_key(gallery: Path) -> str:
    text = vultus("keys", "create", "--role", "admin", "--name", "bench", "--gallery", str(gallery), "--json")
    return json.loads(text)["key"]


class Server:
    """`vultus serve` in a subprocess, stopped with SIGTERM (graceful) on exit."""

    def __init__(self, gallery: Path, workers: int, env: dict, log: Path):
        self.port = free_port()
        self.log_path = log
        # The log goes to a file: a pipe nobody reads would fill with access-log lines and stall the server.
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vultus", "serve", "--gallery", str(gallery), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers

    def wait_ready(self, timeout: float = 300) -> float:
        """Seconds until every worker has loaded its models (uvicorn logs one
        "Application startup complete" per worker) and /v1/ready answers 200."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                sys.exit(f"vultus serve exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            started = self.log_path.read_text(errors="replace").count("Application startup complete")
            if started >= self.workers:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    conn.request("GET", "/v1/ready")
                    if conn.getresponse().status == 200:
                        return time.perf_counter() - t0
                except OSError:
                    pass
            time.sleep(0.25)
        sys.exit("vultus serve did not become ready")

    def worker_pids(self) -> list[int]:
        """The processes doing the work: the workers when there are several, else the server itself."""
        pids = descendants(self.proc.pid)
        workers = [p for p in pids if "multiprocessing" not in cmdline(p) or "spawn_main" in cmdline(p)]
        return workers if self.workers > 1 and workers else [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (every thread), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_load(spec: dict, tmp: Path) -> dict:
    """The load generator in a separate process (this script's `_load` mode)."""
    spec_file = tmp / f"load-{uuid.uuid4().hex}.json"
    spec_file.write_text(json.dumps(spec))
    limit = spec["max_seconds"] + 120
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_load", str(spec_file)],
                         capture_output=True, text=True, timeout=limit, env=env_with_src())
    if out.returncode != 0:
        sys.exit(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


# ----------------------------------------------------------------- report

def fmt_cell(r: dict) -> str:
    return f"{r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_ms']:.1f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def write_report(res: dict, out: Path) -> str:
    cores = os.cpu_count() or 1
    lines = [
        "# The service's speed next to the library's (bench/service.py)",
        "",
        f"Run {res['date']} on {res['machine']}, {res['total_s']:.0f} s in all.",
        f"Load average (1/5/15 min) at the start: {res['load_start']}; at the end: {res['load_end']}.",
        "",
        "**The machine was shared while this ran**: other people's builds and tests used the same "
        f"{cores} cores (a load average above {cores} means work was waiting for a core), so wall-clock figures "
        "are lower and noisier than on an idle machine, and they move from run to run: a verdict within the "
        "round-to-round spread shown below the bars can flip on another run. The CPU time per request (CPU ms: the "
        "server's processes, or the library's process, user + system, every thread) depends less on that load "
        "(though it too rises on a busy machine, whose cores share caches), so it is given next to each wall-clock "
        "figure and the bars are also checked on it. Every ratio below compares figures from this one run.",
        "",
        f"Work: verify = one of {PROBES} LFW View 2 pairs (two 250x250 JPEGs, `largest=true`); identify = one "
        f"250x250 LFW image against a {res['people']}-person collection (sface, top 5). Each cell stops after "
        f"{res['max_requests']} requests or {res['seconds']:.0f} s. onnxruntime threads per model and process: "
        f"{res['threads']}; `vultus serve` defaults otherwise (2 inference threads per worker). The load generator "
        "is a separate process on loopback with one keep-alive connection per client; each client's first request "
        "is a warm-up and not timed.",
        "",
        "## Requests/s, latency (ms) and CPU ms per request",
        "",
        "| endpoint | how | clients | workers | requests | req/s | p50 | p99 | CPU ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("verify", "identify"):
        lib1 = res["library"][kind]["1"]
        lib2 = res["library"][kind]["2"]
        lines.append(f"| {kind} | library, in-process | 1 | – | {lib1['n']} | {fmt_cell(lib1)} | 0 |")
        ad = res["adapter"][kind]
        lines.append(f"| {kind} | the service's adapter, in-process (no HTTP) | 1 | – | {ad['n']} | {fmt_cell(ad)} "
                     "| 0 |")
        lines.append(f"| {kind} | library, 2 processes | 2 | – | {lib2['n']} | {fmt_cell(lib2)} | 0 |")
        for w in WORKERS:
            for c in CONCURRENCY:
                r = res["http"][kind][str(w)][str(c)]
                lines.append(f"| {kind} | HTTP | {c} | {w} | {r['n']} | {fmt_cell(r)} | {r['errors']} |")
    lines += ["", "## Against the bars", "",
              "Bar 1: HTTP overhead at 1 client (1 worker) at most 15% of the in-process time. "
              "Bar 2: requests/s at 16 clients with 2 workers at least 90% of the library's 2-process throughput.",
              "",
              "| endpoint | measure | HTTP | library | HTTP vs library | bar |",
              "|---|---|---|---|---|---|"]
    for kind in ("verify", "identify"):
        b = res["bars"][kind]
        lines.append(f"| {kind} | 1: p50 latency, wall clock | {b['http_p50_ms']:.1f} ms | {b['lib_p50_ms']:.1f} ms | "
                     f"{100 * b['overhead']:+.1f}% | {verdict(b['overhead'] <= 0.15)} |")
        lines.append(f"| {kind} | 1: CPU ms per request | {b['http_cpu_ms']:.1f} | {b['lib_cpu_ms']:.1f} | "
                     f"{100 * b['cpu_overhead']:+.1f}% | {verdict(b['cpu_overhead'] <= 0.15)} |")
        lines.append(f"| {kind} | 2: requests/s, wall clock | {b['http_rps']:.1f} | {b['lib_rps']:.1f} | "
                     f"{100 * b['ratio']:.0f}% | {verdict(b['ratio'] >= 0.90)} |")
        lines.append(f"| {kind} | 2: CPU-bound ceiling, {cores} cores ({cores} x 1000 / CPU ms) | "
                     f"{b['http_ceiling']:.1f} | {b['lib_ceiling']:.1f} | {100 * b['ceiling_ratio']:.0f}% | "
                     f"{verdict(b['ceiling_ratio'] >= 0.90)} |")
    lines += ["", f"Each bar's two sides ran alternately, {res['rounds']} rounds within one cell (library, then "
              "HTTP, then the library again ...; at 1 client the service's adapter ran in each round too), so the "
              "other work on the machine fell on both sides alike; the figures above pool the rounds. Round by "
              "round (wall clock):", ""]
    for kind in ("verify", "identify"):
        b = res["bars"][kind]
        lines.append(f"- {kind}: overhead at 1 client " + ", ".join(f"{100 * x:+.0f}%" for x in b["overhead_rounds"])
                     + "; throughput ratio at 16 clients " + ", ".join(f"{100 * x:.0f}%" for x in b["ratio_rounds"]))
    lines += ["", "## Where the time goes", "",
              "CPU ms per request at 1 client: the library alone, the service's adapter onto it in-process "
              "(upload decoding and checks, no HTTP), and the whole service over HTTP (1 worker).", ""]
    for kind in ("verify", "identify"):
        lib, ad, http = res["library"][kind]["1"], res["adapter"][kind], res["http"][kind]["1"]["1"]
        lines.append(f"- {kind}: library {lib['cpu_ms']:.1f}, adapter {ad['cpu_ms']:.1f} "
                     f"({100 * (ad['cpu_ms'] / lib['cpu_ms'] - 1):+.0f}%), HTTP {http['cpu_ms']:.1f} "
                     f"({100 * (http['cpu_ms'] / lib['cpu_ms'] - 1):+.0f}%); p50 wall clock {lib['p50_ms']:.1f}, "
                     f"{ad['p50_ms']:.1f}, {http['p50_ms']:.1f} ms")
    if res.get("floor"):
        lines += ["", "## The HTTP stack by itself", "",
                  "Requests that run no model, 1 client, 1 worker: what parsing, routing, the key check and the "
                  "answer cost without any inference.", "",
                  "| request | requests | req/s | p50 ms | p99 ms | CPU ms |", "|---|---|---|---|---|---|"]
        for kind, path in FLOOR.items():
            r = res["floor"][kind]
            label = f"`GET {path}`" + (" (no key check)" if kind == "health" else " (key checked)")
            lines.append(f"| {label} | {r['n']} | {fmt_cell(r)} |")
    lines += ["", "## Memory", "", "Resident set size after the run (MiB):", ""]
    for w in WORKERS:
        first = res["first_requests_ms"][str(w)]
        lines.append(f"- `vultus serve --workers {w}`: " + ", ".join(f"{m:.0f}" for m in res["memory"][str(w)])
                     + f" per worker process (every worker holds its own models and gallery); /v1/ready answered "
                       f"200 {res['ready_s'][str(w)]:.1f} s after start; the first identify request after that "
                       f"took {first[0]:.0f} ms, the next {first[1]:.0f} ms")
    per_kind = []
    for kind in ("verify", "identify"):
        rss = ", ".join(f"{m:.0f}" for m in res["library"][kind]["2"]["rss_mib"])
        per_kind.append(f"{kind} {rss}")
    lines.append("- the library's processes, for comparison (each holds one engine, or one gallery): "
                 + "; ".join(per_kind))
    if res["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


# ----------------------------------------------------------------- main

def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_load":
        print(json.dumps(load_generator(json.loads(Path(sys.argv[2]).read_text()))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=15.0, help="the longest any one cell runs (all its rounds)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="a bar's two sides (library, HTTP) alternate this many times within their cell")
    ap.add_argument("--max-requests", type=int, default=400, help="the most requests any one cell sends")
    # One thread per model and process, as bench/lfw.py's throughput: 2 processes (or workers) then have
    # one core each on a 2-core machine, and a busy machine does not stall a model on its slowest thread.
    ap.add_argument("--threads", type=int, default=1,
                    help="onnxruntime threads per model in every process (VULTUS_THREADS; default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS / "service.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="measure nothing: write the report again from the raw figures a run saved with --json")
    args = ap.parse_args()
    if args.from_json:
        print(write_report(json.loads(args.from_json.read_text()), args.out))
        return
    os.environ["VULTUS_THREADS"] = str(args.threads)  # this process, the library's and the server's
    from vultus.models.registry import cache_dir
    from vultus.models.runtime import default_threads

    t_begin = time.perf_counter()
    res = {"date": stamp(), "machine": machine(), "load_start": load_average(), "people": args.people,
           "seconds": args.seconds, "max_requests": args.max_requests, "threads": default_threads(),
           "rounds": args.rounds,
           "library": {}, "adapter": {}, "http": {}, "floor": {}, "first_requests_ms": {}, "memory": {},
           "ready_s": {}, "bars": {}, "notes": []}
    lfw = lfw_root()
    cache = cache_dir() / "bench-service"
    cache.mkdir(parents=True, exist_ok=True)
    gallery = cache / f"lfw-{args.people}.db"
    print(f"gallery {gallery}: {args.people} LFW people ...", flush=True)
    probes, enrolled = build_gallery(lfw, args.people, gallery)
    res["people"] = enrolled
    pairs = verify_pairs(lfw)
    files = {"verify": [[str(a), str(b)] for a, b in pairs], "identify": [[str(p)] for p in probes]}

    # The library in this process, for the concurrency-1 comparison; models loaded once.
    in_process = {kind: InProcess(kind, str(gallery), files[kind]) for kind in ("verify", "identify")}
    adapter = {kind: InProcess(kind, str(gallery), files[kind], adapter=True) for kind in ("verify", "identify")}
    rounds = args.rounds
    per_round = {"max_requests": max(1, args.max_requests // rounds), "seconds": args.seconds / rounds}
    raw: dict = {"lib1": {}, "lib2": {}, "http": {}}

    with tempfile.TemporaryDirectory(prefix="vultus-bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        # The server gets its own copy of the gallery (and key store) so the cached one stays as built.
        served = tmp / "gallery.db"
        shutil.copy(gallery, served)
        key = create_key(served)
        bodies = {}
        for kind in ("verify", "identify"):
            bodies[kind] = []
            for i, item in enumerate(files[kind]):
                names = ["image_a", "image_b"] if kind == "verify" else ["images"]
                ctype, body = multipart([(n, Path(f).name, Path(f).read_bytes())
                                         for n, f in zip(names, item, strict=True)])
                f = tmp / f"{kind}-{i}.body"
                f.write_bytes(body)
                bodies[kind].append({"content_type": ctype, "file": str(f)})
        paths = {"verify": "/v1/verify?largest=true", "identify": f"/v1/collections/{COLLECTION}/identify"} | FLOOR

        def http_cell(server: Server, kind: str, c: int, max_requests: int, seconds: float) -> dict:
            return run_load({"host": "127.0.0.1", "port": server.port, "path": paths[kind], "key": key,
                             "bodies": bodies.get(kind, []), "concurrency": c, "max_requests": max_requests,
                             "max_seconds": seconds, "method": "GET" if kind in FLOOR else "POST",
                             "pids": sorted({server.proc.pid, *server.worker_pids()})}, tmp)

        for w in WORKERS:
            server = Server(served, w, env_with_src(), tmp / f"serve-{w}.log")
            try:
                res["ready_s"][str(w)] = server.wait_ready()
                print(f"serve --workers {w}: ready in {res['ready_s'][str(w)]:.1f} s", flush=True)
                # The first identify after /v1/ready said 200, then a second one: does "ready" mean
                # the models are loaded, or does the first caller pay for it?
                first = [time_one_request(server.port, paths["identify"], key, bodies["identify"][k]) for k in (0, 1)]
                res["first_requests_ms"][str(w)] = first
                print(f"  first identify after ready: {first[0]:.0f} ms, the next {first[1]:.0f} ms", flush=True)
                if w == 1:
                    # What the HTTP stack costs by itself: no model, no image; with and without a key check.
                    for kind in FLOOR:
                        res["floor"][kind] = merge_runs([http_cell(server, kind, 1, 300, 3.0)])
                        print(f"  HTTP {FLOOR[kind]}: {fmt_cell(res['floor'][kind])}", flush=True)
                for kind in ("verify", "identify"):
                    res["http"].setdefault(kind, {})[str(w)] = {}
                    for c in CONCURRENCY:
                        paired = (w, c) in ((1, 1), (2, 16))
                        if not paired:
                            r = merge_runs([http_cell(server, kind, c, args.max_requests, args.seconds)])
                        else:
                            # A bar's two sides alternate, round by round, so the other work on this
                            # shared machine weighs on both alike.
                            side = "lib1" if c == 1 else "lib2"
                            lib_runs, http_runs, adapter_runs = [], [], []
                            procs = LibraryProcesses(kind, str(gallery), files[kind], 2) if c == 16 else None
                            try:
                                for k in range(rounds):
                                    if procs is None:
                                        lib_runs.append(in_process[kind].run(offset=k * 5, **per_round))
                                        adapter_runs.append(adapter[kind].run(offset=k * 5, **per_round))
                                    else:
                                        lib_runs.append(procs.run(**per_round))
                                    http_runs.append(http_cell(server, kind, c, **per_round))
                            finally:
                                if procs is not None:
                                    procs.close()
                            raw[side][kind] = {"lib": lib_runs, "http": http_runs}
                            res["library"].setdefault(kind, {})["1" if c == 1 else "2"] = merge_runs(lib_runs)
                            r = merge_runs(http_runs)
                            if adapter_runs:
                                res["adapter"][kind] = merge_runs(adapter_runs)
                            print(f"  library {kind}, {'1 process' if c == 1 else '2 processes'}: "
                                  f"{fmt_cell(res['library'][kind]['1' if c == 1 else '2'])}", flush=True)
                        res["http"][kind][str(w)][str(c)] = r
                        print(f"  HTTP {kind}, {c} clients, {w} workers: {fmt_cell(r)} errors {r['errors']} "
                              f"{r.get('statuses')}", flush=True)
                res["memory"][str(w)] = [rss_mib(p) for p in server.worker_pids()]
            finally:
                server.stop()

    for kind in ("verify", "identify"):
        http1 = res["http"][kind]["1"]["1"]
        lib1 = res["library"][kind]["1"]
        http16 = res["http"][kind]["2"]["16"]
        lib2 = res["library"][kind]["2"]
        rounds_overhead = [_percentile(h["latencies"], 50) / _percentile(x["latencies"], 50) - 1
                           for x, h in zip(raw["lib1"][kind]["lib"], raw["lib1"][kind]["http"], strict=True)]
        rounds_ratio = [(len(h["latencies"]) / h["wall"]) / (len(x["latencies"]) / x["wall"])
                        for x, h in zip(raw["lib2"][kind]["lib"], raw["lib2"][kind]["http"], strict=True)]
        cores = os.cpu_count() or 1
        res["bars"][kind] = {"http_p50_ms": http1["p50_ms"], "lib_p50_ms": lib1["p50_ms"],
                             "overhead": http1["p50_ms"] / lib1["p50_ms"] - 1, "overhead_rounds": rounds_overhead,
                             "http_cpu_ms": http1["cpu_ms"], "lib_cpu_ms": lib1["cpu_ms"],
                             "cpu_overhead": http1["cpu_ms"] / lib1["cpu_ms"] - 1,
                             "http_rps": http16["rps"], "lib_rps": lib2["rps"], "ratio": http16["rps"] / lib2["rps"],
                             "ratio_rounds": rounds_ratio,
                             "http_ceiling": cores * 1000 / http16["cpu_ms"],
                             "lib_ceiling": cores * 1000 / lib2["cpu_ms"],
                             "ceiling_ratio": lib2["cpu_ms"] / http16["cpu_ms"]}
    res["load_end"] = load_average()
    res["total_s"] = time.perf_counter() - t_begin
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(write_report(res, args.out))


if __name__ == "__main__":
    main()

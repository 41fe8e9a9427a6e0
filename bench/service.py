"""The service's speed next to the library's: /v1/verify and /v1/collections/{c}/identify.

    python bench/service.py                 # results to bench/results/service.md (about 5 minutes)
    python bench/service.py --seconds 4     # shorter cells

What runs:
- a 1,000-person collection built from LFW (the first image of the first 1,000
  people, by name, with at least two images; the gallery file is cached under
  the user cache dir, `bench-service/`);
- the work: verify = one of 64 LFW View 2 pairs (two 250x250 JPEGs, one face
  each); identify = the second image of one of 64 enrolled people, against the
  1,000-person collection;
- in-process through the library: `Engine.verify(a, b)` and
  `Gallery.identify([image])` on the same bytes, called one after another
  (latency), and in two processes at once (the library's 2-process throughput);
- over HTTP: `vultus serve --workers 1|2` on a loopback port, driven by a load
  generator in a separate process (this script, `_load`): 1, 4 and 16
  clients, each with its own keep-alive connection, multipart bodies built
  once; every cell stops after --max-requests requests or --seconds seconds.

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


def _library_call(kind: str, gallery_path: str):
    """A function doing one request's work through the library, on bytes."""
    if kind == "verify":
        from vultus import Engine

        engine = Engine()
        return lambda work: engine.verify(work[0], work[1], largest=True)
    from vultus.gallery import Gallery

    gallery = Gallery(gallery_path, create=False)
    return lambda work: gallery.identify([work[0]], COLLECTION)


def _load_work(kind: str, files: list[list[str]]) -> list[tuple[bytes, ...]]:
    return [tuple(Path(f).read_bytes() for f in item) for item in files]


def library_run(kind: str, gallery_path: str, files: list[list[str]], max_requests: int, seconds: float,
                barrier=None, offset: int = 0) -> dict:
    """One process calling the library back to back; latency of each call."""
    call = _library_call(kind, gallery_path)
    work = _load_work(kind, files)
    for item in work[:2]:  # load the models and warm the caches, as the server is before it is ready
        call(item)
    if barrier is not None:
        barrier.wait()
    latencies = []
    t_start = time.perf_counter()
    deadline = t_start + seconds
    i = offset
    while len(latencies) < max_requests and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call(work[i % len(work)])
        latencies.append(time.perf_counter() - t0)
        i += 1
    wall = time.perf_counter() - t_start
    return {"latencies": latencies, "wall": wall, "rss_mib": rss_mib(os.getpid())}


def _library_proc(args, queue):
    queue.put(library_run(*args[:5], barrier=args[5], offset=args[6]))


def library_processes(kind: str, gallery_path: str, files, max_requests: int, seconds: float, n: int) -> dict:
    """n processes calling the library at once (started together after loading);
    throughput is every call over the longest process's wall time."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_library_proc,
                         args=((kind, gallery_path, files, max_requests // n, seconds, barrier, k * 7), queue))
             for k in range(n)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = [x for r in results for x in r["latencies"]]
    out = summarise(latencies, max(r["wall"] for r in results))
    out["rss_mib"] = [r["rss_mib"] for r in results]
    return out


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

    def send(conn, k):
        content_type, body = bodies[k % len(bodies)]
        conn.request("POST", spec["path"], body=body, headers=headers_base | {"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        return response.status

    def client(tid: int):
        conn = http.client.HTTPConnection(spec["host"], spec["port"], timeout=120)
        try:
            send(conn, tid)  # warm-up: connection open, worker's caches warm; not counted
        except Exception as exc:  # noqa: BLE001 - reported in the output, not raised
            errors.append(f"warm-up: {exc!r}")
        ready.wait()
        deadline = start_time[0] + spec["max_seconds"]
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
    start_time[0] = time.perf_counter()
    ready.wait()
    start_time[0] = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start_time[0]
    out = summarise(latencies, wall, errors=len(errors) + sum(v for k, v in statuses.items() if k != "200"))
    out["statuses"] = statuses
    out["error_samples"] = errors[:3]
    return out


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

    def __init__(self, gallery: Path, workers: int, env: dict):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vultus", "serve", "--gallery", str(gallery), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.workers = workers

    def wait_ready(self, timeout: float = 180) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                sys.exit(f"vultus serve exited: {self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v1/ready")
                if conn.getresponse().status == 200:
                    # With several workers, each loads its models: ask until every one is ready.
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
    return f"{r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}"


def write_report(res: dict, out: Path) -> str:
    lines = [
        "# The service's speed next to the library's (bench/service.py)",
        "",
        f"Run {res['date']} on {res['machine']}.",
        f"Load average (1/5/15 min) at the start: {res['load_start']}; at the end: {res['load_end']}.",
        "",
        "**The machine was shared**: other work ran on the same cores during this run (the load average above says "
        "how much), so absolute figures are lower and noisier than on an idle machine. Each ratio below compares "
        "figures from this same run, taken minutes apart.",
        "",
        f"Work: verify = one of {PROBES} LFW View 2 pairs (two 250x250 JPEGs); identify = one 250x250 LFW image "
        f"against a {res['people']}-person collection (sface, exact search). Each cell stops after "
        f"{res['max_requests']} requests or {res['seconds']:.0f} s. Model threads per process: {res['threads']}. "
        f"The load generator is a separate process on loopback, one keep-alive connection per client.",
        "",
        "## Requests/s and latency (ms)",
        "",
        "| endpoint | how | clients | workers | requests | req/s | p50 | p99 | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("verify", "identify"):
        lib1 = res["library"][kind]["1"]
        lib2 = res["library"][kind]["2"]
        lines.append(f"| {kind} | library, 1 process | 1 | – | {lib1['n']} | {fmt_cell(lib1)} | 0 |")
        lines.append(f"| {kind} | library, 2 processes | 2 | – | {lib2['n']} | {fmt_cell(lib2)} | 0 |")
        for w in WORKERS:
            for c in CONCURRENCY:
                r = res["http"][kind][str(w)][str(c)]
                lines.append(f"| {kind} | HTTP | {c} | {w} | {r['n']} | {fmt_cell(r)} | {r['errors']} |")
    lines += ["", "## Against the bars", "",
              "| endpoint | HTTP p50 at 1 client, 1 worker | library p50 | overhead | bar ≤ 15% | "
              "HTTP req/s at 16 clients, 2 workers | library req/s, 2 processes | ratio | bar ≥ 90% |",
              "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("verify", "identify"):
        b = res["bars"][kind]
        lines.append(
            f"| {kind} | {b['http_p50_ms']:.1f} ms | {b['lib_p50_ms']:.1f} ms | {100 * b['overhead']:+.1f}% | "
            f"{'met' if b['overhead'] <= 0.15 else 'NOT met'} | {b['http_rps']:.1f} | {b['lib_rps']:.1f} | "
            f"{100 * b['ratio']:.0f}% | {'met' if b['ratio'] >= 0.90 else 'NOT met'} |")
    lines += ["", "## Memory", "",
              "Resident set size after the run, per process (MiB):", ""]
    for w in WORKERS:
        lines.append(f"- `vultus serve --workers {w}`: " + ", ".join(f"{m:.0f}" for m in res["memory"][str(w)])
                     + " (per worker)" + (f"; ready {res['ready_s'][str(w)]:.1f} s after start" if res.get("ready_s")
                                          else ""))
    lines.append("- library, for comparison: " + ", ".join(
        f"{kind} {', '.join(f'{m:.0f}' for m in res['library'][kind]['2']['rss_mib'])}" for kind in ("verify", "identify"))
        + " (per process, 2 processes)")
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
    ap.add_argument("--seconds", type=float, default=8.0, help="the longest any one cell runs")
    ap.add_argument("--max-requests", type=int, default=400, help="the most requests any one cell sends")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime threads per model in every process (VULTUS_THREADS); default: every core")
    ap.add_argument("--out", type=Path, default=RESULTS / "service.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = ap.parse_args()
    if args.threads:
        os.environ["VULTUS_THREADS"] = str(args.threads)
    from vultus.models.registry import cache_dir
    from vultus.models.runtime import default_threads

    t_begin = time.perf_counter()
    res = {"date": stamp(), "machine": machine(), "load_start": load_average(), "people": args.people,
           "seconds": args.seconds, "max_requests": args.max_requests, "threads": default_threads(),
           "library": {}, "http": {}, "memory": {}, "ready_s": {}, "bars": {}, "notes": []}
    lfw = lfw_root()
    cache = cache_dir() / "bench-service"
    cache.mkdir(parents=True, exist_ok=True)
    gallery = cache / f"lfw-{args.people}.db"
    print(f"gallery {gallery}: {args.people} LFW people ...", flush=True)
    probes, enrolled = build_gallery(lfw, args.people, gallery)
    res["people"] = enrolled
    pairs = verify_pairs(lfw)
    files = {"verify": [[str(a), str(b)] for a, b in pairs], "identify": [[str(p)] for p in probes]}

    for kind in ("verify", "identify"):
        print(f"library {kind}: 1 process ...", flush=True)
        one = library_run(kind, str(gallery), files[kind], args.max_requests, args.seconds)
        res["library"][kind] = {"1": summarise(one["latencies"], one["wall"]) | {"rss_mib": [one["rss_mib"]]}}
        print(f"  {fmt_cell(res['library'][kind]['1'])}", flush=True)
        print(f"library {kind}: 2 processes ...", flush=True)
        res["library"][kind]["2"] = library_processes(kind, str(gallery), files[kind], args.max_requests,
                                                      args.seconds, 2)
        print(f"  {fmt_cell(res['library'][kind]['2'])}", flush=True)

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
                names = ["image_a", "image_b"] if kind == "verify" else ["image"]
                ctype, body = multipart([(n, Path(f).name, Path(f).read_bytes())
                                         for n, f in zip(names, item, strict=True)])
                f = tmp / f"{kind}-{i}.body"
                f.write_bytes(body)
                bodies[kind].append({"content_type": ctype, "file": str(f)})
        paths = {"verify": "/v1/verify?largest=true", "identify": f"/v1/collections/{COLLECTION}/identify"}
        for w in WORKERS:
            server = Server(served, w, env_with_src())
            try:
                res["ready_s"][str(w)] = server.wait_ready()
                print(f"serve --workers {w}: ready in {res['ready_s'][str(w)]:.1f} s", flush=True)
                for kind in ("verify", "identify"):
                    res["http"].setdefault(kind, {})[str(w)] = {}
                    for c in CONCURRENCY:
                        spec = {"host": "127.0.0.1", "port": server.port, "path": paths[kind], "key": key,
                                "bodies": bodies[kind], "concurrency": c, "max_requests": args.max_requests,
                                "max_seconds": args.seconds}
                        r = run_load(spec, tmp)
                        res["http"][kind][str(w)][str(c)] = r
                        print(f"  {kind} clients {c}: {fmt_cell(r)} errors {r['errors']} {r['statuses']}",
                              flush=True)
                res["memory"][str(w)] = [rss_mib(p) for p in server.worker_pids()]
            finally:
                server.stop()

    for kind in ("verify", "identify"):
        http1 = res["http"][kind]["1"]["1"]
        lib1 = res["library"][kind]["1"]
        http16 = res["http"][kind]["2"]["16"]
        lib2 = res["library"][kind]["2"]
        res["bars"][kind] = {"http_p50_ms": http1["p50_ms"], "lib_p50_ms": lib1["p50_ms"],
                             "overhead": http1["p50_ms"] / lib1["p50_ms"] - 1,
                             "http_rps": http16["rps"], "lib_rps": lib2["rps"], "ratio": http16["rps"] / lib2["rps"]}
    res["load_end"] = load_average()
    res["total_s"] = time.perf_counter() - t_begin
    res["notes"].append(f"Whole run: {res['total_s']:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(write_report(res, args.out))


if __name__ == "__main__":
    main()

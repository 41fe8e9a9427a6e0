"""Beyond one machine (issue 17): bulk enroll throughput on Ray, and a hook for
the search rows.

    python bench/scale.py enroll                      # -> the "Enroll" section of bench/results/scale.md
    python bench/scale.py enroll --images 200 --repeats 1 --out /tmp/scale.md
    python bench/scale.py search ...                  # runs bench/scale_search.py (its own section)

Enroll: the same LFW images (people with 2+ photos, spread over the alphabet,
`--pick central`) enrolled into a fresh SQLite gallery three ways in the same
run: the single-process path (`Gallery.enroll(workers=0)`, one onnxruntime
thread), and `vultus.bulk.bulk_enroll` on a local Ray with 2 CPUs with 1 and
with 2 actors. Each repeat runs the three in turn, so a change in the
machine's load falls on all of them; the load average is recorded before and
after every run. Two rates per run: the whole job (Ray start excluded, actor
start and model loading included) and the steady rate (from the first committed
chunk to the last, which is what a long job sees). Bar (issue 17): Ray with 2
workers reaches at least 1.8x its 1-worker steady throughput.

results/scale.md holds one section per part, between markers, so this script
and bench/scale_search.py each rewrite only their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, put_between, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402
from vultus.gallery import EnrollItem, EnrollOptions, Gallery  # noqa: E402

OUT = RESULTS / "scale.md"
SECTIONS = ("enroll", "search")
HEADER = """# Beyond one machine: bulk jobs on Ray and the PostgreSQL gallery (issue 17)

Written by `bench/scale.py` (enroll) and `bench/scale_search.py` (search); each
rewrites only its own section. The deployment these figures feed is planned in
[docs/scale.md](../../docs/scale.md).
"""


def write_section(path: Path, name: str, text: str) -> None:
    """Replace section `name` of the results file (between its markers), keeping the others."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    new_file = HEADER + "".join(f"\n<!-- {s}:begin -->\n(not measured yet)\n<!-- {s}:end -->\n" for s in SECTIONS)
    put_between(path, begin, end, f"{begin}\n{text.rstrip()}\n{end}", new_file)


def lfw_items(n: int) -> list[EnrollItem]:
    root = data_root() / "lfw" / "images"
    people = sorted(p for p in root.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    items: list[EnrollItem] = []
    step = max(1, len(people) // max(1, n // 2))
    for person in people[::step]:
        items += [EnrollItem(f, person.name) for f in sorted(person.glob("*.jpg"))[:2]]
        if len(items) >= n:
            break
    return items[:n]


class Clock:
    """A progress callback noting when each chunk was done."""

    def __init__(self):
        self.start = time.perf_counter()
        self.marks: list[tuple[float, int]] = []
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.marks.append((time.perf_counter(), self.done))

    def steady(self) -> float:
        """Images per second from the first chunk done to the last."""
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


def run_enroll(how: str, items, folder: Path, options: EnrollOptions) -> dict:
    db = folder / f"{how}-{time.monotonic_ns()}.db"
    clock = Clock()
    before = load_average()
    cpu0 = os.times()
    with Gallery(db) as g:
        t0 = time.perf_counter()
        if how == "single":
            report = g.enroll(items, options=options, workers=0, progress=clock)
            enrolled, actors_cpu = report.enrolled, 0.0
        else:
            from vultus.bulk import bulk_enroll

            report = bulk_enroll(items, g, options=options, workers=int(how[-1]), progress=clock)
            enrolled, actors_cpu = report.count("enrolled"), report.worker_cpu_s
        wall = time.perf_counter() - t0
    cpu1 = os.times()
    share = enrolled / len(items)
    return {"how": how, "images": len(items), "faces": enrolled, "wall": wall, "faces_per_s": enrolled / wall,
            "steady_faces_per_s": clock.steady() * share, "load_before": before, "load_after": load_average(),
            "driver_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), "actors_cpu_s": actors_cpu}


LABELS = {"single": "single process (Gallery.enroll, workers=0)", "ray1": "Ray Data, 1 actor",
          "ray2": "Ray Data, 2 actors"}


def enroll_section(args) -> str:
    logging.getLogger("ray").setLevel(logging.WARNING)
    import ray

    items = lfw_items(args.images)
    options = EnrollOptions(pick="central")
    t0 = time.perf_counter()
    ray_tmp = tempfile.mkdtemp(prefix="vscale")
    # Ray starts its workers at nice 15 (RAY_worker_niceness): on a shared machine they then yield to
    # every other process, while the single-process run competes at nice 0. The raylet reads it at start.
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # noqa: SIM112 (Ray's own spelling)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ray_start = time.perf_counter() - t0
    started, load_start = stamp(), load_average()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for how in ("single", "ray1", "ray2"):
                r = run_enroll(how, items, Path(tmp), options) | {"repeat": rep + 1}
                runs.append(r)
                print(f"{how} repeat {rep + 1}: {r['faces']} faces, {r['wall']:.1f} s, {r['faces_per_s']:.1f} "
                      f"faces/s (steady {r['steady_faces_per_s']:.1f}); load {r['load_before']} -> "
                      f"{r['load_after']}", file=sys.stderr, flush=True)
    ray.shutdown()
    load_end = load_average()

    def per_cpu(r):
        return r["faces"] / max(r["driver_cpu_s"] + r["actors_cpu_s"], 1e-9)

    def median(how, key):
        return statistics.median(r[key] for r in runs if r["how"] == how)

    lines = [
        "## Enroll throughput: single process vs Ray Data",
        "",
        f"- Date: {started}; machine: {machine()}.",
        f"- Load average (1 / 5 / 15 min) at the start {load_start}, at the end {load_end}; each run's "
        "before and after are in the table. The machine is shared with other engineers' tests and benchmarks.",
        f"- Images: {len(items)} LFW photos (2 per person, people spread over the alphabet), `pick=central`, "
        f"the default gate; a fresh SQLite gallery per run. Local Ray with 2 CPUs (start {ray_start:.1f} s, not "
        f"counted); each actor holds 1 CPU and runs 1 onnxruntime thread, at nice {args.worker_niceness} "
        "(RAY_worker_niceness; Ray's default is 15); the driver commits chunks of 8.",
        "- Job rate: faces enrolled / wall time of the whole call (actor start and model loading included). "
        "Steady rate: images per second from the first committed chunk to the last, times the share enrolled.",
        "- CPU: seconds of CPU the driver process (this one) and the actors spent; faces per CPU-second is the "
        "throughput of one busy core, which the load of other processes changes far less than the wall-clock rates.",
        "",
        "| run | repeat | faces | wall s | faces/s (job) | faces/s (steady) | driver CPU s | actors CPU s | "
        "faces per CPU-s | load before | load after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {LABELS[r['how']]} | {r['repeat']} | {r['faces']} | {r['wall']:.1f} | "
                     f"{r['faces_per_s']:.1f} | {r['steady_faces_per_s']:.1f} | {r['driver_cpu_s']:.1f} | "
                     f"{r['actors_cpu_s']:.1f} | {per_cpu(r):.1f} | {r['load_before']} | {r['load_after']} |")
    one, two, single = (median(h, "steady_faces_per_s") for h in ("ray1", "ray2", "single"))
    job_one, job_two = median("ray1", "faces_per_s"), median("ray2", "faces_per_s")
    ratio = two / one
    lines += [
        "",
        f"Medians over {args.repeats} repeats (steady): single process {single:.1f} faces/s, Ray 1 actor "
        f"{one:.1f}, Ray 2 actors {two:.1f}. Ray 2 actors / 1 actor: **{ratio:.2f}x** steady, "
        f"{job_two / job_one:.2f}x for the whole job; Ray 1 actor / single process: {one / single:.2f}x. "
        "Faces per CPU-second (median): " + ", ".join(
            f"{LABELS[h]} {statistics.median(per_cpu(r) for r in runs if r['how'] == h):.1f}"
            for h in ("single", "ray1", "ray2")) + ".",
        "",
        f"Bar (Ray with 2 workers >= 1.8x its 1-worker throughput): **{'met' if ratio >= 1.8 else 'not met'}** "
        f"({ratio:.2f}x).",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    e = sub.add_parser("enroll", help="enroll throughput: single process vs Ray with 1 and 2 actors")
    e.add_argument("--images", type=int, default=960)
    e.add_argument("--repeats", type=int, default=3)
    e.add_argument("--worker-niceness", type=int, default=0,
                   help="nice level of Ray's workers (Ray's default 15; 0 = the single-process run's)")
    e.add_argument("--out", type=Path, default=OUT)
    s = sub.add_parser("search", help="PostgreSQL and SQLite identify latency (bench/scale_search.py)")
    s.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.part == "search":
        script = Path(__file__).with_name("scale_search.py")
        if not script.exists():
            print("bench/scale_search.py is not on this branch yet (it measures the PostgreSQL backend); it "
                  "writes its rows with scale.write_section(path, 'search', text)", file=sys.stderr)
            return 2
        os.execv(sys.executable, [sys.executable, str(script), *args.rest])
    text = enroll_section(args)
    write_section(args.out, "enroll", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

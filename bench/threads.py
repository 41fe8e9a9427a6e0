"""onnxruntime thread settings under load: which defaults should vultus use?

Embeds the same LFW images (detect + align + embed, sface, batched as the CLI
does) under several settings, on the machine as it is ("idle") and with a
competing CPU-burning process this script starts itself and stops after each
run ("loaded"), alternating settings and conditions run after run so that a
drift in the machine's load falls on every setting alike. Each setting runs in
fresh worker processes that load their models first; only the embedding is
timed: wall seconds from the first worker's start to the last one's end, and
CPU seconds (user + system, every thread) summed over the workers.

    python bench/threads.py                     # 150 images, 3 rounds: about 5 minutes on 2 cores
    python bench/threads.py --images 60 --rounds 1 --no-write   # a smoke run

Settings:
  spin-all     every core as intra-op threads, spinning on: onnxruntime's default and vultus's before
  nospin-all   every core as threads, spinning off
  1-thread     one intra-op thread (nothing to spin)
  procs-1t     one worker process per core, one thread each, the images split between them

Writes bench/results/threads.md (with the machine, the date and the load average
at each run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402

SETTINGS = ("spin-all", "nospin-all", "1-thread", "procs-1t")
CHUNK = 16  # images per embed_batch call
BURN_LIMIT_S = 300  # a burner never outlives this, even if the bench is killed
DECISION = "## What vultus uses, and why"


def lfw_images(n: int) -> list[str]:
    from vultus.data import data_root

    root = data_root()
    if root is None:
        sys.exit("shared data not found (set VULTUS_DATA)")
    people = sorted((root / "lfw" / "images").iterdir())
    out: list[str] = []
    for person in people:
        out += [str(p) for p in sorted(person.glob("*.jpg"))]
        if len(out) >= n:
            break
    return out[:n]


# -- a worker: load, wait for "go", embed, report ----------------------------------------------

def child(threads: int, spinning: bool, paths: list[str]) -> None:
    from vultus.engine import Engine
    from vultus.models import runtime

    runtime.SPINNING = spinning
    engine = Engine(threads=threads)
    engine.embed_batch(paths[:2])  # load every model and warm the sessions
    print("ready", flush=True)
    sys.stdin.readline()
    t0, c0, start = time.perf_counter(), time.process_time(), time.time()
    faces = 0
    for i in range(0, len(paths), CHUNK):
        faces += sum(len(r.unwrap()) for r in engine.embed_batch(paths[i:i + CHUNK]))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu, "start": start, "end": start + wall, "faces": faces}), flush=True)


def run_setting(setting: str, paths: list[str], cores: int) -> dict:
    if setting == "procs-1t":
        parts = [paths[k::cores] for k in range(cores)]
        specs = [(1, False, part) for part in parts]
    else:
        threads = 1 if setting == "1-thread" else cores
        specs = [(threads, setting == "spin-all", paths)]
    procs = []
    for threads, spinning, part in specs:
        p = subprocess.Popen([sys.executable, __file__, "--child", str(threads), str(int(spinning))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        p.stdin.write(json.dumps(part) + "\n")
        p.stdin.flush()
        procs.append(p)
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker failed to start: {line!r}")
    for p in procs:  # all at once
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait(timeout=60)
    return {"wall": max(r["end"] for r in results) - min(r["start"] for r in results),
            "cpu": sum(r["cpu"] for r in results), "faces": sum(r["faces"] for r in results)}


def start_burner() -> subprocess.Popen:
    code = f"import time\nend = time.time() + {BURN_LIMIT_S}\nwhile time.time() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def stop_burner(p: subprocess.Popen) -> float | None:
    """Stops the burner; returns the CPU seconds it got (None where /proc is not there)."""
    try:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        burned = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        burned = None
    p.terminate()
    p.wait(timeout=30)
    return burned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        paths = json.loads(sys.stdin.readline())
        child(int(args.child[0]), bool(int(args.child[1])), paths)
        return

    from vultus.models.runtime import default_threads

    cores = default_threads()
    paths = lfw_images(args.images)
    rows = []
    began = stamp()
    for rnd in range(args.rounds):
        for condition in ("idle", "loaded") if rnd % 2 == 0 else ("loaded", "idle"):
            order = SETTINGS[rnd % len(SETTINGS):] + SETTINGS[:rnd % len(SETTINGS)]
            for setting in order:
                load = load_average()
                burner = start_burner() if condition == "loaded" else None
                try:
                    r = run_setting(setting, paths, cores)
                finally:
                    burned = stop_burner(burner) if burner else None
                r |= {"round": rnd + 1, "condition": condition, "setting": setting, "load": load,
                      "burner_cpu": burned}
                rows.append(r)
                print(f"round {rnd + 1} {condition:6} {setting:10} wall {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s"
                      f"  faces {r['faces']}  load {load}" + (f"  burner got {burned:.1f} s" if burned else ""),
                      flush=True)
    report = render(rows, cores, len(paths), began)
    print(report)
    if not args.no_write:
        out = RESULTS / "threads.md"
        old = out.read_text() if out.is_file() else ""
        if DECISION in old:  # the hand-written conclusions stay; reread them against the new figures
            report += "\n" + old[old.index(DECISION):]
        out.write_text(report)


def render(rows: list[dict], cores: int, n_images: int, began: str) -> str:
    lines = [
        "# onnxruntime threads under load",
        "",
        f"Run {began} to {stamp()} by `python bench/threads.py` on {machine()}.",
        f"{n_images} LFW images (the first people in name order), detect + align + embed with yunet + sface,",
        f"batched {CHUNK} images per call; models loaded before timing. \"loaded\" = one competing process",
        "burning a core, started by the bench for each run. Settings and conditions alternate run by run.",
        "",
        "Medians over the rounds; ratios against `1-thread` under the same condition:",
        "",
        "| condition | setting | wall s | CPU s | wall / 1-thread | CPU / 1-thread |",
        "|---|---|---|---|---|---|",
    ]
    med = {}
    for cond in ("idle", "loaded"):
        for s in SETTINGS:
            rs = [r for r in rows if r["condition"] == cond and r["setting"] == s]
            if rs:
                med[cond, s] = (statistics.median(r["wall"] for r in rs), statistics.median(r["cpu"] for r in rs))
    for (cond, s), (wall, cpu) in med.items():
        base = med.get((cond, "1-thread"))
        lines.append(f"| {cond} | {s} | {wall:.2f} | {cpu:.2f} | "
                     + (f"{wall / base[0]:.2f} | {cpu / base[1]:.2f} |" if base else "- | - |"))
    lines += ["", "Every run, in the order run (load average 1 / 5 / 15 min just before it):", "",
              "| round | condition | setting | wall s | CPU s | faces | load average | burner CPU s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        burned = f"{r['burner_cpu']:.1f}" if r["burner_cpu"] is not None else "-"
        lines.append(f"| {r['round']} | {r['condition']} | {r['setting']} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                     f"{r['faces']} | {r['load']} | {burned} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

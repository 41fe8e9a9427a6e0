"""How long `vultus evaluate lfw` takes: from cold (empty embedding cache, fresh process) and cached.

    python bench/evaluate.py                 # sface, results to bench/results/evaluate.md
    python bench/evaluate.py --embedder dlib-resnet

Each run is the real command in a fresh process (imports, model loading, hashing, detection, embedding,
metrics with 1000 bootstrap resamples, the HTML+JSON report), timed by the wall clock. The cold run uses
an empty temporary cache folder (VULTUS_CACHE), so model files are re-verified too. The machine is shared:
the load average before and after each run is recorded next to its time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_average, machine, stamp  # noqa: E402
from vultus.data import data_root  # noqa: E402


def timed(cmd: list[str], env: dict) -> tuple[float, float, str, str, str]:
    """(wall seconds, CPU seconds of the command and its workers, load before, load after, stdout)."""
    before = load_average()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, before, load_average(), proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="sface")
    ap.add_argument("--lfw", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "evaluate.md")
    args = ap.parse_args()
    lfw = args.lfw or data_root() / "lfw"
    with tempfile.TemporaryDirectory(prefix="vultus-bench-") as tmp:
        env = dict(os.environ, VULTUS_CACHE=str(Path(tmp) / "cache"))
        cmd = [sys.executable, "-m", "vultus", "evaluate", "lfw", str(lfw), "--embedder", args.embedder,
               "--report", str(Path(tmp) / "lfw.html")]
        cold = timed(cmd, env)
        cached = timed(cmd, env)
    summary = [ln for ln in cold[4].splitlines() if ln.startswith(("accuracy", "TAR", "EER"))]
    lines = [
        f"# `vultus evaluate lfw` wall time ({args.embedder})",
        "",
        f"- date: {stamp()}",
        f"- machine: {machine()}",
        f"- command: `vultus evaluate lfw {lfw.name} --embedder {args.embedder}` (6000 pairs, 7701 images, "
        "1000 bootstrap resamples, HTML+JSON report), each run in a fresh process",
        "",
        "| run | wall (s) | CPU (s, all processes) | load average before | after |",
        "|---|---|---|---|---|",
        f"| cold (empty embedding cache) | {cold[0]:.1f} | {cold[1]:.1f} | {cold[2]} | {cold[3]} |",
        f"| cached (second run) | {cached[0]:.1f} | {cached[1]:.1f} | {cached[2]} | {cached[3]} |",
        "",
        "The machine is shared with other jobs: a load average above the core count means the wall time",
        "includes waiting for a core; the CPU column is the work itself.",
        "",
        "Result of the cold run:",
        "",
        "```",
        *summary,
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = args.out.read_text() if args.out.exists() else ""
    args.out.write_text("\n".join(lines) + ("\n" + previous if previous else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

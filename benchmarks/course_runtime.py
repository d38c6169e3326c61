"""Benchmark 4: run time of every notebook under a profile, executed headless as a learner would run it.

    python benchmarks/course_runtime.py --profile cpu            # every notebook
    python benchmarks/course_runtime.py --profile smoke 00 04    # selected chapters

Prints a table last and writes benchmarks/results/course_runtime_<profile>_<cpu|cuda>.json.
Goals: each notebook under 5 minutes with --profile cpu on a 2-core CPU; all of them under 15 minutes with
--profile gpu on one GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table, write_result

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = {"cpu": 300.0, "gpu": None, "smoke": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default="cpu")
    parser.add_argument("chapters", nargs="*", help="two-digit chapter numbers (default: all)")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.chapters]
    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**os.environ, "COURSE_PROFILE": args.profile, "MPLBACKEND": "agg"}
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for nb in notebooks:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--output-dir", out,
                 "--ExecutePreprocessor.timeout=3600", str(nb)],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )
            seconds = time.perf_counter() - t0
            ok = proc.returncode == 0
            goal = GOAL_S[args.profile]
            rows.append({"notebook": nb.name, "seconds": round(seconds, 1), "ok": ok,
                         "goal_s": goal, "meets_goal": (seconds <= goal) if (goal and ok) else None})
            print(f"{nb.name}: {seconds:.1f} s {'ok' if ok else 'FAILED'}", flush=True)
            if not ok:
                print(proc.stderr[-3000:], file=sys.stderr)
    total = sum(r["seconds"] for r in rows)
    path = write_result(f"course_runtime_{args.profile}", {"profile": args.profile, "notebooks": rows, "total_s": round(total, 1)})
    print()
    print(table(rows + [{"notebook": "total", "seconds": round(total, 1)}], ["notebook", "seconds", "ok", "meets_goal"]))
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Benchmark 4: run time of every notebook under a profile, executed headless as a learner would run it.

    python benchmarks/course_runtime.py --profile cpu            # every notebook
    python benchmarks/course_runtime.py --profile smoke 00 04    # selected chapters, merged into the existing JSON
    python benchmarks/course_runtime.py --profile cpu --skip 14 --skip-reason "being written"   # a row saying "not measured"
    python benchmarks/course_runtime.py --profile cpu --note "Measured on a 2-core CPU shared with a training run."

Prints a table last and writes benchmarks/results/course_runtime_<profile>_<cpu|cuda>.json. Each row keeps the hash of
the chapter's code cells (``code_sha256``, see tools/readme_runtimes.py), the commit, the date and the 1-minute load
average when the chapter finished, so a merged file still says when and how each row was measured; then
``python tools/readme_runtimes.py`` writes the README's run-time column from the cpu file.
Goals: each notebook under 5 minutes with --profile cpu on a 2-core CPU; all of them under 15 minutes with
--profile gpu on one GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import RESULTS, environment, table, write_result

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = {"cpu": 300.0, "gpu": None, "smoke": None}


def code_sha256(path: Path) -> str:
    """The hash of a notebook's code cells, as tools/readme_runtimes.py (and tests/test_readme.py) compute it."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from readme_runtimes import code_sha256 as digest
    finally:
        sys.path.pop(0)
    return digest(path)


def run_notebook(nb: Path, profile: str, out: str, commit: str) -> dict:
    """Execute one notebook under ``profile`` and return its row."""
    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**os.environ, "COURSE_PROFILE": profile, "MPLBACKEND": "agg"}
    env.pop("COURSE_SIZES", None)  # the profile's own sizes: that is what a learner runs
    digest = code_sha256(nb)  # before the run: the code that is timed
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--output-dir", out,
         "--ExecutePreprocessor.timeout=3600", str(nb)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    seconds = time.perf_counter() - t0
    ok = proc.returncode == 0
    goal = GOAL_S[profile]
    print(f"{nb.name}: {seconds:.1f} s {'ok' if ok else 'FAILED'}", flush=True)
    if not ok:
        print(proc.stderr[-3000:], file=sys.stderr)
    return {"notebook": nb.name, "seconds": round(seconds, 1), "ok": ok, "goal_s": goal,
            "meets_goal": (seconds <= goal) if (goal and ok) else None, "code_sha256": digest, "commit": commit,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default="cpu")
    parser.add_argument("chapters", nargs="*", help="two-digit chapter numbers (default: all); the other rows of the JSON are kept")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NN", help="chapters not to run: their rows say 'not measured'")
    parser.add_argument("--skip-reason", default="not run", help="why the --skip chapters were not measured")
    parser.add_argument("--note", default=None, help="a sentence on the machine (e.g. what else ran on it), kept in the JSON and the README")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.chapters or nb.name[:2] in args.skip]
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    path = RESULTS / f"course_runtime_{args.profile}_{kind}.json"
    old = json.loads(path.read_text()) if path.exists() and args.chapters else {}
    rows = {r["notebook"]: r for r in old.get("notebooks", [])}
    commit = environment()["commit"]
    with tempfile.TemporaryDirectory() as out:
        for nb in notebooks:
            if nb.name[:2] in args.skip:
                rows[nb.name] = {"notebook": nb.name, "seconds": None, "ok": None, "not_measured": args.skip_reason}
                continue
            rows[nb.name] = run_notebook(nb, args.profile, out, commit)
    ordered = [rows[k] for k in sorted(rows)]
    measured = [r for r in ordered if r.get("seconds") is not None]
    total = round(sum(r["seconds"] for r in measured), 1)
    note = args.note if args.note is not None else old.get("note")
    payload = {"profile": args.profile, **({"note": note} if note else {}), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "notebooks": ordered, "total_s": total}
    path = write_result(f"course_runtime_{args.profile}", payload)
    print()
    print(table(measured + [{"notebook": "total", "seconds": total}], ["notebook", "seconds", "ok", "meets_goal"]))
    print(f"\nwritten to {path.relative_to(ROOT)}; then: python tools/readme_runtimes.py")


if __name__ == "__main__":
    main()

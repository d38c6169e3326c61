"""Benchmark 4: run time of every notebook under a profile, executed headless as a learner would run it.

    python benchmarks/course_runtime.py --profile cpu            # every notebook
    python benchmarks/course_runtime.py --profile smoke 00 04    # selected chapters, merged into the existing JSON
    python benchmarks/course_runtime.py --profile cpu --skip 14 --skip-reason "being written"   # a row saying "not measured"
    python benchmarks/course_runtime.py --profile cpu --note "Measured on a 2-core CPU shared with a training run."
    python benchmarks/course_runtime.py --profile cpu --from-executed 04 06   # no run: the committed notebooks' own times

``--from-executed`` runs nothing: it reads the execution timestamps that the committed, executed notebook stores in each
code cell (first cell's start to last cell's reply, so the kernel's start-up of a few seconds is left out) and keeps
them only when the notebook's first output names the profile and every code cell ran; the row says so
(``"method": "cell timestamps"``). It is how a chapter re-executed for committing gets its run time without a second run.

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


def _stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def executed_row(nb: Path, profile: str, commit: str) -> dict:
    """A row from the committed notebook's own cell timestamps (see the module docstring); raises ValueError when the
    stored run is not a complete run under ``profile``."""
    cells = [c for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code" and "launch" not in c.get("metadata", {}).get("tags", [])]
    stamps = [c.get("metadata", {}).get("execution", {}) for c in cells]
    if not cells or not all("iopub.execute_input" in s and "shell.execute_reply" in s for s in stamps):
        raise ValueError(f"{nb.name}: not every code cell stores its execution times; execute it first")
    first = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", [])) for o in cells[0].get("outputs", []))
    if f"profile '{profile}'" not in first:
        raise ValueError(f"{nb.name}: its stored run is not under the {profile!r} profile (first output: {first[:80]!r})")
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise ValueError(f"{nb.name}: its stored run has an error output")
    start, end = _stamp(stamps[0]["iopub.execute_input"]), _stamp(stamps[-1]["shell.execute_reply"])
    seconds = (end - start).total_seconds()
    goal = GOAL_S[profile]
    print(f"{nb.name}: {seconds:.1f} s from its cell timestamps ({start:%Y-%m-%d %H:%M} UTC)", flush=True)
    return {"notebook": nb.name, "seconds": round(seconds, 1), "ok": True, "goal_s": goal,
            "meets_goal": (seconds <= goal) if goal else None, "code_sha256": code_sha256(nb), "commit": commit,
            "date": end.isoformat(timespec="seconds"), "load_average": None, "method": "cell timestamps"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], default="cpu")
    parser.add_argument("chapters", nargs="*", help="two-digit chapter numbers (default: all); the other rows of the JSON are kept")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NN", help="chapters not to run: their rows say 'not measured'")
    parser.add_argument("--skip-reason", default="not run", help="why the --skip chapters were not measured")
    parser.add_argument("--from-executed", nargs="+", default=[], metavar="NN",
                        help="chapters whose row comes from the committed notebook's cell timestamps (nothing runs)")
    parser.add_argument("--note", default=None, help="a sentence on the machine (e.g. what else ran on it), kept in the JSON and the README")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters or args.from_executed:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.chapters or nb.name[:2] in args.skip or nb.name[:2] in args.from_executed]
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    path = RESULTS / f"course_runtime_{args.profile}_{kind}.json"
    old = json.loads(path.read_text()) if path.exists() and (args.chapters or args.from_executed) else {}
    rows = {r["notebook"]: r for r in old.get("notebooks", [])}
    commit = environment()["commit"]
    with tempfile.TemporaryDirectory() as out:
        for nb in notebooks:
            if nb.name[:2] in args.skip:
                rows[nb.name] = {"notebook": nb.name, "seconds": None, "ok": None, "not_measured": args.skip_reason}
                continue
            if nb.name[:2] in args.from_executed:
                rows[nb.name] = executed_row(nb, args.profile, commit)
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

"""Write the README's "`cpu` run time" column from the benchmark's JSON:  python tools/readme_runtimes.py

The numbers come from ``python benchmarks/course_runtime.py --profile cpu`` (all chapters, or a few: it merges them
into benchmarks/results/course_runtime_cpu_cpu.json). Each row of that file keeps the hash of the chapter's code cells
when it was timed (``code_sha256``: the cells' source only, so re-executing or tidying a chapter keeps it and editing
its code does not), and tests/test_readme.py fails when a chapter's code has changed since, naming the command to
re-run. A chapter that was not timed (added after the run, or being written while it ran) has a row with
``not_measured`` (the reason) and shows "not measured":

    python tools/readme_runtimes.py                       # rewrite the column and the "Run times:" paragraph
    python tools/readme_runtimes.py --not-measured 14 15 --reason "added after the last run"
    python tools/readme_runtimes.py --check               # exit 1 when the README or the JSON is out of date
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULT = ROOT / "benchmarks" / "results" / "course_runtime_cpu_cpu.json"
NOT_MEASURED = "not measured"
WIDTH = 120  # the README's prose is wrapped at this width
ROW = re.compile(r"^\| (\d\d) \| \[[^\]]+\]\(notebooks/([^)]+\.ipynb)\) \|")
PARAGRAPH = re.compile(r"^Run times: .*?(?=\n\n)", re.S | re.M)


def notebooks() -> list[Path]:
    """The chapters on disk, in order."""
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def code_sha256(path: Path) -> str:
    """SHA-256 of a notebook's code cells' source, in order (outputs, metadata and markdown left out, and the launch
    cell of tools/launch_cell.py, tagged ``launch``, which installs the course where it is missing and times nothing)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and "launch" not in c.get("metadata", {}).get("tags", [])]
    return hashlib.sha256(json.dumps(code, ensure_ascii=False).encode("utf-8")).hexdigest()


def load(path: Path = RESULT) -> dict:
    """The benchmark's JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def rows_by_name(data: dict) -> dict[str, dict]:
    """The JSON's rows keyed by notebook file name."""
    return {r["notebook"]: r for r in data["notebooks"]}


def cell(row: dict | None) -> str:
    """What the README's run-time column shows for one chapter's row (None: no row at all)."""
    if row is None or row.get("not_measured") or row.get("seconds") is None:
        return NOT_MEASURED
    if not row.get("ok", False):
        return f"failed after {row['seconds']:,.0f} s"
    return f"{row['seconds']:,.0f} s"


def paragraph(data: dict) -> str:
    """The README's "Run times:" paragraph under the table: how and where the column was measured."""
    rows = [r for r in data["notebooks"] if not r.get("not_measured") and r.get("seconds") is not None]
    env = data["environment"]
    loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
    load_text = f", load average {min(loads):.1f}–{max(loads):.1f} as each chapter finished" if loads else ""
    total = sum(r["seconds"] for r in rows)
    text = (f"Run times: each notebook executed headless with `COURSE_PROFILE={data['profile']}` by "
            f"`python benchmarks/course_runtime.py --profile {data['profile']}` ({len(rows)} chapters, {total / 60:.0f} min in all; "
            f"{env['device']}, torch {env['torch']}{load_text}). {data.get('note', '')}".rstrip() + " "
            "`python tools/readme_runtimes.py` writes the column from `benchmarks/results/course_runtime_cpu_cpu.json`, and "
            "`tests/test_readme.py` checks that they agree and that each chapter's code is the code that was timed.")
    stamped = [r["notebook"][:2] for r in rows if r.get("method") == "cell timestamps"]
    if stamped:
        text += (f" Chapters {', '.join(stamped)} were timed by the cell timestamps of their committed run (`--from-executed`: "
                 "kernel start-up left out, on the same machine, shared with other work).")
    skipped = [(r["notebook"][:2], r["not_measured"]) for r in data["notebooks"] if r.get("not_measured")]
    if skipped:
        text += " Not measured: " + "; ".join(f"{n} ({why})" for n, why in skipped) + "."
    return wrap(text)


def wrap(text: str, width: int = WIDTH) -> str:
    """``text`` filled to lines of at most ``width`` characters, never breaking inside a `code span`."""
    lines: list[str] = []
    for word in re.findall(r"(?:[^\s`]*`[^`]*`)+[^\s`]*|\S+", text):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def rewrite(readme: str, data: dict) -> str:
    """``readme`` with every chapter row's last cell and the "Run times:" paragraph written from ``data``."""
    rows = rows_by_name(data)
    lines = []
    for line in readme.split("\n"):
        m = ROW.match(line)
        if m:
            head, _, tail = line.rstrip().rsplit("|", 2)
            line = f"{head}| {cell(rows.get(m.group(2)))} |{tail}"
        lines.append(line)
    text = "\n".join(lines)
    if not PARAGRAPH.search(text):
        raise ValueError("README.md has no paragraph starting 'Run times: ' to rewrite")
    return PARAGRAPH.sub(lambda _: paragraph(data), text, count=1)


def readme_cells(readme: str) -> dict[str, str]:
    """The run-time cell of each chapter row of ``readme``, keyed by notebook file name."""
    out = {}
    for line in readme.split("\n"):
        m = ROW.match(line)
        if m:
            out[m.group(2)] = line.rstrip().rsplit("|", 2)[1].strip()
    return out


def problems(data: dict) -> list[str]:
    """What makes the JSON out of date for the chapters on disk: missing or extra rows, code changed since it was timed."""
    rows = rows_by_name(data)
    on_disk = {p.name: p for p in notebooks()}
    out = []
    missing = sorted(set(on_disk) - set(rows))
    if missing:
        chapters = " ".join(n[:2] for n in missing)
        out.append(f"the JSON has no row for {missing}: run `python benchmarks/course_runtime.py --profile cpu {chapters}`, or mark them "
                   f"`python tools/readme_runtimes.py --not-measured {chapters} --reason \"...\"`")
    extra = sorted(set(rows) - set(on_disk))
    if extra:
        out.append(f"the JSON has rows for chapters that no longer exist: {extra} (re-run the benchmark for every chapter)")
    changed = sorted(n for n, p in on_disk.items() if n in rows and not rows[n].get("not_measured") and rows[n].get("code_sha256") != code_sha256(p))
    if changed:
        out.append(f"the code of {changed} changed since it was timed: re-run `python benchmarks/course_runtime.py --profile cpu "
                   f"{' '.join(n[:2] for n in changed)}`, then `python tools/readme_runtimes.py`")
    return out


def mark_not_measured(data: dict, chapters: list[str], reason: str) -> dict:
    """``data`` with a "not measured" row (and ``reason``) for each chapter number in ``chapters``, in chapter order."""
    if not reason.strip():
        raise ValueError("reason must say why the chapters were not measured; got an empty string")
    rows = rows_by_name(data)
    for n in chapters:
        match = [p for p in notebooks() if p.name[:2] == n]
        if not match:
            raise ValueError(f"chapters must be two-digit numbers of notebooks on disk; got {n!r}")
        rows[match[0].name] = {"notebook": match[0].name, "seconds": None, "ok": None, "not_measured": reason}
    return {**data, "notebooks": [rows[k] for k in sorted(rows)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the README or the JSON is out of date")
    parser.add_argument("--not-measured", nargs="+", default=[], metavar="NN", help="record these chapters as not measured")
    parser.add_argument("--reason", default="", help="why (with --not-measured), shown in the README")
    args = parser.parse_args(argv)
    data = load()
    if args.not_measured and not args.check:
        data = mark_not_measured(data, args.not_measured, args.reason)
        RESULT.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    before = README.read_text(encoding="utf-8")
    after = rewrite(before, data)
    issues = problems(data)
    for issue in issues:
        print(issue, file=sys.stderr)
    if args.check:
        if after != before:
            print("README.md's run times differ from the JSON: run python tools/readme_runtimes.py", file=sys.stderr)
        return int(after != before or bool(issues))
    if after != before:
        README.write_text(after, encoding="utf-8")
        print("README.md: run times rewritten from", RESULT.relative_to(ROOT))
    return int(bool(issues))


if __name__ == "__main__":
    sys.exit(main())

"""Tidy executed chapters before they are committed: python tools/tidy_notebooks.py notebooks/*.ipynb  (or: make tidy)

1. The kernelspec JupyterLab writes. Opening a chapter in JupyterLab 4.6 and saving it unchanged shows the only change
   JupyterLab makes on open: the kernelspec becomes the installed ipykernel spec ({"display_name": "Python 3
   (ipykernel)", "language": "python", "name": "python3"}). A notebook with another display name opens modified, and
   autosave then rewrites it.
2. Stored progress bars as JupyterLab shows them. A text progress bar writes each update to stderr, ending with a
   carriage return; the saved notebook keeps every update as its own output. Consecutive stream outputs of the same
   name are merged and text overwritten by a carriage return is dropped, as nbconvert's CoalesceStreamsPreprocessor
   does (which cannot be used in the executing run itself: it runs before the ExecutePreprocessor).

Cells, other outputs, language_info and widget state are left exactly as they are; the file is written back the way
the chapters are stored (indent 1, non-ASCII kept, trailing newline) and only when something changed.
"""

from __future__ import annotations

import json
import re
import sys

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
OVERWRITTEN = re.compile(r".*\r(?=[^\n])")  # a line up to a carriage return that more text follows: overwritten on screen


def coalesce(outputs: list[dict]) -> list[dict]:
    merged: list[dict] = []
    for out in outputs:
        last = merged[-1] if merged else None
        if out.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream" and last["name"] == out["name"]:
            last["text"] = "".join(last["text"]) + "".join(out["text"])
        else:
            merged.append(dict(out))
    for out in merged:
        if out.get("output_type") == "stream":
            text = "".join(out["text"])
            out["text"] = OVERWRITTEN.sub("", text).splitlines(keepends=True)
    return merged


def tidy(nb: dict) -> dict:
    nb["metadata"]["kernelspec"] = dict(KERNELSPEC)
    for cell in nb["cells"]:
        if cell.get("outputs"):
            cell["outputs"] = coalesce(cell["outputs"])
    return nb


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            before = f.read()
        after = json.dumps(tidy(json.loads(before)), indent=1, ensure_ascii=False) + "\n"
        if after != before:
            with open(path, "w", encoding="utf-8") as f:
                f.write(after)
            print(f"tidied {path} ({len(before):,} -> {len(after):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write constraints.txt: the exact versions installed in this environment (``make constraints``). Run it only after a
deliberate upgrade that `make test` passed; tests/test_environment.py then checks the pins against pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEADER = """# The exact set of packages the course was tested with (Python 3.11, x86-64 Linux, CPU; torch's CUDA build).
# make install / make test install from it: pip install -c constraints.txt -e '.[test]'. pyproject.toml keeps the
# ranges the course needs; tests/test_environment.py checks that every pin here lies inside them. Refresh it with
# make constraints (after a pip install -U in .venv and a green make test).
"""


def main() -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         check=True, capture_output=True, text=True).stdout
    pins = [ln for ln in out.splitlines() if "==" in ln and not ln.lower().startswith("diffusion-course")]
    path = Path(__file__).resolve().parents[1] / "constraints.txt"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(HEADER + "\n".join(pins) + "\n")
    tmp.replace(path)
    print(f"{len(pins)} pins -> {path}")


if __name__ == "__main__":
    main()

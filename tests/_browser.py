"""Helpers for the real-browser test (tests/test_browser.py): a JupyterLab server on a temporary copy of the notebooks,
headless Chromium driven through Playwright, and the noise-schedule formulas written out again in numpy.

Nothing here touches the repository's notebooks: the server runs in a temporary directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/snap/bin/chromium")


def find_chromium() -> tuple[str | None, str]:
    """(path to a Chromium binary, '') or (None, why not). $CHROMIUM overrides the search."""
    env = os.environ.get("CHROMIUM")
    candidates = [env] if env else [*CHROMIUM_CANDIDATES, shutil.which("chromium") or "", shutil.which("chromium-browser") or ""]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            try:
                import playwright.sync_api  # noqa: F401
            except ImportError:
                return None, "the Python package playwright is not installed (pip install -e '.[test]')"
            return c, ""
    return None, "no Chromium found (looked at $CHROMIUM, " + ", ".join(CHROMIUM_CANDIDATES) + " and PATH)"


def oracle_betas(kind: str, T: int, b1: float, bT: float) -> np.ndarray:
    """The four schedules from their definitions, in numpy float64 (independent of the course package)."""
    if kind == "linear":
        return np.linspace(b1, bT, T)
    if kind == "quadratic":
        return np.linspace(math.sqrt(b1), math.sqrt(bT), T) ** 2
    if kind == "sigmoid":
        return b1 + (bT - b1) / (1 + np.exp(-np.linspace(-6, 6, T)))
    if kind == "cosine":
        f = np.cos((np.arange(T + 1) / T + 0.008) / 1.008 * np.pi / 2) ** 2
        return np.minimum(1 - f[1:] / f[:-1], 0.999)
    raise ValueError(f"unknown schedule kind {kind!r}")


def expected_readout(kind: str, T: int, b1: float, bT: float, t: int) -> dict[str, float]:
    ab = np.cumprod(1 - oracle_betas(kind, T, b1, bT))
    a = float(ab[t])
    return {"alpha_bar_t": a, "sqrt_alpha_bar_t": math.sqrt(a), "sqrt_one_minus_alpha_bar_t": math.sqrt(1 - a), "snr_t": a / (1 - a)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``with LabServer(tmp_dir) as lab:`` a JupyterLab on a copy of notebooks/ in ``tmp_dir``, COURSE_PROFILE=smoke.

    ``lab.url(path)`` gives a URL with the token; ``lab.notebook_dir`` is the copy. The server runs in its own process
    group, so leaving the block stops it and every kernel it started."""

    def __init__(self, tmp_dir: Path, profile: str = "smoke", startup_timeout: float = 120.0, extra_env: dict | None = None) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.extra_env = dict(extra_env or {})
        self.notebook_dir = self.tmp_dir / "notebooks"
        self.profile = profile
        self.startup_timeout = startup_timeout
        self.port = _free_port()
        self.token = "browser-test-" + os.urandom(8).hex()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp_dir / "jupyterlab.log"

    def url(self, path: str = "lab", **query: str) -> str:
        q = "&".join([f"token={self.token}"] + [f"{k}={v}" for k, v in query.items()])
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?{q}"

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict | list:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def __enter__(self) -> LabServer:
        shutil.copytree(ROOT / "notebooks", self.notebook_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        jupyter = Path(sys.executable).with_name("jupyter")
        env = {**os.environ, "COURSE_PROFILE": self.profile, "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(self.tmp_dir / "config"),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.tmp_dir / "workspaces")}
        env.pop("MPLBACKEND", None)  # the notebooks choose inline themselves
        env.update(self.extra_env)
        cmd = [str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={self.port}", "--ip=127.0.0.1",
               f"--notebook-dir={self.notebook_dir}", f"--ServerApp.token={self.token}", "--ServerApp.password=",
               "--NotebookNotary.db_file=:memory:",  # nothing is trusted: as a learner's fresh copy
               f"--LabApp.workspaces_dir={self.tmp_dir / 'workspaces'}", "--LabApp.news_url=None",
               "--ServerApp.disable_check_xsrf=True"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.tmp_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if "started" in self.api("status"):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout:.0f} s:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        try:
            for k in self.api("kernels"):
                self.api(f"kernels/{k['id']}", method="DELETE")
        except Exception:  # noqa: BLE001 - the server may already be gone; the group kill below still runs
            pass
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # kernels are in the same process group: make sure none is left
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        self.proc = None

"""`make lab` starts a real JupyterLab: start the same server on a free port, query its HTTP API, stop it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read()


def test_makefile_lab_target_runs_jupyterlab_on_notebooks() -> None:
    text = (ROOT / "Makefile").read_text()
    lab = text.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "jupyter lab" in lab and "--notebook-dir=notebooks" in lab


def test_jupyterlab_serves_the_notebooks() -> None:
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        found = shutil.which("jupyter")
        if found is None:
            pytest.fail("jupyter is not installed in the test environment")
        jupyter = Path(found)
    port, token = _free_port(), "course-test-token"
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--notebook-dir=notebooks", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", "--allow-root"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited early: {proc.stderr.read().decode()[-2000:]}")
            try:
                code, body = _get(f"{base}/api/status", token)
                status = json.loads(body)
                break
            except OSError:
                time.sleep(0.5)
        assert status is not None and "started" in status, "JupyterLab did not answer /api/status within 60 s"
        code, body = _get(f"{base}/api/contents", token)
        names = {item["name"] for item in json.loads(body)["content"]}
        assert "00_start_here.ipynb" in names
        code, _ = _get(f"{base}/lab", token)
        assert code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

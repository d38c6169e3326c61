"""The beta_t explorer's response time in a real browser: input event to new figure, per control.

    .venv/bin/python benchmarks/explorer_latency.py                 # the installed package
    .venv/bin/python benchmarks/explorer_latency.py --lib /tmp/old  # another copy of the package (PYTHONPATH), e.g. an
                                                                    # older commit: git archive <rev> lib | tar -x -C /tmp/old

Starts JupyterLab on a temporary copy of notebooks/ (COURSE_PROFILE=smoke), opens chapter 02 in headless Chromium at
1280 x 800 with the file browser open, runs all cells, then presses keys on the t, T and beta_T sliders and picks
schedules in the dropdown, timing each from the input event to the replacement of the figure's <img> (page clock).
Selectors rely only on the slider labels, so older versions of the explorer can be measured too. The goal: 150 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _browser import LabServer, find_chromium  # noqa: E402

BOX = "[...document.querySelectorAll('.widget-vbox')].filter(b => b.textContent.includes('t (code index')).pop()"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", help="a directory to put first on the kernel's PYTHONPATH (another copy of diffusion_course)")
    ap.add_argument("--repeat", type=int, default=5, help="changes per control")
    ap.add_argument("--out", default=str(ROOT / "build" / "explorer_latency.json"))
    args = ap.parse_args()
    chromium, why = find_chromium()
    if chromium is None:
        sys.exit(f"cannot run: {why}")
    from playwright.sync_api import sync_playwright

    extra = {"PYTHONPATH": args.lib} if args.lib else {}
    with tempfile.TemporaryDirectory() as tmp, LabServer(Path(tmp), extra_env=extra) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(180_000)
        page.goto(lab.url("lab/tree/02_forward_process.ipynb", reset=""))
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        time.sleep(5)
        page.locator(".jp-Notebook").first.click()
        page.get_by_text("Run", exact=True).first.click()
        page.get_by_text("Run All Cells", exact=True).click()
        page.wait_for_function(f"() => {{ const b = {BOX}; return b && b.querySelector('img'); }}", timeout=600_000)
        quiet, start = 0, time.time()
        while quiet < 3 and time.time() - start < 600:  # let the remaining cells finish (errors after the explorer are fine)
            busy = page.evaluate("() => [...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'))")
            quiet = 0 if busy else quiet + 1
            time.sleep(1)
        page.evaluate(f"""() => {{
            const box = {BOX}; box.scrollIntoView();
            const st = window.__be = {{inputs: [], changes: [], src: box.querySelector('img').src}};
            for (const ev of ['keydown', 'change']) document.addEventListener(ev, e => st.inputs.push(e.timeStamp), true);
            new MutationObserver(() => {{ const i = box.querySelector('img');
                if (i && i.src !== st.src) {{ st.src = i.src; st.changes.push(performance.now()); }} }})
                .observe(box, {{subtree: true, childList: true, attributes: true, attributeFilter: ['src']}});
        }}""")

        def timed(action) -> float:
            page.evaluate("() => { window.__be.inputs = []; window.__be.changes = []; }")
            action()
            page.wait_for_function("() => window.__be.changes.length > 0", timeout=60_000)
            time.sleep(0.4)
            st = page.evaluate("() => window.__be")
            return st["changes"][-1] - st["inputs"][0]

        def slider_key(label: str, key: str):
            def act():
                h = page.locator(".widget-slider", has=page.locator("label", has_text=label)).locator(".noUi-handle").last
                h.focus()
                h.press(key)
            return act

        select = page.locator(".widget-dropdown", has=page.locator("label", has_text="schedule")).locator("select").last
        times: dict[str, list[float]] = {"t (keyboard)": [], "schedule (dropdown)": [], "T (keyboard)": [], "beta_T (keyboard)": []}
        kinds = ["quadratic", "sigmoid", "linear"]  # the notebook leaves the explorer on linear
        for i in range(args.repeat):
            kind = kinds[i % 3]
            times["t (keyboard)"].append(timed(slider_key("t (code index", "ArrowRight" if i % 2 == 0 else "ArrowLeft")))
            times["schedule (dropdown)"].append(timed(lambda k=kind: select.select_option(label=k)))
            times["T (keyboard)"].append(timed(slider_key("T (steps)", "ArrowLeft" if i % 2 == 0 else "ArrowRight")))
            times["beta_T (keyboard)"].append(timed(slider_key("beta_T", "ArrowLeft" if i % 2 == 0 else "ArrowRight")))
        browser.close()
    summary = {k: {"n": len(v), "median_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1)} for k, v in times.items()}
    print(f"beta_t explorer, input -> new figure ({'package from ' + args.lib if args.lib else 'installed package'}):")
    print(f"  {'control':22s} {'n':>3s} {'median ms':>10s} {'max ms':>8s}")
    for k, s in summary.items():
        print(f"  {k:22s} {s['n']:3d} {s['median_ms']:10.0f} {s['max_ms']:8.0f}")
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({"lib": args.lib or "installed", "per_control": summary, "times_ms": times}, indent=1) + "\n")


if __name__ == "__main__":
    main()

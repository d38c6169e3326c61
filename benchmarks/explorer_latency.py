"""The explorers' response time: a new (uncached) setting of the DDIM and guidance explorers, and the beta_t explorer
in a real browser.

    .venv/bin/python benchmarks/explorer_latency.py                 # DDIM (ch. 8) and guidance (ch. 11) explorers, a 2-thread kernel
    .venv/bin/python benchmarks/explorer_latency.py --explorer-threads 1 none   # the explorers' default (1) and torch's own setting
    .venv/bin/python benchmarks/explorer_latency.py --threads 2 --n 16 --steps 20   # another size
    .venv/bin/python benchmarks/explorer_latency.py --busy 1        # with one other process spinning (a busy 2-core machine)
    .venv/bin/python benchmarks/explorer_latency.py --browser       # the beta_t explorer (ch. 2) in headless Chromium
    .venv/bin/python benchmarks/explorer_latency.py --browser --lib /tmp/old  # another copy of the package (PYTHONPATH), e.g.
                                                                    # an older commit: git archive <rev> lib | tar -x -C /tmp/old

Compute mode (the default) builds each explorer on the shipped weights as chapters 8 and 11 do (under the cpu profile)
and changes one control at a time to a setting not seen before, timing the explorer's whole update (sampling, the
classifier read-out, the PNG) in wall-clock and in CPU seconds of the process (the work, which other load on the
machine does not change). ``--threads`` is torch's thread count in the kernel (a notebook's: 2 on a 2-core machine);
``--explorer-threads`` is the explorer's ``threads`` argument, the threads it computes on (1, its default, or none:
torch's own setting). It also times going back to a cached setting. Writes
benchmarks/results/explorer_latency_<cpu|cuda>.json with lscpu's model name and the load average before and after.
The goal: a new setting within 1 s in a 2-thread kernel on a busy 2-core machine.

Browser mode starts JupyterLab on a temporary copy of notebooks/ (COURSE_PROFILE=smoke), opens chapter 02 in headless
Chromium at 1280 x 800 with the file browser open, runs all cells, then presses keys on the t, T and beta_T sliders and
picks schedules in the dropdown, timing each from the input event to the replacement of the figure's <img> (page
clock). Selectors rely only on the slider labels, so older versions of the explorer can be measured too. The goal: 150 ms.
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
    ap.add_argument("--browser", action="store_true", help="time the beta_t explorer in headless Chromium instead")
    ap.add_argument("--lib", help="(--browser) a directory to put first on the kernel's PYTHONPATH (another copy of diffusion_course)")
    ap.add_argument("--repeat", type=int, default=None, help="changes per control (default: 5 in the browser, 4 in compute mode)")
    ap.add_argument("--out", default=None, help="where the JSON goes (default: build/explorer_latency.json with --browser, "
                    "benchmarks/results/explorer_latency_<device>.json otherwise)")
    ap.add_argument("--threads", type=int, nargs="+", default=[2], help="(compute) torch thread counts of the kernel")
    ap.add_argument("--explorer-threads", nargs="+", default=["1", "none"], help="(compute) the explorers' threads argument: "
                    "a count, or none for torch's own setting")
    ap.add_argument("--n", type=int, default=None, help="(compute) samples per grid (default: each explorer's default)")
    ap.add_argument("--steps", type=int, default=None, help="(compute) DDIM steps (default: each explorer's default)")
    ap.add_argument("--explorers", nargs="+", default=["ddim", "guidance"], choices=["ddim", "guidance"])
    ap.add_argument("--busy", type=int, default=0, help="(compute) keep this many other processes spinning meanwhile: a busy "
                    "machine, reproducibly (1 on a 2-core machine = other work on one core)")
    args = ap.parse_args()
    if args.browser:
        browser(args)
    else:
        compute(args)


def _machine() -> dict:
    import os
    import subprocess

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "unknown")
    except (OSError, subprocess.CalledProcessError):
        model = "unknown"
    return {"cpu_model": model, "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}


def _compute_changes(name: str, ex, repeat: int) -> list[tuple[str, object]]:
    """(control, new value) pairs, each giving a setting the explorer has not computed yet."""
    if name == "ddim":
        s0 = ex.steps.value
        options = list(ex.steps.options) if hasattr(ex.steps, "options") else None
        def step_to(i):  # the next step count up (or down at the end of the range)
            if options:
                j = options.index(s0)
                return options[j + i] if j + i < len(options) else options[j - i]
            return s0 + i if s0 + i <= ex.steps.max else s0 - i
        out = []
        for i in range(repeat):
            out += [("eta", round(0.1 * (i + 1), 1)), ("spacing", ["leading", "trailing", "quadratic", "uniform"][i % 4]),
                    ("clip", i % 2 == 0), ("seed", 100 + i), ("steps", step_to(i + 1))]
        return out
    out = []
    w_values = [v / 2 for v in range(0, 17) if v / 2 != ex.w.value]
    for i in range(repeat):
        out += [("w", w_values[i % len(w_values)]), ("digit", (ex.digit.value + 1 + i) % 10), ("seed", 100 + i)]
    return out


def compute(args) -> None:
    """Time the DDIM and guidance explorers' update on new settings (the explorers as the chapters build them), with
    ``args.busy`` other processes spinning meanwhile."""
    import subprocess

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _compute(args)
    finally:
        for proc in spinners:
            proc.kill()


def _compute(args) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import table, write_result

    from diffusion_course import load_classifier, load_pretrained_cond_unet, load_pretrained_unet, schedule_from_card
    from diffusion_course.teaching.ddim_explorer import DDIMExplorer
    from diffusion_course.teaching.guidance_explorer import GuidanceExplorer

    repeat = args.repeat or 4
    before = _machine()
    classifier, _ = load_classifier()
    built = {}
    if "ddim" in args.explorers:
        model, card = load_pretrained_unet()
        schedule = schedule_from_card(card)
        built["ddim"] = (lambda kw, m=model, s=schedule: DDIMExplorer(m, s, **kw))
    if "guidance" in args.explorers:
        cmodel, ccard = load_pretrained_cond_unet()
        cschedule = schedule_from_card(ccard)
        built["guidance"] = (lambda kw, m=cmodel, s=cschedule: GuidanceExplorer(m, s, classifier=classifier, **kw))
    size = {k: v for k, v in (("n", args.n), ("steps", args.steps)) if v is not None}
    rows, raw = [], {}
    settings = [(k, None if e.lower() == "none" else int(e)) for k in args.threads for e in args.explorer_threads]
    for threads, explorer_threads in settings:
        torch.set_num_threads(threads)
        for name, make in built.items():
            t0 = time.perf_counter()
            ex = make({**size, "threads": explorer_threads})
            first = time.perf_counter() - t0
            steps0 = int(ex.steps.value)
            times: dict[str, list[float]] = {}
            cpu = []  # CPU seconds of this process (all threads): the work, whatever else the machine runs
            for control, value in _compute_changes(name, ex, repeat):
                previous = (control, getattr(ex, control).value)
                t0, c0 = time.perf_counter(), time.process_time()
                getattr(ex, control).value = value
                times.setdefault(control, []).append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            computed = ex.n_computed
            t0 = time.perf_counter()
            getattr(ex, previous[0]).value = previous[1]  # undo the last change: a setting seen before, from the cache
            cached = time.perf_counter() - t0
            assert ex.n_computed == computed, "going back to a setting seen before sampled again"
            new = [x for v in times.values() for x in v]
            computes_on = explorer_threads or threads
            rows.append({"explorer": name, "threads": threads, "explorer_threads": str(explorer_threads).lower(),
                         "computes_on": computes_on, "n": ex.n, "steps": steps0,
                         "first_s": round(first, 3), "new_median_s": round(statistics.median(new), 3),
                         "new_max_s": round(max(new), 3), "new_cpu_median_s": round(statistics.median(cpu), 3), "cached_ms": round(1000 * cached, 1)})
            raw[f"{name}_{threads}_{str(explorer_threads).lower()}"] = {c: [round(x, 4) for x in v] for c, v in times.items()}
            print(f"  {name}, a {threads}-thread kernel, computing on {computes_on}: median {statistics.median(new):.2f} s per "
                  "new setting", flush=True)
    payload = {"machine_before": before, "machine_after": _machine(), "busy_processes": args.busy, "rows": rows, "per_control_s": raw,
               "goal": "a new setting within 1 s in a 2-thread kernel on a busy 2-core machine"}
    path = write_result("explorer_latency", payload) if args.out is None else Path(args.out)
    if args.out is not None:
        path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"CPU: {before['cpu_model']} x {before['cpus']}; {args.busy} busy process(es) beside; "
          f"load average before {before['loadavg'][0]:.2f}, after {payload['machine_after']['loadavg'][0]:.2f}")
    print(table(rows, ["explorer", "threads", "explorer_threads", "computes_on", "n", "steps", "first_s", "new_median_s", "new_max_s",
                       "new_cpu_median_s", "cached_ms"]))
    print(f"written to {path}")


def browser(args) -> None:
    """The beta_t explorer in headless Chromium: input event to new figure, per control."""
    repeat = args.repeat or 5
    out = args.out or str(ROOT / "build" / "explorer_latency.json")
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
        for i in range(repeat):
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
    Path(out).parent.mkdir(exist_ok=True)
    Path(out).write_text(json.dumps({"lib": args.lib or "installed", "per_control": summary, "times_ms": times}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""The offline reveal.js export of the chapter notebooks (all chapters).

``python -m diffusion_course.teaching.slides export --out build/slides notebooks/*.ipynb`` (``make slides``) runs nbconvert's
``SlidesExporter`` (what ``jupyter nbconvert --to slides`` runs) with a small template on top of its reveal template,
and writes ``NN_name.slides.html`` plus an ``assets/`` folder beside them. The cells' own slide types are used; a
cell without one gets the rule's type for the export (the notebook file is not changed). Nothing is loaded from the network, so the
folder works from ``file://`` with the network unplugged:

- reveal.js 4.6.1 (MIT) and MathJax 3.2.2 (Apache-2.0, the single-file ``tex-svg-full.js``: SVG glyphs, no web fonts,
  no extension loading) come from ``vendor/`` in the source tree and are copied into ``assets/``;
- require.js, jQuery and mermaid, which the stock template loads from CDNs, are not needed and not loaded;
- the Font Awesome stylesheet that matplotlib's HTML animations link for their player buttons is dropped, and the
  template draws those buttons with plain characters;
- an export that would still reference anything on the network stops with an error naming it;
- saved widget views are drawn as static HTML from the notebook's saved widget state (a finished progress bar, a
  slider at its saved value, the image an explorer showed) instead of loading the widget manager from a CDN;
  a widget kind the snapshot does not know falls back to its plain-text form.

The slide types come from the rule in :mod:`.slide_rule`; the command line is :mod:`.slides`.
"""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

from . import slide_rule

ROOT = Path(__file__).resolve().parents[3]  # the source tree: lib/diffusion_course/teaching/slides_export.py
VENDOR_DIR = ROOT / "vendor"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# --------------------------------------------------------------------------------------------------------------- widgets
def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _widget_html(model_id: str, state: dict, depth: int = 0) -> str | None:
    """Static HTML for one saved widget model, or None when its kind is not one the snapshot draws."""
    model = state.get(model_id)
    if model is None or depth > 20:
        return None
    name, s = model.get("model_name", ""), model.get("state", {})
    desc = s.get("description") or ""
    label = f'<span class="cw-desc">{_esc(desc)}</span> ' if desc else ""

    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"):
        parts = [_widget_html(str(c).removeprefix("IPY_MODEL_"), state, depth + 1) for c in s.get("children", [])]
        if any(p is None for p in parts):
            return None
        direction = "column" if name == "VBoxModel" else "row"
        align = "flex-start" if name == "VBoxModel" else "center"
        return f'<div class="cw-box" style="display:flex;flex-direction:{direction};align-items:{align};gap:0.4em">{"".join(parts)}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{label}{s.get('value', '')}</div>"  # the notebook's own saved HTML, as the live widget shows it
    if name == "LabelModel":
        return f"<span>{label}{_esc(s.get('value', ''))}</span>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        lo, hi, v = float(s.get("min", 0)), float(s.get("max", 100)), float(s.get("value", 0))
        span = hi - lo if hi > lo else 1.0
        return f'{label}<progress value="{(v - lo) / span:.4f}" max="1" style="width:12em"></progress>'
    if name in ("IntSliderModel", "FloatSliderModel", "FloatLogSliderModel"):
        v = s.get("value", 0)
        if name == "FloatLogSliderModel":
            import math

            pos = math.log(float(v), float(s.get("base", 10))) if float(v) > 0 else float(s.get("min", 0))
        else:
            pos = v
        return (f'<span>{label}<input type="range" disabled min="{_esc(s.get("min", 0))}" max="{_esc(s.get("max", 100))}" '
                f'step="any" value="{_esc(pos)}"> <code>{_esc(v)}</code></span>')
    if name == "SelectionSliderModel":  # a slider over named stops (chapter 8's steps): its position and the stop's label
        labels, idx = s.get("_options_labels", []), s.get("index")
        if not isinstance(idx, int) or not 0 <= idx < len(labels):
            return None
        return (f'<span>{label}<input type="range" disabled min="0" max="{len(labels) - 1}" step="1" value="{idx}"> '
                f"<code>{_esc(labels[idx])}</code></span>")
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        labels, idx = s.get("_options_labels", []), s.get("index")
        if name == "ToggleButtonsModel":
            buttons = "".join(
                f'<button disabled style="{"font-weight:bold;border:2px solid #333" if i == idx else ""}">{_esc(o)}</button>' for i, o in enumerate(labels)
            )
            return f"<span>{label}{buttons}</span>"
        chosen = labels[idx] if isinstance(idx, int) and 0 <= idx < len(labels) else ""
        return f"<span>{label}<select disabled><option selected>{_esc(chosen)}</option></select></span>"
    if name == "CheckboxModel":
        return f'<label><input type="checkbox" disabled{" checked" if s.get("value") else ""}> {_esc(desc)}</label>'
    if name in ("IntTextModel", "FloatTextModel", "BoundedIntTextModel", "BoundedFloatTextModel", "TextModel"):
        return f'<span>{label}<input disabled value="{_esc(s.get("value", ""))}" size="8"></span>'
    if name == "ImageModel":
        data = next((b.get("data") for b in model.get("buffers", []) if b.get("path") == ["value"] and b.get("encoding") == "base64"), None)
        if data is None:
            return None
        size = "".join(f' {k}="{_esc(s[k])}"' for k in ("width", "height") if s.get(k))
        return f'<img src="data:image/{_esc(s.get("format", "png"))};base64,{data}"{size} alt="{_esc(desc or "widget image")}">'
    if name == "OutputModel":
        parts = []
        for o in s.get("outputs", []):
            data = o.get("data", {})
            if o.get("output_type") == "stream":
                parts.append(f"<pre>{_esc(o.get('text', ''))}</pre>")
            elif "image/png" in data:
                parts.append(f'<img src="data:image/png;base64,{data["image/png"]}" alt="output image">')
            elif "text/html" in data:
                parts.append(data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"]))
            elif "text/plain" in data:
                tp = data["text/plain"]
                parts.append(f"<pre>{_esc(tp if isinstance(tp, str) else ''.join(tp))}</pre>")
        return f"<div>{''.join(parts)}</div>"
    return None


_REMOTE_FONT_AWESOME = re.compile(r"<link[^>]*href=[\"']https?://[^\"']*font-awesome[^\"']*[\"'][^>]*>\s*", re.IGNORECASE)


def offline_outputs(nb: dict) -> dict:
    """``nb`` with the one remote stylesheet the chapters' outputs use removed: matplotlib's HTML animations link
    Font Awesome from a CDN for their player buttons; the slides draw those icons with plain characters instead."""
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                text = data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"])
                data["text/html"] = _REMOTE_FONT_AWESOME.sub("", text)
    return nb


def snapshot_widgets(nb: dict) -> dict:
    """A copy of ``nb`` whose widget views are static HTML drawn from the saved widget state, without the state."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            view = data.pop(WIDGET_VIEW)
            body = _widget_html(str(view.get("model_id", "")), state)
            if body is not None:
                data["text/html"] = f'<div class="course-widget-snapshot" title="the saved state of an interactive widget">{body}</div>'
                data.pop("text/plain", None)
    return nb


# ---------------------------------------------------------------------------------------------------------------- export
ASSETS = "assets"
MATHJAX_JS = "mathjax/es5/tex-svg-full.js"

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_jquery -%}{%- endblock html_head_js_jquery -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  options: {enableMenu: false, ignoreHtmlClass: 'tex2jax_ignore|jp-RenderedText|jp-InputArea-editor'},
  svg: {fontCache: 'global'}
};
</script>
<script src="{{ resources.course_assets }}/MATHJAX_JS" defer></script>
<style type="text/css">
.course-widget-snapshot { padding: 0.2em 0; font-size: 80%; }
.course-widget-snapshot progress { vertical-align: middle; }
.reveal .slides section.course-scroll { overflow-y: auto; }
/* the player buttons of matplotlib's HTML animations, without the Font Awesome web font */
.fa { font-style: normal; display: inline-block; }
.fa-flip-horizontal { transform: scaleX(-1); }
.fa-minus:before { content: "\2212"; } .fa-plus:before { content: "+"; }
.fa-play:before { content: "\25B6"; } .fa-pause:before { content: "\275A\275A"; }
.fa-step-forward:before { content: "\25B6|"; } .fa-step-backward:before { content: "|\25C0"; }
.fa-fast-forward:before { content: "\25B6\25B6|"; } .fa-fast-backward:before { content: "|\25C0\25C0"; }
.reveal h1, .reveal h2, .reveal h3, .reveal h4 { text-transform: none; }
.reveal h1 { font-size: 1.8em; } .reveal h2 { font-size: 1.5em; } .reveal h3 { font-size: 1.2em; }
</style>
{%- endblock html_head_js_mathjax -%}
{% block footer_js %}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true,
  progress: true,
  history: true,
  transition: "{{ resources.reveal.transition }}",
  slideNumber: "c/t",
  plugins: [RevealNotes],
  width: {{ resources.reveal.width | default('1280', true) }},
  height: {{ resources.reveal.height | default('800', true) }}
});
// a slide taller than the screen scrolls instead of being cut off
function courseScroll() {
  var h = Reveal.getConfig().height * 0.95;
  document.querySelectorAll('.reveal .slides section section, .reveal .slides > section').forEach(function (s) {
    if (s.querySelector('section')) { return; }
    if (s.scrollHeight > h) { s.classList.add('course-scroll'); s.style.height = h + 'px'; }
  });
}
Reveal.on('ready', courseScroll);
Reveal.on('slidechanged', courseScroll);
</script>
{% endblock footer_js %}
""".replace("MATHJAX_JS", MATHJAX_JS)


class _References(HTMLParser):
    """The URLs a browser fetches by itself: script/img/iframe/source src, link href, CSS url() and @import."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"])
        self._in_style = self._in_style or tag == "style"
        if a.get("style"):
            self.css(a["style"])

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css(data)

    def css(self, text: str) -> None:
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", text)
        self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", text)


def remote_references(page: str) -> list[str]:
    """Every http(s) or protocol-relative URL that ``page`` (HTML) would load by itself."""
    refs = _References()
    refs.feed(page)
    return [u for u in refs.urls if re.match(r"\s*(https?:)?//", u, re.IGNORECASE)]


def copy_assets(out_dir: Path, vendor: Path = VENDOR_DIR) -> Path:
    """Copy reveal.js and MathJax from ``vendor`` into ``out_dir/assets``; returns that folder."""
    need = [vendor / "reveal.js" / "dist" / "reveal.js", vendor / MATHJAX_JS]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"vendor must hold reveal.js and MathJax (see vendor/README.md); missing: {missing}")
    dest = out_dir / ASSETS
    for name in ("reveal.js", "mathjax"):
        shutil.copytree(vendor / name, dest / name, dirs_exist_ok=True)
    return dest


def make_exporter():
    """nbconvert's SlidesExporter with the offline template on top of its reveal template."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    return SlidesExporter(
        extra_loaders=[DictLoader({"course_slides.html.j2": TEMPLATE})],
        template_file="course_slides.html.j2",
        reveal_url_prefix=f"{ASSETS}/reveal.js",
        reveal_theme="white",
        reveal_transition="none",
    )


def export_notebook(path: str | Path, out_dir: str | Path, exporter=None) -> Path:
    """Export one notebook to ``out_dir/<stem>.slides.html`` (assets are copied by ``export``)."""
    import nbformat

    path, out_dir = Path(path), Path(out_dir)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path must be an existing .ipynb file, got {str(path)!r}")
    exporter = exporter or make_exporter()
    nb = offline_outputs(snapshot_widgets(json.loads(path.read_text(encoding="utf-8"))))
    for cell, st in zip(nb["cells"], slide_rule.slide_types(nb["cells"])):  # untagged cells get the rule's type (in memory only)
        if st is not None and "slide_type" not in cell.get("metadata", {}).get("slideshow", {}):
            cell.setdefault("metadata", {})["slideshow"] = {"slide_type": st}
    nb = nbformat.reads(json.dumps(nb), as_version=4)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}, "course_assets": ASSETS})
    remote = remote_references(body)
    if remote:
        raise RuntimeError(f"{path.name}: the slides would load {sorted(set(remote))} from the network; "
                           "make them local in diffusion_course.teaching.slides_export (see offline_outputs)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def export(paths: Iterable[str | Path], out_dir: str | Path, vendor: str | Path = VENDOR_DIR) -> list[Path]:
    """Export every notebook in ``paths`` into ``out_dir`` and copy the assets next to them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_assets(out_dir, Path(vendor))
    exporter = make_exporter()
    return [export_notebook(p, out_dir, exporter) for p in paths]


# ------------------------------------------------------------------------------------------------------------------- CLI

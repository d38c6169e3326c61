"""Sphinx configuration of the course website (`make site`, tools/build_site.py).

Sphinx + myst-nb + sphinx-book-theme: pure Python from PyPI (no node), renders the stored outputs of the executed
notebooks without running them (nb_execution_mode = "off"), and ships its theme, search and icons as local files.
tools/build_site.py writes the source folder (build/site-src: the home page, the chapters, the instructor's guide)
and runs Sphinx with this folder as its configuration directory. Nothing is loaded from a CDN: MathJax is the copy
in vendor/ (html_static_path below), and the widget manager, which myst-nb would load from a CDN, is not loaded: the
build draws every widget from its saved state instead.
"""

import os

project = "Diffusion from Scratch"
author = "the Diffusion from Scratch authors"
copyright = "the Diffusion from Scratch authors, MIT licence"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# --- notebooks: stored outputs only, math as MyST dollar math (also inside Markdown outputs) ---------------------------
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js or widget manager from a CDN: widgets are drawn from their saved state
nb_render_markdown_format = "myst"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # chapters may go from a # title to a ### heading

# --- math: the vendored MathJax 3 (single file, SVG glyphs, no fonts or extensions loaded at run time) ----------------
html_static_path = ["_static", "../vendor/mathjax/es5"]
mathjax_path = "tex-svg-full.js"
mathjax3_config = {
    "tex": {"tags": "ams"},
    "options": {"enableMenu": False},
    "svg": {"fontCache": "global"},
}

# --- theme -------------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "Diffusion from Scratch"
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = False  # the summary would fetch() each hit, which browsers refuse from file://
REPOSITORY = os.environ.get("COURSE_SITE_REPOSITORY", "")  # set by tools/build_site.py (tools/launch_cell.py's REPOSITORY)
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": os.environ.get("COURSE_SITE_BRANCH", "main"),
    "path_to_docs": "",
    "use_repository_button": bool(REPOSITORY),
    "use_download_button": True,
    "use_fullscreen_button": False,
    "launch_buttons": {"colab_url": "https://colab.research.google.com", "binderhub_url": "https://mybinder.org",
                       "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
    "navbar_persistent": [],  # the search field sits in the sidebar; no second one in the top bar
    "home_page_in_toc": True,
}

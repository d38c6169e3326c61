# Diffusion from Scratch: the commands the README names.
#   make lab   - create .venv if missing, install everything, start JupyterLab on notebooks/
#   make test  - the same install, then the unit tests and every notebook under nbval (COURSE_PROFILE=smoke)
#   make run   - execute every notebook headless into build/<profile>/ (PROFILE=smoke|cpu|gpu, default cpu)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
LAB_ARGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# The chapters with a branch only the gpu profile takes (a pick of three bools, or a use of active_profile()):
# `make notebooks` runs them a second time under COURSE_PROFILE=gpu at the smoke sizes (COURSE_SIZES=smoke), so that
# branch runs in CI too (tests/test_profiles.py checks that this list names every such chapter)
GPU_BRANCH_NOTEBOOKS := notebooks/00_start_here.ipynb notebooks/04_ddpm_2d.ipynb notebooks/06_ddpm_images.ipynb \
	notebooks/10_colour_images.ipynb notebooks/13_flow_matching.ipynb notebooks/15_latent_diffusion.ipynb

.PHONY: install lab test check unit browser notebooks run lint clean student

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# make constraints - write the versions installed in .venv as the tested set (after a deliberate upgrade and a green make test)
.PHONY: constraints
constraints:
	$(PY) tools/write_constraints.py

install: $(STAMP)

lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

# Tests run one torch thread per process: on a 2-core machine that is busy with other work, two threads per process
# collapse (a 35 s test took 14 minutes beside a training run), while one thread loses little on a quiet machine.
TEST_THREADS ?= 1
# ...and two pytest-xdist workers, one per core (TEST_WORKERS=0 runs in one process). A test file stays on one worker
# (--dist loadfile), so a file's shared fixtures (a JupyterLab server, loaded weights) start once, and a notebook's cells
# run in order on one kernel.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

unit: install
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q $(XDIST) --durations=10 tests

# make check - the maintainer's fast loop: lint, then every unit test not marked slow (conftest.py says which are)
check: lint
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -x $(XDIST) -m "not slow" tests

# make browser - only the real-browser test (JupyterLab + headless Chromium; `make unit` already includes it)
browser: install
	$(PY) -m pytest -q -s tests/test_browser.py

notebooks: install
	OMP_NUM_THREADS=$(TEST_THREADS) COURSE_PROFILE=smoke MPLBACKEND=agg $(PY) -m pytest -q $(XDIST) --nbval-lax --nbval-current-env notebooks/
	OMP_NUM_THREADS=$(TEST_THREADS) COURSE_PROFILE=gpu COURSE_SIZES=smoke MPLBACKEND=agg $(PY) -m pytest -q $(XDIST) --nbval-lax --nbval-current-env $(GPU_BRANCH_NOTEBOOKS)

test: lint unit notebooks

run: install
	@mkdir -p build/$(PROFILE)
	@for nb in $(NOTEBOOKS); do \
	  start=$$(date +%s); \
	  COURSE_PROFILE=$(PROFILE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=3600 \
	    --output-dir build/$(PROFILE) $$nb >/dev/null 2>build/$(PROFILE)/$$(basename $$nb .ipynb).log || { cat build/$(PROFILE)/$$(basename $$nb .ipynb).log; exit 1; }; \
	  echo "$$nb: $$(( $$(date +%s) - start )) s under $(PROFILE)"; \
	done

# make student - the student edition: every notebook with its solutions removed and outputs cleared, in build/student/
student: install
	$(PY) -m diffusion_course.teaching.student --src notebooks --out build/student

lint: install
	$(VENV)/bin/ruff check lib tests benchmarks tools conftest.py

# make tidy - before committing executed chapters: the kernelspec JupyterLab writes, progress-bar text as shown, slide tags
tidy: install
	$(PY) tools/tidy_notebooks.py $(NOTEBOOKS)
	$(PY) -m diffusion_course.teaching.slides tag $(NOTEBOOKS)

clean:
	rm -rf build .pytest_cache

# make weights - retrain the shipped weights in data/ (classifier and its floors, MNIST U-Net, then its quality table, shipped
#                samples and chapter 8's DDIM grid; chapter 10's colour U-Net and its memorisation study; chapter 11's
#                conditional U-Net, fine-tuned from the MNIST U-Net, and its guidance sweep; chapter 13's flow-matching
#                U-Net and its card; chapter 14's noise-aware classifier and its classifier-guidance sweep; chapter 15's
#                autoencoder, latent U-Net and its card); uses CUDA
#                when present, else the CPU (on 2 cores: about 110 min of MNIST training
#                on one thread and 50 min of sampling, 40 min for chapter 10's copying study and 17 min for its colour
#                U-Nets, 40 min of conditional training and
#                20 min of guided sampling, 110 min of flow-matching training, 13 min for the noisy classifier and
#                30 min of classifier-guided sampling, 11 min for the autoencoder, about 95 min of latent training
#                and 12 min of latent sampling and timing); pass e.g. UNET_ARGS="--steps 30000"
#                or FLOW_ARGS="--t-sampling logit_normal" for other runs; on 4 GPUs, run a training step as
#                torchrun --nproc_per_node=4 -m diffusion_course.weights.make train-unet (README: Shipped weights)
.PHONY: weights
UNET_ARGS ?=
FLOW_ARGS ?=
weights: install
	$(PY) -m diffusion_course.weights.make train-classifier
	$(PY) -m diffusion_course.weights.make floors
	$(PY) -m diffusion_course.weights.make train-unet $(UNET_ARGS)
	$(PY) -m diffusion_course.weights.make evaluate --what card --redo
	$(PY) -m diffusion_course.weights.make collect --what card
	$(PY) -m diffusion_course.weights.make evaluate --what table --redo
	$(PY) -m diffusion_course.weights.make collect --what table
	$(PY) -m diffusion_course.weights.make evaluate --what calls --redo
	$(PY) -m diffusion_course.weights.make collect --what calls
	OMP_NUM_THREADS=1 $(PY) -m diffusion_course.weights.make train-colour
	$(PY) -m diffusion_course.weights.make train-cond-unet
	$(PY) -m diffusion_course.weights.make evaluate-guidance --redo
	$(PY) -m diffusion_course.weights.make collect-guidance
	$(PY) -m diffusion_course.weights.make null-vs-start
	$(PY) -m diffusion_course.weights.make train-flow-unet $(FLOW_ARGS)
	$(PY) -m diffusion_course.weights.make evaluate-flow --redo
	$(PY) -m diffusion_course.weights.make collect-flow
	$(PY) -m diffusion_course.weights.make train-noisy-classifier
	$(PY) -m diffusion_course.weights.make evaluate-classifier-guidance --redo
	$(PY) -m diffusion_course.weights.make train-autoencoder
	$(PY) -m diffusion_course.weights.make train-latent-unet
	$(PY) -m diffusion_course.weights.make evaluate-latent

# make slides - every chapter as static reveal.js slides, build/slides/NN_name.slides.html, with reveal.js and MathJax
#               copied from vendor/ into build/slides/assets/: the folder works from file:// with the network unplugged.
#               Live slides (code runs on the kernel): open a notebook in JupyterLab and press Alt+R (jupyterlab-rise).
.PHONY: slides
slides: install
	$(PY) -m diffusion_course.teaching.slides export --out build/slides $(NOTEBOOKS)

# make site      - the course as a static website in build/site/ (open build/site/index.html), from the committed, executed
#                  notebooks (nothing is executed): Sphinx + myst-nb + sphinx-book-theme (the `site` extra), MathJax from
#                  vendor/, each chapter's static slides in build/site/slides/; works from file:// with no network
# make site-test - builds it into a temporary folder and opens every page in headless Chromium with the network blocked
#                  (tests/test_site.py; a few minutes on two busy cores, so it is not part of make test: .ci/run runs it)
SITE_STAMP := $(VENV)/.installed-site
$(SITE_STAMP): $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,site]'
	@touch $(SITE_STAMP)

.PHONY: site site-test
site: $(SITE_STAMP)
	$(PY) tools/build_site.py

site-test: $(SITE_STAMP)
	COURSE_SITE_TEST=1 OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest -q -s tests/test_site.py

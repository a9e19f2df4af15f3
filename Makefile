# effcourse — all set-up goes through these targets; a fresh clone needs only `make lab` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.effcourse-installed
# torch comes from the pins this machine serves from local files; everything else from PyPI by name
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
JOBS   ?= 2
FULL   ?=
LABS   ?=

.PHONY: help setup sandbox lab lint test test-fast test-browser release solutions autograde student-kit bench clean hub

help:
	@echo "make lab        install if needed, open JupyterLab on labs/"
	@echo "make lint       ruff over the tree ([tool.ruff] in pyproject.toml)"
	@echo "make test       install if needed, run every test (unit, notebooks, nbgrader round trips)"
	@echo "make test-browser  drive JupyterLab in headless Chromium over every lab"
	@echo "make release    regenerate labs/ from solutions/ with nbgrader"
	@echo "make solutions  execute every solution notebook with papermill into _executed/ (FULL=1 for full mode)"
	@echo "make autograde LAB=lab1_temporal_shift SUBMISSIONS=path/to/folder-or-zip"
	@echo "make student-kit [LABS=...]  zip what students receive (release notebooks + wheel) into dist/"
	@echo "make bench      Lab 5's speedup table at 256x256 into _bench/ (run it on an idle machine)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install -e ".[dev,video,data]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (effcourse)"
	touch $(STAMP)

setup: $(STAMP)

# bubblewrap: the sandbox every autograded kernel runs in (apt-get as root or with sudo)
sandbox:
	bash scripts/install_sandbox.sh

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=labs $(if $(filter 0,$(shell id -u)),--allow-root,)

# ruff with the rules of [tool.ruff] in pyproject.toml; CI runs it before the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) sandbox
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -ra --durations=25

# JupyterLab in headless Chromium: every lab opens, runs and renders its widgets (installs chromium via apt);
# then the course on a test JupyterHub, from release to feedback (installs jupyterhub and the proxy)
test-browser: $(STAMP) sandbox
	VENV=$(VENV) bash scripts/install_browser.sh
	VENV=$(VENV) bash scripts/hub/install.sh
	EFFCOURSE_BROWSER=1 $(PY) -m pytest tests/browser -p no:xdist -ra

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebook" -ra

release: $(STAMP)
	$(VENV)/bin/effcourse release $(LABS)

solutions: $(STAMP)
	$(VENV)/bin/effcourse run-solutions $(if $(FULL),--full,) $(LABS)

autograde: $(STAMP) sandbox
	$(VENV)/bin/effcourse autograde $(LAB) $(SUBMISSIONS) --jobs $(JOBS)

student-kit: $(STAMP)
	$(VENV)/bin/effcourse student-kit $(LABS)

# Lab 5's speedup table (dense vs the incremental engine vs the old compare-with-cache design), into _bench/
bench: $(STAMP)
	$(PY) scripts/bench_lab5.py --out _bench

clean:
	rm -rf _executed _bench _artifacts submitted autograded feedback gradebook.db .pytest_cache dist

# the course on a TEST JupyterHub on localhost (dummy login, no user isolation; docs/HUB.md):
# instructor + two students, formgrader, nbgrader's exchange; HUB_PORT, HUB_ROOT, HUB_PASSWORD optional
HUB_PORT ?= 8000
hub: $(STAMP) sandbox
	VENV=$(VENV) bash scripts/hub/install.sh
	VENV=$(VENV) $(PY) scripts/hub/launch.py --port $(HUB_PORT) $(if $(HUB_ROOT),--root $(HUB_ROOT),) $(if $(HUB_PASSWORD),--password $(HUB_PASSWORD),) $(if $(LABS),$(foreach l,$(LABS),--lab $(l)),)

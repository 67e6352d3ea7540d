# podcast-mtl: `make setup`, then `make test` and `make run`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
# Python 3.10: `python3.10` on PATH if it really runs (a pyenv shim may not),
# else pyenv's versions folder.
PY310 ?= $(shell for c in python3.10 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.10.*/bin/python3.10 $$HOME/.pyenv/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do \
           "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { command -v "$$c"; break; }; done)
export TF_USE_LEGACY_KERAS := 1
export PYTHONHASHSEED := 0

.PHONY: setup setup-kfp test test-fast lint lint-imports run ablate bench clean

setup:
	@test -n "$(PY310)" || { echo "error: Python 3.10 not found (neither python3.10 on PATH nor \$$(pyenv root)/versions/3.10.*)" >&2; exit 2; }
	@echo "using $(PY310)"
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then rm -rf $(VENV); fi
	@[ -x $(PY) ] || $(PY310) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@$(PY) -c 'import tfx, tensorflow as tf; print("tfx", tfx.__version__, "tensorflow", tf.__version__)'

# The kfp extra (Vertex / Kubeflow v2 compiler) in an overlay venv that sees .venv's packages:
# kfp 2.5 needs urllib3<2, which constraints.txt cannot hold (see constraints-kfp.txt).
KFP_VENV ?= .venv-kfp
setup-kfp: setup
	@[ -x $(KFP_VENV)/bin/python ] || $(PY310) -m venv $(KFP_VENV)
	$(PY) -c 'import site; print(site.getsitepackages()[0])' > $(KFP_VENV)/lib/python3.10/site-packages/podcast_mtl_base.pth
	$(KFP_VENV)/bin/python -m pip install -q -c constraints-kfp.txt setuptools -e ".[kfp]"
	@$(KFP_VENV)/bin/python -c 'import kfp, tfx; print("kfp", kfp.__version__, "tfx", tfx.__version__)'

# Two pytest-xdist workers, a module a unit of work, the modules of the shared DAG run one unit
# (tests/conftest.py: pytest_xdist_make_scheduler). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 tests components

# ruff (ruff.toml) and the import-layer contract (.importlinter)
lint: lint-imports
	$(VENV)/bin/ruff check .

lint-imports:
	$(VENV)/bin/lint-imports --no-cache

test-fast:
	$(PY) -m pytest -q -m "not slow" tests components

run:
	$(VENV)/bin/podcast-mtl run

ablate:
	$(VENV)/bin/podcast-mtl ablate --seeds 3

bench:
	$(PY) bench/train_throughput.py

clean:
	rm -rf runs .pytest_cache

# `make demo`: set up .venv and train a VAE on the embedded MNIST (CPU, < 3 min).
# `make test`: set up .venv with all three backends and run every test under
#              each of them (KERAS_BACKEND=tensorflow, jax, torch), then build
#              the docs with --strict, open the built site in headless
#              Chromium (tools/check_site.py), then build the wheel and check
#              it in a clean environment (tools/check_wheel.py).
# `make test-oldest`: the TensorFlow tests on the oldest supported keras,
#              keras-hub and TensorFlow (requirements/oldest.txt), in
#              .venv-oldest; not part of `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the exact releases the tests run on; pyproject.toml has lower bounds only
PINS := requirements/test-pins.txt
BACKENDS ?= tensorflow jax torch
DEMO_BACKEND ?= tensorflow
# Each backend's tests run on two pytest-xdist workers (one per core of the
# CI machine); a test file stays on one worker, so that its module fixtures
# (e.g. the checkpoints of test_cross_backend) are made once. The files go
# out in tests/conftest.py's order (the slowest first), not in xdist's
# (the most tests first), so that both workers finish together.
PYTEST_WORKERS ?= 2
# One OpenMP thread per worker: with torch's default (one per core), two
# workers' threads fight over the two cores (measured: two test_gpt runs at
# once took 62 s on torch with the default, 26 s with one thread each; TF and
# JAX did not change).
PYTEST_ENV ?= OMP_NUM_THREADS=1
# Every test phase of 5 s or more is listed with its time (setup included),
# so that the slow files can be found from one run's log.
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	--durations=0 --durations-min=5

.PHONY: demo test test-oldest docs notebooks chromium clean

$(STAMP): pyproject.toml $(PINS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]" -c $(PINS)
	touch $(STAMP)

demo: $(STAMP)
	KERAS_BACKEND=$(DEMO_BACKEND) $(PY) examples/vae_mnist.py --output-dir demo_output

test: $(STAMP)
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== pytest with KERAS_BACKEND=$$backend ==="; \
		start=$$(date +%s); \
		$(PYTEST_ENV) KERAS_BACKEND=$$backend $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) \
			|| failed="$$failed $$backend"; \
		echo "=== $$backend took $$(( $$(date +%s) - start )) s ==="; \
	done; \
	echo "=== mkdocs build --strict ==="; \
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir site || failed="$$failed docs"; \
	echo "=== docs site in headless Chromium ==="; \
	$(MAKE) --no-print-directory chromium; \
	mkdir -p build; $(PY) tools/check_site.py site --screenshot build/site-home.png \
		|| failed="$$failed site"; \
	echo "=== wheel: build, install into a clean environment, check ==="; \
	mkdir -p build; $(PY) tools/check_wheel.py > build/wheel-check.log 2>&1 \
		&& tail -1 build/wheel-check.log \
		|| { tail -40 build/wheel-check.log; failed="$$failed wheel"; }; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

# Debian's chromium and chromium-driver for tools/check_site.py, installed
# where apt-get and root are at hand (CI); elsewhere the site check says how
# and is skipped (CI sets GENZOO_REQUIRE_BROWSER=1: there it fails instead)
BROWSER_PACKAGES := chromium chromium-driver
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's $(BROWSER_PACKAGES)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 \
		     && apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1; } \
		|| echo "could not install $(BROWSER_PACKAGES)"; \
	else echo "no chromium: apt-get install $(BROWSER_PACKAGES) for the site check"; fi

OLDEST := .venv-oldest
test-oldest:
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -e ".[jax,torch,dev]" -c requirements/oldest.txt
	$(PYTEST_ENV) KERAS_BACKEND=tensorflow $(OLDEST)/bin/python -m pytest -q \
		-p no:cacheprovider $(PYTEST_ARGS) -m "not slow"

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

# notebooks/*.ipynb (Colab) from the literate scripts in examples/; run it
# after editing an example (tests/test_notebooks.py fails on a stale one)
notebooks: $(STAMP)
	$(PY) tools/make_notebooks.py

clean:
	rm -rf $(VENV) $(OLDEST) site demo_output build

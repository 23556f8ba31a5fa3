# `make demo`: set up .venv and train a VAE on the embedded MNIST (CPU, < 3 min).
# `make test`: set up .venv with all three backends and run every test under
#              each of them (KERAS_BACKEND=tensorflow, jax, torch), then build
#              the docs with --strict.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch
DEMO_BACKEND ?= tensorflow
# Each backend's tests run on two pytest-xdist workers (one per core of the
# CI machine); a test file stays on one worker, so that its module fixtures
# (e.g. the checkpoints of test_cross_backend) are made once.
PYTEST_WORKERS ?= 2
# One OpenMP thread per worker: with torch's default (one per core), two
# workers' threads fight over the two cores (measured: two test_gpt runs at
# once took 62 s on torch with the default, 26 s with one thread each; TF and
# JAX did not change).
PYTEST_ENV ?= OMP_NUM_THREADS=1
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile --durations=10

.PHONY: demo test docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
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
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site demo_output

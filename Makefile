# Quick start: `make demo` and `make test` each create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-prior demo-vi demo-keras demo-uncertainty demo-sequence demo-distributed study-uncertainty bench-vi test test-slow sbc bench bench-hmc clean

$(STAMP): pyproject.toml
	@echo "Creating $(VENV) and installing jdlayers with its test, demo and arviz extras (once; a few minutes, mostly TensorFlow)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,demo,arviz]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/hmc_regression.py

demo-prior: $(STAMP)
	$(BIN)/python examples/prior_predictive.py

demo-vi: $(STAMP)
	$(BIN)/python examples/vi_digits_cnn.py

demo-keras: $(STAMP)
	$(BIN)/python examples/keras_bayesian_cnn.py

demo-uncertainty: $(STAMP)
	$(BIN)/python examples/uncertainty_demo.py

demo-sequence: $(STAMP)
	$(BIN)/python examples/sequence_uncertainty.py

# HMC on two MultiWorkerMirroredStrategy workers started locally (127.0.0.1).
demo-distributed: $(STAMP)
	$(BIN)/python examples/distributed_hmc.py --local-workers 2

# Deterministic, MAP and VI variants on the digits over 5 seeds (~13 min).
study-uncertainty: $(STAMP)
	$(BIN)/python examples/uncertainty_study.py

# Tests whose numbers come from TF's CPU kernels run a second time with oneDNN
# off (as TF itself does on many AMD CPUs): correctness must not depend on it.
KERNEL_TESTS := tests/ops tests/layers tests/vi/test_vi_estimators.py

test: $(STAMP)
	$(BIN)/python -m pytest
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest $(KERNEL_TESTS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Simulation-based calibration of NUTS on a tiny BNN (a few minutes).
sbc: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/inference/test_mcmc_sbc.py

bench: $(STAMP)
	$(BIN)/python benchmarks/layers.py

bench-hmc: $(STAMP)
	$(BIN)/python benchmarks/hmc.py

clean:
	rm -rf $(VENV) out benchmarks/results

bench-vi: $(STAMP)
	$(BIN)/python benchmarks/vi.py

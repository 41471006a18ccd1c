# The README's two commands: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-run
DEMO_PORT ?= 8765

.PHONY: install browser test test-fast test-matrix typecheck demo bench bench-quick bench-peers lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,boost,cluster,s3]'
	touch $(STAMP)

# The report's browser tests run Debian's chromium headless: installed here when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Every layer (tests/<layer>/), the dataset matrix as a seeded sample, and the type checker.
test: $(STAMP) browser typecheck
	$(BIN)/pytest -q

# The inner loop: the quick layers only (no processes, servers, browsers, make or matrix).
test-fast: $(STAMP)
	$(BIN)/pytest -q -x -m "not slow"

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole dataset matrix (make test runs a seeded sample of it): see tests/matrix/matrix.py.
test-matrix: $(STAMP)
	MLSTAGE_MATRIX=all $(BIN)/pytest -q tests/matrix

lint: $(STAMP)
	$(BIN)/ruff check mlstage tests bench
	$(BIN)/ruff format --check mlstage tests bench

# The whole loop on sample_data/, in $(DEMO)/ with its own store: the examples/ chain,
# serving and queries, monitor on clean and drifted traffic, retraining, rollback;
# then batch predictions, what-if, and the taxi data through validation.
demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cd $(DEMO) && export MLSTAGE_STORE=$$PWD/.mlstage PATH=$(CURDIR)/$(BIN):$$PATH && \
	  ../examples/loop_demo.sh $(DEMO_PORT) && \
	  set -x && \
	  mlstage predict registry/income data/adult --split eval --keep income -o predictions/adult && \
	  mlstage whatif models/adult --row '{"age": 40, "workclass": "Private", "education-num": 13, "marital-status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband", "race": "White", "sex": "Male", "capital-gain": 0, "capital-loss": 0, "hours-per-week": 45, "native-country": "United-States"}' --vary age=25,40,55 --vary sex && \
	  mlstage ingest ../sample_data/chicago_taxi.csv --split train=8 --split eval=2 \
	    --split-key trip_start_timestamp -o data/taxi && \
	  mlstage stats data/taxi -o stats/taxi && \
	  mlstage schema stats/taxi --label tips -o schema/taxi && \
	  mlstage validate data/taxi --schema schema/taxi --baseline stats/taxi -o anomalies/taxi && \
	  mlstage report stats/adult -o reports/stats.html && \
	  mlstage report anomalies/adult -o reports/anomalies.html && \
	  mlstage report evaluations/adult -o reports/evaluation.html && \
	  mlstage report monitor/adult -o reports/monitor.html && \
	  mlstage report stats/taxi -o reports/taxi-stats.html && \
	  { set +x; echo; echo "reports:"; ls -1 $$PWD/reports/*.html; }

# Benchmarks (not tests): see bench/README.md. ROWS=1000000 for a quick run.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench,cluster,s3]'
	$(BIN)/python bench/run.py $(if $(ROWS),--rows $(ROWS),)

# The peers (TFDV, Evidently) side by side with stats and validate, each in its own venv
# made on first use (skipped with the reason when it cannot be installed): bench/peers.py.
bench-peers: $(STAMP)
	$(BIN)/python bench/peers.py $(if $(ROWS),--rows $(ROWS),)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache

# The README's two commands: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo-run
DEMO_PORT ?= 8765

.PHONY: install test demo bench bench-quick lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check mlstage tests bench
	$(BIN)/ruff format --check mlstage tests bench

# The whole pipeline on sample_data/, in $(DEMO)/ with its own store.
demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cd $(DEMO) && export MLSTAGE_STORE=$$PWD/.mlstage PATH=$(CURDIR)/$(BIN):$$PATH && \
	  set -x && \
	  mlstage ingest ../sample_data/adult.csv --null '?' --split train=8 --split eval=2 -o data/adult && \
	  mlstage stats data/adult --slice sex --slice race -o stats/adult && \
	  mlstage schema stats/adult --label income -o schema/adult && \
	  mlstage validate data/adult --schema schema/adult --baseline stats/adult -o anomalies/adult && \
	  mlstage featurize data/adult --spec ../examples/adult_features.json -o features/adult && \
	  mlstage train features/adult --config ../examples/adult_train.json -o models/adult && \
	  mlstage evaluate models/adult data/adult --config ../examples/adult_evaluate.json -o evaluations/adult && \
	  mlstage predict models/adult data/adult --split eval --keep income -o predictions/adult && \
	  mlstage deploy models/adult --evaluation evaluations/adult --registry registry --name income && \
	  ../examples/serve_and_query.sh registry $(DEMO_PORT) requests && \
	  mlstage whatif models/adult --row '{"age": 40, "workclass": "Private", "education-num": 13, "marital-status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband", "race": "White", "sex": "Male", "capital-gain": 0, "capital-loss": 0, "hours-per-week": 45, "native-country": "United-States"}' --vary age=25,40,55 --vary sex && \
	  mlstage ingest ../sample_data/chicago_taxi.csv --split train=8 --split eval=2 \
	    --split-key trip_start_timestamp -o data/taxi && \
	  mlstage stats data/taxi -o stats/taxi && \
	  mlstage schema stats/taxi --label tips -o schema/taxi && \
	  mlstage validate data/taxi --schema schema/taxi --baseline stats/taxi -o anomalies/taxi && \
	  { mlstage ingest ../sample_data/adult.csv --null '?' --split train=8 --split eval=2 -o data/adult \
	    && mlstage validate data/adult --schema schema/adult --baseline stats/adult -o anomalies/adult; } && \
	  mlstage log && \
	  mlstage runs && \
	  mlstage lineage models/adult && \
	  mlstage verify

# Benchmarks (not tests): see bench/README.md. ROWS=1000000 for a quick run.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py $(if $(ROWS),--rows $(ROWS),)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache

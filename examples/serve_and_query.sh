#!/usr/bin/env bash
# Serve REGISTRY in the background, query it with curl as a client would, then stop it.
#   examples/serve_and_query.sh REGISTRY PORT [LOG_DIR]
set -euo pipefail
registry=$1 port=$2 logs=${3:-requests}
mlstage serve --registry "$registry" --port "$port" --log-dir "$logs" --log-exclude sex &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
row='{"age": 40, "workclass": "Private", "fnlwgt": 200000, "education": "Bachelors", "education-num": 13,
      "marital-status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband",
      "race": "White", "sex": "Male", "capital-gain": 0, "capital-loss": 0, "hours-per-week": 45,
      "native-country": "United-States"}'
set -x
curl -s -X POST "http://127.0.0.1:$port/v1/models/income:predict" -d "{\"instances\": [$row]}"; echo
curl -s -X POST "http://127.0.0.1:$port/invocations" -H 'content-type: application/json' \
  -d "{\"dataframe_records\": [$row]}"; echo
curl -s "http://127.0.0.1:$port/v1/models/income"; echo
curl -s -X POST "http://127.0.0.1:$port/v1/models/income:predict" -d '{"instances": [{"age": "forty"}]}'; echo
curl -s "http://127.0.0.1:$port/metrics" | grep '^mlstage_requests_total'

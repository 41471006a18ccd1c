#!/usr/bin/env bash
# The whole loop, as `make demo` runs it, in the current directory (a scratch folder):
#   examples/loop_demo.sh [PORT]
# chain -> rerun (nothing runs) -> serve + queries -> clean traffic (monitor: no
# retraining) -> drifted traffic (monitor: retrain, exit 1) -> new labelled data
# arrives, `make retrain` trains, evaluates against the served model and deploys ->
# rollback -> a canary judged by monitor --compare, promoted or ended; a model card ->
# history (log, runs, lineage, verify, gc).
set -euo pipefail
port=${1:-8765}
here=$(cd "$(dirname "$0")" && pwd)
adult="$here/../sample_data/adult.csv"
url="http://127.0.0.1:$port/v1/models/income:predict"
server=

loop() { make --no-print-directory -f "$here/Makefile" PORT="$port" "$@"; }
step() { printf '\n== %s\n' "$*" >&2; }
serve() {  # serve in the background, logging requests to $1, until stop_serving
  mlstage serve --registry registry --port "$port" --log-dir "$1" --log-exclude sex &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the server did not start" >&2
  return 1
}
stop_serving() {  # SIGTERM: the server finishes its requests and flushes its logs
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  server=
}
trap stop_serving EXIT

step "1. first run: the whole chain, from raw CSV to a deployed model"
loop
step "2. rerun with nothing changed: nothing runs, nothing is rewritten"
loop

step "3. serve, with request logs; a few queries as a client would send them"
serve requests/clean
row='{"age": 40, "workclass": "Private", "education-num": 13, "marital-status": "Married-civ-spouse",
      "occupation": "Exec-managerial", "relationship": "Husband", "race": "White", "sex": "Male",
      "capital-gain": 0, "capital-loss": 0, "hours-per-week": 45, "native-country": "United-States"}'
(
  set -x
  curl -s -X POST "$url" -d "{\"instances\": [$row]}"; echo
  curl -s -X POST "http://127.0.0.1:$port/invocations" -H 'content-type: application/json' \
    -d "{\"dataframe_records\": [$row]}"; echo
  curl -s "http://127.0.0.1:$port/v1/models/income"; echo
  curl -s -X POST "$url" -d '{"instances": [{"age": "forty"}]}'; echo
  curl -s "http://127.0.0.1:$port/metrics" | grep '^mlstage_requests_total'
)

step "4. clean traffic (rows the model never saw), labels arriving later: monitor finds nothing"
python3 "$here/replay_requests.py" "$adult" "$url" --rows 1500 --skip 30000 --tag clean \
  --feedback feedback.csv
stop_serving
loop monitor LOGS=requests/clean

step "5. drifted traffic (an older population working longer hours): monitor calls for retraining"
serve requests/drifted
python3 "$here/replay_requests.py" "$adult" "$url" --rows 1500 --skip 28000 --drift --tag drift \
  --feedback feedback.csv
stop_serving
rc=0
loop monitor LOGS=requests/drifted || rc=$?
echo "make monitor failed (make exit $rc): monitor exited 1, retraining is called for" >&2

step "6. new labelled data arrives in incoming/; make retrain retrains, evaluates against the served model, deploys"
mkdir -p incoming
{ head -1 "$adult"; tail -n 4000 "$adult"; } > incoming/batch-2.csv
loop retrain LOGS=requests/drifted

step "7. rollback: the previous version is served again"
loop rollback
cat registry/income/serving.json

step "8. a canary: the retrained model takes 30% of traffic; monitor --compare judges it against the stable one"
mlstage deploy models/adult --evaluation evaluations/adult --registry registry --name income --canary 30
serve requests/canary
python3 "$here/replay_requests.py" "$adult" "$url" --rows 3000 --skip 25000 --batch 5 --tag canary \
  --feedback canary-feedback.csv
stop_serving
rc=0
mlstage monitor --requests requests/canary --baseline stats/adult --evaluation registry/income \
  --feedback canary-feedback.csv --join request_id --join row --compare registry/income \
  -o monitor/canary || rc=$?
if [ $rc -eq 0 ]; then mlstage deploy --promote --registry registry --message "monitor --compare: promote"
else mlstage deploy --rollback --label canary --registry registry --message "monitor --compare: exit $rc"; fi
mlstage report registry/income --card -o reports/card.html

step "9. history: versions written, models trained, lineage, integrity, gc"
mlstage log models/adult
mlstage runs
mlstage lineage registry/income/1
mlstage verify
mlstage gc --grace 0 --dry-run

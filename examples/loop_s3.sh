#!/usr/bin/env bash
# The examples/ loop (what `make -C examples` and its targets run) with its data, store
# and registry in object storage:
#
#   examples/loop_s3.sh s3://BUCKET/PREFIX [all|serve|monitor|retrain|rollback]
#
#   all        ingest (the base file, then what arrived under incoming/ as spans) -> stats
#              -> schema -> validate -> featurize -> train -> evaluate (against the
#              served model) -> deploy
#   serve      serve the registry (polled in the bucket), logging requests to $LOGS/
#   monitor    compare the logged requests with training (exit 1: retraining is due)
#   retrain    monitor, and when it calls for retraining, run `all`
#   rollback   serve the previous version again
#
# The raw data is read from $DATA (default s3://BUCKET/PREFIX/raw/adult.csv: upload
# sample_data/adult.csv there first); new labelled files are put under $INCOMING
# (default s3://BUCKET/PREFIX/incoming/) and join the dataset as spans, as in the
# Makefile: a file the dataset holds already is left out, a changed one is refused,
# and `stats` profiles only the new span; SPANS=N keeps the newest N (SPANS=7d a week,
# when every file's name is dated, the base's too). AT may be a local folder too (the
# tests run both and compare the ids).
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and, for a server other than
# AWS, AWS_ENDPOINT_URL say where and who. $MLSTAGE is the command (default: mlstage);
# $DEPLOY_OPTS adds options to deploy; FEATURES_SPEC, TRAIN_CONFIG and EVALUATE_CONFIG
# replace the examples' files, and PORT, LOGS (a local folder: the server's own disk),
# WINDOW and FEEDBACK are the Makefile's, as is NAME.
# Every artifact gets the id the local run gives it (ids never depend on paths). Each
# stage leaves an up-to-date artifact as it is, so a rerun with nothing new writes
# nothing; a failed gate (validate, evaluate) stops the run with its exit code.
set -euo pipefail
at=${1:?usage: examples/loop_s3.sh s3://BUCKET/PREFIX [all|serve|monitor|retrain|rollback]}
at=${at%/}
target=${2:-all}
here=$(cd "$(dirname "$0")" && pwd)
data=${DATA:-$at/raw/adult.csv}
incoming=${INCOMING:-$at/incoming/}
case $incoming in
  s3://*[*?[]*) ;;                      # a pattern, as given
  s3://*) incoming=${incoming%/}/ ;;    # a prefix: every object below it
  *) mkdir -p "$incoming" ;;            # a local folder: empty until files arrive
esac
spec=${FEATURES_SPEC:-$here/adult_features.json}
train=${TRAIN_CONFIG:-$here/adult_train.json}
evaluate=${EVALUATE_CONFIG:-$here/adult_evaluate.json}
name=${NAME:-income}
logs=${LOGS:-requests}
export MLSTAGE_STORE="$at/store"
read -r -a ml <<< "${MLSTAGE:-mlstage}"
m() { "${ml[@]}" "$@"; }
read_opts=(--null '?' --split train=8 --split eval=2)

written() {  # whether the store has logged a write to path $1 (an error stops the run)
  local log
  log=$(m log "$1" --json) || exit 2
  [ "$log" != "[]" ]
}

chain() {
  # The dataset is the base file's span and the spans appended after it; it starts
  # again from the base (with everything in incoming/ as one span) only when the base
  # file's content changed: data/adult is the base, or grew from it (summary.root).
  local base
  base=$(m ingest "$data" "${read_opts[@]}" -o "$at/data/adult-base" --json \
    | sed -n 's/^{"kind":"dataset","id":"\([0-9a-f]*\)".*/\1/p')
  [ -n "$base" ]
  local shown=""
  if written "$at/data/adult"; then shown=$(m show "$at/data/adult"); fi # an error stops here
  if ! grep -Eq "\"(id|root)\": ?\"$base\"" <<< "$shown"; then
    m ingest "$data" "${read_opts[@]}" -o "$at/data/adult"
  fi
  m ingest "$incoming" --append "$at/data/adult" ${SPANS:+--window "$SPANS"} -o "$at/data/adult"
  m stats "$at/data/adult" --slice sex --slice race -o "$at/stats/adult"
  # inferred once from the first data, then curated (the Makefile's order-only rule)
  written "$at/schema/adult" || m schema "$at/stats/adult" --label income -o "$at/schema/adult"
  m validate "$at/data/adult" --schema "$at/schema/adult" --baseline "$at/stats/adult" \
    -o "$at/anomalies/adult"
  m featurize "$at/data/adult" --spec "$spec" -o "$at/features/adult"
  m train "$at/features/adult" --config "$train" -o "$at/models/adult"
  # the served model is the baseline to beat; the first deploy has none (deploy logs
  # each version it adds as a write, so version 1 is there once anything was served)
  local baseline=()
  if written "$at/registry/$name/1"; then baseline=(--baseline "$at/registry/$name"); fi
  m evaluate "$at/models/adult" "$at/data/adult" --config "$evaluate" \
    ${baseline[@]+"${baseline[@]}"} -o "$at/evaluations/adult"
  # shellcheck disable=SC2086  # DEPLOY_OPTS is a list of options
  m deploy "$at/models/adult" --evaluation "$at/evaluations/adult" --registry "$at/registry" \
    --name "$name" --message "examples/loop_s3.sh" ${DEPLOY_OPTS:-}
}

monitor() {
  local feedback=()
  if [ -n "${FEEDBACK:-}" ]; then feedback=(--feedback "$FEEDBACK" --join request_id --join row); fi
  m monitor --requests "$logs" --baseline "$at/stats/adult" --schema "$at/schema/adult" \
    --evaluation "$at/registry/$name" --window "${WINDOW:-7d}" ${feedback[@]+"${feedback[@]}"} \
    -o "$at/monitor/adult"
}

case $target in
  all) chain ;;
  # exec: a signal to this script (SIGTERM from a service manager) reaches the server
  serve) exec "${ml[@]}" serve --registry "$at/registry" --port "${PORT:-8501}" --log-dir "$logs" --log-exclude sex ;;
  monitor) monitor ;;
  # monitor's exit 1 means "retrain"; 4 (no traffic in the window) and 2, 3 stop here
  retrain)
    rc=0
    monitor || rc=$?
    if [ $rc -eq 1 ]; then
      echo "monitor called for retraining: running the chain" >&2
      chain
    elif [ $rc -ne 0 ]; then
      exit $rc
    else
      echo "monitor: no retraining needed" >&2
    fi
    ;;
  rollback) m deploy --rollback --registry "$at/registry" --name "$name" --message "loop_s3.sh rollback" ;;
  *)
    echo "examples/loop_s3.sh: unknown target $target (all, serve, monitor, retrain, rollback)" >&2
    exit 2
    ;;
esac

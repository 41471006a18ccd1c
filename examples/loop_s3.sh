#!/usr/bin/env bash
# The examples/ chain (what `make -C examples` runs: ingest -> stats -> schema -> validate
# -> featurize -> train -> evaluate -> deploy) with its data, store and registry in
# object storage:
#
#   examples/loop_s3.sh s3://BUCKET/PREFIX
#
# The raw data is read from $DATA (default s3://BUCKET/PREFIX/raw/adult.csv: upload
# sample_data/adult.csv there first). AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION and, for a server other than AWS, AWS_ENDPOINT_URL say where and who.
# $MLSTAGE is the command (default: mlstage); $DEPLOY_OPTS adds options to deploy;
# FEATURES_SPEC, TRAIN_CONFIG and EVALUATE_CONFIG replace the examples' files, as they
# do for the Makefile.
# Every artifact gets the id the local run gives it (ids never depend on paths).
set -euo pipefail
at=${1:?usage: examples/loop_s3.sh s3://BUCKET/PREFIX}
at=${at%/}
here=$(cd "$(dirname "$0")" && pwd)
data=${DATA:-$at/raw/adult.csv}
spec=${FEATURES_SPEC:-$here/adult_features.json}
train=${TRAIN_CONFIG:-$here/adult_train.json}
evaluate=${EVALUATE_CONFIG:-$here/adult_evaluate.json}
export MLSTAGE_STORE="$at/store"
read -r -a ml <<< "${MLSTAGE:-mlstage}"
m() { "${ml[@]}" "$@"; }

m ingest "$data" --null '?' --split train=8 --split eval=2 -o "$at/data/adult"
m stats "$at/data/adult" --slice sex --slice race -o "$at/stats/adult"
m schema "$at/stats/adult" --label income -o "$at/schema/adult"
m validate "$at/data/adult" --schema "$at/schema/adult" --baseline "$at/stats/adult" \
  -o "$at/anomalies/adult"
m featurize "$at/data/adult" --spec "$spec" -o "$at/features/adult"
m train "$at/features/adult" --config "$train" -o "$at/models/adult"
m evaluate "$at/models/adult" "$at/data/adult" --config "$evaluate" \
  -o "$at/evaluations/adult"
# shellcheck disable=SC2086  # DEPLOY_OPTS is a list of options
m deploy "$at/models/adult" --evaluation "$at/evaluations/adult" --registry "$at/registry" \
  --name income --message "examples/loop_s3.sh" ${DEPLOY_OPTS:-}

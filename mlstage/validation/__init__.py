"""Data validation: statistics, schemas, anomaly checks and drift (TFDV's concern).

- `compute`: statistics of a split (and its slices) in one pass, with mergeable sketches;
- `merge`: statistics of partitions combined;
- `statsfile`: `stats.json`/`sketches.json` written and read; the training statistics;
- `schema_rules`: `schema.json` inferred, widened, read;
- `checks`: a table against a schema and a baseline: the anomalies of `anomalies.json`;
- `drift`: the distances (L-infinity, Jensen-Shannon, PSI, KS) on shared buckets.
"""

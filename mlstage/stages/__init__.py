"""One module per stage, each exposing one typed function (`ingest`, `stats`, `schema`,
`validate`, `featurize`, `train`, `evaluate`, `predict`, `deploy`, `monitor`), over `base`:
the runner every stage goes through (fingerprint, up-to-date, locks, the atomic write,
the store). A stage module imports the layers below, never another stage.
"""

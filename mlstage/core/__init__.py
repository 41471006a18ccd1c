"""The bottom layer, which every other imports: no stage, no store, no model.

- `artifact`: the artifact (a directory with `manifest.json`): ids, fingerprints, manifests,
  checking payload files against them;
- `fsutil`: hashing, fsync, flock, the atomic directory swap;
- `jsonio`: canonical JSON (for hashing) and reading user-written JSON/TOML;
- `documents`: every file format's JSON Schema, checked on read and write;
- `outputs`: what `-o` may replace;
- `missing`: the one definition of a missing value (null, or NaN in a float column);
- `hashing`: the stable hashes (the text hash: xxHash64 of canonical text; the row
  hash of typed values, for splits), per value and vectorised;
- `coltypes`: the six column types and their polars counterparts.
"""

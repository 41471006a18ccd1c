"""Raw data in: reading sources, inferring column types, choosing splits.

- `sources`: files, globs, stdin; CSV/TSV, JSON, JSON Lines, Parquet, Arrow IPC read and
  typed; the diagnosis of a bad file (line, column, value); `jsonread`: JSON arrays;
- `typeinfer`: which of the six types a text column holds;
- `splits`: a dataset's split files and which split a stage reads;
- `options`: NAME=VALUE options shared by the library and the CLI.
"""

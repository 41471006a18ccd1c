"""Feature transforms: a declarative spec, fitted to plain JSON, applied in batch and per row.

- `spec`: reading and checking a feature spec (mlstage-features/1);
- `base`: what every transform is and shares; `transforms`: the numeric and datetime
  transforms and the registry of all; `categorical`: one-hot, ordinal, hash, cross and the
  text transforms — each defined once, with its fit, its batch expressions (polars) and
  its per-row function (plain Python, for serving);
- `fitted`: the fitted transform (`transform.json`, mlstage-transform/1) that applies all
  entries to a table or to one row; `names`: output column names.
"""

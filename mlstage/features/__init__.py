"""Feature transforms: a declarative spec, fitted to plain JSON, applied in batch and per row.

- `spec`: reading and checking a feature spec (mlstage-features/1);
- `transforms`: each transform defined once, with its fit, its batch expressions
  (polars) and its per-row function (plain Python, for serving);
- `fitted`: the fitted transform (`transform.json`, mlstage-transform/1) that
  applies all entries to a table or to one row.
"""

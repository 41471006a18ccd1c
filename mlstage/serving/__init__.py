"""The model server (`mlstage serve`): a Starlette app on uvicorn.

- `models`: the served models, loaded from the registry and swapped in by a watcher;
- `protocols`: TF Serving's and MLflow's request formats, parsed into rows;
- `requestlog`: request and prediction logs as Parquet files; `logreader`: reading them
  back for `monitor`;
- `app`: the HTTP endpoints; `server`: uvicorn's settings and workers.
"""

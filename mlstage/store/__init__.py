"""The store of every artifact version, and what reads and writes through it.

- `store`: the store (objects, the journal of writes, verified reads, paths relative to
  the store's folder); `index`: its SQLite index; `maintenance`: verify, gc, reindex;
- `refs`: an artifact given as an input (directory or `@id`), a user document (file or
  artifact);
- `registry`: the model registry's layout and `serving.json`; `REGISTRY/NAME` references;
- `checkout`, `diff`, `runs`: the store commands' library.
"""

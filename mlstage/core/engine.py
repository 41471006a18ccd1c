"""Where a stage's per-partition work runs: this process (the default) or a Dask cluster.

The one module that knows about Dask. `engine_for(None)` is the local engine: a stage
runs exactly as it does without one (its own threads). `engine_for("tcp://host:8786")`
connects to a `dask scheduler` (Dask's distributed scheduler, not dask.dataframe), checks
that every worker runs the client's mlstage and polars, and then `map(fn, items)` runs
mlstage's own module-level functions on the workers, one item (a partition, a column, a
batch of rows) per task, and gathers their results in input order; the stage merges
them on the client exactly as the local run does, so the artifact is the same, byte for
byte. The engine is never part of an artifact's fingerprint.

Workers read partitions by path: on one machine (`LocalCluster`) that just works; on a
cluster the dataset and the store must be on storage every worker sees at the same path.

Dask is imported only when an engine is given: `--help` and local runs never load it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from ..errors import BadInput, opt

ENV = "MLSTAGE_ENGINE"
LOCAL = "local"  # `--engine local`: this process, even when MLSTAGE_ENGINE is set
CONNECT_TIMEOUT = 5.0  # seconds to reach the scheduler, and for a first worker to be there
CHECKED = ("mlstage", "polars")  # the packages whose versions must match on every worker

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    @property
    def address(self) -> str | None: ...  # None: this process

    @property
    def local(self) -> bool: ...

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]: ...

    def joblib(self) -> Any: ...


def local_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS has one: a container
    limited to 2 of a host's 64 cores gets 2), for sizing its own thread pools."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class LocalEngine:
    """This process: items in turn (each stage's work keeps its own threads, as before)."""

    address: str | None = None

    @property
    def local(self) -> bool:
        return True

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(item) for item in items]

    def joblib(self) -> Any:
        """joblib's parallel backend for scikit-learn's searches: its default (loky's
        processes), with BLAS on one thread in each, as on a Dask worker: a trial's score
        must not depend on how many cores the machine has (joblib would give each worker
        cores // n_jobs threads)."""
        import joblib

        return joblib.parallel_config(backend="loky", inner_max_num_threads=1)


class DaskEngine:
    """A Dask distributed cluster, reached through a `distributed.Client`."""

    def __init__(self, client: Any, address: str) -> None:
        self.client = client
        self.address = address

    @property
    def local(self) -> bool:
        return False

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        futures = self.client.map(fn, list(items), pure=False)
        try:
            # Every task finishes (or fails) before the stage goes on, or cleans its
            # temporary folder up after an error: no worker is left writing into it.
            for future in futures:
                future.exception()
            return list(self.client.gather(futures))  # input order; the first error raised
        finally:
            self.client.cancel(futures)

    @contextmanager
    def joblib(self) -> Iterator[None]:
        """scikit-learn's search trials as tasks on the cluster (joblib's Dask backend)."""
        import joblib

        with joblib.parallel_config(backend="dask", client=self.client):
            yield


_clients: dict[str, Any] = {}  # address -> Client: one connection per process and address


def engine_for(engine: str | Engine | None = None) -> Engine:
    """The engine `engine` names: None -> $MLSTAGE_ENGINE, else local; "local"; an address."""
    if engine is not None and not isinstance(engine, str):
        return engine
    address = engine if engine is not None else os.environ.get(ENV) or None
    if address is None or address.strip() == LOCAL:
        return LocalEngine()
    return DaskEngine(_connect(address.strip()), address.strip())


def _connect(address: str) -> Any:
    client = _clients.get(address)
    if client is None or client.status != "running":
        try:
            from distributed import Client
        except ImportError:
            raise BadInput(
                f"{opt('engine')} {address}: Dask is not installed here; install mlstage's"
                " `cluster` extra (pip install 'mlstage[cluster]')"
            ) from None
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadInput(
                f"{opt('engine')} {address}: cannot reach a Dask scheduler there ({reason})"
            ) from None
        _clients[address] = client
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise BadInput(
            f"{opt('engine')} {address}: the scheduler has no worker (none joined within"
            f" {CONNECT_TIMEOUT:g} s; start one with `dask worker {address}`)"
        ) from e
    check_versions(client, address)
    return client


def versions() -> dict[str, str]:
    """The versions of CHECKED in this process (run on each worker by `check_versions`)."""
    import polars

    from .. import version

    return {"mlstage": version.__version__, "polars": polars.__version__}


def check_versions(client: Any, address: str) -> None:
    """Every worker must run the client's mlstage and polars: another mlstage may compute
    other statistics, another polars write other bytes, and the artifact would depend on
    which worker ran a task."""
    ours = versions()
    try:
        theirs = client.run(versions)
    except Exception as e:  # a worker that cannot import mlstage at all
        raise BadInput(
            f"{opt('engine')} {address}: a worker cannot run mlstage ({type(e).__name__}:"
            f" {str(e).strip()[:200]}); install this mlstage {ours['mlstage']} on every worker"
        ) from None
    for worker, found in sorted(theirs.items()):
        for package in CHECKED:
            if found.get(package) != ours[package]:
                raise BadInput(
                    f"{opt('engine')} {address}: worker {worker} runs {package}"
                    f" {found.get(package)}, this client {ours[package]}; run the same"
                    f" {package} version on the client and every worker"
                )


def close_all() -> None:
    """Close this process's connections (tests; a long-lived Python session)."""
    for client in _clients.values():
        client.close()
    _clients.clear()

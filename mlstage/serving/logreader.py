"""Reading the server's request logs (`requestlog` writes them) for `monitor`: the files of
a log folder (or a dataset artifact standing in for one), one model's rows, a time window."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from ..core.artifact import Input
from ..core.coltypes import utc_wall_time
from ..core.fsutil import is_regular_file
from ..core.jsonio import sha256_json
from ..data.splits import splits_of
from ..errors import BadInput, opt
from ..store.refs import is_artifact_ref, load_input
from ..store.store import Store

LOG_PATTERN = "requests-*.parquet"


WINDOW = re.compile(r"^(\d+)([smhdw])$")


UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> dt.timedelta:
    m = WINDOW.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise BadInput(
            f"{opt('window')} {text!r}: expected a positive length with a unit, e.g. 30m, 24h, 7d, 2w"
        )
    return dt.timedelta(**{UNITS[m.group(2)]: int(m.group(1))})


def parse_until(text: str | None) -> dt.datetime:
    """The window's end (exclusive). By default now, rounded *up* to a whole second: rounded
    down, a request logged earlier in the current second fell outside the window (a
    monitor run right after a replay saw 2 of 1,502 rows)."""
    if text is None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        whole = now.replace(microsecond=0)
        return whole if whole == now else whole + dt.timedelta(seconds=1)
    try:
        return utc_wall_time(text)
    except ValueError:
        raise BadInput(
            f"{opt('until')} {text!r}: expected an ISO date-time, e.g. 2026-11-26T00:00:00"
        ) from None


# -- reading -------------------------------------------------------------------------
def requests_source(st: Store, ref: str) -> tuple[list[Path], Input, bool]:
    """The Parquet files of a request-log folder or a dataset artifact, their identity,
    and whether they are a server's logs."""
    if is_artifact_ref(ref):
        path, manifest, inp = load_input(st, ref, "requests", ("dataset",))
        return [p for s in splits_of(path, manifest).values() for p in s.parts], inp, False
    p = Path(ref)
    if not p.is_dir():
        raise BadInput("not a request-log folder or a dataset artifact", file=ref)
    # Servers write each file beside its name and rename it in: a listed file is whole.
    files = sorted(p.glob(LOG_PATTERN))
    for f in files:  # a fifo or a link to a device would hang the reader
        if not is_regular_file(f):
            raise BadInput("not a regular file; request logs are plain Parquet files", file=str(f))
    identity = sha256_json([[f.name, st.file_sha256(f)] for f in files])
    return files, Input("requests", identity, ref), True


def read_requests(files: list[Path], ref: str):
    import polars as pl

    if not files:
        return pl.DataFrame()
    frames = []
    for f in files:
        try:
            frames.append(pl.read_parquet(f))
        except (pl.exceptions.PolarsError, OSError) as e:  # truncated, damaged, unreadable
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadInput(f"cannot read this request-log file: {text}", file=str(f)) from None
    try:
        # Files differ where a flush saw only nulls in a column or a new version added a
        # class: the relaxed concat unifies them.
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as e:
        raise BadInput(f"the request-log files do not fit together: {e}", file=ref) from None


def answered(frame):
    """The rows a client was answered with: a shadow's predictions (`shadow` true) left out."""
    import polars as pl

    if "shadow" not in frame.columns:
        return frame
    return frame.filter(~pl.col("shadow").fill_null(False)).drop("shadow")


def only_model(frame, model: str | None, ref: str):
    import polars as pl

    if "model" not in frame.columns:
        return frame, model
    names = sorted(frame["model"].drop_nulls().unique().to_list())
    if model is None:
        if len(names) > 1:
            raise BadInput(
                f"the logs hold requests for {len(names)} models ({', '.join(names)}): choose one with {opt('model')}",
                file=ref,
            )
        return frame, names[0] if names else None
    if names and model not in names:
        raise BadInput(
            f"{opt('model')} {model}: the logs hold requests for {', '.join(names)}", file=ref
        )
    return frame.filter(pl.col("model") == model), model


def in_window(frame, since: dt.datetime | None, until: dt.datetime | None, ref: str):
    import polars as pl

    if (since is None and until is None) or frame.height == 0:
        return frame
    if "ts" not in frame.columns:
        what = opt("window") if since is not None else opt("until")
        raise BadInput(f'{what} needs a "ts" column (the time of each request)', file=ref)
    ts = pl.col("ts").cast(pl.Datetime("us"))
    if since is None:  # --until alone: everything before it
        return frame.filter(ts < until)
    return frame.filter((ts >= since) & (ts < until))

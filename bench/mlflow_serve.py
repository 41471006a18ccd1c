"""MLflow's model server against mlstage's, side by side: same machine, same model, same
endpoint and body, same load client.

    .venv/bin/python bench/mlflow_serve.py [--rounds 5] [--seconds 10] [--workers 1]
                                           [--out bench/work/mlflow_serve.json]

MLflow lives in a venv of its own (default bench/work/mlflow-venv, with mlflow, pandas and
scikit-learn pinned to this venv's version); it is never imported here, only run.

Built untimed, in a temporary folder:
- mlstage: the model of serve_load.build (Adult sample, '?' as missing, an 80/20 split;
  5 standardized numeric columns, 7 one-hot categorical columns with mode imputation;
  LogisticRegression(C=1.0, max_iter=1000)), deployed to a registry;
- MLflow: the same model as a scikit-learn Pipeline (ColumnTransformer: StandardScaler on
  the numeric columns; most-frequent SimpleImputer + OneHotEncoder(handle_unknown="ignore")
  on the categorical ones; the same LogisticRegression), fitted on mlstage's own train
  split (ds/train.parquet, so the very same rows) and written by mlflow.sklearn.save_model
  with a signature inferred from the training frame, by a script run under MLflow's venv.

Served with each tool's defaults otherwise:
- `mlflow models serve -m MODEL -p PORT -h 127.0.0.1 --env-manager local --workers N`
  (MLflow's venv first on PATH, as when it is activated: it execs `uvicorn`);
- `mlstage serve --registry reg --port PORT --workers N`.

Both are measured on POST /invocations with {"dataframe_records": [serve_load.ROW]}.
Rounds are interleaved, alternating which server goes first; in each round each server is
started on a fresh free port, waited for until it answers a real prediction (the first
answer must be a 200 with a prediction; the time to it is `startup_s`), measured, and
stopped (SIGTERM to its process group). Per server and round:
- latency: serve_load.latency, 2,000 sequential single-row requests on one keep-alive
  connection after 200 of warm-up (p50, p99; any non-200 aborts that measurement and is
  recorded as an error);
- throughput: serve_load.python_load, 8 client processes for --seconds (requests/s of
  200 answers; every non-200 or connection error counts as failed);
- the server's processes (its process group) and their total RSS after the load.
The clients share the machine's cores with the server, the same for both servers.
Medians over rounds are reported, with the median over rounds of the per-round ratios
(throughput mlstage/mlflow, latency mlflow/mlstage: above 1 means mlstage is faster).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_load  # noqa: E402

ROOT = serve_load.ROOT
PATH = "/invocations"
BODY = json.dumps({"dataframe_records": [serve_load.ROW]}).encode()
SERVERS = ("mlstage", "mlflow")

# Run by MLflow's python: argv = train.parquet, model dir.
SAVE_MLFLOW_MODEL = """\
import sys

import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUM = ["age", "education-num", "hours-per-week", "capital-gain", "capital-loss"]
CAT = ["workclass", "marital-status", "occupation", "relationship", "race", "sex",
       "native-country"]
train = pd.read_parquet(sys.argv[1])
X, y = train.drop(columns=["income"]), train["income"]
features = ColumnTransformer([
    ("num", StandardScaler(), NUM),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                          OneHotEncoder(handle_unknown="ignore")), CAT),
])
pipe = Pipeline([("features", features),
                 ("model", LogisticRegression(C=1.0, max_iter=1000))]).fit(X, y)
# skops (MLflow 3's default format) refuses to reload numpy.dtype unless it is trusted
mlflow.sklearn.save_model(pipe, sys.argv[2], signature=infer_signature(X, pipe.predict(X)),
                          skops_trusted_types=["numpy.dtype"])
print(f"mlflow model: {len(X)} training rows, train accuracy {pipe.score(X, y):.4f}")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_text(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def versions(mlflow_python: Path) -> dict:
    code = "import {0}; print({0}.__version__)"
    return {
        "mlflow": run_text(str(mlflow_python), "-c", code.format("mlflow")),
        "sklearn_mlflow_venv": run_text(str(mlflow_python), "-c", code.format("sklearn")),
        "pandas_mlflow_venv": run_text(str(mlflow_python), "-c", code.format("pandas")),
        "sklearn_mlstage_venv": run_text(sys.executable, "-c", code.format("sklearn")),
        "mlstage": run_text(serve_load.MLSTAGE, "--version"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def post(port: int) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", PATH, BODY, {"content-type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def group_stats(pgid: int) -> dict:
    """Processes of a process group and their total resident memory."""
    procs, rss_kb = 0, 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (d / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        procs += 1
        rss_kb += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
            0,
        )
    return {"processes": procs, "rss_mb": round(rss_kb / 1024, 1)}


class Server:
    """One server process (and its children) in a session of its own."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, env: dict, log: Path, port: int):
        self.name, self.port, self.log = name, port, log
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_prediction(self, timeout: float = 180) -> dict:
        """Wait until the server answers a prediction; check that first answer."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                status, body = post(self.port)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 503:  # mlstage before its model is loaded
                time.sleep(0.1)
                continue
            preds = json.loads(body).get("predictions") if status == 200 else None
            if not preds:
                raise RuntimeError(f"{self.name}: first answer {status} {body[:300]!r}")
            return {"startup_s": round(time.perf_counter() - t0, 2), "first": json.loads(body)}
        raise RuntimeError(f"{self.name} gave no prediction in {timeout} s; see {self.log}")

    def stop(self) -> None:
        pgid = self.proc.pid
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + grace
            while time.time() < deadline and group_stats(pgid)["processes"]:
                self.proc.poll()
                time.sleep(0.1)
            if not group_stats(pgid)["processes"]:
                break
        self.proc.wait(timeout=10)


def measure(server: Server, n: int, seconds: float, clients: int) -> dict:
    res: dict = {"port": server.port}
    try:
        res.update(server.wait_prediction())
        try:
            res.update(serve_load.latency(server.port, n, PATH, BODY))
        except (AssertionError, OSError) as e:
            res["latency_error"] = repr(e)
        load = serve_load.python_load(server.port, seconds, clients, PATH, BODY)
        res.update(requests_per_s=load["requests_per_s"], ok=load["ok"], failed=load["failed"])
        res.update(group_stats(server.proc.pid))
    finally:
        server.stop()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10, help="throughput load per server")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (both)")
    ap.add_argument("--requests", type=int, default=2000, help="sequential latency requests")
    ap.add_argument("--clients", type=int, default=8, help="throughput client processes")
    ap.add_argument("--mlflow-venv", type=Path, default=ROOT / "bench/work/mlflow-venv")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/work/mlflow_serve.json")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")
    args = ap.parse_args()

    mlflow_bin = args.mlflow_venv.resolve() / "bin"
    if not (mlflow_bin / "mlflow").exists():
        sys.exit(
            f"no MLflow venv at {args.mlflow_venv}: make it with python3 -m venv, then pip "
            "install mlflow pandas scikit-learn==(the version in mlstage's venv)"
        )
    vers = versions(mlflow_bin / "python")
    if vers["sklearn_mlflow_venv"] != vers["sklearn_mlstage_venv"]:
        sys.exit(f"scikit-learn differs between the venvs: {vers}")
    mlflow_env = {
        **os.environ,
        "PATH": f"{mlflow_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(mlflow_bin.parent),
    }
    serve_help = run_text(str(mlflow_bin / "mlflow"), "models", "serve", "--help")
    mlflow_workers = ["--workers", str(args.workers)] if "--workers" in serve_help else []
    if not mlflow_workers and args.workers != 1:
        sys.exit("this mlflow's `models serve` has no --workers")

    work = Path(tempfile.mkdtemp(prefix="mlflow-serve-bench-"))
    runs: dict[str, list[dict]] = {name: [] for name in SERVERS}
    commands: dict[str, list[str]] = {}
    try:
        t = time.perf_counter()
        serve_load.build(work)
        (work / "save_mlflow_model.py").write_text(SAVE_MLFLOW_MODEL)
        subprocess.run(
            [
                str(mlflow_bin / "python"),
                "save_mlflow_model.py",
                "ds/train.parquet",
                "mlflow_model",
            ],
            cwd=work,
            env=mlflow_env,
            check=True,
        )
        print(f"built both models in {time.perf_counter() - t:.0f} s (untimed)", flush=True)

        def start(name: str, rnd: int) -> Server:
            port = free_port()
            if name == "mlflow":
                cmd = ["mlflow", "models", "serve", "-m", str(work / "mlflow_model"),
                       "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local",
                       *mlflow_workers]  # fmt: skip
                env = mlflow_env
            else:
                cmd = [serve_load.MLSTAGE, "serve", "--registry", "reg", "--port", str(port),
                       "--workers", str(args.workers)]  # fmt: skip
                env = dict(os.environ)
            commands[name] = cmd
            return Server(name, cmd, work, env, work / f"{name}-{rnd}.log", port)

        for rnd in range(args.rounds):
            for name in SERVERS if rnd % 2 == 0 else SERVERS[::-1]:
                res = measure(start(name, rnd), args.requests, args.seconds, args.clients)
                res["round"] = rnd
                res["loadavg_after"] = os.getloadavg()[0]
                runs[name].append(res)
                shown = {k: v for k, v in res.items() if k != "first"}
                print(name, json.dumps(shown), flush=True)
                time.sleep(1)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def med(name: str, key: str) -> float | None:
        xs = [r[key] for r in runs[name] if key in r]
        return statistics.median(xs) if xs else None

    keys = ("p50_ms", "p99_ms", "requests_per_s", "startup_s", "rss_mb", "processes")
    median = {name: {k: med(name, k) for k in keys} for name in SERVERS}
    pairs = list(zip(runs["mlstage"], runs["mlflow"], strict=True))

    def ratio(key: str, invert: bool) -> float | None:
        xs = [(f[key] / s[key]) if invert else (s[key] / f[key])
              for s, f in pairs if key in s and key in f]  # fmt: skip
        return statistics.median(xs) if xs else None

    summary = {
        "median": median,
        "throughput_ratio_mlstage_over_mlflow": ratio("requests_per_s", invert=False),
        "p50_ratio_mlflow_over_mlstage": ratio("p50_ms", invert=True),
        "p99_ratio_mlflow_over_mlstage": ratio("p99_ms", invert=True),
        "failed_requests": {n: sum(r.get("failed", 0) for r in runs[n]) for n in SERVERS},
        "latency_errors": {n: sum("latency_error" in r for r in runs[n]) for n in SERVERS},
    }
    res = {
        "what": "POST /invocations, one dataframe_records row; see bench/mlflow_serve.py",
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": args.workers,
        "latency_requests": args.requests,
        "clients": args.clients,
        "body": BODY.decode(),
        "versions": vers,
        "commands": {n: " ".join(c) for n, c in commands.items()},
        "first_answers": {n: runs[n][0].get("first") for n in SERVERS if runs[n]},
        "runs": runs,
        **summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({"versions": vers, **summary}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()

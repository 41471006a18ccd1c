"""`mlstage serve` on each of its three protocols against MLServer (its scikit-learn
runtime) and `mlflow models serve`: same model, same machine, same load client, same
worker count (issue 21).

    .venv/bin/python bench/serve_protocols.py [--rounds 5] [--seconds 10] [--workers 1]
                                              [--out bench/work/serve_protocols.json]

MLServer and MLflow live in venvs of their own, never imported here, only run:
- bench/work/mlserver-venv: python3 -m venv, then pip install mlserver mlserver-sklearn
  pandas pyarrow httptools 'uvloop==0.21.0' scikit-learn==(this venv's version).
  uvloop 0.22+ breaks MLServer 1.7.1's parallel inference workers (they die at start:
  "There is no current event loop", SeldonIO/MLServer#2286); httptools gives its uvicorn
  the HTTP parser mlstage's has (without it uvicorn falls back to h11);
- bench/work/mlflow-venv as bench/mlflow_serve.py makes it (mlflow's own dependencies:
  no uvloop, no httptools).
A server whose venv is absent, or whose model cannot be built, is skipped with a message
saying why; the others still run.

Built untimed, in a temporary folder:
- mlstage: the model of serve_load.build (Adult sample, an 80/20 split; 5 standardized
  numeric columns, 7 one-hot categorical ones with mode imputation;
  LogisticRegression(C=1.0, max_iter=1000)), deployed to a registry as `income`;
- MLServer: the same model as a scikit-learn Pipeline (ColumnTransformer: StandardScaler
  on the numeric columns; most-frequent SimpleImputer + OneHotEncoder on the categorical
  ones; the same LogisticRegression) fitted on mlstage's own train split
  (ds/train.parquet) by MLServer's python, saved with joblib as income/model.joblib
  beside a model-settings.json for `mlserver_sklearn.SKLearnModel`;
- MLflow: mlflow_serve.SAVE_MLFLOW_MODEL, the same Pipeline saved by mlflow.sklearn.
The build also times the Pipeline's own predict() on ROW as a one-row DataFrame,
in-process under MLServer's venv (`sklearn_pipeline_alone`): the part of MLServer's and
MLflow's latency that is scikit-learn's, not their server's.

Servers and what each is sent (the same row, serve_load.ROW, in each protocol's shape):
- `mlstage serve --registry reg --port P --workers N`, one process per round, measured
  on its three protocols in turn (the order rotates between rounds):
  `mlstage-v1`  POST /v1/models/income:predict {"instances": [ROW]};
  `mlstage-invocations`  POST /invocations {"dataframe_records": [ROW]};
  `mlstage-v2`  POST /v2/models/income/infer, one tensor per column (INT64 or BYTES,
  shape [1]);
- `mlserver-v2`: `mlserver start DIR` with settings.json {host 127.0.0.1, http_port P,
  free grpc and metrics ports (neither can be turned off; metrics stay on as mlstage's
  do), parallel_workers N, debug false (no access log, as mlstage)}; POST
  /v2/models/income/infer with the same tensors plus request-level
  "parameters": {"content_type": "pd"}, so the runtime decodes them to the DataFrame the
  Pipeline takes. MLServer's HTTP front end is one process whatever N is; N is its
  number of inference worker processes (default 1), fed over IPC. At --workers 1 it is
  also run as `mlserver-v2-inproc` (parallel_workers 0: inference in the HTTP process,
  one process in all, as mlstage's: no IPC, so its lowest latency);
- `mlflow-invocations`: `mlflow models serve -m MODEL -p P -h 127.0.0.1 --env-manager
  local --workers N`; POST /invocations {"dataframe_records": [ROW]}.

Rounds alternate the order of the servers. In each round each server is started on
fresh free ports and waited for until its first answer on each protocol is a 200 with a
prediction (MLServer is asked once GET /v2/models/income/ready is a 200: before, it
answers 404 or 400); every prediction for ROW must equal mlstage's, else the run stops.
Then per protocol:
- latency: serve_load.latency, 2,000 sequential single-row requests on one keep-alive
  connection after 200 of warm-up (p50, p99; a non-200 aborts it, recorded as an error);
- with --workers 2 or more (or --new-connections): the same with a new connection per
  request (p50_new_ms, p99_new_ms; connection set-up included). uvicorn's
  multi-worker mode has had keep-alive requests wait ~40 ms for delayed ACKs
  (TCP_NODELAY not set on the shared socket, Kludex/uvicorn#3149); a server whose
  keep-alive p50 is 30 ms or more and at least 25 ms above its new-connection p50 is
  flagged `delayed_ack`: that figure is the socket option, not the server's speed;
- throughput: serve_load.python_load, 8 client processes for --seconds (requests/s of
  200 answers; every non-200 or connection error counts as failed);
- after the load, the server's processes (its process group) and their total RSS.
Medians over rounds are reported, with the median over rounds of per-round ratios:
throughput mlstage/other, and latency other/mlstage (above 1: mlstage is faster).
Caveats: the clients share the 2 cores with the server (the same for every server); all
requests are single rows, so this says nothing about batch requests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mlflow_serve  # noqa: E402
import serve_load  # noqa: E402

ROOT = serve_load.ROOT
ROW = serve_load.ROW
MLSTAGE_PROTOCOLS = ("mlstage-v1", "mlstage-invocations", "mlstage-v2")
V2_INPUTS = [
    {
        "name": col,
        "datatype": "INT64" if isinstance(value, int) else "BYTES",
        "shape": [1],
        "data": [value],
    }
    for col, value in ROW.items()
]


def _v1(answer: dict) -> object:
    return answer["predictions"][0]


def _v2(output: str) -> Callable[[dict], object]:
    def get(answer: dict) -> object:
        return next(o for o in answer["outputs"] if o["name"] == output)["data"][0]

    return get


# protocol -> (path, body, how to read the prediction from the answer)
PROTOCOLS: dict[str, tuple[str, bytes, Callable[[dict], object]]] = {
    "mlstage-v1": ("/v1/models/income:predict", json.dumps({"instances": [ROW]}).encode(), _v1),
    "mlstage-invocations": ("/invocations", mlflow_serve.BODY, _v1),
    "mlstage-v2": (
        "/v2/models/income/infer",
        json.dumps({"inputs": V2_INPUTS}).encode(),
        _v2("prediction"),
    ),
    "mlserver-v2": (
        "/v2/models/income/infer",
        json.dumps({"inputs": V2_INPUTS, "parameters": {"content_type": "pd"}}).encode(),
        _v2("predict"),
    ),
    "mlflow-invocations": ("/invocations", mlflow_serve.BODY, _v1),
}
PROTOCOLS["mlserver-v2-inproc"] = PROTOCOLS["mlserver-v2"]

# Run by MLServer's python: argv = train.parquet, model.joblib, ROW as JSON. Prints its
# result as the last line.
SAVE_SKLEARN_MODEL = """\
import json
import sys
import time

import joblib
import pandas as pd
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
joblib.dump(pipe, sys.argv[2])
print(f"mlserver model: {len(X)} training rows, train accuracy {pipe.score(X, y):.4f}")
# what the Pipeline alone takes for one row, in-process: the floor of both servers of it
row = pd.DataFrame({k: pd.Series([v]) for k, v in json.loads(sys.argv[3]).items()})
for _ in range(50):
    pipe.predict(row)
t = time.perf_counter()
for _ in range(500):
    pipe.predict(row)
print(json.dumps({"pipeline_predict_1row_ms": (time.perf_counter() - t) / 500 * 1000}))
"""


def venv_env(bin_dir: Path) -> dict:
    """The environment of an activated venv."""
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(bin_dir.parent),
    }


def dist_versions(python: Path, names: tuple[str, ...]) -> dict:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    return json.loads(mlflow_serve.run_text(str(python), "-c", code, *names))


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, body, {"content-type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def model_ready(port: int) -> bool:
    """The Open Inference Protocol's model readiness."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/v2/models/income/ready")
        r = c.getresponse()
        r.read()
        return r.status == 200
    finally:
        c.close()


def first_prediction(server: mlflow_serve.Server, protocol: str, timeout: float = 180) -> dict:
    """Wait until the server answers; that first answer must be a 200 with a prediction."""
    path, body, read = PROTOCOLS[protocol]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited ({server.proc.returncode}); see {server.log}")
        try:
            if protocol.startswith("mlserver") and not model_ready(server.port):
                # before then it answers 404 "Model income not found" or 400 "... not ready"
                time.sleep(0.1)
                continue
            status, raw = post(server.port, path, body)
        except OSError:
            time.sleep(0.1)
            continue
        if status == 503:  # mlstage before its model is loaded
            time.sleep(0.1)
            continue
        try:
            prediction = read(json.loads(raw)) if status == 200 else None
        except (ValueError, KeyError, IndexError, StopIteration, TypeError):
            prediction = None
        if prediction is None:
            raise RuntimeError(f"{protocol}: first answer {status} {raw[:300]!r}")
        return {"startup_s": round(time.perf_counter() - t0, 2), "prediction": prediction}
    raise RuntimeError(f"{server.name} gave no prediction in {timeout} s; see {server.log}")


def latency_new_connections(port: int, n: int, path: str, body: bytes) -> dict:
    """serve_load.latency with a new connection per request (connect time included)."""
    times = []
    for i in range(n + 200):
        t = time.perf_counter()
        status, _ = post(port, path, body)
        if i >= 200:  # warm-up
            times.append(time.perf_counter() - t)
        if status != 200:
            raise AssertionError(f"status {status}")
    times.sort()
    return {
        "p50_new_ms": 1000 * statistics.median(times),
        "p99_new_ms": 1000 * times[int(0.99 * len(times))],
    }


def measure(server: mlflow_serve.Server, protocols: list[str], args) -> dict[str, dict]:
    """Every protocol of one started server in turn; then stop it."""
    out: dict[str, dict] = {}
    try:
        for i, protocol in enumerate(protocols):
            path, body, _ = PROTOCOLS[protocol]
            res: dict = {"port": server.port, **first_prediction(server, protocol)}
            res["loadavg_before"] = os.getloadavg()[0]  # other work on the machine shows here
            if i:  # the server was up already
                del res["startup_s"]
            try:
                res.update(serve_load.latency(server.port, args.requests, path, body))
            except (AssertionError, OSError) as e:
                res["latency_error"] = repr(e)
            if args.new_connections:
                try:
                    res.update(latency_new_connections(server.port, args.requests, path, body))
                except (AssertionError, OSError) as e:
                    res["latency_new_error"] = repr(e)
            load = serve_load.python_load(server.port, args.seconds, args.clients, path, body)
            res.update(requests_per_s=load["requests_per_s"], ok=load["ok"], failed=load["failed"])
            res.update(mlflow_serve.group_stats(server.proc.pid))
            out[protocol] = res
    finally:
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10, help="throughput load per protocol")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes (all)")
    ap.add_argument("--requests", type=int, default=2000, help="sequential latency requests")
    ap.add_argument("--clients", type=int, default=8, help="throughput client processes")
    ap.add_argument(
        "--new-connections",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also latency with a new connection per request (default: with --workers >= 2)",
    )
    ap.add_argument("--mlserver-venv", type=Path, default=ROOT / "bench/work/mlserver-venv")
    ap.add_argument("--mlflow-venv", type=Path, default=ROOT / "bench/work/mlflow-venv")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/work/serve_protocols.json")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")
    args = ap.parse_args()
    if args.new_connections is None:
        args.new_connections = args.workers >= 2

    sk = "scikit-learn"
    vers: dict = {
        "mlstage": mlflow_serve.run_text(serve_load.MLSTAGE, "--version"),
        "mlstage_venv": dist_versions(Path(sys.executable), (sk, "uvicorn", "uvloop", "httptools")),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    skipped: dict[str, str] = {}
    mlserver_bin = args.mlserver_venv.resolve() / "bin"
    mlflow_bin = args.mlflow_venv.resolve() / "bin"
    if not (mlserver_bin / "mlserver").exists():
        skipped["mlserver"] = (
            f"no MLServer venv at {args.mlserver_venv}: make it with python3 -m venv, then pip "
            "install mlserver mlserver-sklearn pandas pyarrow httptools uvloop==0.21.0 "
            "scikit-learn==(this venv's)"
        )
    else:
        names = (
            "mlserver",
            "mlserver-sklearn",
            sk,
            "pandas",
            "numpy",
            "uvicorn",
            "uvloop",
            "httptools",
        )
        vers["mlserver_venv"] = dist_versions(mlserver_bin / "python", names)
    if not (mlflow_bin / "mlflow").exists():
        skipped["mlflow"] = f"no MLflow venv at {args.mlflow_venv} (see bench/mlflow_serve.py)"
    else:
        names = ("mlflow", sk, "pandas", "uvicorn", "uvloop", "httptools")
        vers["mlflow_venv"] = dist_versions(mlflow_bin / "python", names)
        help_text = mlflow_serve.run_text(str(mlflow_bin / "mlflow"), "models", "serve", "--help")
        if "--workers" not in help_text and args.workers != 1:
            skipped["mlflow"] = "this mlflow's `models serve` has no --workers"
    for venv in ("mlserver_venv", "mlflow_venv"):
        if venv in vers and vers[venv][sk] != vers["mlstage_venv"][sk]:
            print(f"note: scikit-learn {vers[venv][sk]} in {venv}, {vers['mlstage_venv'][sk]} here")

    work = Path(tempfile.mkdtemp(prefix="serve-protocols-bench-"))
    runs: dict[str, list[dict]] = {}
    pipeline_ms: dict = {}
    commands: dict[str, str] = {}
    try:
        t = time.perf_counter()
        serve_load.build(work)
        if "mlserver" not in skipped:
            model_dir = work / "mlserver" / "income"
            model_dir.mkdir(parents=True)
            (work / "save_sklearn_model.py").write_text(SAVE_SKLEARN_MODEL)
            saved = subprocess.run(
                [str(mlserver_bin / "python"), "save_sklearn_model.py", "ds/train.parquet",
                 str(model_dir / "model.joblib"), json.dumps(ROW)],
                cwd=work, env=venv_env(mlserver_bin), capture_output=True, text=True,
            )  # fmt: skip
            print(saved.stdout.strip() or saved.stderr.strip()[-2000:], flush=True)
            if saved.returncode:
                skipped["mlserver"] = f"its model could not be built (exit {saved.returncode})"
            else:
                pipeline_ms = json.loads(saved.stdout.splitlines()[-1])
            settings = {"name": "income", "implementation": "mlserver_sklearn.SKLearnModel"}
            (model_dir / "model-settings.json").write_text(json.dumps(settings))
        if "mlflow" not in skipped:
            (work / "save_mlflow_model.py").write_text(mlflow_serve.SAVE_MLFLOW_MODEL)
            saved = subprocess.run(
                [str(mlflow_bin / "python"), "save_mlflow_model.py", "ds/train.parquet",
                 "mlflow_model"],
                cwd=work, env=venv_env(mlflow_bin), capture_output=True, text=True,
            )  # fmt: skip
            print(saved.stdout.strip() or saved.stderr.strip()[-2000:], flush=True)
            if saved.returncode:
                skipped["mlflow"] = f"its model could not be built (exit {saved.returncode})"
        for name, why in skipped.items():
            print(f"skipping {name}: {why}", flush=True)
        print(f"built the models in {time.perf_counter() - t:.0f} s (untimed)", flush=True)

        # server -> protocols measured on it
        servers: dict[str, list[str]] = {"mlstage": list(MLSTAGE_PROTOCOLS)}
        if "mlserver" not in skipped:
            servers["mlserver"] = ["mlserver-v2"]
            if args.workers == 1:
                servers["mlserver-inproc"] = ["mlserver-v2-inproc"]
        if "mlflow" not in skipped:
            servers["mlflow"] = ["mlflow-invocations"]
        runs = {p: [] for protocols in servers.values() for p in protocols}

        def start(name: str, rnd: int) -> mlflow_serve.Server:
            port = mlflow_serve.free_port()
            if name == "mlstage":
                cmd = [serve_load.MLSTAGE, "serve", "--registry", "reg", "--port", str(port),
                       "--workers", str(args.workers)]  # fmt: skip
                env = dict(os.environ)
            elif name.startswith("mlserver"):
                folder = work / "mlserver"
                settings = {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": mlflow_serve.free_port(),
                    "metrics_port": mlflow_serve.free_port(),
                    "parallel_workers": 0 if name == "mlserver-inproc" else args.workers,
                    "debug": False,
                }
                (folder / "settings.json").write_text(json.dumps(settings))
                cmd = [str(mlserver_bin / "mlserver"), "start", str(folder)]
                env = venv_env(mlserver_bin)
                commands[f"{name} settings.json"] = json.dumps(settings)
            else:
                cmd = ["mlflow", "models", "serve", "-m", str(work / "mlflow_model"),
                       "-p", str(port), "-h", "127.0.0.1", "--env-manager", "local",
                       "--workers", str(args.workers)]  # fmt: skip
                env = venv_env(mlflow_bin)
            commands[name] = " ".join(cmd)
            return mlflow_serve.Server(name, cmd, work, env, work / f"{name}-{rnd}.log", port)

        reference, errors = None, []
        order = list(servers)
        for rnd in range(args.rounds):
            for name in order if rnd % 2 == 0 else order[::-1]:
                protocols = servers[name]
                k = rnd % len(protocols)
                try:
                    res = measure(start(name, rnd), protocols[k:] + protocols[:k], args)
                except RuntimeError as e:  # did not start or answer: note it, go on
                    errors.append(f"round {rnd}: {e}")
                    print(f"error: {name} in round {rnd}: {e}", flush=True)
                    continue
                for protocol, r in res.items():
                    r["round"] = rnd
                    reference = reference or res.get("mlstage-v1", {}).get("prediction")
                    runs[protocol].append(r)
                    print(protocol, json.dumps(r), flush=True)
                time.sleep(1)
            predictions = {p: rs[-1]["prediction"] for p, rs in runs.items() if rs}
            if len(set(map(str, predictions.values()))) != 1:
                sys.exit(f"the servers do not agree on ROW: {predictions}")
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    keys = ("p50_ms", "p99_ms", "requests_per_s", "p50_new_ms", "p99_new_ms", "startup_s",
            "rss_mb", "processes", "loadavg_before")  # fmt: skip
    median = {
        p: {k: statistics.median(xs) for k in keys if (xs := [r[k] for r in rs if k in r])}
        for p, rs in runs.items()
    }

    def ratio(ours: str, other: str, key: str) -> float | None:
        """Median over rounds of the per-round ratio; above 1 means mlstage is ahead."""
        theirs = {r["round"]: r for r in runs[other]}
        pairs = [(a[key], theirs[a["round"]][key]) for a in runs[ours]
                 if key in a and key in theirs.get(a["round"], {})]  # fmt: skip
        if not pairs:
            return None
        up = key == "requests_per_s"
        return statistics.median((a / b) if up else (b / a) for a, b in pairs)

    others = [p for p in runs if p not in MLSTAGE_PROTOCOLS]
    ratios = {
        f"{ours} vs {other}": {
            "throughput_ours_over_theirs": ratio(ours, other, "requests_per_s"),
            "p50_theirs_over_ours": ratio(ours, other, "p50_ms"),
            "p99_theirs_over_ours": ratio(ours, other, "p99_ms"),
        }
        for ours in MLSTAGE_PROTOCOLS
        for other in others
    }
    targets = {}
    for other in (p for p in others if p.startswith("mlserver")):
        r = ratios[f"mlstage-v2 vs {other}"]
        if r["throughput_ours_over_theirs"] is not None and r["p99_theirs_over_ours"]:
            targets[f"mlstage-v2 vs {other}"] = {
                "ahead_in_throughput": r["throughput_ours_over_theirs"] > 1,
                "ahead_in_p99": r["p99_theirs_over_ours"] > 1,
                "at_least_2x_throughput": r["throughput_ours_over_theirs"] >= 2,
            }
    delayed_ack = [
        p
        for p, m in median.items()
        if args.workers >= 2
        and m.get("p50_ms", 0) >= 30
        and m.get("p50_ms", 0) - m.get("p50_new_ms", 1e9) >= 25
    ]
    summary = {
        "median": median,
        "ratios": ratios,
        "targets": targets,
        "failed_requests": {p: sum(r.get("failed", 0) for r in rs) for p, rs in runs.items()},
        "latency_errors": {
            p: sum("latency_error" in r or "latency_new_error" in r for r in rs)
            for p, rs in runs.items()
        },
        "delayed_ack": delayed_ack,
        "prediction_for_row": reference,
        "sklearn_pipeline_alone": pipeline_ms,
        "skipped": skipped,
        "errors": errors,
    }
    res = {
        "what": "single-row requests on each server and protocol; see bench/serve_protocols.py",
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": args.workers,
        "latency_requests": args.requests,
        "clients": args.clients,
        "bodies": {p: (path, body.decode()) for p, (path, body, _) in PROTOCOLS.items()},
        "versions": vers,
        "commands": commands,
        "runs": runs,
        **summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({"versions": vers, **summary}, indent=2))
    new = " p50/p99 new conn" if args.new_connections else ""
    print(f"\n{'workers ' + str(args.workers):<20} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>7}{new}")
    for p, m in median.items():
        line = f"{p:<20} {m.get('p50_ms', 0):7.2f} {m.get('p99_ms', 0):7.2f}"
        line += f" {m.get('requests_per_s', 0):7.0f}"
        if "p50_new_ms" in m:
            line += f" {m['p50_new_ms']:7.2f} {m['p99_new_ms']:7.2f}"
        print(line)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()

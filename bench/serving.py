"""Serving: the same model behind keizoku serve, `mlflow models serve` and BentoML, plus the
in-process call as the limit. Requests/s and p50/p99 at 1 and 16 connections, one load
generator (bench/loadgen.py: wrk -t1, else asyncio+httpx) on loopback. The server is pinned
to CPU 0 and the generator to CPU 1 when `taskset` exists, so they do not fight for a core.

    python bench/serving.py --out bench/work/serving.json [--quick] [--source keizoku|standin]

Model: keizoku trains on the titanic split through its CLI (`keizoku init` + `keizoku train`);
keizoku logs an MLflow pyfunc model, registered as `train` with alias `champion` in
sqlite:///<KEIZOKU_HOME>/mlflow.db, which mlflow and BentoML load from the same registry.
With --source standin (or when `keizoku train` is not available) a LightGBM pipeline logged
with mlflow.sklearn stands in, so the mlflow/BentoML side and the load generator can be run
before keizoku serves; the report says which model was served.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402
from common import BENCH, ROOT, WORK, load_datasets, make_split, tool_python, write_json  # noqa: E402

DATASET = "titanic"
MODEL_NAME = "train"
KEIZOKU_BIN = ROOT / ".venv" / "bin" / "keizoku"

# keizoku serve's request contract (adapt here when the server lands)
KEIZOKU_ROUTE = os.environ.get("BENCH_KEIZOKU_ROUTE", "/v1/models/{name}/predict")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def keizoku_cli_ok(*sub: str) -> bool:
    if not KEIZOKU_BIN.exists():
        return False
    r = subprocess.run([str(KEIZOKU_BIN), *sub, "--help"], capture_output=True, timeout=120)
    return r.returncode == 0


STANDIN = r"""
import sys, mlflow, pandas as pd, lightgbm as lgb
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
train = pd.read_parquet(sys.argv[1]); target = sys.argv[2]
x, y = train.drop(columns=[target]), train[target]
cat = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
num = [c for c in x.columns if c not in cat]
pre = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value",
        unknown_value=-1, encoded_missing_value=-1), cat), ("num", "passthrough", num)])
pipe = Pipeline([("pre", pre), ("model", lgb.LGBMClassifier(verbose=-1))]).fit(x, y)
mlflow.set_tracking_uri(sys.argv[3]); mlflow.set_registry_uri(sys.argv[3])
with mlflow.start_run():
    info = mlflow.sklearn.log_model(pipe, name="model", registered_model_name=sys.argv[4],
        pip_requirements=["scikit-learn", "lightgbm", "pandas"], input_example=x.head(2),
        serialization_format="cloudpickle")
c = MlflowClient()
v = max(int(m.version) for m in c.search_model_versions(f"name='{sys.argv[4]}'"))
c.set_registered_model_alias(sys.argv[4], "champion", str(v))
print("standin registered", v)
"""

BENTO_SERVICE = r'''
import json
import os

import bentoml
import numpy as np
import pandas as pd


@bentoml.service(workers=1)
class KeizokuModel:
    def __init__(self) -> None:
        import mlflow
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        self.model = mlflow.pyfunc.load_model(os.environ["BENCH_MODEL_URI"])
        # JSON numbers arrive as int64 where the signature says double: cast them as
        # `mlflow models serve` does when it parses a request (pyfunc refuses int64 -> float64)
        schema = self.model.metadata.get_input_schema()
        self.floats = [c.name for c in (schema.inputs if schema else [])
                       if str(getattr(c, "type", "")).lower().endswith(("double", "float"))]

    @bentoml.api
    def predict(self, records: list[dict]) -> list:
        df = pd.DataFrame(records)
        for c in self.floats:
            if c in df.columns:
                df[c] = df[c].astype("float64")
        out = self.model.predict(df)
        if hasattr(out, "to_json"):
            return json.loads(out.to_json(orient="records" if hasattr(out, "columns") else "values"))
        return np.asarray(out).tolist()
'''

INPROC = r"""
import json, os, statistics, sys, time
rec = json.loads(open(sys.argv[1]).read()); n = int(sys.argv[2]); mode = sys.argv[3]
if mode == "keizoku":
    from keizoku.registry import load_model
    m = load_model("train@champion"); call = lambda: m.predict_records([rec])
else:
    import mlflow, pandas as pd
    m = mlflow.pyfunc.load_model("models:/train@champion")
    call = lambda: m.predict(pd.DataFrame([rec]))
for _ in range(20): call()
ts = []
t_all = time.perf_counter()
for _ in range(n):
    t0 = time.perf_counter(); call(); ts.append((time.perf_counter() - t0) * 1000)
secs = time.perf_counter() - t_all
ts.sort()
print("INPROC " + json.dumps({"requests": n, "rps": n / secs, "p50_ms": ts[n // 2],
      "p99_ms": ts[int(n * 0.99) - 1], "errors": 0, "generator": "in-process loop"}))
"""


class Server:
    """A server subprocess in its own process group, stopped with the whole group."""

    def __init__(self, name: str, cmd: list[str], url: str, body: str, env: dict, cwd: Path,
                 log: Path):
        self.name, self.cmd, self.url, self.body, self.env, self.cwd, self.log = (
            name, cmd, url, body, env, cwd, log)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "w")
        env = {**os.environ, **self.env}
        # the server's own venv first on PATH: `mlflow models serve` execs `uvicorn` by name
        env["PATH"] = str(Path(self._exe()).parent) + os.pathsep + env["PATH"]
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=env,
                                     stdout=self._fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def _exe(self) -> str:
        return next(c for c in self.cmd if c.startswith("/") and "/bin/" in c)

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        t_end = time.time() + timeout
        last = ""
        while time.time() < t_end:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   + self.log.read_text(errors="replace")[-800:])
            try:
                r = httpx.post(self.url, content=self.body,
                               headers={"Content-Type": "application/json"}, timeout=10)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:300]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s ({last})")

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._fh.close()


def prepare_model(work: Path, source: str, budget: int) -> tuple[str, dict, str]:
    """Train/register the model; return (source used, one JSON record, tracking URI)."""
    import pandas as pd

    spec = next(s for s in load_datasets(BENCH / "datasets.shared.yaml") if s.name == DATASET)
    split = WORK / "splits" / "bench-datasets.shared" / DATASET
    task = make_split(spec, split)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    home = work / ".keizoku"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    test = pd.read_parquet(split / "test.parquet").drop(columns=[task["target"]])
    record = json.loads(test.head(1).to_json(orient="records"))[0]
    env = {**os.environ, "KEIZOKU_HOME": str(home)}
    if source == "auto":
        source = "keizoku" if keizoku_cli_ok("train") else "standin"
    if source == "keizoku":
        shutil.copy(split / "train.parquet", work / "train.parquet")
        for args in (["init", "train.parquet", "--target", task["target"], "--task", task["task"]],
                     ["train", "--budget", f"{budget}s"]):
            r = subprocess.run([str(KEIZOKU_BIN), *args], cwd=work, env=env, capture_output=True,
                               text=True, timeout=budget * 3 + 300)
            if r.returncode != 0:
                raise RuntimeError(f"keizoku {args[0]} failed: {(r.stdout + r.stderr)[-800:]}")
    else:
        py = tool_python("mlflow")
        if py is None:
            raise RuntimeError("bench/.venv-mlflow is missing (bash bench/setup_peer.sh mlflow)")
        script = work / "standin.py"
        script.write_text(STANDIN)
        r = subprocess.run([str(py), str(script), str(split / "train.parquet"), task["target"],
                            uri, MODEL_NAME], cwd=work, env=env, capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"stand-in model failed: {(r.stdout + r.stderr)[-800:]}")
    return source, record, uri


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=WORK / "serving.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--source", choices=["auto", "keizoku", "standin"], default="auto")
    p.add_argument("--duration", type=float, default=None, help="seconds per load point")
    p.add_argument("--servers", default="inprocess,keizoku,mlflow,bentoml")
    a = p.parse_args(argv)
    duration = a.duration or (5 if a.quick else 15)
    conns = [1, 16]
    work = WORK / "serving"
    result: dict[str, Any] = {"section": "serving", "results": [], "duration_s": duration,
                              "generator": "wrk -t1" if shutil.which("wrk") else "python"}
    try:
        source, record, uri = prepare_model(work, a.source, 30 if a.quick else 60)
    except Exception as exc:  # noqa: BLE001
        result.update(status="failed", error=str(exc))
        write_json(a.out, result)
        print(f"[serving] cannot prepare the model: {exc}")
        return 0
    home = work / ".keizoku"
    result["model_source"] = source
    result["note"] = (
        f"Model: {'keizoku (trained by `keizoku train`)' if source == 'keizoku' else 'a stand-in LightGBM pipeline logged with mlflow.sklearn (keizoku could not train yet)'} "
        f"on the {DATASET} split, one JSON record per request, {duration:.0f} s per point, "
        f"load generator {result['generator']}; server pinned to CPU 0, generator to CPU 1.")
    env = {"KEIZOKU_HOME": str(home), "MLFLOW_TRACKING_URI": uri,
           "BENCH_MODEL_URI": f"models:/{MODEL_NAME}@champion"}
    (work / "record.json").write_text(json.dumps(record))
    servers = [s.strip() for s in a.servers.split(",")]
    for name in servers:
        rows = run_server(name, source, record, work, env, duration, conns)
        for r in rows:
            print(f"[serving] {r}", flush=True)
        result["results"] += rows
        write_json(a.out, result)
    result["status"] = "ok"
    write_json(a.out, result)
    return 0


def run_server(name: str, source: str, record: dict, work: Path, env: dict, duration: float,
               conns: list[int]) -> list[dict]:
    def row(status: str, **kw: Any) -> dict:
        return {"server": name, "status": status, **kw}

    if name == "inprocess":
        py = ROOT / ".venv" / "bin" / "python" if source == "keizoku" else tool_python("mlflow")
        if py is None or not Path(py).exists():
            return [row("not installed")]
        script = work / "inproc.py"
        script.write_text(INPROC)
        n = 500 if duration <= 5 else 2000
        r = subprocess.run([*pin(0), str(py), str(script), str(work / "record.json"), str(n),
                            "keizoku" if source == "keizoku" else "mlflow"],
                           cwd=work, env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=600)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("INPROC ")), None)
        if line is None:
            return [row("failed", error=(r.stdout + r.stderr)[-500:])]
        d = json.loads(line[len("INPROC "):])
        label = "in-process keizoku load_model().predict_records" if source == "keizoku" \
            else "in-process mlflow pyfunc predict"
        return [{"server": label, "connections": 1, "status": "ok", **d}]

    port = free_port()
    if name == "keizoku":
        if source != "keizoku":
            return [row("skipped (model is the stand-in)")]
        if not keizoku_cli_ok("serve"):
            return [row("not available (`keizoku serve` does not exist yet)")]
        # defaults as a user gets them (one worker, prediction log on)
        cmd = [*pin(0), str(KEIZOKU_BIN), "serve", "--model", MODEL_NAME, "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
        url = f"http://127.0.0.1:{port}" + KEIZOKU_ROUTE.format(name=MODEL_NAME)
        body = json.dumps(record)  # one record as a JSON object
    elif name == "mlflow":
        py = tool_python("mlflow")
        if py is None:
            return [row("not installed")]
        cmd = [*pin(0), str(py.with_name("mlflow")), "models", "serve", "-m",
               f"models:/{MODEL_NAME}@champion", "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(port), "-w", "1"]
        url = f"http://127.0.0.1:{port}/invocations"
        body = json.dumps({"dataframe_records": [record]})
    elif name == "bentoml":
        py = tool_python("bentoml")
        if py is None:
            return [row("not installed")]
        (work / "bento_service.py").write_text(BENTO_SERVICE)
        cmd = [*pin(0), str(py.with_name("bentoml")), "serve", "bento_service:KeizokuModel",
               "--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}/predict"
        body = json.dumps({"records": [record]})
    else:
        return [row("unknown server")]
    out = []
    try:
        with Server(name, cmd, url, body, env, work, work / f"{name}.log") as srv:
            srv.wait_ready()
            for c in conns:
                try:
                    d = loadgen_pinned(url, body, c, duration)
                    out.append(row("ok", connections=c, **d))
                except Exception as exc:  # noqa: BLE001
                    out.append(row("failed", connections=c, error=str(exc)[:300]))
    except Exception as exc:  # noqa: BLE001
        out.append(row("failed", error=str(exc)[:500]))
    return out


def loadgen_pinned(url: str, body: str, connections: int, duration: float) -> dict:
    """Run bench/loadgen.py on CPU 1 (a separate process, so pinning does not touch us)."""
    bodyf = WORK / "serving" / "body.json"
    bodyf.write_text(body)
    r = subprocess.run([*pin(1), sys.executable, str(BENCH / "loadgen.py"), "--url", url,
                        "--body-file", str(bodyf), "--connections", str(connections),
                        "--duration", str(duration)], capture_output=True, text=True,
                       timeout=duration + 120)
    if r.returncode != 0:
        raise RuntimeError((r.stdout + r.stderr)[-400:])
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())

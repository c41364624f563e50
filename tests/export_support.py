"""The export tests' models: shipped data, fitted by the search and registered once per module."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import venv
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from keizoku.data.schema import infer_schema
from keizoku.registry.tracking import TrainingRun
from keizoku.training.config import TrainSpec
from keizoku.training.context import TrainingData
from keizoku.training.model import KeizokuModel
from keizoku.training.search import run_search
from kzsupport import built_once

RUNNER_PACKAGES = ("numpy", "onnxruntime")  # all a bundle's runner may need
ROWS = 150  # small on purpose: the tests check the graph's equality, not accuracy
SMALL = {"n_estimators": 20}  # fewer trees than the defaults (families that have the key)


def graph_session(g: Any, source: tuple[str, int, int], result: tuple[str, int, int]) -> Any:
    """An onnxruntime session of the nodes built in ``g`` (a ``keizoku.export.graph.Graph``):
    one input and one output, each given as (name, ONNX element type, columns)."""
    import onnxruntime as ort
    from onnx import helper

    from keizoku.export.graph import OPSET

    values = [
        helper.make_tensor_value_info(n, kind, [None, cols]) for n, kind, cols in (source, result)
    ]
    graph = helper.make_graph(g.nodes, "part", values[:1], values[1:], initializer=g.initializers)
    opsets = [helper.make_opsetid(domain, version) for domain, version in OPSET.items()]
    proto = helper.make_model(graph, opset_imports=opsets)
    proto.ir_version = 9
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def need_onnx_extra() -> None:
    """Skip the calling module unless the ``onnx`` extra is installed."""
    for extra in ("onnx", "onnxruntime", "skl2onnx", "onnxmltools"):
        if importlib.util.find_spec(extra) is None:  # pragma: no cover - the onnx extra
            pytest.skip(
                f"the export tests need the optional package '{extra}': "
                "pip install 'keizoku[onnx]'",
                allow_module_level=True,
            )


def task_frame(task: str) -> pd.DataFrame:
    """Shipped scikit-learn data, cut small, with a categorical feature ``band`` (text),
    an integer-coded categorical ``grade`` and a few missing numbers."""
    if task == "binary":
        data = load_breast_cancer(as_frame=True)
        frame = data.frame.iloc[:, [0, 1, 4, 7, 30]].sample(ROWS, random_state=0)
        frame["target"] = [str(data.target_names[i]) for i in frame["target"]]
        source = "mean radius"
    elif task == "multiclass":
        data = load_iris(as_frame=True)
        frame = data.frame.sample(frac=1.0, random_state=0).copy()
        frame["target"] = [str(data.target_names[i]) for i in frame["target"]]
        source = "sepal length (cm)"
    else:
        frame = load_diabetes(as_frame=True).frame.iloc[:ROWS, [0, 2, 3, 8, 10]].copy()
        source = "bmi"
    frame = frame.reset_index(drop=True)
    frame["band"] = pd.qcut(frame[source], 3, labels=["low", "mid", "high"]).astype(str)
    frame["grade"] = (np.arange(len(frame)) * 7 % 4 + 1).astype(int)
    numeric = [c for c in frame.columns if c not in ("target", "band", "grade")]
    frame.loc[frame.index[::9], numeric[1]] = np.nan
    return frame


class Models:
    """Fits (one family, one configuration) and registers each case once, on first use."""

    def __init__(self, root: Path, prefix: str = "exp") -> None:
        """``prefix`` names the registered models (``<prefix>-<task>``): a module of its own
        prefix never meets another module's model under the same reference in the
        process's model cache."""
        self.root = root
        self.prefix = prefix
        self.frames: dict[str, pd.DataFrame] = {}
        self.refs: dict[tuple[str, str], str] = {}
        self.fitted: dict[tuple[str, str], KeizokuModel] = {}

    def frame(self, task: str) -> pd.DataFrame:
        if task not in self.frames:
            self.frames[task] = task_frame(task)
        return self.frames[task]

    def fit(self, task: str, family: str, extra: dict[str, Any] | None = None) -> KeizokuModel:
        """``extra``: parameters over the small defaults (e.g. more rounds)."""
        key = (task, family if extra is None else f"{family}-{sorted(extra.items())}")
        if key not in self.fitted:
            frame = self.frame(task)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                schema = infer_schema(frame, "target")
                schema = schema.model_copy(update={"columns": [
                    c.model_copy(update={"kind": "categorical", "dtype": "int",
                                         "categories": [1, 2, 3, 4]})
                    if c.name == "grade" else c for c in schema.columns
                ]})  # fmt: skip
                cfg = TrainSpec(models=[family], max_trials=1, folds=2, search="grid",
                                ensemble=False, budget=600.0)  # fmt: skip
                params = SMALL if family in ("random_forest", "extra_trees") else {}
                if family in ("lightgbm", "xgboost", "hist_gradient_boosting", "catboost"):
                    params = {"n_estimators": 30}
                if family == "torch_mlp":  # n_estimators: its epochs
                    params = {"n_estimators": 30, "width": 32}
                params = {**params, **(extra or {})}
                data = TrainingData.build(frame, schema)
                result = run_search(data, cfg, warm_start=[{"family": family, "params": params}])
            self.fitted[key] = result.model
        return self.fitted[key]

    def register(self, task: str, label: str, model: KeizokuModel) -> str:
        key = (task, label)
        if key not in self.refs:
            name = f"{self.prefix}-{task}"
            schema_file = self.root / f"{task}-{label}-schema.yaml"
            model.schema.save(schema_file)
            with TrainingRun(name) as run:
                version = run.register(model, {"schema": schema_file}, {"keizoku.family": label})
            self.refs[key] = f"{name}:{version}"
        return self.refs[key]

    def ref(self, task: str, family: str) -> str:
        return self.register(task, family, self.fit(task, family))

    def ensemble(self, task: str, families: tuple[str, str]) -> str:
        """Two fitted models weighted 2:1 (each member's weight shared by its bag)."""
        first, second = (self.fit(task, f) for f in families)
        members = [replace(m, weight=2.0 / len(first.members)) for m in first.members] + [
            replace(m, weight=1.0 / len(second.members)) for m in second.members
        ]
        model = KeizokuModel(schema=first.schema, task=task, members=members,
                             classes=first.classes, metric=first.metric,
                             temperature=1.0 if task == "regression" else 1.7)  # fmt: skip
        return self.register(task, "+".join(families), model)


def _runner_venv(folder: Path) -> None:
    """A venv without pip, filled by this environment's pip (``--python``): bootstrapping
    a pip of its own into it (``ensurepip``) cost as much CPU as the install itself.
    ``--no-compile``: pip would compile every module of the packages (~1.6 s of CPU); the
    runner compiles the few it imports, once (``make test`` writes bytecode)."""
    venv.create(folder, with_pip=False)
    pip = [sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"),
           "--disable-pip-version-check", "install", "-q", "--no-compile",
           *RUNNER_PACKAGES]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        (folder / "pip-failed").write_text(done.stderr[-2000:])


def lean_runner_python() -> Path:
    """The python of a fresh venv with only numpy and onnxruntime (built once per test
    run); skips the caller when pip cannot install them."""
    folder = built_once("onnx-runner-venv", _runner_venv)
    if (folder / "pip-failed").exists():
        pytest.skip(f"pip could not install {RUNNER_PACKAGES} from the registry: "
                    f"{(folder / 'pip-failed').read_text()[-300:]}")  # fmt: skip
    return folder / "bin" / "python"


def bare_env() -> dict[str, str]:
    """This environment without the paths that would lend the runner keizoku's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run_runner(python: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` in ``bundle`` with ``python``, keizoku off the path."""
    return subprocess.run([str(python), "-m", "runner", *args], cwd=bundle, env=bare_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip

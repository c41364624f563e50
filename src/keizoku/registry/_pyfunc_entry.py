"""MLflow "models from code" entry point: lets ``mlflow models serve`` load a keizoku model.

keizoku's own loader never uses this path: it verifies the model file's sha256
against the hash recorded in the registry before unpickling it.
"""

import mlflow

from keizoku.registry.pyfunc import KeizokuPyfunc

mlflow.models.set_model(KeizokuPyfunc())

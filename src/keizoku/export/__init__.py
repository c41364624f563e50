"""Export a registered model out of the platform: an ONNX edge bundle (docs/export.md).

:func:`export_onnx` builds one ONNX graph for the whole model (:mod:`keizoku.export.graph`),
checks it against the registered model, writes the bundle with its standalone runner
(:mod:`keizoku.export.runner`) and records the export with the version.
"""

from keizoku.export.bundle import TOLERANCE, ExportResult, Parity, export_onnx

__all__ = ["TOLERANCE", "ExportResult", "Parity", "export_onnx"]

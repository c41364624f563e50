"""keizoku (継続, "continuation"): from a raw table to a monitored model that keeps improving.

The public surface is small; see ``__all__``. Heavy modules load lazily.
"""

from keizoku.errors import KeizokuError

__version__ = "0.1.0"
__all__ = ["KeizokuError", "__version__"]

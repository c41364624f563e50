"""keizoku.serving."""

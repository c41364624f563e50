"""keizoku.evaluation."""

"""keizoku.monitoring."""

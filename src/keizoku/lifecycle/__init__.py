"""keizoku.lifecycle."""

"""``python -m keizoku.cli`` runs the same command as the ``keizoku`` script."""

from keizoku.cli import main

main()

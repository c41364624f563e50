"""Tests of keizoku.evaluation."""

"""Shared fixtures: a fresh KEIZOKU_HOME per test, the embedding model loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from keizoku.rag.embed import Embedder, get_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session (process cache)."""
    return get_embedder()


@pytest.fixture(autouse=True)
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEIZOKU_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in (
        "KEIZOKU_LLM_BASE_URL",
        "KEIZOKU_LLM_MODEL",
        "KEIZOKU_LLM_API_KEY",
        "KEIZOKU_EMBED_MODEL",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write():  # type: ignore[no-untyped-def]
    """``write(path, text)``: create a file (and its folders) and return its path."""
    return _write

"""Every keizoku HTML page: one jinja2 environment, one base template, one CSS.

A page is a template in ``templates/`` fed by a plain context (dicts, lists, strings,
numbers) that a function next to its domain builds:

=============  ==========================  ============================================
page           template                    context builder
=============  ==========================  ============================================
``profile``    ``profile.html.j2``         ``keizoku.data.profile.profile_context``
``evaluation`` ``evaluation.html.j2``      ``keizoku.evaluation.report.report_context``
``drift``      ``drift.html.j2``           ``keizoku.monitoring.report.drift_context``
``clustering`` ``clustering.html.j2``      ``keizoku.clustering.report.cluster_context``
=============  ==========================  ============================================

Every page extends ``base.html.j2`` (the CSS, the header and the footer). Autoescape is
on, so any text from the data (a column name, a category, a file name) is escaped; the
only markup that enters unescaped is the SVG of :func:`keizoku.reporting.charts.draw`,
whose helpers escape their own labels, and the model card rendered from Markdown with
raw HTML disabled. ``StrictUndefined`` turns a key missing from a context into an error
instead of an empty string. Pages are offline: no script, no URL fetched.

This package knows nothing of the CLI, the server or the lifecycle; the domain packages
reach it only through their ``write_*``/``render_*`` functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

import keizoku
from keizoku.home import atomic_write_text
from keizoku.reporting.charts import draw

__all__ = ["PAGES", "Page", "environment", "render", "write"]

Page = Literal["profile", "evaluation", "drift", "clustering"]
PAGES: tuple[str, ...] = get_args(Page)
TEMPLATES = Path(__file__).parent / "templates"


def _num(value: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; ``n/a`` for None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _count(value: int | float) -> str:
    """A count with thousands separators: ``12,345``."""
    return f"{value:,}"


def _pct(value: float, digits: int = 1) -> str:
    """A share as a percentage: ``0.125`` → ``12.5%``."""
    return f"{value:.{digits}%}"


def _markdown(text: str) -> Markup:
    """Markdown (the model card) as HTML; raw HTML in the text is escaped, not passed."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


@cache
def environment() -> Environment:
    """The one jinja2 environment of every page (autoescape, strict undefined)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, count=_count, pct=_pct, markdown=_markdown)
    env.globals.update(chart=draw, keizoku_version=keizoku.__version__)
    return env


def render(page: Page, context: Mapping[str, Any]) -> str:
    """The HTML of ``page`` filled with ``context``.

    Raises ``ValueError`` for an unknown page and ``jinja2.UndefinedError`` naming the key
    when the context lacks one the template uses.
    """
    if page not in PAGES:
        raise ValueError(f"Page {page!r} does not exist. Use one of {list(PAGES)}.")
    return environment().get_template(f"{page}.html.j2").render(context)


def write(page: Page, context: Mapping[str, Any], path: str | Path) -> Path:
    """Render ``page`` and write it to ``path`` atomically (never a half-written file)."""
    target = Path(path)
    atomic_write_text(target, render(page, context))
    return target

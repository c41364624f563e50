"""The web console: models, monitoring, experiments, audit and the assistant in a browser.

Mounted at ``/console`` on ``keizoku serve`` (same process, same keys, roles and loopback
rule as the API; docs/console.md, docs/decisions/0021-web-console.md). Pages are rendered
on the server (jinja2 templates and the SVG charts of ``keizoku.reporting.charts``) and
use no script and nothing from the network: the stylesheet ships in the package.

* ``session``: sign-in with an API key, the signed session cookie, CSRF tokens;
* ``views``: what each page shows, as plain contexts (reads only);
* ``pages``: the routes (``router``), including promote and rollback.

``router`` loads on first use: a process that reads sessions only (``session``, as a
second server's check of a cookie) imports neither FastAPI nor the pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keizoku._lazy import lazy_names

if TYPE_CHECKING:
    from keizoku.console.pages import router

__all__ = ["router"]

__getattr__ = lazy_names(__name__, {"router": "keizoku.console.pages"})

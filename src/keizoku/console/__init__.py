"""The web console: models, monitoring, experiments, audit and the assistant in a browser.

Mounted at ``/console`` on ``keizoku serve`` (same process, same keys, roles and loopback
rule as the API; docs/console.md, docs/decisions/0021-web-console.md). Pages are rendered
on the server (jinja2 templates and the SVG charts of ``keizoku.reporting.charts``) and
use no script and nothing from the network: the stylesheet ships in the package.

* ``session``: sign-in with an API key, the signed session cookie, CSRF tokens;
* ``views``: what each page shows, as plain contexts (reads only);
* ``pages``: the routes (``router``), including promote and rollback.
"""

from keizoku.console.pages import router

__all__ = ["router"]

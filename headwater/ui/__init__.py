"""The search UI for people (``/ui``): search with facets, datasets with their fields and lineage, impact, jobs.

Server-rendered pages (Jinja2) over the same domain functions as the REST API; see :mod:`headwater.ui.routes`. Their
script is a static file (``static/``, served at ``/ui/static``): the Content-Security-Policy allows no inline script.
"""

from pathlib import Path

from headwater.ui.routes import ui_router
from headwater.ui.signin import signin_router

ui_router.include_router(signin_router)

UI_STATIC = Path(__file__).parent / "static"

__all__ = ["UI_STATIC", "ui_router"]

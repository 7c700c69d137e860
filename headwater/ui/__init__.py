"""The search UI for people (``/ui``): search with facets, datasets with their fields and lineage, impact, jobs;
and, for whoever may, editing a dataset's metadata, killing a job, and one's own API tokens.

Server-rendered pages (Jinja2) over the same domain functions as the REST API; see :mod:`headwater.ui.routes`,
:mod:`headwater.ui.edits`, :mod:`headwater.ui.tokens` and :mod:`headwater.ui.sql_page`. Their script is a static file (``static/``, served at
``/ui/static``): the Content-Security-Policy allows no inline script.
"""

from pathlib import Path

from headwater.ui.edits import edits_router
from headwater.ui.forms import install_error_pages
from headwater.ui.routes import ui_router
from headwater.ui.signin import signin_router
from headwater.ui.sql_page import sql_router
from headwater.ui.tokens import tokens_router

ui_router.include_router(signin_router)
ui_router.include_router(edits_router)
ui_router.include_router(tokens_router)
ui_router.include_router(sql_router)

UI_STATIC = Path(__file__).parent / "static"

__all__ = ["UI_STATIC", "install_error_pages", "ui_router"]

"""The search UI for people (``/ui``): search with facets, datasets with their fields and lineage, impact, jobs.

Server-rendered pages (Jinja2) over the same domain functions as the REST API; see :mod:`headwater.ui.routes`.
"""

from headwater.ui.routes import ui_router

__all__ = ["ui_router"]

"""The API's pages for people: Swagger UI at ``/docs`` and GraphiQL at ``GET /graphql``.

Both are served with every file they load from this server, so they work without internet access (many company
networks block the CDNs these pages usually come from) and under the Content-Security-Policy's ``script-src
'self'``: no inline script, each page started by a static file of ``static/``. Swagger UI's files come from the
PyPI package ``swagger-ui-bundle-v2``; GraphiQL's and React's from npm, put into ``vendor/`` at setup
(``scripts/install-graphiql.sh``, run by ``make setup``). ReDoc is not served.
"""

from headwater.apidocs.routes import PAGE_CSP, graphiql_page, install_api_docs

__all__ = ["PAGE_CSP", "graphiql_page", "install_api_docs"]

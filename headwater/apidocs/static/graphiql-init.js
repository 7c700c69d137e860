// Starts GraphiQL on GET /graphql (a file of its own: the Content-Security-Policy allows no inline script).
// Queries go to this same URL by POST, as JSON.
(function () {
  var EXAMPLE = [
    "# Headwater's GraphQL API. Ctrl-Enter runs the query; the Docs button lists every field.",
    "{",
    "  datasets(first: 5) {",
    "    ... on DatasetPage { total items { namespace name kind owners { name } } }",
    "    ... on Error { message field }",
    "  }",
    "}",
    "",
  ].join("\n");
  var fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: EXAMPLE }));
})();

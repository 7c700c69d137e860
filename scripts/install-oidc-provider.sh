#!/usr/bin/env bash
# Install the OpenID Connect provider the identity tests sign in against: the npm package oidc-provider (a
# certified OpenID Connect provider) at a pinned version, into tests/oidc/node_modules with npm's own client
# (never globally). `make test` runs it; it does nothing when that version is already there. Needs Node 20 or
# newer and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=9.13.3
DEST=tests/oidc

say() { echo "install-oidc-provider: $*"; }

installed=$(node -p "require('./$DEST/node_modules/oidc-provider/package.json').version" 2>/dev/null || true)
if [ "$installed" = "$VERSION" ]; then
  say "oidc-provider $VERSION is installed in $DEST/node_modules"
  exit 0
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "$tool is not on PATH: the identity tests need Node.js 20 or newer and npm (as root: apt-get install nodejs npm)" >&2
    exit 1
  fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  say "Node.js $(node --version) is too old: oidc-provider $VERSION needs Node.js 20 or newer" >&2
  exit 1
fi
say "installing oidc-provider@$VERSION into $DEST/node_modules"
if ! npm install --prefix "$DEST" --no-save --no-audit --no-fund --loglevel=error "oidc-provider@$VERSION"; then
  say "npm could not install oidc-provider@$VERSION (is the npm registry reachable?); the identity tests need it" >&2
  exit 1
fi
say "installed oidc-provider $(node -p "require('./$DEST/node_modules/oidc-provider/package.json').version")"

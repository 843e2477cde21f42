#!/bin/sh
# The shaped-link benchmark: ringwire (flat ring, hierarchical, hierarchical with TLS), Gloo and
# Open MPI across network-namespace hosts with tbf-limited links. Root on Linux; build first
# (npx turbo run build). Options: --help. See bench/src/multihost.ts.
exec node "$(dirname "$0")/dist/multihost.js" "$@"

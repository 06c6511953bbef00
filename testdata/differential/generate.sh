#!/bin/sh
# Regenerates the differential corpus and what real framework parsers
# extract from it: corpus.json (make_corpus.py), then expected.json and
# versions.json from the Python (gen.py), Node (gen.mjs) and Go
# (goparsers/) generators. Needs the Debian python3 with python3-werkzeug,
# python3-jwt and python3-django, node with npm, and go. Deterministic:
# running it twice gives the same files. PYTHON overrides /usr/bin/python3.
set -eu
cd "$(dirname "$0")"

PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || { echo "generate.sh: $PY not found (the Debian python with python3-werkzeug is required)" >&2; exit 1; }
"$PY" -c 'import werkzeug' 2>/dev/null || { echo "generate.sh: python3-werkzeug missing: apt-get install python3-werkzeug" >&2; exit 1; }
"$PY" -c 'import jwt' 2>/dev/null || { echo "generate.sh: python3-jwt missing: apt-get install python3-jwt" >&2; exit 1; }
"$PY" -c 'import django' 2>/dev/null || { echo "generate.sh: python3-django missing: apt-get install python3-django" >&2; exit 1; }
command -v node >/dev/null || { echo "generate.sh: node not found (Node.js 18+ is required)" >&2; exit 1; }
command -v npm >/dev/null || { echo "generate.sh: npm not found" >&2; exit 1; }
command -v go >/dev/null || { echo "generate.sh: go not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PY" make_corpus.py
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
"$PY" gen.py corpus.json >"$tmp/python.json"
node gen.mjs corpus.json >"$tmp/node.json"
(cd goparsers && go run . ../corpus.json) >"$tmp/go.json"
"$PY" merge.py corpus.json "$tmp/python.json" "$tmp/node.json" "$tmp/go.json"

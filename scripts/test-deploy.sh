#!/usr/bin/env bash
# Tests the deploy/ module: the kustomize base in deploy/kubernetes
# (rendered with kustomize's Go API, every object decoded strictly into
# the Kubernetes API types) and the Dockerfile. scripts/test.sh runs it
# as its last step; it can be run alone. It is a module of its own, so
# that the Kubernetes libraries (minutes to compile with a cold Go cache)
# stay out of the product's module.
set -euo pipefail
cd "$(dirname "$0")/../deploy"
start=$SECONDS
echo "==> go vet, staticcheck (deploy/)"
go vet ./...
go tool -modfile=../tools/go.mod staticcheck ./...
# No -race: these tests run no goroutines of their own, and a race build
# of the Kubernetes libraries would compile them a second time.
echo "==> go test (deploy/)"
go test -count=1 ./...
echo "==> deploy tests passed in $((SECONDS - start))s"

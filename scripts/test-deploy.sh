#!/usr/bin/env bash
# Tests the deploy/ module: the kustomize base in deploy/kubernetes
# (rendered with kustomize's Go API, every object decoded strictly into
# the Kubernetes API types) and the Dockerfile. CI runs it after
# scripts/test.sh. It is a module of its own, with the Kubernetes
# libraries, which take minutes to compile with a cold Go cache: that is
# why the everyday scripts/test.sh leaves it out.
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

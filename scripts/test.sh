#!/usr/bin/env bash
# Runs the whole Ferry test suite: formatting, vet, the race-enabled tests of every
# package, brief fuzzing of every decoder, and the compat module (official RocketMQ
# Go client against a real ferry binary) when it exists.
#
#   scripts/test.sh            everything
#   FUZZTIME=30s scripts/test.sh   fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }

fuzztime=${FUZZTIME:-5s}
step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-ed:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "cross-builds (darwin: everything; windows: the SDK and the CLI)"
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=darwin GOARCH=arm64 go vet ./...
GOOS=windows GOARCH=amd64 go build ./cmd/ferry ./client/...

step "go test -race"
go test -race -count=1 -timeout 20m ./...

step "fuzz (each target ${fuzztime})"
# Every Fuzz* function in the main module, run briefly; longer runs by hand.
while read -r pkg; do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "$pkg $f"
    out=$(go test -run '^$' -fuzz "^${f}\$" -fuzztime "$fuzztime" "$pkg" 2>&1) || {
      echo "$out"
      echo "fuzzing $f failed; a failing input, if one was found, is under testdata/fuzz/$f in the package"
      exit 1
    }
  done
done < <(go list ./...)

if [ -f compat/go.mod ]; then
  step "compat (official RocketMQ Go client)"
  (cd compat && go vet ./... && go test -count=1 -timeout 20m ./...)
fi
step "ok"

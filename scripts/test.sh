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
if [ -f e2e/go.mod ]; then
  step "e2e (the web console in headless Chromium)"
  if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update && apt-get install -y chromium
    else
      echo "Chromium is missing: install it (sudo apt-get install -y chromium); the browser tests skip without it"
    fi
  fi
  (cd e2e && go vet ./... && go test -count=1 -timeout 10m ./...)
fi
step "ok"

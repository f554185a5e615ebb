#!/usr/bin/env bash
# Runs the whole Ferry test suite: formatting, vet, the race-enabled tests of every
# package, brief fuzzing of every decoder, and the compat module (official RocketMQ
# Go client against a real ferry binary) when it exists.
#
#   scripts/test.sh                   everything
#   FUZZTIME=200000x scripts/test.sh  fuzz longer (executions per target; a
#                                     duration such as 30s works too)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }

# A count, not a duration: with a duration, Go's fuzz coordinator (1.26)
# can report its own -fuzztime deadline as a failure ("context deadline
# exceeded", no failing input) when its workers are slow to stop, as on a
# loaded machine (go.dev/issue/75804). A count has no deadline; a slow
# machine only takes longer.
fuzztime=${FUZZTIME:-20000x}
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
# fuzz_failed OUTPUT: whether a fuzz run that exited non-zero found
# something. A finding writes its input under testdata/fuzz; a run whose
# only complaint is the coordinator's own deadline (see fuzztime above)
# found nothing.
fuzz_failed() {
  grep -q 'Failing input written to\|failure while testing seed corpus\|^panic:\|build failed\|test timed out' <<<"$1" && return 0
  [ "$(grep -v '^fuzz: \|^--- FAIL: Fuzz\|^FAIL\|^exit status\|^ *context deadline exceeded$\|^=== ' <<<"$1" | grep -c .)" -gt 0 ] && return 0
  grep -q '^ *context deadline exceeded$' <<<"$1" || return 0
  return 1
}
# Every Fuzz* function in the main module, run briefly; longer runs by hand.
while read -r pkg; do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "$pkg $f"
    out=$(go test -run '^$' -fuzz "^${f}\$" -fuzztime "$fuzztime" -timeout 10m "$pkg" 2>&1) && continue
    if fuzz_failed "$out"; then
      echo "$out"
      echo "fuzzing $f failed; a failing input, if one was found, is under testdata/fuzz/$f in the package"
      exit 1
    fi
    echo "  (the fuzz coordinator reported its own deadline with no failing input: not a finding)"
  done
done < <(go list ./...)

if [ -f compat/go.mod ]; then
  step "compat (official RocketMQ Go client)"
  (cd compat && go vet ./... && go test -count=1 -timeout 20m ./...)
fi
if [ -f e2e/go.mod ]; then
  step "e2e (the web console in headless Chromium and Firefox; replication faults through toxiproxy)"
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v firefox-esr >/dev/null || command -v firefox >/dev/null || missing+=(firefox-esr)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      # A browser that cannot be installed (no apt, no network) is not a
      # failure: its tests skip and say why.
      { apt-get update && apt-get install -y "${missing[@]}"; } ||
        echo "could not install ${missing[*]}: the tests that need it skip"
    else
      echo "missing: ${missing[*]} (sudo apt-get install -y ${missing[*]}); the browser tests that need it skip"
    fi
  fi
  (cd e2e && go vet ./... && go test -count=1 -timeout 10m ./...)
fi
step "ok"

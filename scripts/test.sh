#!/usr/bin/env bash
# test.sh — the whole suite: formatting, vet, a real Vault, the plugin, every Go test (unit,
# integration against the real Vault, the OAuth2 server tests) with -race, and dev.sh --smoke.
#
# Usage: scripts/test.sh
#
# Steps: gofmt, go vet, the licence gate, get-vault, build plugin, release builds for two
# platforms checked (scripts/release.sh, scripts/check-release.sh), go test -race ./... (unit +
# integration on the real Vault + the real OAuth2 server + a three-node cluster), each fuzz target
# briefly, the benchmark program with tiny sizes (scripts/bench.sh --smoke), and dev.sh --smoke.
#
# Needs Go, git, a C compiler (go test -race uses cgo), and Node.js with npm (internal/oauthtest
# runs a real OAuth2 server, panva oidc-provider, and installs it with npm ci). Vault v1.14.8 is
# FLOWCRED_VAULT_BIN, else a `vault` on PATH that reports v1.14.8, else built once from the Go
# module proxy by scripts/get-vault.sh (746 s and 1,641 s on fresh 2-core machines; cached after).
#
# Environment:
#   FLOWCRED_TEST_TIMEOUT  go test -timeout (default 30m)
#   FLOWCRED_TEST_RUN      go test -run pattern (default: all tests)
#   FLOWCRED_TEST_PKGS     packages (default ./...)
#   FLOWCRED_RACE=0        run without the race detector (when no C compiler is available)
#   FLOWCRED_FUZZTIME      how long each fuzz target runs (default 8s)
#   FLOWCRED_VAULT_BIN     the Vault binary to test against
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

case "${1:-}" in
  "") ;;
  -h|--help) usage; exit 0 ;;
  *) usage_error "takes no arguments" ;;
esac

START=$SECONDS
TIMES=()
# step NAME CMD...: run a step, print and remember its wall time.
step() {
  local name="$1" t0=$SECONDS rc=0
  shift
  echo "=== test.sh: $name" >&2
  "$@" || rc=$?
  TIMES+=("$(printf '  %-22s %5ds  %s' "$name" $((SECONDS - t0)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)")")")
  echo "=== test.sh: $name: $((SECONDS - t0))s" >&2
  return "$rc"
}
summary() {
  echo >&2
  echo "test.sh: step timings" >&2
  printf '%s\n' "${TIMES[@]}" >&2
  printf '  %-22s %5ds\n' total $((SECONDS - START)) >&2
}

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-test.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# --- tools ----------------------------------------------------------------------------------
need go "install Go, see go.mod for the version"
need git "install git"
need node "internal/oauthtest needs Node.js (>= 20) and npm (e.g. apt-get install nodejs npm)"
need npm "internal/oauthtest needs Node.js (>= 20) and npm (e.g. apt-get install nodejs npm)"
race_flags || exit 1
echo "test.sh: $(go version), node $(node --version), npm $(npm --version), CI=${CI:-}" >&2

gofmt_check() {
  local out
  out="$(find . -type f -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -not -path '*/testdata/*' -print0 |
    xargs -0 gofmt -l)" || return 1
  if [[ -n "$out" ]]; then
    echo "gofmt -l lists files that are not formatted (run gofmt -w on them):" >&2
    echo "$out" >&2
    return 1
  fi
}

# The step functions run in an `||` context, where set -e is off: check each command.
get_vault() {
  find_vault || return 1
  log "vault: $VAULT_BIN ($("$VAULT_BIN" version))"
}

plugin() {
  build_plugin "$TMP/plugin" || return 1
  FLOWCRED_PLUGIN_VERSION="v$PLUGIN_VERSION"
  log "plugin: $PLUGIN_BIN ($FLOWCRED_PLUGIN_VERSION)"
}

# Release builds for this machine's platform and the other OS on the other architecture,
# checked: checksums, platforms, the printed register lines, the host's line run in a Vault. All
# four platforms took 184 s cold on 2 cores (the two here: about 60 s cold, 5 s warm).
release_check() {
  local v="${PLUGIN_VERSION%%+*}-ci" out="$TMP/release" os arch other
  os="$(go env GOOS)" arch="$(go env GOARCH)"
  other="$([[ $os == linux ]] && echo darwin || echo linux)/$([[ $arch == amd64 ]] && echo arm64 || echo amd64)"
  mkdir -p "$out" || return 1
  FLOWCRED_VAULT_BIN="" FLOWCRED_RELEASE_PLATFORMS="$os/$arch $other" \
    bash scripts/release.sh "$v" "$out/dist" >"$out/printed" || return 1
  FLOWCRED_VAULT_BIN="$VAULT_BIN" bash scripts/check-release.sh "$out/dist" "$v" "$out/printed" || return 1
  bash scripts/check-release.sh --selftest "$out/dist" "$v" || return 1
  rm -rf "$out"
}

go_test() {
  local args=(-count=1 "${RACE[@]}" -timeout "${FLOWCRED_TEST_TIMEOUT:-30m}")
  if [[ -n "${FLOWCRED_TEST_RUN:-}" ]]; then args+=(-run "$FLOWCRED_TEST_RUN"); fi
  # shellcheck disable=SC2086 # FLOWCRED_TEST_PKGS is a list of packages
  FLOWCRED_INTEGRATION=1 FLOWCRED_VAULT_BIN="$VAULT_BIN" FLOWCRED_PLUGIN_BIN="$PLUGIN_BIN" \
    FLOWCRED_PLUGIN_VERSION="$FLOWCRED_PLUGIN_VERSION" \
    go test "${args[@]}" ${FLOWCRED_TEST_PKGS:-./...}
}

# Each fuzz target runs briefly from its committed seed corpus (testdata/fuzz and f.Add seeds).
FUZZ_TARGETS=(FuzzBindingWrite FuzzTokenResponse FuzzParsePrivateKey FuzzParseGoogleKeyFile)
fuzz() {
  local t
  for t in "${FUZZ_TARGETS[@]}"; do
    go test -run='^$' -fuzz="^${t}\$" -fuzztime="${FLOWCRED_FUZZTIME:-8s}" . >"$TMP/fuzz-$t.log" 2>&1 ||
      { cat "$TMP/fuzz-$t.log" >&2; echo "fuzz target $t failed" >&2; return 1; }
    echo "test.sh: fuzz $t: $(grep -E '^(ok|PASS|FAIL)' "$TMP/fuzz-$t.log" | tr '\n' ' ')" >&2
  done
}

# The benchmark program once with tiny sizes: it must keep running; it asserts no time.
bench_smoke() {
  FLOWCRED_VAULT_BIN="$VAULT_BIN" bash scripts/bench.sh --smoke
}

smoke() {
  FLOWCRED_VAULT_BIN="$VAULT_BIN" FLOWCRED_PLUGIN_BIN="$PLUGIN_BIN" FLOWCRED_PLUGIN_VERSION="$FLOWCRED_PLUGIN_VERSION" \
    bash scripts/dev.sh --smoke
}

# The first four steps are prerequisites; stop at the first failure.
step gofmt gofmt_check || { summary; exit 1; }
step "go vet" go vet ./... || { summary; exit 1; }
# Licence gate (offline, from the module cache) and its self-test that BUSL-1.1 is caught.
step licences bash -c 'bash scripts/check-licences.sh && bash scripts/check-licences.sh --selftest' || { summary; exit 1; }
step get-vault get_vault || { summary; exit 1; }
step "build plugin" plugin || { summary; exit 1; }
# Run the smoke test even when go test fails, so one run reports both.
rc=0
step "release builds" release_check || rc=1
step "go test" go_test || rc=1
step fuzz fuzz || rc=1
step "bench --smoke" bench_smoke || rc=1
step "dev.sh --smoke" smoke || rc=1
summary
if [[ $rc == 0 ]]; then echo "test.sh: PASS" >&2; else echo "test.sh: FAIL" >&2; fi
exit "$rc"

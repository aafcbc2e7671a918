#!/usr/bin/env bash
# bench.sh — flowcred's benchmarks: Go micro-benchmarks of the hot path, then a real Vault
# v1.14.8 (dev server, and one node with integrated storage "raft") with the plugin and a real
# OAuth2 server (oidc-provider on Node), all on 127.0.0.1. Prints ONE Markdown table.
#
# Usage:
#   scripts/bench.sh            # full run (the numbers in BENCHMARKS.md; about 15 min on 2 cores)
#   scripts/bench.sh --smoke    # tiny sizes and durations, for CI (well under 2 min once built)
#
# Needs: go, node + npm (testdata/oauth-server), and the Vault binary from scripts/get-vault.sh
# (built once, cached; FLOWCRED_VAULT_BIN overrides it). FLOWCRED_BENCH_OUT=FILE also writes
# the table to FILE. FLOWCRED_BENCH_STORAGES=dev (or raft) runs one storage only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SMOKE=0
case "${1:-}" in
  "") ;;
  --smoke) SMOKE=1 ;;
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

log() { echo "bench.sh: $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

VAULT_BIN="${FLOWCRED_VAULT_BIN:-}"
if [[ -z "$VAULT_BIN" ]]; then
  log "locating (or building) Vault with scripts/get-vault.sh"
  VAULT_BIN="$(bash scripts/get-vault.sh)"
fi
PLUGIN_BIN="$(bash scripts/build-plugin.sh "$WORK/bin" | tail -n 1)"
go build -o "$WORK/bin/flowcred-bench" ./bench/cmd/flowcred-bench

# Go micro-benchmarks (in process: no Vault, no gRPC), the same as
#   go test -run '^$' -bench 'TokenReadCacheHit|Material$|TokenResponse|TokenReadRefresh|HandleMemory|BackgroundTick' -benchmem .
# The background tick's setup reads 1k/10k handles through an httptest token endpoint; smoke
# mode keeps the 1k one only.
GOBENCH="$WORK/gobench.txt"
go test -c -o "$WORK/bin/flowcred.test" .
HOT='TokenReadCacheHit|Material$|TokenResponse|TokenReadRefresh|HandleMemory'
if [[ $SMOKE == 1 ]]; then
  log "go micro-benchmarks (smoke)"
  "$WORK/bin/flowcred.test" -test.run '^$' -test.bench "$HOT" -test.benchmem -test.benchtime=100ms >"$GOBENCH"
  "$WORK/bin/flowcred.test" -test.run '^$' -test.bench 'BackgroundTick/scheduled=1000$' -test.benchmem -test.benchtime=10x >>"$GOBENCH"
else
  log "go micro-benchmarks"
  "$WORK/bin/flowcred.test" -test.run '^$' -test.bench "$HOT|BackgroundTick" -test.benchmem -test.benchtime=2s -test.timeout 30m >"$GOBENCH"
fi

ARGS=(-vault "$VAULT_BIN" -plugin "$PLUGIN_BIN" -gobench "$GOBENCH" -workdir "$WORK/run"
      -storages "${FLOWCRED_BENCH_STORAGES:-dev,raft}")
[[ $SMOKE == 1 ]] && ARGS+=(-smoke)
[[ -n "${FLOWCRED_BENCH_OUT:-}" ]] && ARGS+=(-out "$FLOWCRED_BENCH_OUT")
log "running: flowcred-bench ${ARGS[*]}"
"$WORK/bin/flowcred-bench" "${ARGS[@]}"

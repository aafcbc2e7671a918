#!/usr/bin/env bash
# bench.sh — flowcred's benchmarks: Go micro-benchmarks of the hot path, then a real Vault
# v1.14.8 (dev server, and one node with integrated storage "raft") with the plugin and a real
# OAuth2 server (oidc-provider on Node), all on 127.0.0.1. Prints ONE Markdown table.
#
# Usage:
#   scripts/bench.sh            # full run (the numbers in BENCHMARKS.md; about 15 min on 2 cores)
#   scripts/bench.sh --smoke    # tiny sizes and durations, for CI (well under 2 min once built)
#
# Needs: go, node + npm (testdata/oauth-server), and Vault v1.14.8: FLOWCRED_VAULT_BIN, else a
# `vault` on PATH that reports v1.14.8, else the one scripts/get-vault.sh builds (once, cached).
# FLOWCRED_BENCH_OUT=FILE also writes the table to FILE. FLOWCRED_BENCH_STORAGES=dev (or raft)
# runs one storage only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

parse_flag --smoke "$@"
SMOKE=$FLAG_GIVEN

WORK="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

find_vault || die "no Vault binary"
build_plugin "$WORK/bin" || die "building the plugin failed"
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

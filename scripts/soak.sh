#!/usr/bin/env bash
# soak.sh — rotation durability soak: a real Vault on file storage with the flowcred plugin, a real
# OAuth2 server rotating the refresh token on every use (reuse detection on), 8 concurrent readers.
#
# Usage: scripts/soak.sh [N]      N successful refreshes (default 1000)
#
# Two runs, both in integration/reliability/soak_test.go:
#  1. TestSoakRotationDurability: >= N refreshes while the plugin is killed (kill -9) and Vault is
#     restarted at random moments, each while no refresh is in flight. Must end with every binding
#     refreshing and the provider's refresh_token_reuse_detected at 0. (CI runs it with N=150.)
#  2. TestSoakRandomKills: kill -9 at random moments, refreshes in flight or not, and a few kills
#     exactly after the provider rotated and before the plugin stored the new token. Reports how
#     many kills lost the rotated refresh token (the window docs/security.md describes).
#
# Environment:
#   FLOWCRED_SOAK_RANDOM_KILLS  kills in run 2 (default N/25, at least 10; 0 skips run 2)
#   FLOWCRED_RACE=0             run the Go harness without the race detector
#   FLOWCRED_SOAK_KEEP=1        keep the temp dir (plugin, test log)
#   FLOWCRED_VAULT_BIN          the Vault binary (default: a `vault` on PATH that reports v1.14.8,
#                               else the one scripts/get-vault.sh builds)
#
# Needs what scripts/test.sh needs: Go, a C compiler (for -race), Node.js with npm.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
esac
N="${1:-1000}"
[[ "$N" =~ ^[0-9]+$ && "$N" -gt 0 ]] || die "N must be a positive number of refreshes, got '$N'"
KILLS="${FLOWCRED_SOAK_RANDOM_KILLS:-$(( N / 25 > 10 ? N / 25 : 10 ))}"
[[ "$KILLS" =~ ^[0-9]+$ ]] || die "FLOWCRED_SOAK_RANDOM_KILLS must be a number, got '$KILLS'"

need go "install Go, see go.mod for the version"
need node "the OAuth2 server needs Node.js (>= 20) and npm"
race_flags || exit 1

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-soak.XXXXXX")"
if [[ "${FLOWCRED_SOAK_KEEP:-0}" == 1 ]]; then
  log "keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi

find_vault || die "no Vault binary"
build_plugin "$TMP/plugin" || die "building the plugin failed"
PLUGIN_VERSION="v$PLUGIN_VERSION"

log "$N refreshes, $KILLS random kills; vault $VAULT_BIN, plugin $PLUGIN_VERSION"
START=$SECONDS
rc=0
FLOWCRED_INTEGRATION=1 FLOWCRED_VAULT_BIN="$VAULT_BIN" FLOWCRED_PLUGIN_BIN="$PLUGIN_BIN" \
  FLOWCRED_PLUGIN_VERSION="$PLUGIN_VERSION" \
  FLOWCRED_SOAK_REFRESHES="$N" FLOWCRED_SOAK_RANDOM_KILLS="$KILLS" FLOWCRED_SOAK_SUMMARY="$TMP/summary.txt" \
  go test -count=1 "${RACE[@]}" -timeout 90m -v -run '^TestSoak' ./integration/reliability/ >"$TMP/test.log" 2>&1 || rc=$?

echo
echo "soak.sh: summary ($((SECONDS - START))s)"
if [[ -s "$TMP/summary.txt" ]]; then
  sed 's/^/  /' "$TMP/summary.txt"
else
  echo "  (no summary written)"
fi
if [[ $rc != 0 ]]; then
  echo >&2
  echo "soak.sh: FAIL (go test exit $rc); last lines of the test log:" >&2
  tail -n 80 "$TMP/test.log" >&2
  exit "$rc"
fi
grep -E '^(--- |ok|PASS)' "$TMP/test.log" | sed 's/^/  /'
echo "soak.sh: PASS"

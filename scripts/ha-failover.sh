#!/usr/bin/env bash
# ha-failover.sh — run flowcred's failover tests on a three-node Vault cluster N times in a row.
#
# Usage:
#   scripts/ha-failover.sh [N]     # default N=20; exits non-zero unless every run passed
#
# Each run starts a fresh three-node cluster (internal/vaultcluster) and a real OAuth2 server and
# runs the failover tests of integration/ha on it (FLOWCRED_HA_RUN overrides the -run pattern):
#   TestHA/Cluster/FailoverKeepsCachedTokenAndRotation  cached token served after failover with no
#                       upstream request; the next refresh uses the newest rotated refresh token
#                       (two failovers in a row)
#   TestHA/Cluster/FailoverRefreshInFlight  a refresh held before the provider when the active node
#                       dies; the new active node refreshes with the stored token, nothing lost
# A lost or reused refresh token shows up as the OAuth2 server's reuse detection (the tests fail).
# Prints one line per run and a summary line; logs of failed runs are kept under $OUT.
#
# Binaries: FLOWCRED_VAULT_BIN (default: a `vault` on PATH that reports v1.14.8, else the one
# scripts/get-vault.sh builds) and FLOWCRED_PLUGIN_BIN (default: built into a temp dir).
# FLOWCRED_RACE=0 builds the test binary without the race detector.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
esac
N="${1:-20}"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || usage_error "N must be a positive number of runs, got '$N'"
RUN="${FLOWCRED_HA_RUN:-^TestHA\$/^Cluster\$/^(FailoverKeepsCachedTokenAndRotation|FailoverRefreshInFlight)\$}"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-ha-failover.XXXXXX")"
OUT="$TMP/logs"
mkdir -p "$OUT"
cleanup() {
  # Keep the logs of failed runs; drop the rest.
  if compgen -G "$OUT/*.log" >/dev/null; then
    rm -rf "${TMP:?}/bin"
    log "logs of failed runs kept in $OUT"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

cd "$ROOT"
export FLOWCRED_INTEGRATION=1
race_flags || exit 1
find_vault || die "no Vault binary"
FLOWCRED_VAULT_BIN="$VAULT_BIN"
if [[ -z "${FLOWCRED_PLUGIN_BIN:-}" ]]; then
  build_plugin "$TMP/bin" || die "building the plugin failed"
  FLOWCRED_PLUGIN_BIN="$PLUGIN_BIN"
fi
export FLOWCRED_VAULT_BIN FLOWCRED_PLUGIN_BIN

# Compile once, run N times.
go test "${RACE[@]}" -c -o "$TMP/bin/ha.test" ./integration/ha

pass=0 fail=0 reuse=0 total_start=$SECONDS
for i in $(seq 1 "$N"); do
  start=$SECONDS
  log="$TMP/run-$i.log"
  if (cd integration/ha && "$TMP/bin/ha.test" -test.run "$RUN" -test.count=1 -test.v -test.timeout=10m) >"$log" 2>&1; then
    pass=$((pass + 1))
    result=PASS
  else
    fail=$((fail + 1))
    result=FAIL
    mv "$log" "$OUT/run-$i.log"
    log="$OUT/run-$i.log"
  fi
  # Count runs in which the OAuth2 server saw a rotated refresh token again.
  if grep -q "refresh token reuse detected" "$log"; then
    reuse=$((reuse + 1))
  fi
  failovers="$(grep -o 'failover: killed [a-z0-9]*, [a-z0-9]* active after [0-9.]*m\?s' "$log" | sed 's/.*after //' | paste -sd, - || true)"
  echo "ha-failover: run $i/$N $result in $((SECONDS - start))s (failovers: ${failovers:-none})"
  [[ $result == PASS ]] && rm -f "$log"
done

echo "ha-failover: $pass/$N passed, $fail failed, runs with a reused refresh token: $reuse, total $((SECONDS - total_start))s"
[[ $fail == 0 ]]

#!/usr/bin/env bash
# dev.sh — a local Vault dev server with flowcred registered the way production does it (catalog
# name, -sha256, -version) and mounted at flowcred/, next to the OAuth2 server the tests use (panva
# oidc-provider on Node, loopback only). It writes an example oauth2.refresh_token binding against
# that server and reads its token three times: the first read refreshes, the second is served from
# the cache, the third asks (min_ttl) for more life than is left and refreshes again. Then a static
# api_token example.
#
# Usage:
#   scripts/dev.sh          # all of the above, print the environment to export; stays up until Ctrl-C
#   scripts/dev.sh --smoke  # the same, checks that the binding refreshed and cached, exits 0 (CI)
#
# Environment:
#   FLOWCRED_DEV_ADDR    listen address (default 127.0.0.1:8200; --smoke picks a free port unless set)
#   FLOWCRED_VAULT_BIN   a Vault binary to use; without it, a `vault` on PATH that reports v1.14.8
#                        (the version the tests cover), else the one scripts/get-vault.sh builds
#   FLOWCRED_PLUGIN_BIN  a built plugin to use instead of building one (its version must be
#                        the one scripts/build-plugin.sh --version prints, or FLOWCRED_PLUGIN_VERSION)
#
# Needs Go, and Node.js (>= 20) with npm for the OAuth2 server (installed with npm ci on first use);
# without node the refresh-token example is skipped (--smoke fails).
# Everything lives in a temp dir that is removed on exit; nothing is written to ~/.vault-token.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MOUNT=flowcred
PLUGIN_NAME=vault-plugin-flowcred # the catalog name, and the command in the plugin directory
parse_flag --smoke "$@"
SMOKE=$FLAG_GIVEN

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-dev.XXXXXX")"
VAULT_PID="" OAUTH_PID=""
cleanup() {
  stop_pid "$VAULT_PID"
  stop_pid "$OAUTH_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; log "stopping"; exit 130' INT
trap 'exit 143' TERM

# --- address --------------------------------------------------------------------------------
ADDR="${FLOWCRED_DEV_ADDR:-}"
if [[ -z "$ADDR" && $SMOKE == 1 ]]; then
  ADDR="$(pick_dev_addr)" || die "no free port found for the smoke run; set FLOWCRED_DEV_ADDR"
fi
ADDR="${ADDR:-127.0.0.1:8200}"
HOST="${ADDR%:*}" PORT="${ADDR##*:}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "FLOWCRED_DEV_ADDR=$ADDR: want HOST:PORT"
if [[ "$HOST" == 127.0.0.1 ]] && { port_in_use "$PORT" || port_in_use $((PORT + 1)); }; then
  die "127.0.0.1:$PORT or :$((PORT + 1)) (Vault's cluster port) is in use; stop what runs there or set FLOWCRED_DEV_ADDR=127.0.0.1:8300"
fi

# --- binaries -------------------------------------------------------------------------------
find_vault || die "no Vault binary"
PATH="$(dirname "$VAULT_BIN"):$PATH"
export PATH

if [[ -n "${FLOWCRED_PLUGIN_BIN:-}" ]]; then
  PLUGIN_BIN="$FLOWCRED_PLUGIN_BIN" PLUGIN_VERSION="$(plugin_version)"
else
  build_plugin "$TMP/build" || die "building the plugin failed"
fi
[[ -x "$PLUGIN_BIN" ]] || die "no plugin binary at '$PLUGIN_BIN'"

# --- the OAuth2 server (started now; it installs and starts while Vault does) ----------------
OAUTH="$TMP/oauth"
if command -v node >/dev/null; then
  mkdir -p "$OAUTH"
  (cd "$ROOT" && go build -o "$TMP/build/oauthtest-server" ./internal/oauthtest/cmd/oauthtest-server) ||
    die "building internal/oauthtest/cmd/oauthtest-server failed"
  log "starting the OAuth2 server (oidc-provider; npm ci on first use; log: $TMP/oauth.log)"
  (cd "$ROOT" && exec "$TMP/build/oauthtest-server" -dir "$OAUTH" -client rt-rotate) >"$TMP/oauth.log" 2>&1 &
  OAUTH_PID=$!
elif [[ $SMOKE == 1 ]]; then
  die "node not found: the refresh-token example needs Node.js (>= 20) and npm"
else
  log "node not found: skipping the refresh-token example (install Node.js >= 20 and npm to see it)"
fi

# --- Vault ----------------------------------------------------------------------------------
log "starting vault server -dev on http://$ADDR (log: $TMP/vault.log)"
start_dev_vault "$ADDR" "$TMP" || die "Vault did not start"

# run CMD...: echo a command, then run it (what an operator would type).
run() { { printf '$'; printf ' %q' "$@"; echo; } >&2; "$@"; }

# Install, register and enable the plugin as in production: the binary in the plugin directory,
# registered under its catalog name with its checksum and version, enabled at that version.
cp "$PLUGIN_BIN" "$TMP/plugins/$PLUGIN_NAME"
chmod 0755 "$TMP/plugins/$PLUGIN_NAME"
SHA="$(sha256_of "$TMP/plugins/$PLUGIN_NAME")"
run vault plugin register -sha256="$SHA" -version="v$PLUGIN_VERSION" secret "$PLUGIN_NAME" ||
  die "registering the plugin failed${FLOWCRED_PLUGIN_BIN:+ (with FLOWCRED_PLUGIN_BIN, set FLOWCRED_PLUGIN_VERSION to the version that binary reports)}"
run vault secrets enable -path="$MOUNT" -plugin-version="v$PLUGIN_VERSION" "$PLUGIN_NAME"

# field NAME: the value of row NAME in a `vault read` table on stdin.
field() { awk -v k="$1" '$1 == k { print $2; exit }'; }

# --- example 1: a refresh token at the local OAuth2 server ------------------------------------
oauth_example() {
  local r1 r2 r3
  for _ in $(seq 1 1500); do
    [[ -e "$OAUTH/ready" ]] && break
    kill -0 "$OAUTH_PID" 2>/dev/null || { cat "$TMP/oauth.log" >&2; die "the OAuth2 server exited"; }
    sleep 0.2
  done
  [[ -e "$OAUTH/ready" ]] || { cat "$TMP/oauth.log" >&2; die "the OAuth2 server did not start in 300 s"; }
  log "OAuth2 server at $(cat "$OAUTH/ready"); a refresh token was minted for its client rt-rotate,"
  log "which rotates the refresh token on every use (a reused one revokes the grant)"

  # This mount only: let a min_ttl read refresh at once (the default, 10 s, bounds refreshes that
  # min_ttl drives, so that a client asking for too much cannot make every read a refresh).
  run vault write "$MOUNT/config" min_refresh_interval=0
  run vault write "$MOUNT/secrets/example_oauth_client_secret" value=@"$OAUTH/client_secret"
  run vault write "$MOUNT/secrets/example_oauth_refresh_token" value=@"$OAUTH/refresh_token"
  run vault write "$MOUNT/bindings/example_oauth" kind=oauth2.refresh_token \
    token_url="$(cat "$OAUTH/token_url")" client_id="$(cat "$OAUTH/client_id")" auth_style=header \
    client_secret_secret=example_oauth_client_secret refresh_token_secret=example_oauth_refresh_token \
    description="dev.sh example: the local OAuth2 server"

  log "first read: nothing is cached, so the plugin refreshes at the token endpoint"
  r1="$(run vault read "$MOUNT/token/example_oauth")"
  echo "$r1"
  sleep 2
  log "second read, 2 s later: served from the cache (no request to the provider)"
  r2="$(run vault read "$MOUNT/token/example_oauth")"
  echo "$r2"
  local exp1 exp2 exp3 left
  exp1="$(field expires_at <<<"$r1")" exp2="$(field expires_at <<<"$r2")" left="$(field expires_in <<<"$r1")"
  log "third read: min_ttl=$left asks for the life the first token had; less is left, so the plugin refreshes"
  r3="$(run vault read "$MOUNT/token/example_oauth" min_ttl="$left")"
  echo "$r3"
  exp3="$(field expires_at <<<"$r3")"
  run vault read "$MOUNT/bindings/example_oauth"
  log "expires_at: $exp1 (refreshed) -> $exp2 (cached) -> $exp3 (refreshed); each refresh stored the rotated refresh token"

  if [[ $SMOKE == 1 ]]; then
    [[ -n "$exp1" && "$exp1" == "$exp2" ]] || die "the second read was not served from the cache (expires_at $exp1, then $exp2)"
    [[ "$(field access_token <<<"$r1")" == "$(field access_token <<<"$r2")" ]] || die "the second read returned another access token"
    [[ -n "$exp3" && "$exp3" != "$exp1" ]] || die "the min_ttl read did not refresh (expires_at $exp1, then $exp3)"
    [[ "$(field access_token <<<"$r3")" != "$(field access_token <<<"$r1")" ]] || die "the min_ttl read returned the same access token"
    [[ "$(vault read -field=status "$MOUNT/bindings/example_oauth")" == *"health:ok"* ]] || die "example_oauth's health is not ok"
    stop_pid "$OAUTH_PID"
    if ! grep -qx 'refresh_grants_ok=2' "$OAUTH/stats" || ! grep -qx 'refresh_token_reuse_detected=0' "$OAUTH/stats"; then
      die "the OAuth2 server saw $(tr '\n' ' ' <"$OAUTH/stats"); want 2 refresh grants, no reuse"
    fi
    log "smoke: the provider answered 2 refresh grants for 3 reads, no rotated refresh token was reused"
  fi
}
if [[ -n "$OAUTH_PID" ]]; then oauth_example; fi

# --- example 2: a static API token stored as a secret -----------------------------------------
EXAMPLE_TOKEN="example-token-not-a-real-secret"
run vault write "$MOUNT/secrets/example_api_token" value="$EXAMPLE_TOKEN"
run vault write "$MOUNT/bindings/example_api" kind=api_token token_secret=example_api_token \
  extra_headers=X-Example-Client=flowcred-dev description="dev.sh example: a static token"
run vault read "$MOUNT/token/example_api"

got="$(vault read -field=access_token "$MOUNT/token/example_api")"
[[ "$got" == "$EXAMPLE_TOKEN" ]] || die "token/example_api returned an unexpected access_token"

if [[ $SMOKE == 1 ]]; then
  log "smoke test passed: plugin v$PLUGIN_VERSION registered as $PLUGIN_NAME, enabled at $MOUNT/, example_oauth refreshed and cached, example_api read"
  exit 0
fi

cat <<EOF

Vault dev server with flowcred at $VAULT_ADDR (root token: root). In another shell:

  export VAULT_ADDR=$VAULT_ADDR
  export VAULT_TOKEN=root
  export PATH="$(dirname "$VAULT_BIN"):\$PATH"   # the vault binary: $VAULT_BIN

  vault read $MOUNT/token/example_oauth            # cached until it nears its expiry, then refreshed
  vault read $MOUNT/token/example_oauth min_ttl=3599
  vault read $MOUNT/bindings/example_oauth         # its status: health, last_refresh_at, expires_at
  vault read $MOUNT/token/example_api
  vault path-help $MOUNT/bindings/x

Logs: Vault $TMP/vault.log, OAuth2 server $TMP/oauth.log
Ctrl-C stops both and removes $TMP.
EOF
wait "$VAULT_PID"

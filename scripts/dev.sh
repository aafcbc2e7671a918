#!/usr/bin/env bash
# dev.sh — a local Vault dev server with flowcred registered the way production does it (catalog
# name, -sha256, -version) and mounted at flowcred/, next to the OAuth2 server the tests use (panva
# oidc-provider on Node, loopback only). It writes an example oauth2.refresh_token binding against
# that server with no refresh token, and connects it through the plugin: bindings/<h>/authorize
# (authorization code with PKCE), the server's login and consent pages approved by
# internal/oauthtest/cmd/oauthtest-approve (the user's browser), bindings/<h>/authorize/complete
# with the state and code. Then it reads the token four times: the first two are served the access
# token the code exchange gave (from the cache), the last two ask (min_ttl) for more life than is
# left and refresh with the connected refresh token, which the server rotates. Then a static
# api_token example.
#
# Usage:
#   scripts/dev.sh          # all of the above, print the environment to export; stays up until Ctrl-C
#   scripts/dev.sh --smoke  # the same, checks that the binding connected, cached and refreshed, exits 0 (CI)
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
# The redirect URI of the example's connect (RFC 8252 loopback): where the browser would land with
# the code; here nothing listens, oauthtest-approve takes code and state from the redirect itself.
REDIRECT=http://127.0.0.1:8250/callback
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
  (cd "$ROOT" && go build -o "$TMP/build/" ./internal/oauthtest/cmd/oauthtest-server ./internal/oauthtest/cmd/oauthtest-approve) ||
    die "building internal/oauthtest/cmd/oauthtest-server and oauthtest-approve failed"
  log "starting the OAuth2 server (oidc-provider; npm ci on first use; log: $TMP/oauth.log)"
  (cd "$ROOT" && exec "$TMP/build/oauthtest-server" -dir "$OAUTH" -client connect-rotate) >"$TMP/oauth.log" 2>&1 &
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

# --- example 1: a binding connected at the local OAuth2 server ---------------------------------
oauth_example() {
  local r1 r2 r3 r4 auth_url
  for _ in $(seq 1 1500); do
    [[ -e "$OAUTH/ready" ]] && break
    kill -0 "$OAUTH_PID" 2>/dev/null || { cat "$TMP/oauth.log" >&2; die "the OAuth2 server exited"; }
    sleep 0.2
  done
  [[ -e "$OAUTH/ready" ]] || { cat "$TMP/oauth.log" >&2; die "the OAuth2 server did not start in 300 s"; }
  log "OAuth2 server at $(cat "$OAUTH/ready"); its client connect-rotate may connect (code with PKCE,"
  log "device grant) and gets a new refresh token on every refresh (a reused one revokes the grant)"

  # This mount only: let a min_ttl read refresh at once (the default, 10 s, bounds refreshes that
  # min_ttl drives, so that a client asking for too much cannot make every read a refresh).
  run vault write "$MOUNT/config" min_refresh_interval=0
  run vault write "$MOUNT/secrets/example_oauth_client_secret" value=@"$OAUTH/client_secret"
  log "a binding with a client ID and secret and no refresh token: its health is needs_authorization"
  run vault write "$MOUNT/bindings/example_oauth" kind=oauth2.refresh_token \
    token_url="$(cat "$OAUTH/token_url")" authorization_url="$(cat "$OAUTH/authorization_url")" \
    device_authorization_url="$(cat "$OAUTH/device_authorization_url")" \
    client_id="$(cat "$OAUTH/client_id")" auth_style=header client_secret_secret=example_oauth_client_secret \
    scopes="openid api" description="dev.sh example: the local OAuth2 server"
  [[ "$(vault read -field=status "$MOUNT/bindings/example_oauth")" == *"health:needs_authorization"* ]] ||
    die "example_oauth without a refresh token is not needs_authorization"

  log "connect: authorize starts an authorization-code grant with PKCE (the plugin keeps the verifier)"
  auth_url="$(run vault write -field=auth_url "$MOUNT/bindings/example_oauth/authorize" redirect_uri="$REDIRECT")"
  echo "$auth_url"
  log "the user opens auth_url and approves; here oauthtest-approve signs in at the server's login page,"
  log "consents, and keeps the code and state of the redirect to $REDIRECT in files"
  mkdir -p "$TMP/connect"
  "$TMP/build/oauthtest-approve" -out "$TMP/connect" "$auth_url" || die "approving at the OAuth2 server failed"
  log "complete: the plugin exchanges the code (with its verifier) and keeps the refresh token; the answer is the status"
  run vault write "$MOUNT/bindings/example_oauth/authorize/complete" state=@"$TMP/connect/state" code=@"$TMP/connect/code"
  rm -f "$TMP/connect/code"

  log "first read: the access token the code exchange gave, from the cache (no request to the provider)"
  r1="$(run vault read "$MOUNT/token/example_oauth")"
  echo "$r1"
  sleep 2
  log "second read, 2 s later: the same, from the cache"
  r2="$(run vault read "$MOUNT/token/example_oauth")"
  echo "$r2"
  local exp1 exp2 exp3 exp4 left
  exp1="$(field expires_at <<<"$r1")" exp2="$(field expires_at <<<"$r2")" left="$(field expires_in <<<"$r1")"
  log "third read: min_ttl=$left asks for the life the first token had; less is left, so the plugin refreshes"
  log "with the connected refresh token (and stores the rotated one)"
  r3="$(run vault read "$MOUNT/token/example_oauth" min_ttl="$left")"
  echo "$r3"
  exp3="$(field expires_at <<<"$r3")"
  sleep 1
  log "fourth read: the same ask, a second refresh, with the rotated refresh token"
  r4="$(run vault read "$MOUNT/token/example_oauth" min_ttl="$left")"
  exp4="$(field expires_at <<<"$r4")"
  run vault read "$MOUNT/bindings/example_oauth"
  log "expires_at: $exp1 (connected) -> $exp2 (cached) -> $exp3 (refreshed) -> $exp4 (refreshed)"

  if [[ $SMOKE == 1 ]]; then
    [[ -n "$exp1" && "$exp1" == "$exp2" ]] || die "the second read was not served from the cache (expires_at $exp1, then $exp2)"
    [[ "$(field access_token <<<"$r1")" == "$(field access_token <<<"$r2")" ]] || die "the second read returned another access token"
    [[ -n "$exp3" && "$exp3" != "$exp1" ]] || die "the min_ttl read did not refresh (expires_at $exp1, then $exp3)"
    [[ "$(field access_token <<<"$r3")" != "$(field access_token <<<"$r1")" ]] || die "the min_ttl read returned the same access token"
    [[ "$(field access_token <<<"$r4")" != "$(field access_token <<<"$r3")" ]] || die "the second min_ttl read returned the same access token"
    [[ "$(vault read -field=status "$MOUNT/bindings/example_oauth")" == *"health:ok"* ]] || die "example_oauth's health is not ok"
    stop_pid "$OAUTH_PID"
    if ! grep -qx 'code_grants_ok=1' "$OAUTH/stats" || ! grep -qx 'refresh_grants_ok=2' "$OAUTH/stats" ||
      ! grep -qx 'refresh_token_reuse_detected=0' "$OAUTH/stats"; then
      die "the OAuth2 server saw $(tr '\n' ' ' <"$OAUTH/stats"); want 1 code exchange, 2 refresh grants, no reuse"
    fi
    log "smoke: connected with 1 code exchange; 2 refresh grants for 4 reads; no rotated refresh token was reused"
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
  log "smoke test passed: plugin v$PLUGIN_VERSION registered as $PLUGIN_NAME, enabled at $MOUNT/, example_oauth connected, cached and refreshed, example_api read"
  exit 0
fi

cat <<EOF

Vault dev server with flowcred at $VAULT_ADDR (root token: root). In another shell:

  export VAULT_ADDR=$VAULT_ADDR
  export VAULT_TOKEN=root
  export PATH="$(dirname "$VAULT_BIN"):\$PATH"   # the vault binary: $VAULT_BIN

  vault read $MOUNT/token/example_oauth            # cached until it nears its expiry, then refreshed
  vault read $MOUNT/token/example_oauth min_ttl=3599
  vault read $MOUNT/bindings/example_oauth         # its status: health, granted_scopes, last_refresh_at, expires_at
  vault read $MOUNT/token/example_api
  vault path-help $MOUNT/bindings/x

Connect example_oauth again yourself (the OAuth2 server's login page takes any login and password):

  vault write -field=auth_url $MOUNT/bindings/example_oauth/authorize redirect_uri=$REDIRECT
      # open it in a browser, sign in, continue; the browser lands on $REDIRECT?code=...&state=...
      # (nothing listens there), then:
  vault write $MOUNT/bindings/example_oauth/authorize/complete state=STATE code=CODE
  vault write $MOUNT/bindings/example_oauth/device     # the device grant: open verification_uri_complete

Logs: Vault $TMP/vault.log, OAuth2 server $TMP/oauth.log
Ctrl-C stops both and removes $TMP.
EOF
wait "$VAULT_PID"

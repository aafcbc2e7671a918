#!/usr/bin/env bash
# dev.sh — a local Vault dev server with flowcred registered and mounted at flowcred/.
#
# Usage:
#   scripts/dev.sh          # start Vault, enable flowcred, write an example binding, read its
#                           # token, print the environment to export; stays up until Ctrl-C
#   scripts/dev.sh --smoke  # the same, then exits 0 after the read (CI runs this)
#
# Environment:
#   FLOWCRED_DEV_ADDR    listen address (default 127.0.0.1:8200; --smoke picks a free port unless set)
#   FLOWCRED_VAULT_BIN   a Vault binary to use instead of scripts/get-vault.sh
#   FLOWCRED_PLUGIN_BIN  a built plugin to use instead of building one (its version must be
#                        the one scripts/build-plugin.sh --version prints, or FLOWCRED_PLUGIN_VERSION)
#
# Everything lives in a temp dir that is removed on exit; nothing is written to ~/.vault-token.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOUNT=flowcred
SMOKE=0
case "${1:-}" in
  "") ;;
  --smoke) SMOKE=1 ;;
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "dev.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

log() { echo "dev.sh: $*" >&2; }
die() { echo "dev.sh: ERROR: $*" >&2; exit 1; }

# The vault CLI must talk to our server only: drop any VAULT_* the caller has set.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^VAULT_' || true)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-dev.XXXXXX")"
VAULT_PID=""
cleanup() {
  if [[ -n "$VAULT_PID" ]] && kill -0 "$VAULT_PID" 2>/dev/null; then
    kill -TERM "$VAULT_PID" 2>/dev/null || true
    wait "$VAULT_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; log "stopping"; exit 130' INT
trap 'exit 143' TERM

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- address --------------------------------------------------------------------------------
ADDR="${FLOWCRED_DEV_ADDR:-}"
if [[ -z "$ADDR" && $SMOKE == 1 ]]; then
  # An even port below the ephemeral range and outside internal/vaulttest's [20000, 32000).
  for _ in $(seq 1 100); do
    p=$((32000 + 2 * (RANDOM % 350)))
    if ! port_in_use "$p" && ! port_in_use $((p + 1)); then ADDR="127.0.0.1:$p"; break; fi
  done
  [[ -n "$ADDR" ]] || die "no free port found for the smoke run; set FLOWCRED_DEV_ADDR"
fi
ADDR="${ADDR:-127.0.0.1:8200}"
HOST="${ADDR%:*}" PORT="${ADDR##*:}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "FLOWCRED_DEV_ADDR=$ADDR: want HOST:PORT"
if [[ "$HOST" == 127.0.0.1 ]] && { port_in_use "$PORT" || port_in_use $((PORT + 1)); }; then
  die "127.0.0.1:$PORT or :$((PORT + 1)) (Vault's cluster port) is in use; stop what runs there or set FLOWCRED_DEV_ADDR=127.0.0.1:8300"
fi

# --- binaries -------------------------------------------------------------------------------
if [[ -n "${FLOWCRED_VAULT_BIN:-}" ]]; then
  VAULT="$FLOWCRED_VAULT_BIN"
else
  log "getting Vault (scripts/get-vault.sh; the first build takes several minutes)"
  VAULT="$(bash "$ROOT/scripts/get-vault.sh" | tail -n1)"
fi
[[ -x "$VAULT" ]] || die "no Vault binary at '$VAULT'"
export PATH="$(dirname "$VAULT"):$PATH"

VERSION="$(bash "$ROOT/scripts/build-plugin.sh" --version)"
if [[ -n "${FLOWCRED_PLUGIN_BIN:-}" ]]; then
  PLUGIN="$FLOWCRED_PLUGIN_BIN"
else
  log "building the plugin ($VERSION)"
  PLUGIN="$(FLOWCRED_PLUGIN_VERSION="$VERSION" bash "$ROOT/scripts/build-plugin.sh" "$TMP/build" | tail -n1)"
fi
[[ -x "$PLUGIN" ]] || die "no plugin binary at '$PLUGIN'"

# --- server ---------------------------------------------------------------------------------
mkdir -p "$TMP/plugins" "$TMP/home"
export VAULT_ADDR="http://$ADDR" VAULT_TOKEN=root
log "starting vault server -dev on $VAULT_ADDR (log: $TMP/vault.log)"
HOME="$TMP/home" vault server -dev -dev-root-token-id=root -dev-listen-address="$ADDR" \
  -dev-plugin-dir="$TMP/plugins" -dev-no-store-token >"$TMP/vault.log" 2>&1 &
VAULT_PID=$!
up=0
for _ in $(seq 1 300); do
  if vault status >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$VAULT_PID" 2>/dev/null || break
  sleep 0.2
done
if [[ $up != 1 ]]; then
  tail -n 40 "$TMP/vault.log" >&2 || true
  die "Vault did not come up on $VAULT_ADDR"
fi

# run CMD...: echo a command, then run it (what an operator would type).
run() { echo "\$ $*" >&2; "$@"; }

# Register and enable the plugin as an operator does: copy it into the plugin directory,
# register it with its checksum and version, enable it at flowcred/.
cp "$PLUGIN" "$TMP/plugins/vault-plugin-flowcred"
chmod 0755 "$TMP/plugins/vault-plugin-flowcred"
if command -v sha256sum >/dev/null; then
  SHA="$(sha256sum "$TMP/plugins/vault-plugin-flowcred" | cut -d' ' -f1)"
else
  SHA="$(shasum -a 256 "$TMP/plugins/vault-plugin-flowcred" | cut -d' ' -f1)"
fi
run vault plugin register -sha256="$SHA" -version="$VERSION" -command=vault-plugin-flowcred secret flowcred ||
  die "registering the plugin failed${FLOWCRED_PLUGIN_BIN:+ (with FLOWCRED_PLUGIN_BIN, set FLOWCRED_PLUGIN_VERSION to the version that binary reports)}"
run vault secrets enable -path="$MOUNT" -plugin-version="$VERSION" flowcred

# An example: a static API token stored as a secret, bound to the handle example_api.
EXAMPLE_TOKEN="example-token-not-a-real-secret"
run vault write "$MOUNT/secrets/example_api_token" value="$EXAMPLE_TOKEN"
run vault write "$MOUNT/bindings/example_api" kind=api_token token_secret=example_api_token \
  extra_headers=X-Example-Client=flowcred-dev description="dev.sh example"
run vault read "$MOUNT/bindings/example_api"
run vault read "$MOUNT/token/example_api"

got="$(vault read -field=access_token "$MOUNT/token/example_api")"
[[ "$got" == "$EXAMPLE_TOKEN" ]] || die "token/example_api returned an unexpected access_token"

if [[ $SMOKE == 1 ]]; then
  log "smoke test passed: plugin $VERSION registered, enabled at $MOUNT/, example token read"
  exit 0
fi

cat <<EOF

Vault dev server with flowcred at $VAULT_ADDR (root token: root). In another shell:

  export VAULT_ADDR=$VAULT_ADDR
  export VAULT_TOKEN=root
  export PATH="$(dirname "$VAULT"):\$PATH"   # the vault binary: $VAULT

  vault read $MOUNT/token/example_api
  vault path-help $MOUNT/bindings/x

Vault's log: $TMP/vault.log
Ctrl-C stops Vault and removes $TMP.
EOF
wait "$VAULT_PID"

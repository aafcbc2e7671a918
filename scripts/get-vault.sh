#!/usr/bin/env bash
# get-vault.sh — build (once) and print the path of a real Vault v1.14.8 server binary.
#
# Usage:
#   scripts/get-vault.sh              # build or reuse; prints ONLY the binary path on stdout
#   scripts/get-vault.sh --selftest   # same, then smoke-test the binary (dev server, transit,
#                                     # kv put/get, `vault agent -h`); progress goes to stderr
#
# Why build from source: no Debian or npm package ships a Vault server, and the only network
# we have is the Go module proxy (plus Debian). hashicorp/vault v1.14.8 is the newest
# MPL-2.0 release and the proxy serves it as a module zip, so we build it from that.
# `go install github.com/hashicorp/vault@v1.14.8` does not work because its go.mod has
# replace directives, and the zip lacks the api/ and sdk/ sub-module folders those
# replaces point at. So we:
#   1. download the module zip with `go mod download` and copy it to a writable folder;
#   2. drop the replaces and require published api/sdk versions instead
#      (sdk v0.10.2, api v1.10.0, api/auth/* v0.5.0 — the latter require exactly api v1.10.0);
#   3. build against a local, patched copy of sdk v0.10.2 and apply two small source
#      patches to the vault tree to bridge the remaining API mismatches (see below);
#   4. `go build` a static binary, check it, and rename it into the cache atomically.
#
# Cache: ${FLOWCRED_CACHE:-$HOME/.cache/flowcred}/vault-1.14.8/bin/vault (outside the work
# tree). The cold build is expensive: on fresh 2-core machines with other work running it took
# 746 s and 1,641 s (as this script logs it: "built ... in Ns"; go mod tidy about 150 s of that,
# the rest compiling), with ~3.8 GB of Go module cache and ~3 GB of Go build cache. Warm path
# (binary cached): < 1 s. The other scripts use this only when neither FLOWCRED_VAULT_BIN nor a
# `vault` v1.14.8 on PATH is there (find_vault in scripts/lib.sh).
# Environment knobs: FLOWCRED_CACHE, and anything Go honours (GOPROXY, GOMODCACHE, ...).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VAULT_VERSION="$FLOWCRED_VAULT_VERSION"
SDK_VERSION=v0.10.2
API_VERSION=v1.10.0
API_AUTH_VERSION=v0.5.0 # approle, kubernetes and userpass v0.5.0 all require api v1.10.0

CACHE="${FLOWCRED_CACHE:-$HOME/.cache/flowcred}"
PREFIX="$CACHE/vault-$VAULT_VERSION"
BIN="$PREFIX/bin/vault"

parse_flag --selftest "$@"
SELFTEST=$FLAG_GIVEN

log() { echo "$NAME: [${SECONDS}s] $*" >&2; }

# Everything a run may leave behind is removed by one EXIT trap.
WORK="" TMP="" VAULT_PID=""
cleanup() {
  stop_pid "$VAULT_PID"
  if [[ -n "$TMP" ]]; then rm -rf "$TMP"; fi
  if [[ -n "$WORK" ]]; then chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- self test ---------------------------------------------------------------------------
# Start a throwaway dev server on a loopback port and exercise the features we rely on.
selftest() {
  local vault="$1" addr out
  TMP="$(mktemp -d)"
  log "selftest: $("$vault" version)"
  out="$("$vault" agent -h 2>&1 || true)"
  [[ "$out" == *"Usage: vault agent"* ]] || die "selftest: 'vault agent' subcommand missing"
  log "selftest: 'vault agent' subcommand present"
  if [[ -n "${FLOWCRED_SELFTEST_PORT:-}" ]]; then addr="127.0.0.1:$FLOWCRED_SELFTEST_PORT"; else addr="$(pick_dev_addr)"; fi
  # shellcheck disable=SC2034 # start_dev_vault runs it
  VAULT_BIN="$vault"
  start_dev_vault "$addr" "$TMP" || die "selftest: dev server did not come up on $addr"
  "$vault" secrets enable transit >&2 || die "selftest: enabling transit failed"
  "$vault" write -f transit/keys/selftest >&2 || die "selftest: transit key creation failed"
  "$vault" kv put secret/x a=b >&2 || die "selftest: kv put failed"
  "$vault" kv get secret/x >&2 || die "selftest: kv get failed"
  [[ "$("$vault" kv get -field=a secret/x)" == b ]] || die "selftest: kv get returned the wrong value"
  stop_pid "$VAULT_PID"
  VAULT_PID=""
  log "selftest: PASSED (version, agent -h, dev server, transit, kv put/get)"
}

finish() {
  [[ $SELFTEST == 1 ]] && selftest "$BIN"
  echo "$BIN"
  exit 0
}

# --- warm path: nothing to do --------------------------------------------------------------
if vault_version_ok "$BIN"; then finish; fi

# --- cold path -----------------------------------------------------------------------------
need go "need Go >= 1.21; tested with 1.26"
need flock "package util-linux"
mkdir -p "$CACHE"

# One builder at a time; a second caller waits here and then finds the finished binary.
exec 9>"$CACHE/vault-$VAULT_VERSION.lock"
if ! flock -n 9; then
  log "another build of vault $VAULT_VERSION is running; waiting for its lock..."
  flock 9
fi
if vault_version_ok "$BIN"; then finish; fi

START=$SECONDS
# Build in a temp folder under the cache (same filesystem as the destination, so the final
# mv is an atomic rename). It is removed on any exit by the cleanup trap.
# (We hold the lock, so any .vault-build.* left here is debris from an interrupted run.)
for stale in "$CACHE"/.vault-build.*; do
  [[ -d "$stale" ]] || continue
  chmod -R u+w "$stale" 2>/dev/null || true
  rm -rf "$stale"
done
WORK="$(mktemp -d "$CACHE/.vault-build.XXXXXX")"
log "building vault $VAULT_VERSION in $WORK (once; cold builds took 746 s and 1,641 s on 2 cores)"

# Go settings: module mode, never a workspace, the Go toolchain that is installed (no
# toolchain downloads), no VCS stamping (the cache may live inside some git checkout).
export GO111MODULE=on GOWORK=off GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

# download MODULE@VERSION DEST: fetch a module via the proxy, copy it to DEST, make it writable.
download() {
  local mod="$1" dest="$2" dir
  # Run outside any module (an empty dir) so no go.mod is consulted or edited.
  dir="$(cd "$WORK/empty" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || die "go mod download $mod gave no Dir"
  cp -R "$dir" "$dest"
  chmod -R u+w "$dest"
}

# require_text FILE STRING: fail loudly if a patch target is missing (upstream drift).
require_text() {
  grep -qF -- "$2" "$1" || die "patch target not found in $1: '$2'"
}

mkdir -p "$WORK/empty"
log "downloading github.com/hashicorp/vault@v$VAULT_VERSION and sdk@$SDK_VERSION from the module proxy"
download "github.com/hashicorp/vault@v$VAULT_VERSION" "$WORK/src"
download "github.com/hashicorp/vault/sdk@$SDK_VERSION" "$WORK/sdk"
SRC="$WORK/src"
SDK="$WORK/sdk"

# --- patch 1 (sdk): drop the "CreateOperation but no ExistenceCheck" panic ------------------
# sdk v0.10.2's framework.Backend.init() panics for a path that defines a create operation
# without an ExistenceCheck. Several builtins in the 1.14.8 tree do exactly that (transit
# `cache-config`, sys `managed-keys/...`); the check did not exist in 1.14.8's own in-tree sdk,
# so the server would panic at mount/startup. Without an existence check, Vault's request
# handling (vault/request_handling.go, `case !checkExists`) routes such writes as updates,
# which is exactly how 1.14.8 behaves upstream.
F="$SDK/framework/backend.go"
require_text "$F" 'defines a CreateOperation but no ExistenceCheck'
perl -0pi -e 's{\n[ \t]*// Detect the coding error of attempting to define a CreateOperation without defining an ExistenceCheck\n[ \t]*if p\.ExistenceCheck == nil \{.*?\n\t\t\}\n}{\n}s' "$F"
! grep -qF 'defines a CreateOperation but no ExistenceCheck' "$F" || die "patch 1 (sdk ExistenceCheck panic) did not apply"

# --- patch 2 (sdk): add logical.ContextOriginalBodyValue / CreateContextOriginalBody ---------
# The 1.14.8 tree (http/util.go, vault/request_handling.go, vault/logical_system_raft.go)
# uses these two helpers, which were backported to the release-1.14 in-tree sdk but never
# published in sdk v0.10.2. They only carry the raw request body through the context, so we
# add them to our local sdk copy: both the http and vault packages then share one key.
[[ -e "$SDK/logical/request.go" ]] || die "patch target not found: $SDK/logical/request.go"
! grep -rqF 'func ContextOriginalBodyValue' "$SDK/logical" || die "sdk already has ContextOriginalBodyValue; drop patch 2"
cat >"$SDK/logical/flowcred_original_body.go" <<'EOF'
// Added by flowcred's scripts/get-vault.sh: helpers the Vault 1.14.8 tree expects from its
// in-tree sdk, absent from the published sdk v0.10.2.
package logical

import (
	"context"
	"io"
)

type ctxKeyOriginalBody struct{}

// ContextOriginalBodyValue returns the original (unlimited) request body stored in ctx.
func ContextOriginalBodyValue(ctx context.Context) (io.ReadCloser, bool) {
	value, ok := ctx.Value(ctxKeyOriginalBody{}).(io.ReadCloser)
	return value, ok
}

// CreateContextOriginalBody returns a child of parent that carries body.
func CreateContextOriginalBody(parent context.Context, body io.ReadCloser) context.Context {
	return context.WithValue(parent, ctxKeyOriginalBody{}, body)
}
EOF

# --- patch 3 (vault tree): eventbus adapter for logical.EventSender -------------------------
# sdk v0.10.2's logical.EventSender interface has SendEvent(ctx, type, data); the 1.14.8 tree's
# plugin event bus (vault/eventbus) only implements Send(...) with the same signature. Add a
# SendEvent method that forwards to Send so *pluginEventBus satisfies the interface again.
F="$SRC/vault/eventbus/bus.go"
require_text "$F" 'func (bus *pluginEventBus) Send(ctx context.Context, eventType logical.EventType, data *logical.EventData) error {'
cat >"$SRC/vault/eventbus/flowcred_sendevent.go" <<'EOF'
// Added by flowcred's scripts/get-vault.sh: adapter for sdk v0.10.2's logical.EventSender.
package eventbus

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
)

// SendEvent implements logical.EventSender (sdk >= v0.10) by forwarding to Send.
func (bus *pluginEventBus) SendEvent(ctx context.Context, eventType logical.EventType, data *logical.EventData) error {
	return bus.Send(ctx, eventType, data)
}
EOF

# --- go.mod: published api/sdk modules instead of the missing sub-folders -------------------
cd "$SRC"
for m in api api/auth/approle api/auth/kubernetes api/auth/userpass sdk; do
  require_text go.mod "replace github.com/hashicorp/vault/$m => ./$m"
  go mod edit -dropreplace="github.com/hashicorp/vault/$m"
done
go mod edit \
  -require="github.com/hashicorp/vault/api@$API_VERSION" \
  -require="github.com/hashicorp/vault/api/auth/approle@$API_AUTH_VERSION" \
  -require="github.com/hashicorp/vault/api/auth/kubernetes@$API_AUTH_VERSION" \
  -require="github.com/hashicorp/vault/api/auth/userpass@$API_AUTH_VERSION" \
  -require="github.com/hashicorp/vault/sdk@$SDK_VERSION" \
  -replace="github.com/hashicorp/vault/sdk=$SDK"

log "resolving dependencies (go mod tidy; cold: downloads ~3 GB into the Go module cache)"
go mod tidy -e >&2

# --- build ---------------------------------------------------------------------------------
log "compiling (go build, CGO_ENABLED=0)"
mkdir -p "$WORK/out"
go build -trimpath -ldflags "-s -w" -o "$WORK/out/vault" . >&2
vault_version_ok "$WORK/out/vault" || die "built binary does not report Vault v$VAULT_VERSION"

mkdir -p "$PREFIX/bin"
mv -f "$WORK/out/vault" "$BIN" # same filesystem: atomic rename
log "built $BIN in $((SECONDS - START))s"
finish

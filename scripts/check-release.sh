#!/usr/bin/env bash
# check-release.sh — check a directory scripts/release.sh wrote. Fails unless:
#   - SHA256SUMS lists every file of the release (all but SHA256SUMS and register.txt), each once,
#     and each checksum matches its file;
#   - each binary was built for the platform its name says (`go version -m`: GOOS, GOARCH,
#     CGO_ENABLED=0, the package), and the CLI built for this machine prints `flowcred vVERSION`;
#   - the register lines (register.txt, or PRINTED: what release.sh printed) are exactly one per
#     plugin file, each `vault plugin register -sha256=SUM -version=vVERSION -command=FILE secret
#     vault-plugin-flowcred` with FILE's SUM from SHA256SUMS;
#   - with FLOWCRED_VAULT_BIN set: in a Vault dev server, the line for this machine's plugin, run
#     as printed, registers it (Vault starts the plugin and refuses a version it does not report),
#     and `vault secrets enable -plugin-version=vVERSION` mounts it.
#
# Usage: scripts/check-release.sh DIR VERSION [PRINTED]
#        scripts/check-release.sh --selftest DIR VERSION   the check fails on a copy of DIR with a
#                                  changed binary, a missing register line, a wrong -version
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# selftest DIR VERSION: each mutation of a copy of DIR (hard links where it can) must fail the check.
selftest() {
  local m rc f
  SELFTEST_TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-check-release-selftest.XXXXXX")"
  trap 'rm -rf "$SELFTEST_TMP"' EXIT
  for m in binary line version; do
    rm -rf "$SELFTEST_TMP/r"
    cp -al "$1" "$SELFTEST_TMP/r" 2>/dev/null || cp -a "$1" "$SELFTEST_TMP/r" || return 1
    cp "$1/register.txt" "$SELFTEST_TMP/printed"
    case $m in
      binary) # a new file (not the hard link) with one byte more
        for f in "$SELFTEST_TMP"/r/flowcred_*; do break; done
        { cat "$f"; echo; } >"$f.x" && chmod +x "$f.x" && mv "$f.x" "$f" ;;
      line) awk '/-command=/ && !done { done = 1; next } 1' "$1/register.txt" >"$SELFTEST_TMP/printed" ;;
      version) sed 's/ -version=v[^ ]*/ -version=v0.0.0-selftest/' "$1/register.txt" >"$SELFTEST_TMP/printed" ;;
    esac
    rc=0
    FLOWCRED_VAULT_BIN="" bash "$ROOT/scripts/check-release.sh" "$SELFTEST_TMP/r" "$2" "$SELFTEST_TMP/printed" \
      >"$SELFTEST_TMP/out" 2>&1 || rc=$?
    if [[ $rc == 0 ]]; then
      cat "$SELFTEST_TMP/out" >&2
      log "selftest $m: the check passed, want a failure"
      return 1
    fi
    log "selftest $m: fails as expected: $(grep -m1 FAIL: "$SELFTEST_TMP/out")"
  done
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --selftest) [[ $# == 3 ]] || usage_error "want --selftest DIR VERSION"; selftest "$2" "$3"; log "selftest: PASS"; exit 0 ;;
esac
[[ $# == 2 || $# == 3 ]] || usage_error "want DIR VERSION [PRINTED]"
DIR="$1" VERSION="${2#v}" PRINTED="${3:-$1/register.txt}"
need go "go version -m reads the binaries' build information"

FAILS=0
fail() { echo "$NAME: FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# --- SHA256SUMS -------------------------------------------------------------------------------
[[ -f "$DIR/SHA256SUMS" ]] || die "$DIR/SHA256SUMS is missing"
declare -A SUM=()
while read -r sum file; do
  [[ "$sum" =~ ^[0-9a-f]{64}$ && -n "$file" ]] || { fail "SHA256SUMS: malformed line: $sum $file"; continue; }
  [[ -z "${SUM[$file]:-}" ]] || fail "SHA256SUMS lists $file twice"
  SUM[$file]="$sum"
  if [[ ! -f "$DIR/$file" ]]; then
    fail "SHA256SUMS lists $file, which is not in $DIR"
  elif [[ "$(sha256_of "$DIR/$file")" != "$sum" ]]; then
    fail "$file does not match its checksum in SHA256SUMS"
  fi
done <"$DIR/SHA256SUMS"
for f in "$DIR"/*; do
  f="$(basename "$f")"
  [[ "$f" == SHA256SUMS || "$f" == register.txt || -n "${SUM[$f]:-}" ]] || fail "$f is not in SHA256SUMS"
done

# --- each binary: platform, package, version ---------------------------------------------------
HOST="$(go env GOOS)_$(go env GOARCH)"
PLUGINS=()
for f in "${!SUM[@]}"; do
  [[ "$f" =~ ^(vault-plugin-flowcred|flowcred)_(.+)_(linux|darwin)_(amd64|arm64)$ ]] || { fail "$f: not a release file name"; continue; }
  kind="${BASH_REMATCH[1]}" v="${BASH_REMATCH[2]}" os="${BASH_REMATCH[3]}" arch="${BASH_REMATCH[4]}"
  [[ "$v" == "$VERSION" ]] || fail "$f: the name says version $v, want $VERSION"
  pkg=github.com/flowcred/vault-plugin-flowcred/cmd/$kind
  [[ $kind == flowcred ]] || PLUGINS+=("$f")
  info="$(go version -m "$DIR/$f" 2>&1)" || { fail "$f: go version -m: $info"; continue; }
  for want in "path	$pkg" "build	GOOS=$os" "build	GOARCH=$arch" "build	CGO_ENABLED=0"; do
    grep -qxF "	$want" <<<"$info" || fail "$f: build information lacks '${want/	/ }'"
  done
  if [[ $kind == flowcred && "${os}_$arch" == "$HOST" ]]; then
    out="$("$DIR/$f" version 2>&1)" || true
    [[ "$out" == "flowcred v$VERSION ("* ]] || fail "$f version printed '$out', want flowcred v$VERSION (...)"
  fi
done
[[ ${#PLUGINS[@]} -gt 0 ]] || fail "no plugin in $DIR"

# --- the register lines -----------------------------------------------------------------------
[[ -f "$PRINTED" ]] || die "$PRINTED is missing"
declare -A LINE=()
while read -r line; do
  [[ -z "$line" || "$line" == "#"* ]] && continue
  if [[ "$line" =~ ^vault\ plugin\ register\ -sha256=([0-9a-f]{64})\ -version=v([^ ]+)\ -command=([^ ]+)\ secret\ vault-plugin-flowcred$ ]]; then
    sum="${BASH_REMATCH[1]}" v="${BASH_REMATCH[2]}" file="${BASH_REMATCH[3]}"
    [[ "$v" == "$VERSION" ]] || fail "register line for $file: -version=v$v, want v$VERSION"
    [[ "$file" == vault-plugin-flowcred_* && -n "${SUM[$file]:-}" ]] || { fail "register line names $file, which is not a plugin in SHA256SUMS"; continue; }
    [[ "$sum" == "${SUM[$file]}" ]] || fail "register line for $file: -sha256 is not its SHA256SUMS checksum"
    [[ -z "${LINE[$file]:-}" ]] || fail "two register lines for $file"
    LINE[$file]="$line"
  elif [[ "$line" != "vault secrets enable -path=flowcred -plugin-version=v$VERSION vault-plugin-flowcred" ]]; then
    fail "$PRINTED: unexpected line: $line"
  fi
done <"$PRINTED"
for f in "${PLUGINS[@]}"; do
  [[ -n "${LINE[$f]:-}" ]] || fail "no register line for $f"
done

# --- the host's line, run in a real Vault -------------------------------------------------------
HOST_PLUGIN="vault-plugin-flowcred_${VERSION}_$HOST"
if [[ -z "${FLOWCRED_VAULT_BIN:-}" ]]; then
  log "FLOWCRED_VAULT_BIN is not set: not registering $HOST_PLUGIN in a Vault"
elif [[ -z "${LINE[$HOST_PLUGIN]:-}" ]]; then
  log "no $HOST plugin in the release: not registering one in a Vault"
elif [[ $FAILS == 0 ]]; then
  VAULT_BIN="$FLOWCRED_VAULT_BIN" VAULT_PID=""
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-check-release.XXXXXX")"
  trap 'stop_pid "$VAULT_PID"; rm -rf "$TMP"' EXIT
  start_dev_vault "$(pick_dev_addr)" "$TMP" || die "Vault did not start"
  cp "$DIR/$HOST_PLUGIN" "$TMP/plugins/"
  read -ra cmd <<<"${LINE[$HOST_PLUGIN]}"
  "$VAULT_BIN" "${cmd[@]:1}" >&2 || fail "the register line for $HOST_PLUGIN failed in Vault"
  "$VAULT_BIN" secrets enable -path=flowcred -plugin-version="v$VERSION" vault-plugin-flowcred >&2 ||
    fail "vault secrets enable -plugin-version=v$VERSION failed"
  got="$("$VAULT_BIN" read -format=json sys/mounts/flowcred | grep -o '"running_plugin_version": *"[^"]*"' || true)"
  [[ "$got" == *"\"v$VERSION\"" ]] || fail "flowcred/ runs ${got:-an unknown version}, want v$VERSION"
  log "registered $HOST_PLUGIN with its line and mounted it: flowcred/ runs v$VERSION"
fi

if [[ $FAILS != 0 ]]; then
  die "$FAILS problem(s) in $DIR"
fi
log "PASS: $DIR (${#SUM[@]} files, ${#PLUGINS[@]} register lines)"

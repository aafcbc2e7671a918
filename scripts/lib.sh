# shellcheck shell=bash
# lib.sh — what the scripts in scripts/ share. Sourced, never run:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sets ROOT (the repository) and NAME (the script's file name, which prefixes its messages), and
# defines:
#   log MSG... / die MSG...     a message on stderr / the same as an error, then exit 1
#   usage                       print the script's header comment (from line 2) as its help
#   usage_error MSG             "NAME: MSG (try --help)" on stderr, exit 2
#   parse_flag FLAG [ARG]       for scripts that take one optional flag: FLAG_GIVEN=1 when ARG is
#                               FLAG, 0 when there is none; -h/--help prints the usage and exits;
#                               anything else is a usage error
#   need CMD HINT               die unless CMD is on PATH
#   vault_version_ok BIN        BIN reports exactly Vault v$FLOWCRED_VAULT_VERSION
#   find_vault                  set VAULT_BIN: FLOWCRED_VAULT_BIN, else a `vault` on PATH that is
#                               v$FLOWCRED_VAULT_VERSION (said so), else scripts/get-vault.sh
#   plugin_version              the version the plugin built from this tree reports (no v)
#   build_plugin_file FILE VER  build cmd/vault-plugin-flowcred into FILE with VER stamped
#   build_plugin OUTDIR         build OUTDIR/vault-plugin-flowcred; set PLUGIN_BIN, PLUGIN_VERSION
#   race_flags                  set RACE to (-race), or () with FLOWCRED_RACE=0
#   sha256_of FILE              the file's SHA-256 in hex
#   port_in_use PORT            something accepts connections on 127.0.0.1:PORT
#   pick_dev_addr               print 127.0.0.1:PORT with PORT and PORT+1 free (Vault's API and
#                               cluster ports): even, in [32000, 32700), below the ephemeral range
#                               and outside internal/vaulttest's [20000, 32000)
#   start_dev_vault ADDR DIR    start "$VAULT_BIN" server -dev on ADDR (root token "root", plugin
#                               directory DIR/plugins, log DIR/vault.log, HOME=DIR/home) and wait
#                               until it answers; drops the caller's VAULT_*, exports VAULT_ADDR
#                               and VAULT_TOKEN, sets VAULT_PID (stop it with stop_pid)
#   stop_pid PID                SIGTERM PID if it runs, and wait for it
#
# Functions that can fail return non-zero after saying why (they do not exit), so that they can
# run inside `||` and `if`, where set -e is off.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="$(basename "$0")"

# The Vault version the tests cover (scripts/get-vault.sh builds it).
FLOWCRED_VAULT_VERSION=1.14.8
# The plugin reports "v" + this variable as its running version.
FLOWCRED_VERSION_VAR=github.com/flowcred/vault-plugin-flowcred.Version

log() { echo "$NAME: $*" >&2; }
die() { echo "$NAME: ERROR: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^[^#]/p' "$ROOT/scripts/$NAME" | sed -e '/^[^#]/d' -e 's/^# \{0,1\}//'
}

usage_error() {
  echo "$NAME: $* (try --help)" >&2
  exit 2
}

# shellcheck disable=SC2034 # FLAG_GIVEN and RACE are for the caller
parse_flag() {
  FLAG_GIVEN=0
  case "${2:-}" in
    "") ;;
    "$1") FLAG_GIVEN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $2" ;;
  esac
}

need() {
  command -v "$1" >/dev/null || die "$1 not found in PATH: $2"
}

vault_version_ok() {
  local out
  [[ -x "$1" ]] || return 1
  out="$("$1" version 2>/dev/null)" || return 1
  [[ "$out" =~ ^Vault\ v${FLOWCRED_VAULT_VERSION//./\\.}([[:space:]]|$) ]]
}

find_vault() {
  local path_vault=""
  if [[ -n "${FLOWCRED_VAULT_BIN:-}" ]]; then
    VAULT_BIN="$FLOWCRED_VAULT_BIN"
    [[ -x "$VAULT_BIN" ]] || { log "FLOWCRED_VAULT_BIN=$VAULT_BIN is not an executable"; return 1; }
    if vault_version_ok "$VAULT_BIN"; then
      log "using FLOWCRED_VAULT_BIN=$VAULT_BIN (Vault v$FLOWCRED_VAULT_VERSION)"
    else
      log "warning: using FLOWCRED_VAULT_BIN=$VAULT_BIN, which reports '$("$VAULT_BIN" version 2>&1 | head -n1)'; the tests cover Vault v$FLOWCRED_VAULT_VERSION"
    fi
    return 0
  fi
  if path_vault="$(command -v vault)"; then
    if vault_version_ok "$path_vault"; then
      log "using $path_vault from PATH: it is Vault v$FLOWCRED_VAULT_VERSION, the version the tests cover"
      VAULT_BIN="$path_vault"
      return 0
    fi
    log "not using $path_vault from PATH: it reports '$("$path_vault" version 2>&1 | head -n1)', the tests cover v$FLOWCRED_VAULT_VERSION"
  fi
  log "getting Vault v$FLOWCRED_VAULT_VERSION with scripts/get-vault.sh (its cached build, or built now from the Go module proxy)"
  VAULT_BIN="$(bash "$ROOT/scripts/get-vault.sh" | tail -n1)" || return 1
  [[ -x "$VAULT_BIN" ]] || { log "get-vault.sh printed '$VAULT_BIN', which is not an executable"; return 1; }
}

# plugin_version comes from
#   FLOWCRED_PLUGIN_VERSION, if set (with or without the leading v), else
#   `git describe --tags --always`: a tag vX.Y.Z gives X.Y.Z, N commits past it X.Y.Z+N.g<sha>,
#   no tag 0.1.0-dev+<sha>; ".dirty" is appended for uncommitted changes; outside git 0.1.0-dev.
plugin_version() {
  if [[ -n "${FLOWCRED_PLUGIN_VERSION:-}" ]]; then
    echo "${FLOWCRED_PLUGIN_VERSION#v}"
    return
  fi
  local d dirty=""
  # GIT_OPTIONAL_LOCKS=0: never take index.lock (other people commit in this tree).
  if ! d="$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" describe --tags --always 2>/dev/null)"; then
    echo "0.1.0-dev"
    return
  fi
  if [[ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=".dirty"
  fi
  if [[ $d =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
    # exactly on a release tag
    if [[ -n $dirty ]]; then echo "${BASH_REMATCH[1]}+dirty"; else echo "${BASH_REMATCH[1]}"; fi
  elif [[ $d =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    echo "${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}${dirty}"
  elif [[ $d =~ ^[0-9a-f]{4,40}$ ]]; then
    echo "0.1.0-dev+${d}${dirty}"
  else
    # a tag that is not vX.Y.Z: keep the commit, not the tag
    echo "0.1.0-dev+g$(git -C "$ROOT" rev-parse --short HEAD)${dirty}"
  fi
}

# build_plugin_file FILE VERSION: GOOS and GOARCH come from the environment (default: this host).
build_plugin_file() {
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-X $FLOWCRED_VERSION_VAR=$2" \
    -o "$1" ./cmd/vault-plugin-flowcred)
}

build_plugin() {
  command -v go >/dev/null || { log "go not found in PATH"; return 1; }
  mkdir -p "$1" || return 1
  PLUGIN_VERSION="$(plugin_version)" || return 1
  PLUGIN_BIN="$(cd "$1" && pwd)/vault-plugin-flowcred"
  log "building the plugin v$PLUGIN_VERSION"
  build_plugin_file "$PLUGIN_BIN" "$PLUGIN_VERSION" || return 1
}

# shellcheck disable=SC2034
race_flags() {
  RACE=(-race)
  if [[ "${FLOWCRED_RACE:-1}" == 0 ]]; then
    RACE=()
  elif [[ "$(go env CGO_ENABLED)" != 1 ]]; then
    log "go test -race needs cgo and a C compiler (CC=$(go env CC)); install one (e.g. apt-get install gcc) or set FLOWCRED_RACE=0"
    return 1
  fi
}

sha256_of() {
  local out
  if command -v sha256sum >/dev/null; then
    out="$(sha256sum "$1")" || return 1
  else
    out="$(shasum -a 256 "$1")" || return 1
  fi
  echo "${out%% *}"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_dev_addr() {
  local p
  for _ in $(seq 1 100); do
    p=$((32000 + 2 * (RANDOM % 350)))
    if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
      echo "127.0.0.1:$p"
      return 0
    fi
  done
  log "no free pair of ports found in [32000, 32700)"
  return 1
}

start_dev_vault() {
  local addr="$1" dir="$2" v
  # The vault CLI must talk to this server only.
  while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^VAULT_' || true)
  mkdir -p "$dir/plugins" "$dir/home" || return 1
  export VAULT_ADDR="http://$addr" VAULT_TOKEN=root
  HOME="$dir/home" "$VAULT_BIN" server -dev -dev-root-token-id=root -dev-listen-address="$addr" \
    -dev-plugin-dir="$dir/plugins" -dev-no-store-token >"$dir/vault.log" 2>&1 &
  VAULT_PID=$!
  for _ in $(seq 1 300); do
    if "$VAULT_BIN" status >/dev/null 2>&1; then return 0; fi
    kill -0 "$VAULT_PID" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 40 "$dir/vault.log" >&2 || true
  log "Vault did not come up on $VAULT_ADDR (log: $dir/vault.log)"
  return 1
}

stop_pid() {
  if [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

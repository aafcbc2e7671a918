#!/usr/bin/env bash
# build-plugin.sh — build the flowcred plugin with its version stamped in.
#
# Usage:
#   scripts/build-plugin.sh OUTDIR     # builds OUTDIR/vault-plugin-flowcred; prints its path (last stdout line)
#   scripts/build-plugin.sh --version  # prints the version the plugin will report to Vault (vX.Y.Z...)
#
# The version goes into github.com/flowcred/vault-plugin-flowcred.Version; the plugin reports
# "v" + Version as its running version, and `vault plugin register -version=...` must be given
# exactly that (Vault 1.14 refuses a mismatch, and wants a semantic version). It comes from
#   FLOWCRED_PLUGIN_VERSION, if set (with or without the leading v), else
#   `git describe --tags --always`: a tag vX.Y.Z gives X.Y.Z, N commits past it X.Y.Z+N.g<sha>,
#   no tag 0.1.0-dev+<sha>; ".dirty" is appended for uncommitted changes; outside git 0.1.0-dev.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "build-plugin: ERROR: $*" >&2; exit 1; }

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

case "${1:-}" in
  --version) echo "v$(plugin_version)"; exit 0 ;;
  -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
  "") die "usage: scripts/build-plugin.sh OUTDIR (or --version)" ;;
esac

OUT="$1"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
command -v go >/dev/null || die "go not found in PATH"
VERSION="$(plugin_version)"
cd "$ROOT"
echo "build-plugin: building v$VERSION" >&2
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-X github.com/flowcred/vault-plugin-flowcred.Version=$VERSION" \
  -o "$OUT/vault-plugin-flowcred" ./cmd/vault-plugin-flowcred
echo "$OUT/vault-plugin-flowcred"

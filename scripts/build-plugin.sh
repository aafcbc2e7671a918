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
# (plugin_version and build_plugin in scripts/lib.sh; scripts/release.sh builds every platform.)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  --version) echo "v$(plugin_version)"; exit 0 ;;
  -h|--help) usage; exit 0 ;;
  "") die "usage: scripts/build-plugin.sh OUTDIR (or --version)" ;;
esac

build_plugin "$1" || die "building the plugin failed"
echo "$PLUGIN_BIN"

#!/usr/bin/env bash
# check-licences.sh — the licence gate (issue 18 item 1): fail when a source file compiled into
# the plugin, the CLI or the resolver carries a licence identifier that is not on the allow-list,
# or sits in a module whose licence file is not on it.
#
# Usage: scripts/check-licences.sh            check ./cmd/vault-plugin-flowcred ./cmd/flowcred ./resolver
#        scripts/check-licences.sh -v         the same, listing each module with its licence
#        scripts/check-licences.sh --selftest prove the gate fails on BUSL-1.1 (fixtures, and the
#                                             real github.com/hashicorp/vault/sdk v0.25.1 when it is
#                                             in the module cache)
#
# The work is done by internal/tools/licencecheck (standard library only; see its doc comment for
# why it is hand-written): `go list -deps -json` per target, then
#   - every compiled file (GoFiles, CgoFiles, SFiles, C/H files, EmbedFiles) of every non-standard
#     package: each `SPDX-License-Identifier:` expression in a comment must be satisfied by the
#     allow-list (OR: one side allowed; AND: both; WITH exceptions are never allowed);
#   - every module: its LICENSE/LICENCE/COPYING file(s) at the module root, classified by text
#     fingerprints, must all be allow-listed (and any licence file between a compiled package and
#     its module root too). Go's standard library is exempt.
# Allow-list: MPL-2.0, Apache-2.0, MIT, BSD-2-Clause, BSD-3-Clause, ISC.
#
# Offline: GOPROXY=off (and GOSUMDB=off) are set here, so go cannot download a module, a checksum
# or a toolchain; everything comes from the module cache, which the earlier build/vet steps fill.
# A module missing from the cache makes go list fail, and the gate fails (exit 2), never passes.
#
# Environment:
#   FLOWCRED_LICENCE_PLATFORMS  GOOS/GOARCH pairs to list for, space-separated (default: the host's;
#                               build-plugin.sh builds for the host). Other platforms may need
#                               modules that are not in the module cache.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export GOPROXY=off GOSUMDB=off GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"

TARGETS=(./cmd/vault-plugin-flowcred ./cmd/flowcred ./resolver)
# The repository has no LICENSE file yet: our own module's licence file cannot be checked. Its
# source files' SPDX headers are still checked. Drop this when a LICENSE is added (the tool says so).
EXEMPT=(-exempt "github.com/flowcred/vault-plugin-flowcred=the repository has no LICENSE file yet")
FIXTURES="$ROOT/internal/tools/licencecheck/testdata"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/flowcred-licences.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
TOOL="$TMP/licencecheck"
go build -o "$TOOL" ./internal/tools/licencecheck

PLAT=()
if [[ -n "${FLOWCRED_LICENCE_PLATFORMS:-}" ]]; then PLAT=(-platforms "$FLOWCRED_LICENCE_PLATFORMS"); fi

check() {
  "$TOOL" "${PLAT[@]}" "${EXEMPT[@]}" "$@" "${TARGETS[@]}"
}

# expect NAME WANT_RC OUT_FILE CMD...: run CMD, fail unless it exits WANT_RC.
expect() {
  local name="$1" want="$2" out="$3" rc=0
  shift 3
  "$@" >"$out" 2>&1 || rc=$?
  if [[ $rc != "$want" ]]; then
    cat "$out" >&2
    echo "check-licences.sh: selftest $name: exit $rc, want $want" >&2
    return 1
  fi
}

# contains NAME OUT_FILE TEXT: fail unless OUT_FILE holds TEXT.
contains() {
  grep -qF -- "$3" "$2" || { cat "$2" >&2; echo "check-licences.sh: selftest $1: output lacks: $3" >&2; return 1; }
}

selftest() {
  local out="$TMP/out"
  # 1. A clean fixture passes (OR expression, string literal holding a BUSL tag).
  expect good 0 "$out" "$TOOL" -C "$FIXTURES/good" .
  contains good "$out" "licencecheck: PASS"
  echo "check-licences.sh: selftest good: PASS as expected" >&2

  # 2. The bad fixture fails, naming each of its three problems and nothing else.
  expect bad 1 "$out" "$TOOL" -C "$FIXTURES/bad" .
  contains bad "$out" "FAIL: example.com/spdxbusl@v0.0.0/physical/path_error.go:2: SPDX-License-Identifier: BUSL-1.1 is not on the allow-list"
  contains bad "$out" "FAIL: module example.com/busllib v0.0.0"
  contains bad "$out" "licence file LICENSE is BUSL-1.1, which is not on the allow-list"
  contains bad "$out" "FAIL: module example.com/nolicence v0.0.0"
  contains bad "$out" "FAIL: 3 problem(s)"
  grep -F FAIL: "$out" >&2
  echo "check-licences.sh: selftest bad: FAIL as expected (3 problems)" >&2

  # 3. The real SDK that brought BUSL in: a throwaway module importing sdk/logical at v0.25.1.
  #    Its LICENSE is MPL-2.0 (a LICENSE-only tool passes it); the gate must name the BUSL file.
  local sdk=github.com/hashicorp/vault/sdk@v0.25.1 mod="$TMP/sdk0251"
  if [[ ! -d "$(go env GOMODCACHE)/$sdk" ]]; then
    echo "check-licences.sh: selftest sdk v0.25.1: SKIPPED, $sdk is not in the module cache (go mod download $sdk adds it)" >&2
    return 0
  fi
  mkdir -p "$mod"
  # Start from our go.mod, so the other modules resolve to the versions already in the cache.
  sed 's#^module .*#module example.com/sdk0251#' go.mod >"$mod/go.mod"
  cp go.sum "$mod/go.sum"
  (cd "$mod" && go mod edit -require=github.com/hashicorp/vault/sdk@v0.25.1)
  printf 'package main\n\nimport "github.com/hashicorp/vault/sdk/logical"\n\nvar _ logical.Backend\n\nfunc main() {}\n' >"$mod/main.go"
  local rc=0
  # -mod=mod writes go.sum in the throwaway module, from the module cache (GOPROXY=off).
  GOFLAGS="-mod=mod -buildvcs=false" "$TOOL" -C "$mod" -exempt "example.com/sdk0251=throwaway selftest module" . >"$out" 2>&1 || rc=$?
  if [[ $rc == 2 ]]; then
    sed -n '1,5p' "$out" >&2
    echo "check-licences.sh: selftest sdk v0.25.1: SKIPPED, its dependencies are not all in the module cache" >&2
    return 0
  fi
  [[ $rc == 1 ]] || { cat "$out" >&2; echo "check-licences.sh: selftest sdk v0.25.1: exit $rc, want 1" >&2; return 1; }
  contains sdk "$out" "FAIL: $sdk/physical/path_error.go:2: SPDX-License-Identifier: BUSL-1.1 is not on the allow-list"
  if grep -F "FAIL: module github.com/hashicorp/vault/sdk " "$out" >&2; then
    echo "check-licences.sh: selftest sdk v0.25.1: the module licence should be MPL-2.0 (allowed)" >&2
    return 1
  fi
  grep -F FAIL: "$out" >&2
  echo "check-licences.sh: selftest sdk v0.25.1: FAIL as expected (BUSL-1.1 file in an MPL-2.0 module)" >&2
}

case "${1:-}" in
  "") check ;;
  -v) check -v ;;
  --selftest) selftest && echo "check-licences.sh: selftest: PASS" >&2 ;;
  -h|--help) usage ;;
  *) usage_error "unknown argument: $1" ;;
esac

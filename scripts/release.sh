#!/usr/bin/env bash
# release.sh — release builds: the plugin and the flowcred CLI for linux and darwin on amd64 and
# arm64, the version stamped in both, SHA256SUMS, and the `vault plugin register` lines.
#
# Usage:
#   scripts/release.sh VERSION [OUTDIR]   # VERSION is semantic (0.2.0, v0.2.0, 0.2.0-rc.1);
#                                         # OUTDIR defaults to dist/vVERSION (ignored by git)
#
# OUTDIR gets, for each platform OS_ARCH:
#   vault-plugin-flowcred_VERSION_OS_ARCH   the plugin (reports vVERSION to Vault)
#   flowcred_VERSION_OS_ARCH                the CLI (`flowcred version` prints vVERSION)
# and SHA256SUMS (sha256sum -c format) and register.txt. Stdout is register.txt: per platform,
# a comment and the exact line to run once the file is in every node's plugin_directory:
#   vault plugin register -sha256=HEX -version=vVERSION -command=FILE secret vault-plugin-flowcred
# then `vault secrets enable -path=flowcred -plugin-version=vVERSION vault-plugin-flowcred`.
# Builds are CGO_ENABLED=0 and -trimpath (the same tree gives the same checksums). Then the
# licence gate (scripts/check-licences.sh) runs for these platforms, and scripts/check-release.sh
# checks the result (here, and in scripts/test.sh).
#
# Environment:
#   FLOWCRED_RELEASE_PLATFORMS  OS/ARCH pairs, space-separated (default: all four)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage_error "VERSION is required" ;;
esac
VERSION="${1#v}"
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]] ||
  usage_error "VERSION '$1' is not a semantic version (X.Y.Z, X.Y.Z-pre, X.Y.Z+build)"
OUT="${2:-$ROOT/dist/v$VERSION}"
[[ $# -le 2 ]] || usage_error "too many arguments"
PLATFORMS="${FLOWCRED_RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}"
need go "install Go (see go.mod for the version)"

if [[ -e "$OUT" ]] && [[ -n "$(ls -A "$OUT")" ]]; then
  die "$OUT is not empty; remove it or name another OUTDIR"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [[ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  log "warning: the work tree has uncommitted changes; they are in these builds"
fi

START=$SECONDS
: >"$OUT/register.txt"
for p in $PLATFORMS; do
  [[ "$p" =~ ^(linux|darwin)/(amd64|arm64)$ ]] || die "platform '$p': want linux or darwin, amd64 or arm64"
  os="${p%/*}" arch="${p#*/}" t0=$SECONDS
  plugin="vault-plugin-flowcred_${VERSION}_${os}_${arch}"
  cli="flowcred_${VERSION}_${os}_${arch}"
  GOOS="$os" GOARCH="$arch" build_plugin_file "$OUT/$plugin" "$VERSION" || die "building $plugin failed"
  (cd "$ROOT" && GOOS="$os" GOARCH="$arch" CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X main.version=$VERSION" -o "$OUT/$cli" ./cmd/flowcred) || die "building $cli failed"
  log "built $os/$arch in $((SECONDS - t0))s"
  {
    echo "# $os/$arch: copy $plugin into the plugin_directory of every Vault node, then"
    echo "vault plugin register -sha256=$(sha256_of "$OUT/$plugin") -version=v$VERSION -command=$plugin secret vault-plugin-flowcred"
  } >>"$OUT/register.txt"
done
echo "# then: vault secrets enable -path=flowcred -plugin-version=v$VERSION vault-plugin-flowcred" >>"$OUT/register.txt"
(cd "$OUT" && for f in vault-plugin-flowcred_* flowcred_*; do echo "$(sha256_of "$f")  $f"; done) >"$OUT/SHA256SUMS"
log "built $(echo "$PLATFORMS" | wc -w) platform(s) in $((SECONDS - START))s into $OUT"

# The licence gate for the platforms built (their compiled files differ: golang.org/x/sys, ...).
FLOWCRED_LICENCE_PLATFORMS="$PLATFORMS" bash "$ROOT/scripts/check-licences.sh" >&2 ||
  die "the licence gate fails for $PLATFORMS"
bash "$ROOT/scripts/check-release.sh" "$OUT" "$VERSION" >&2 || die "the release in $OUT fails its check"
cat "$OUT/register.txt"

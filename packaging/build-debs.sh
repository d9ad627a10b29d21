#!/usr/bin/env bash
# build-debs.sh builds the edged and edged-reconcile .deb packages.
#
#   packaging/build-debs.sh [ARCH...]     ARCH: armhf arm64 amd64 (default: all)
#
# For each ARCH it uses $DIST/edged-linux-SUFFIX (what `make cross` builds:
# SUFFIX is armv6, arm64 or amd64), building it when missing, builds
# $DIST/edged-reconcile-linux-SUFFIX, and writes
# $DIST/edged_VERSION_ARCH.deb and $DIST/edged-reconcile_VERSION_ARCH.deb.
# armhf binaries are GOARM=6 so that one package serves every Raspberry Pi.
#
# Both packages carry /usr/share/doc/PKG/copyright (packaging/copyright),
# a lintian override (packaging/lintian/PKG), changelog.gz, made here
# from packaging/changelog with the version and a date filled in, and
# their manual page (packaging/man/PKG.1, compressed here).
#
# Environment:
#   DIST         binaries in, packages out (default: dist)
#   VERSION      the build's version, as `git describe` prints it (default: that)
#   DEB_VERSION  the Debian version (default: derived from VERSION)
#   GO           go command (default: go)
#   EDGED_TOOLS  tool cache; nfpm is built into $EDGED_TOOLS/bin once
#   NFPM         an nfpm binary to use instead
#   SOURCE_DATE_EPOCH  the changelog's date (default: HEAD's commit time), so
#                that a rebuild of a commit gives the same changelog.gz
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM_VERSION=v2.45.2
GO="${GO:-go}"
DIST="${DIST:-dist}"
EDGED_TOOLS="${EDGED_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/edged}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}"

log() { printf 'package: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# debian_version turns a git describe string into a Debian version that
# sorts sensibly: v1.2.3 → 1.2.3, v1.2.3-4-gabc1234-dirty →
# 1.2.3+git4.gabc1234.dirty, and an untagged cc63e5e-dirty →
# 0.0.0~git.cc63e5e.dirty (before any release).
debian_version() {
	local v="${1#v}"
	if [[ "$v" =~ ^[0-9]+\.[0-9] ]]; then # a release tag, not an abbreviated hash
		if [[ "$v" =~ ^(.*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$ ]]; then
			v="${BASH_REMATCH[1]//-/\~}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}${BASH_REMATCH[4]:+.dirty}"
		else
			v="${v//-/\~}"
		fi
	else
		v="0.0.0~git.${v//-/.}"
	fi
	printf '%s\n' "$v"
}

DEB_VERSION="${DEB_VERSION:-$(debian_version "$VERSION")}"
[[ "$DEB_VERSION" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "DEB_VERSION=$DEB_VERSION is not a Debian version (digits first; letters, digits, . + ~)"

nfpm() {
	if [ -z "${NFPM:-}" ]; then
		NFPM="$EDGED_TOOLS/bin/nfpm"
		if ! "$GO" version -m "$NFPM" 2>/dev/null | grep -q "github.com/goreleaser/nfpm/v2[[:space:]]*$NFPM_VERSION"; then
			log "building nfpm $NFPM_VERSION into $EDGED_TOOLS/bin (once)"
			mkdir -p "$EDGED_TOOLS/bin"
			# Outside the module, so that edged's go.mod is neither read nor changed.
			(cd / && GOBIN="$EDGED_TOOLS/bin" GOFLAGS= "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION")
		fi
	fi
	"$NFPM" "$@"
}

build() { # build GOARCH GOARM PKG OUT
	log "building $4"
	CGO_ENABLED=0 GOOS=linux GOARCH="$1" GOARM="$2" "$GO" build -trimpath \
		-ldflags "-s -w -X github.com/edged-io/edged/internal/cli.Version=$VERSION -X github.com/edged-io/edged/sync/reconcile.Version=$VERSION" \
		-o "$4" "$3"
}

# changelog writes packaging/changelog, filled in, gzipped as Debian wants
# it (-9; -n: no name or time stamp, so the bytes depend on the input only).
changelog() { # out
	local date text
	date="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
	text="$(<packaging/changelog)"
	text="${text//@DEB_VERSION@/$DEB_VERSION}"
	text="${text//@VERSION@/$VERSION}"
	text="${text//@DATE@/$(LC_ALL=C date -u -R -d "@$date")}"
	printf '%s\n' "$text" | gzip -9n >"$1"
}

[ $# -gt 0 ] || set -- armhf arm64 amd64
mkdir -p "$DIST"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
changelog "$work/changelog.gz"
for page in packaging/man/*.1; do
	gzip -9n <"$page" >"$work/$(basename "$page").gz"
done
for arch in "$@"; do
	case "$arch" in
	armhf) goarch=arm goarm=6 nfpm_arch=arm6 suffix=armv6 ;;
	arm64) goarch=arm64 goarm= nfpm_arch=arm64 suffix=arm64 ;;
	amd64) goarch=amd64 goarm= nfpm_arch=amd64 suffix=amd64 ;;
	*) die "unknown architecture $arch (armhf, arm64, amd64)" ;;
	esac
	edged="$DIST/edged-linux-$suffix"
	reconcile="$DIST/edged-reconcile-linux-$suffix"
	[ -x "$edged" ] || build "$goarch" "$goarm" ./cmd/edged "$edged"
	build "$goarch" "$goarm" ./cmd/edged-reconcile "$reconcile"
	for pkg in edged edged-reconcile; do
		out="$DIST/${pkg}_${DEB_VERSION}_${arch}.deb"
		rm -f "$out"
		ARCH="$nfpm_arch" VERSION="$DEB_VERSION" EDGED_BIN="$edged" RECONCILE_BIN="$reconcile" CHANGELOG="$work/changelog.gz" MANDIR="$work" \
			nfpm pkg --packager deb --config "packaging/nfpm-$pkg.yaml" --target "$out" >/dev/null
		log "$out"
	done
done

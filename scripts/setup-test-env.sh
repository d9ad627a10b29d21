#!/usr/bin/env bash
# setup-test-env.sh installs the real services that edged's integration tests
# run against (see internal/servicetest):
#
#   - mosquitto (MQTT broker) and mosquitto-clients, from Debian packages;
#   - influxd v1.8.10 (InfluxDB with the Flux / v2 compatibility API), built
#     from source once into $EDGED_TOOLS/bin;
#   - for the packaging tests: qemu-user (qemu-arm, qemu-aarch64), lintian,
#     and systemd-analyze and dpkg-deb when missing (Debian has them).
#
# It is idempotent and returns quickly when everything is already present.
#
# Environment:
#   EDGED_TOOLS  where built tools live (default ${XDG_CACHE_HOME:-$HOME/.cache}/edged)
#   GO           go command to use (default: go)
set -euo pipefail

INFLUXD_VERSION=v1.8.10
EDGED_TOOLS="${EDGED_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/edged}"
GO="${GO:-go}"

log() { printf 'setup: %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		log "need root to run: $*" >&2
		return 1
	fi
}

install_mosquitto() {
	if [ -x /usr/sbin/mosquitto ] && command -v mosquitto_sub >/dev/null 2>&1; then
		log "mosquitto present ($(/usr/sbin/mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -n1))"
		return 0
	fi
	log "installing mosquitto and mosquitto-clients (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y -q mosquitto mosquitto-clients; then
		log "apt-get install failed; running apt-get update and retrying"
		as_root apt-get update -q
		as_root apt-get install -y -q mosquitto mosquitto-clients
	fi
	# The tests start private brokers on free loopback ports; they never use
	# a system-wide mosquitto service.
	log "mosquitto installed"
}

install_influxd() {
	local bin="$EDGED_TOOLS/bin/influxd"
	if [ -x "$bin" ]; then
		log "influxd present ($bin)"
		return 0
	fi
	if ! command -v "$GO" >/dev/null 2>&1; then
		log "go not found (set GO=/path/to/go)" >&2
		return 1
	fi
	mkdir -p "$EDGED_TOOLS/bin"
	log "building influxd $INFLUXD_VERSION into $EDGED_TOOLS/bin (one-off, takes a few minutes)"
	local tmp
	tmp="$(mktemp -d)"
	# Build outside the repository so edged's go.mod is neither consulted nor
	# modified.
	(
		cd "$tmp"
		GOBIN="$EDGED_TOOLS/bin" GO111MODULE=on "$GO" install "github.com/influxdata/influxdb/cmd/influxd@$INFLUXD_VERSION"
	) || {
		rm -rf "$tmp"
		log "building influxd failed" >&2
		return 1
	}
	rm -rf "$tmp"
	log "influxd built ($bin)"
}

# install_packaging_tools installs what packaging/'s tests run: the ARM
# binaries under qemu-user (binfmt is not needed: they call qemu-arm), the
# units through systemd-analyze, the packages through dpkg-deb, dpkg and
# lintian.
install_packaging_tools() {
	local pkgs=()
	command -v qemu-arm >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 || pkgs+=(qemu-user)
	command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
	command -v dpkg-deb >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || pkgs+=(dpkg)
	command -v lintian >/dev/null 2>&1 || pkgs+=(lintian)
	if [ ${#pkgs[@]} -eq 0 ]; then
		log "qemu-user, systemd-analyze, dpkg-deb and lintian present"
		return 0
	fi
	log "installing ${pkgs[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y -q "${pkgs[@]}"; then
		as_root apt-get update -q
		as_root apt-get install -y -q "${pkgs[@]}"
	fi
}

install_mosquitto
install_influxd
install_packaging_tools
log "done"

// Package packaging holds what turns edged into Debian packages for a
// Raspberry Pi (armhf with GOARM=6, arm64) and amd64: the nfpm
// configurations, the hardened systemd units, the packaged configuration and
// the maintainer scripts, built by build-debs.sh (`make package`).
//
// There is no Go code here, only tests: they build the packages and inspect
// them with dpkg-deb, score the units with `systemd-analyze security`, and
// run the cross-built binaries under qemu-user on the CPUs of real boards.
// See README.md.
package packaging

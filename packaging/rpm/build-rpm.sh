#!/usr/bin/env bash
# Builds the goguard RPM from the already-built release binaries
# ($CARGO_TARGET_DIR or target/, then release/goguardd and goguardctl) with
# rpmbuild in a scratch _topdir. It stages Source0 (binaries, units, config,
# SELinux sources, README) and Source1 (the sysusers.d file) and runs
# `rpmbuild -bb packaging/rpm/goguard.spec`; the spec never runs cargo.
#
#   cargo build --release --locked --bins
#   packaging/rpm/build-rpm.sh [OUTDIR]     # default OUTDIR: <target>/rpm
#
# Prints the path of the built .rpm on its last line.
#
# rpmbuild on Debian (package `rpm`) has an empty rpm database, so no
# BuildRequires can be satisfied there: on a host without dnf this script
# passes --nodeps (the tools the build really needs, make and the SELinux
# devel Makefile, are checked below). On RHEL/Fedora, BuildRequires are
# checked as usual. The systemd macros Debian's rpm lacks have fallbacks in
# the spec itself.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bindir=$target/release
out=${1:-$target/rpm}

for b in goguardd goguardctl; do
  if [ ! -x "$bindir/$b" ]; then
    echo "goguard: $bindir/$b is missing: run 'cargo build --release --locked --bins' first" >&2
    exit 1
  fi
done
command -v rpmbuild >/dev/null || { echo "goguard: rpmbuild is missing: install the package 'rpm' (Debian) or 'rpm-build'" >&2; exit 1; }
[ -f /usr/share/selinux/devel/Makefile ] || { echo "goguard: /usr/share/selinux/devel/Makefile is missing: install selinux-policy-dev (Debian) or selinux-policy-devel" >&2; exit 1; }

# The version the binary reports ("goguardctl 0.1.0").
version=$("$bindir/goguardctl" --version | awk '{print $NF}')

top=$(mktemp -d); trap 'rm -rf "$top"' EXIT
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
src=$top/stage/goguard-$version
mkdir -p "$src/bin" "$src/packaging/selinux" "$src/systemd"
install -m 0755 "$bindir/goguardd" "$bindir/goguardctl" "$src/bin/"
# Release builds carry line tables (Cargo.toml); ship them without.
strip --strip-debug "$src/bin/goguardd" "$src/bin/goguardctl"
cp -r "$repo/systemd/." "$src/systemd/"
cp "$repo/packaging/goguard.toml" "$src/packaging/"
cp "$repo"/packaging/selinux/goguard.{te,fc,if} "$src/packaging/selinux/"
cp "$repo/README.md" "$src/"
tar -C "$top/stage" -czf "$top/SOURCES/goguard-$version.tar.gz" "goguard-$version"
cp "$repo/systemd/sysusers.d/goguard.conf" "$top/SOURCES/goguard.sysusers"
cp "$repo/packaging/rpm/goguard.spec" "$top/SPECS/"

nodeps=()
command -v dnf >/dev/null || command -v yum >/dev/null || nodeps=(--nodeps)
rpmbuild -bb "${nodeps[@]}" \
  --define "_topdir $top" \
  --define "goguard_version $version" \
  "$top/SPECS/goguard.spec"

mkdir -p "$out"
rpm=$(find "$top/RPMS" -name "goguard-$version-*.rpm" | head -n1)
[ -n "$rpm" ] || { echo "goguard: rpmbuild made no goguard-$version RPM" >&2; exit 1; }
cp "$rpm" "$out/"
echo "$out/$(basename "$rpm")"

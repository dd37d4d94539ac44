#!/usr/bin/env bash
# Builds the goguard SELinux policy module (goguard.pp) from goguard.te,
# goguard.fc and goguard.if with the reference policy's devel Makefile
# (Debian: selinux-policy-dev; RHEL/Fedora: selinux-policy-devel).
#
#   packaging/selinux/build.sh [OUTDIR]   # default OUTDIR: packaging/selinux/build
#
# Exits non-zero on any error; prints the compiler's output, warnings
# included. The build happens in a scratch copy so the source folder stays
# clean.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=${1:-$src/build}
makefile=${SELINUX_DEVEL_MAKEFILE:-/usr/share/selinux/devel/Makefile}
if [ ! -f "$makefile" ]; then
  echo "goguard: $makefile is missing: install selinux-policy-dev (Debian) or selinux-policy-devel (RHEL/Fedora)" >&2
  exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp "$src/goguard.te" "$src/goguard.fc" "$src/goguard.if" "$work/"
make -C "$work" -f "$makefile" goguard.pp
mkdir -p "$out"
install -m 0644 "$work/goguard.pp" "$out/goguard.pp"
echo "goguard: built $out/goguard.pp"

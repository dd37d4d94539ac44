#!/usr/bin/env bash
# Builds the goguard Debian package from the already-built release binaries
# ($CARGO_TARGET_DIR or target/, then release/goguardd and goguardctl): stages
# the same files as the RPM (packaging/rpm/goguard.spec) in a scratch tree
# with DEBIAN/control, conffiles and maintainer scripts, and builds it with
# `dpkg-deb --build --root-owner-group`.
#
#   cargo build --release --locked --bins
#   packaging/debian/build-deb.sh [OUTDIR]   # default OUTDIR: <target>/deb
#
# Prints the path of the built .deb on its last line. Needs dpkg-deb, and
# the SELinux devel Makefile (selinux-policy-dev) for the policy module.
#
# Units go to /usr/lib/systemd/system (every Debian 12+/Ubuntu 22.04+ host
# is merged-/usr, and it is the path systemd and the RPM use).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
bindir=$target/release
out=${1:-$target/deb}

for b in goguardd goguardctl; do
  if [ ! -x "$bindir/$b" ]; then
    echo "goguard: $bindir/$b is missing: run 'cargo build --release --locked --bins' first" >&2
    exit 1
  fi
done
command -v dpkg-deb >/dev/null || { echo "goguard: dpkg-deb is missing: install dpkg" >&2; exit 1; }

version=$("$bindir/goguardctl" --version | awk '{print $NF}')
arch=$(dpkg --print-architecture)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=$work/goguard_${version}-1_$arch

inst() { # MODE SRC DEST
  install -D -m "$1" "$2" "$root$3"
}
inst 0755 "$bindir/goguardd" /usr/bin/goguardd
inst 0755 "$bindir/goguardctl" /usr/bin/goguardctl
# Release builds carry line tables (Cargo.toml); ship them without.
strip --strip-debug "$root/usr/bin/goguardd" "$root/usr/bin/goguardctl"
inst 0644 "$repo/systemd/goguardd.service" /usr/lib/systemd/system/goguardd.service
inst 0644 "$repo/systemd/goguardd.socket" /usr/lib/systemd/system/goguardd.socket
inst 0644 "$repo/systemd/user/goguardd.service" /usr/lib/systemd/user/goguardd.service
inst 0644 "$repo/systemd/sysusers.d/goguard.conf" /usr/lib/sysusers.d/goguard.conf
inst 0644 "$repo/systemd/tmpfiles.d/goguard.conf" /usr/lib/tmpfiles.d/goguard.conf
inst 0644 "$repo/packaging/goguard.toml" /etc/goguard/goguard.toml

# Man page (compressed, as Debian policy wants) and completions, generated
# from the CLI definition.
mkdir -p "$work/gen"
"$bindir/goguardctl" man > "$work/gen/goguardctl.1"
gzip -9n "$work/gen/goguardctl.1"
"$bindir/goguardctl" completions bash > "$work/gen/goguardctl.bash"
"$bindir/goguardctl" completions zsh > "$work/gen/_goguardctl"
"$bindir/goguardctl" completions fish > "$work/gen/goguardctl.fish"
inst 0644 "$work/gen/goguardctl.1.gz" /usr/share/man/man1/goguardctl.1.gz
inst 0644 "$work/gen/goguardctl.bash" /usr/share/bash-completion/completions/goguardctl
inst 0644 "$work/gen/_goguardctl" /usr/share/zsh/vendor-completions/_goguardctl
inst 0644 "$work/gen/goguardctl.fish" /usr/share/fish/vendor_completions.d/goguardctl.fish

# The SELinux module, for Debian hosts that run SELinux (loaded by postinst
# only when SELinux is enabled).
"$repo/packaging/selinux/build.sh" "$work/selinux" >/dev/null
inst 0644 "$work/selinux/goguard.pp" /usr/share/selinux/packages/goguard.pp
inst 0644 "$repo/packaging/selinux/goguard.if" /usr/share/selinux/devel/include/distributed/goguard.if

inst 0644 "$repo/README.md" /usr/share/doc/goguard/README.md
cat > "$work/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: goguard

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
inst 0644 "$work/copyright" /usr/share/doc/goguard/copyright
install -d -m 0750 "$root/var/lib/goguard"

# Control files.
mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: goguard
Version: $version-1
Architecture: $arch
Maintainer: goguard developers <goguard@example.invalid>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, libselinux1 (>= 3.1), systemd | systemd-standalone-sysusers | systemd-sysusers
Recommends: auditd
Suggests: prometheus, policycoreutils, selinux-policy-default
Section: admin
Priority: optional
Homepage: https://example.invalid/goguard
Description: keeps Go build caches healthy: owners, modes, ACLs, SELinux labels
 goguardd is a systemd-managed daemon that knows every Go build and module
 cache on the host, watches them for drift in owner, mode, ACL and SELinux
 label and repairs it, follows the audit log for go-related SELinux denials,
 and serves a gRPC API over a Unix socket and Prometheus metrics over HTTP.
 goguardctl is its command-line client.
CONTROL
echo /etc/goguard/goguard.toml > "$root/DEBIAN/conffiles"

cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# goguard postinst: the admin group, directories, SELinux module, units.
set -e
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers goguard.conf
    elif ! getent group goguard >/dev/null; then
        addgroup --system goguard
    fi
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create goguard.conf || true
    fi
    if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
        semodule -i /usr/share/selinux/packages/goguard.pp || true
        # The metrics port (tcp/9464) must be goguard_port_t, or goguardd may
        # not bind it. semanage (policycoreutils-python-utils, only a
        # Recommends of selinux-basics) when it is there and works (it fails
        # with "OSError: protocol not found" on hosts without netbase's
        # /etc/protocols); else the same portcon as a one-line CIL module
        # (a .pp cannot carry one).
        port_labelled=
        if command -v semanage >/dev/null 2>&1; then
            if err=$(semanage port -a -t goguard_port_t -p tcp 9464 2>&1) \
                || semanage port -m -t goguard_port_t -p tcp 9464 >/dev/null 2>&1; then
                port_labelled=yes
            else
                echo "goguard: semanage port -a -t goguard_port_t -p tcp 9464 failed ($err); using a CIL module" >&2
            fi
        fi
        if [ -z "$port_labelled" ]; then
            cildir=$(mktemp -d)
            echo '(portcon tcp 9464 (system_u object_r goguard_port_t ((s0) (s0))))' > "$cildir/goguard_port.cil"
            semodule -i "$cildir/goguard_port.cil" || echo "goguard: could not label tcp/9464 goguard_port_t" >&2
            rm -rf "$cildir"
        fi
        restorecon -R /usr/bin/goguardd /etc/goguard /var/lib/goguard /run/goguard 2>/dev/null || true
    fi
    # Enable on first install, keep the admin's choice on upgrades
    # (what debhelper's dh_installsystemd writes).
    for unit in goguardd.socket goguardd.service; do
        if command -v deb-systemd-helper >/dev/null 2>&1; then
            deb-systemd-helper unmask "$unit" >/dev/null || true
            if deb-systemd-helper --quiet was-enabled "$unit"; then
                deb-systemd-helper enable "$unit" >/dev/null || true
            else
                deb-systemd-helper update-state "$unit" >/dev/null || true
            fi
        fi
    done
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            systemctl try-restart goguardd.service >/dev/null || true
        else
            systemctl start goguardd.socket goguardd.service >/dev/null || true
        fi
    fi
fi
exit 0
POSTINST

cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
# goguard prerm: stop the daemon before its files go away (not on upgrade:
# postinst restarts it).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop goguardd.service goguardd.socket >/dev/null || true
fi
exit 0
PRERM

cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
# goguard postrm: forget the units; on purge also the state, the SELinux
# module and the port type. The goguard group is kept (files may use it).
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        if [ "$1" = remove ]; then
            deb-systemd-helper mask goguardd.service goguardd.socket >/dev/null || true
        else
            deb-systemd-helper purge goguardd.service goguardd.socket >/dev/null || true
            deb-systemd-helper unmask goguardd.service goguardd.socket >/dev/null || true
        fi
    fi
    if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
        if command -v semanage >/dev/null 2>&1; then
            semanage port -d -t goguard_port_t -p tcp 9464 2>/dev/null || true
        fi
        # The CIL port module postinst loads when semanage is missing.
        semodule -r goguard_port 2>/dev/null || true
        semodule -r goguard 2>/dev/null || true
    fi
fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/goguard
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/goguard_${version}-1_$arch.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Installs the system packages goguard needs, on Debian/Ubuntu (apt) or
# RHEL/CentOS/Fedora (dnf). Sourced by packaging/install-from-source.sh and
# tests/run-all.sh; safe to run again (already-installed packages are kept).
#
#   build: a C toolchain for the bundled SQLite and the libselinux/libacl
#          bindings, libselinux and libacl headers, libclang for bindgen, and
#          the static libsepol (goguard-diagnose links libsepol.a, as
#          audit2why does: the shared library hides sepol_set_policydb).
#   test:  the real peers the tests use as oracles: promtool (prometheus),
#          ausearch (auditd), setfiles/restorecon (policycoreutils),
#          setfacl/getfacl (acl), getfattr (attr), checkmodule (checkpolicy),
#          audit2allow, the Go toolchain, curl, systemd-analyze; for the
#          packaging tests rpmbuild and rpm2archive (rpm), the SELinux devel
#          Makefile (selinux-policy-dev), python3-venv for the Ansible venv
#          (goguard_install_test_venv below), strip (binutils); for
#          tests/selinux-rhel/build.sh (RHEL's targeted policy from Fedora's
#          source) make, m4, python3, xz and checkpolicy, sesearch and seinfo
#          (setools) to read the binary policy, and matchpathcon
#          (selinux-utils) to read its file_contexts.
set -euo pipefail

goguard_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "goguard: need root to install packages (run as root or install sudo)" >&2; return 1
  fi
}

goguard_install_packages() { # $1 = build | test
  local want=$1
  if command -v apt-get >/dev/null; then
    local pkgs=(gcc libc6-dev make pkg-config libselinux1-dev libacl1-dev libclang-dev libsepol-dev)
    if [ "$want" = test ]; then
      pkgs+=(prometheus auditd policycoreutils selinux-utils policycoreutils-python-utils
             python3-sepolgen python3-selinux checkpolicy acl attr golang-go curl systemd util-linux passwd
             rpm selinux-policy-dev semodule-utils python3-venv binutils m4 python3 xz-utils setools)
    fi
    local missing=()
    for p in "${pkgs[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "goguard: installing ${missing[*]}" >&2
      goguard_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      goguard_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    fi
  elif command -v dnf >/dev/null; then
    local pkgs=(gcc make pkgconf-pkg-config libselinux-devel libacl-devel clang-devel libsepol-static)
    if [ "$want" = test ]; then
      pkgs+=(golang-github-prometheus audit policycoreutils policycoreutils-python-utils
             checkpolicy acl attr golang curl systemd util-linux shadow-utils
             rpm-build selinux-policy-devel python3 binutils m4 xz libselinux-utils setools-console)
    fi
    goguard_as_root dnf install -y -q "${pkgs[@]}"
  else
    echo "goguard: no apt-get or dnf here; install the packages listed in packaging/deps.sh by hand" >&2
    return 1
  fi
}

# The Python tools the packaging tests use, from PyPI, in a venv of their own
# (Debian's pip is externally managed): ansible-core (ansible-playbook, and
# jinja2 + PyYAML for rendering the role's template) and ansible-lint.
# $1 = the venv's directory (tests/packaging.rs looks in /opt/goguard-test/venv).
goguard_install_test_venv() {
  local venv=${1:-/opt/goguard-test/venv}
  local python=python3
  [ -x /usr/bin/python3 ] && python=/usr/bin/python3
  [ -x "$venv/bin/pip" ] || goguard_as_root "$python" -m venv "$venv"
  goguard_as_root "$venv/bin/pip" install -q --disable-pip-version-check \
    ansible-core==2.18.12 ansible-lint==25.9.2 ansible-compat==26.10.0 jinja2==3.1.6
}

# Debian's reference policy modules (base.pp and the rest), unpacked into $1
# without installing the package (installing it would give this host a
# policy, and change what the other tests see): the packaging tests link the
# goguard module against them with semodule_link/semodule_expand.
goguard_fetch_reference_policy() {
  local dir=${1:-/opt/goguard-test/selinux-policy-default}
  [ -f "$dir/base.pp" ] && return 0
  command -v apt-get >/dev/null || { echo "goguard: no apt-get: cannot fetch Debian's reference policy" >&2; return 1; }
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root selinux-policy-default >/dev/null)
  dpkg-deb -x "$tmp"/selinux-policy-default_*.deb "$tmp/root"
  goguard_as_root mkdir -p "$dir"
  local f
  for f in "$tmp"/root/usr/share/selinux/default/*.pp.bz2; do
    bunzip2 -c "$f" | goguard_as_root tee "$dir/$(basename "$f" .bz2)" >/dev/null
  done
  rm -rf "$tmp"
}

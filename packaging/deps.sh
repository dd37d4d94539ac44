#!/usr/bin/env bash
# Installs the system packages goguard needs, on Debian/Ubuntu (apt) or
# RHEL/CentOS/Fedora (dnf). Sourced by packaging/install-from-source.sh and
# tests/run-all.sh; safe to run again (already-installed packages are kept).
#
#   build: a C toolchain for the bundled SQLite and the libselinux/libacl
#          bindings, libselinux and libacl headers, libclang for bindgen.
#   test:  the real peers the tests use as oracles: promtool (prometheus),
#          ausearch (auditd), setfiles/restorecon (policycoreutils),
#          setfacl/getfacl (acl), getfattr (attr), checkmodule (checkpolicy),
#          audit2allow, the Go toolchain, curl, systemd-analyze.
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
    local pkgs=(gcc libc6-dev make pkg-config libselinux1-dev libacl1-dev libclang-dev)
    if [ "$want" = test ]; then
      pkgs+=(prometheus auditd policycoreutils selinux-utils policycoreutils-python-utils
             python3-sepolgen checkpolicy acl attr golang-go curl systemd util-linux passwd)
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
    local pkgs=(gcc make pkgconf-pkg-config libselinux-devel libacl-devel clang-devel)
    if [ "$want" = test ]; then
      pkgs+=(golang-github-prometheus audit policycoreutils policycoreutils-python-utils
             checkpolicy acl attr golang curl systemd util-linux shadow-utils)
    fi
    goguard_as_root dnf install -y -q "${pkgs[@]}"
  else
    echo "goguard: no apt-get or dnf here; install the packages listed in packaging/deps.sh by hand" >&2
    return 1
  fi
}

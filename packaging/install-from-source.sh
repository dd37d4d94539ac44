#!/usr/bin/env bash
# Builds goguard from this checkout, installs it under /usr/local, and starts
# goguardd: through systemd when systemd runs this machine, otherwise as a
# background process (containers, CI). Afterwards `goguardctl status` answers.
#
#   sudo packaging/install-from-source.sh            # build, install, start
#   sudo packaging/install-from-source.sh --no-start # build and install only
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/deps.sh

start=yes
[ "${1:-}" = "--no-start" ] && start=no
prefix=/usr/local

goguard_install_packages build
cargo build --release --locked --bins

as=goguard_as_root
$as install -D -m 0755 target/release/goguardd "$prefix/bin/goguardd"
$as install -D -m 0755 target/release/goguardctl "$prefix/bin/goguardctl"

# Man page and completions, generated from the CLI definition.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
target/release/goguardctl man > "$tmp/goguardctl.1"
target/release/goguardctl completions bash > "$tmp/goguardctl.bash"
target/release/goguardctl completions zsh > "$tmp/_goguardctl"
target/release/goguardctl completions fish > "$tmp/goguardctl.fish"
$as install -D -m 0644 "$tmp/goguardctl.1" "$prefix/share/man/man1/goguardctl.1"
$as install -D -m 0644 "$tmp/goguardctl.bash" "$prefix/share/bash-completion/completions/goguardctl"
$as install -D -m 0644 "$tmp/_goguardctl" "$prefix/share/zsh/site-functions/_goguardctl"
$as install -D -m 0644 "$tmp/goguardctl.fish" "$prefix/share/fish/vendor_completions.d/goguardctl.fish"

# systemd units (pointing at /usr/local/bin), the admin group, directories.
for unit in goguardd.service goguardd.socket; do
  sed "s#/usr/bin/goguardd#$prefix/bin/goguardd#g" "systemd/$unit" > "$tmp/$unit"
  $as install -D -m 0644 "$tmp/$unit" "/etc/systemd/system/$unit"
done
sed "s#/usr/bin/goguardd#$prefix/bin/goguardd#g" systemd/user/goguardd.service > "$tmp/user.service"
$as install -D -m 0644 "$tmp/user.service" /etc/systemd/user/goguardd.service
$as install -D -m 0644 systemd/sysusers.d/goguard.conf /etc/sysusers.d/goguard.conf
$as install -D -m 0644 systemd/tmpfiles.d/goguard.conf /etc/tmpfiles.d/goguard.conf
if [ ! -e /etc/goguard/goguard.toml ]; then
  $as install -D -m 0644 packaging/goguard.toml /etc/goguard/goguard.toml
fi
$as "$prefix/bin/goguardd" --check-config --config /etc/goguard/goguard.toml
if command -v systemd-sysusers >/dev/null; then
  $as systemd-sysusers /etc/sysusers.d/goguard.conf
elif ! getent group goguard >/dev/null; then
  $as groupadd --system goguard
fi

[ "$start" = yes ] || { echo "goguard installed; start it with: systemctl enable --now goguardd.socket goguardd.service"; exit 0; }

if [ -d /run/systemd/system ]; then
  $as systemctl daemon-reload
  $as systemd-tmpfiles --create /etc/tmpfiles.d/goguard.conf
  $as systemctl enable --now goguardd.socket goguardd.service
else
  # No systemd (a container or CI): run goguardd directly, logging to a file.
  if ! "$prefix/bin/goguardctl" --socket /run/goguard/goguard.sock status >/dev/null 2>&1; then
    $as mkdir -p /var/log/goguard
    $as sh -c "nohup $prefix/bin/goguardd >>/var/log/goguard/goguardd.log 2>&1 &"
    echo "systemd is not running here: started goguardd in the background (log: /var/log/goguard/goguardd.log)"
  fi
fi
for _ in $(seq 1 100); do
  "$prefix/bin/goguardctl" --socket /run/goguard/goguard.sock status >/dev/null 2>&1 && break
  sleep 0.1
done
"$prefix/bin/goguardctl" --socket /run/goguard/goguard.sock status

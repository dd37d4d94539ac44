#!/usr/bin/env bash
# The enforcing-SELinux tier: goguard installed from its Debian package into a
# Debian 12 guest that boots under QEMU with enforcing=1, scenarios run inside
# it, one verdict each. Run as root (tests/run-all.sh does):
#
#   tests/selinux-vm/run.sh
#
# 1. Installs the host tools it needs (qemu-system-x86, debootstrap, ...).
# 2. Builds the guest's root filesystem once with debootstrap and caches it in
#    $GOGUARD_VM_CACHE (default /var/cache/goguard-selinux-vm)/<hash>/root,
#    keyed by a hash of the package list and this recipe; a fresh machine
#    builds it from scratch.
# 3. Builds goguard's .deb with packaging/debian/build-deb.sh from the release
#    binaries (cargo build --release --locked --bins if they are missing).
# 4. Per run: copies the cached root, puts in the .deb, tests/selinux-vm/guest/
#    (the in-guest test script and its files) and a oneshot unit that runs it,
#    labels the copy with setfiles from the guest's own file_contexts, makes an
#    ext4 image with mkfs.ext4 -d (labels included) and boots it under QEMU
#    (TCG; KVM hangs on these machines) with enforcing=1, bounded by
#    $GOGUARD_VM_TIMEOUT seconds (default 1500).
# 5. Reads the verdicts back from the image (debugfs), prints `PASS name` or
#    `FAIL name: reason` per scenario and `N passed, M failed`, and exits
#    non-zero if anything failed or nothing ran. When QEMU or debootstrap
#    cannot run, the tier fails; it never skips.
#
# The guest's serial console (progress lines, denials, logs) is kept in the
# run directory, $GOGUARD_VM_WORK (default /var/tmp/goguard-selinux-vm-run),
# replaced at the next run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_base=${GOGUARD_VM_CACHE:-/var/cache/goguard-selinux-vm}
work=${GOGUARD_VM_WORK:-/var/tmp/goguard-selinux-vm-run}
timeout_s=${GOGUARD_VM_TIMEOUT:-1500}
target=${CARGO_TARGET_DIR:-$repo/target}

t_start=$(date +%s)
say() { printf 'selinux-vm [%4ss]: %s\n' "$(( $(date +%s) - t_start ))" "$*" >&2; }
die() { say "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, setfiles and mkfs.ext4 -d need it)"

# --- host tools ---------------------------------------------------------------
host_pkgs=(qemu-system-x86 debootstrap e2fsprogs policycoreutils dpkg binutils
           selinux-policy-dev rsync)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
  # Without --no-install-recommends apt finds a version conflict for QEMU here.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
for t in qemu-system-x86_64 debootstrap setfiles mkfs.ext4 debugfs dpkg-deb; do
  command -v "$t" >/dev/null || die "$t is missing after installing ${host_pkgs[*]}"
done

# --- the guest's root filesystem, cached ----------------------------------------
# The mirror apt already uses on this machine.
mirror=${GOGUARD_VM_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*: set GOGUARD_VM_MIRROR"
suite=bookworm
# Everything the guest needs: the kernel, systemd, the reference policy
# (selinux-policy-default) and its tools, auditd, the oracles the scenarios
# compare goguard with (restorecon/matchpathcon, audit2why/audit2allow from
# policycoreutils-python-utils, which also brings semanage), the devel
# Makefile for the scenarios' small test modules, and Go for real caches.
guest_pkgs=linux-image-amd64,systemd-sysv,udev,kmod,ifupdown,iproute2,procps,selinux-basics,selinux-policy-default,selinux-policy-dev,selinux-utils,policycoreutils,policycoreutils-python-utils,semodule-utils,checkpolicy,make,auditd,acl,attr,golang-go,python3
# The recipe's version: bump it when the customisation below changes.
recipe=3
key=$(printf '%s\n' "$suite" "$guest_pkgs" "recipe=$recipe" | sha256sum | cut -c1-16)
cache=$cache_base/$key
mkdir -p "$cache_base"
exec 9>"$cache_base/.lock"
flock 9

if [ ! -f "$cache/complete" ]; then
  say "building the guest root ($suite from $mirror) into $cache: about 7 minutes"
  t0=$(date +%s)
  rm -rf "$cache"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$guest_pkgs" "$suite" "$cache/root.tmp" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
  r=$cache/root.tmp
  sed -i 's/^SELINUX=.*/SELINUX=enforcing/' "$r/etc/selinux/config"
  grep -q '^SELINUX=enforcing' "$r/etc/selinux/config" || die "guest has no /etc/selinux/config"
  printf '/dev/vda / ext4 defaults 0 1\n' >"$r/etc/fstab"
  echo goguard-vm >"$r/etc/hostname"
  # A quicker, quieter boot: no timers that start apt or fstrim mid-test, no
  # getty on the serial console (the test unit owns it), no network waits.
  for u in apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer e2scrub_reap.service \
           man-db.timer serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service; do
    chroot "$r" systemctl mask "$u" >/dev/null 2>&1 || true
  done
  chroot "$r" systemctl enable auditd.service >/dev/null 2>&1 || true
  # dpkg -i inside the guest must not stop for questions.
  rm -rf "$r/var/cache/apt/archives/"*.deb
  ls "$r"/boot/vmlinuz-* "$r"/boot/initrd.img-* >/dev/null 2>&1 || die "no kernel or initrd in the guest root"
  mv "$r" "$cache/root"
  echo "$guest_pkgs" >"$cache/packages"
  date -u +%FT%TZ >"$cache/complete"
  say "guest root built in $(( $(date +%s) - t0 )) s"
fi
root_cache=$cache/root

# --- goguard's Debian package ----------------------------------------------------
if [ ! -x "$target/release/goguardd" ] || [ ! -x "$target/release/goguardctl" ]; then
  say "release binaries missing: cargo build --release --locked --bins"
  (cd "$repo" && cargo build --release --locked --bins) || die "cargo build failed"
fi
rm -rf "$work"
mkdir -p "$work"
deb=$(CARGO_TARGET_DIR=$target "$repo/packaging/debian/build-deb.sh" "$work/deb" | tail -n1) \
  || die "packaging/debian/build-deb.sh failed"
[ -f "$deb" ] || die "build-deb.sh printed no .deb"

# --- this run's image -------------------------------------------------------------
say "copying the guest root"
r=$work/root
cp -a "$root_cache" "$r"
mkdir -p "$r/opt/goguard-vm"
cp "$deb" "$r/opt/goguard-vm/goguard.deb"
cp -a "$here/guest/." "$r/opt/goguard-vm/"
# The unit as the repository has it, to compare with what dpkg installed.
mkdir -p "$r/opt/goguard-vm/units"
cp "$repo/systemd/goguardd.service" "$r/opt/goguard-vm/units/"
chmod 0755 "$r/opt/goguard-vm/test.sh"
# The oneshot unit that runs the scenarios and powers the guest off. Its script
# is an init script by label (initrc_exec_t via /etc/init.d), so systemd runs
# it in initrc_t, the unconfined domain the reference policy gives boot
# scripts: what an admin's root shell would be.
install -m 0755 "$here/guest/test.sh" "$r/etc/init.d/goguard-vm-test"
cat >"$r/etc/systemd/system/goguard-vm-test.service" <<'UNIT'
[Unit]
Description=goguard enforcing-SELinux tier
After=multi-user.target auditd.service
Wants=auditd.service

[Service]
Type=oneshot
ExecStart=/etc/init.d/goguard-vm-test
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity
ExecStopPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/goguard-vm-test.service "$r/etc/systemd/system/multi-user.target.wants/goguard-vm-test.service"
rm -f "$r/etc/init.d/goguard-vm-test.dpkg"*
say "labelling with the guest policy's file_contexts"
fc=$r/etc/selinux/default/contexts/files/file_contexts
[ -f "$fc" ] || die "guest root has no $fc"
setfiles -r "$r" "$fc" "$r" >"$work/setfiles.log" 2>&1 || { tail "$work/setfiles.log" >&2; die "setfiles failed"; }
say "making the ext4 image"
mkfs.ext4 -q -F -d "$r" -L vmroot "$work/disk.img" 4G || die "mkfs.ext4 -d failed"
kernel=$(ls "$r"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$r"/boot/initrd.img-* | sort -V | tail -n1)
cp "$kernel" "$work/vmlinuz"; cp "$initrd" "$work/initrd.img"
# The copy is in the image now: remove it while the guest runs.
rm -rf "$r" &
rm_pid=$!

# --- boot -------------------------------------------------------------------------
say "booting the guest (enforcing, TCG, at most ${timeout_s} s); console: $work/console.log"
t_boot=$(date +%s)
set +e
timeout --kill-after=20 "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m 2048 -smp 2 -nographic -no-reboot \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 selinux=1 security=selinux enforcing=1 quiet panic=-1" \
  -drive file="$work/disk.img",format=raw,if=virtio -net none \
  </dev/null >"$work/console.log" 2>&1
qrc=$?
set -e
say "guest ran $(( $(date +%s) - t_boot )) s (qemu exit $qrc)"
grep -a '^GGVM' "$work/console.log" | sed 's/\r$//' | grep -av '^GGVM: \(PASS\|FAIL\)' >&2 || true
case $qrc in
  0) ;;
  124|137) say "the guest did not power off within ${timeout_s} s: killed" ;;
  *) tail -n 20 "$work/console.log" >&2; die "qemu-system-x86_64 failed (exit $qrc)" ;;
esac

wait "$rm_pid" || true

# --- verdicts ---------------------------------------------------------------------
debugfs -R "cat /var/lib/goguard-vm/results" "$work/disk.img" >"$work/results" 2>"$work/debugfs.err" || true
debugfs -R "cat /var/lib/goguard-vm/guest.log" "$work/disk.img" >"$work/guest.log" 2>/dev/null || true
passed=0; failed=0
while IFS= read -r line; do
  case $line in
    "PASS "*) passed=$((passed + 1)); echo "$line" ;;
    "FAIL "*) failed=$((failed + 1)); echo "$line" ;;
  esac
done <"$work/results"
if ! grep -qx 'DONE' "$work/results"; then
  echo "FAIL guest: the test script did not finish (qemu exit $qrc; see $work/console.log and $work/guest.log)"
  failed=$((failed + 1))
fi
say "tier took $(( $(date +%s) - t_start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

#!/usr/bin/env bash
# Builds RHEL's targeted policy from source with goguard's module in it, for
# tests/packaging.rs (the RHEL type names: cache_home_t, not refpolicy's
# xdg_cache_t). Test fixture only: nothing here is installed or shipped.
#
#   tests/selinux-rhel/build.sh [CACHE_ROOT]   # default /var/tmp/goguard-rhel-policy
#
# Unpacks Fedora's policy source (shared/vendor, RHEL's targeted policy
# derives from it) with container-selinux's container module and goguard's
# packaging/selinux/goguard.{te,if,fc} added to policy/modules/contrib, plus
# out-of-tree-stubs.{te,if} (stub interfaces for modules shipped outside the
# tree). modules.conf is dist/targeted's plus those three. Then, with the
# tree's own Makefile (m4 + checkpolicy), monolithic MCS:
#   policy.conf        the whole policy, goguard's module expanded in it
#   file_contexts      the system file contexts
#   homedir_template   the HOME_DIR/HOME_ROOT/USER templates
#   file_contexts.homedirs  the templates expanded as libsemanage's
#                      genhomedircon does for users without their own entry:
#                      HOME_ROOT=/home, HOME_DIR=/home/[^/]+, USER=[^/]+
#   policy.33          the binary policy checkpolicy compiled (see below)
#   checkpolicy-neverallow.log  the same compile with neverallow checks
# in CACHE_ROOT/<hash of the inputs>/ (prints that directory on its last
# line). A directory already complete is reused: a re-run costs the hashing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# A copy of shared/vendor's two tarballs is kept in the repo (800 KB; provenance and
# licences in vendor/README.md), so a clean clone builds it anywhere.
vendor=${GOGUARD_VENDOR_DIR:-$repo/tests/selinux-rhel/vendor}
fedora=$vendor/fedora-selinux-policy-fd1d99621.tar.xz
container=$vendor/container-selinux-66ae652fd.tar.xz
for f in "$fedora" "$container"; do
  [ -f "$f" ] || { echo "goguard: $f is missing (tests/selinux-rhel/vendor; or set GOGUARD_VENDOR_DIR)" >&2; exit 1; }
done
for tool in m4 make python3 checkpolicy sha256sum; do
  command -v "$tool" >/dev/null || { echo "goguard: $tool is not installed (packaging/deps.sh installs it)" >&2; exit 1; }
done
sel=$repo/packaging/selinux
key=$(cat "$fedora" "$container" "$sel/goguard.te" "$sel/goguard.if" "$sel/goguard.fc" \
  "$here/out-of-tree-stubs.te" "$here/out-of-tree-stubs.if" "$here/filetrans-repeats.py" "$0" | sha256sum | cut -c1-16)
root=${1:-${GOGUARD_RHEL_POLICY_CACHE:-/var/tmp/goguard-rhel-policy}}
out=$root/$key
if [ -f "$out/complete" ]; then echo "$out"; exit 0; fi

# goguard's module must not lean on a stub: a call to one would build here
# and fail on a real RHEL host.
for name in $(sed -n "s/^interface(\`\([a-z0-9_]*\)'.*/\1/p" "$here/out-of-tree-stubs.if"); do
  if grep -qw "$name" "$sel/goguard.te" "$sel/goguard.if"; then
    echo "goguard: goguard's module calls $name, which is only a stub here" >&2; exit 1
  fi
done

start=$(date +%s)
mkdir -p "$root"
work=$(mktemp -d "$root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xJf "$fedora" -C "$work"
tar -xJf "$container" -C "$work" container.te container.if container.fc
contrib=$work/policy/modules/contrib
mv "$work"/container.{te,if,fc} "$contrib/"
cp "$sel"/goguard.{te,if,fc} "$contrib/"
cp "$here/out-of-tree-stubs.te" "$here/out-of-tree-stubs.if" "$contrib/"
: >"$contrib/out-of-tree-stubs.fc"
mv "$contrib/out-of-tree-stubs.te" "$contrib/out_of_tree_stubs.te"
mv "$contrib/out-of-tree-stubs.if" "$contrib/out_of_tree_stubs.if"
mv "$contrib/out-of-tree-stubs.fc" "$contrib/out_of_tree_stubs.fc"
cp "$work/dist/targeted/modules.conf" "$work/policy/modules.conf"
printf 'container = module\ngoguard = module\nout_of_tree_stubs = module\n' >>"$work/policy/modules.conf"

# A few .fc files lack a final newline (hostapd.fc): the monolithic build
# concatenates them with m4, which would glue that last line to the next
# module's first. Fedora's modular build keeps each module's apart.
for f in "$work"/policy/modules/*/*.fc; do
  if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo >>"$f"; fi
done

mk=(make -C "$work" NAME=targeted TYPE=mcs DISTRO=redhat UBAC=n DIRECT_INITRC=n MONOLITHIC=y
    MLS_CATS=1024 MCS_CATS=1024 UNK_PERMS=allow)
"${mk[@]}" policy.conf file_contexts >"$work/make.log" 2>&1 || {
  tail -n 30 "$work/make.log" >&2; echo "goguard: building policy.conf failed" >&2; exit 1; }

# Every interface call expanded: a name left as `name(` is one the tree
# does not define (a missing stub, or a typo in goguard's module).
left=$(grep -oE '^[[:space:]]*[a-zA-Z_][a-zA-Z0-9_]*\(' "$work/policy.conf" | tr -d ' \t(' | grep -vx 'if' | sort -u || true)
if [ -n "$left" ]; then
  echo "goguard: interfaces left unexpanded in policy.conf:" $left >&2; exit 1
fi

sed -e 's|HOME_ROOT|/home|g' -e 's|HOME_DIR|/home/[^/]+|g' -e 's|%{USERNAME}|[^/]+|g' \
  -e 's|%{USERID}|[0-9]+|g' -e 's|USER|[^/]+|g' "$work/homedir_template" >"$work/file_contexts.homedirs"

# checkpolicy: Debian 12's (3.4) rejects repeats newer ones accept, so it
# compiles policy.compat.conf, policy.conf without them
# (filetrans-repeats.py, its report in filetrans-repeats.txt). First with
# the neverallow assertions (the log is kept: container-selinux is newer
# than this policy and breaks some; the tests check goguard_t breaks none),
# then without them, as RHEL installs policy (semanage.conf's
# expand-check=0): that binary policy is policy.33.
python3 "$here/filetrans-repeats.py" "$work/policy.conf" "$work/policy.compat.conf" \
  "$work/filetrans-repeats.txt" >/dev/null
checkpolicy -M -U allow "$work/policy.compat.conf" -o "$work/policy.neverallow.33" \
  >"$work/checkpolicy-neverallow.log" 2>&1 || true
sed -E 's/^([[:space:]]*)neverallow .*;[[:space:]]*$/\1dontaudit out_of_tree_stub_t self:process signull; # neverallow left out/' \
  "$work/policy.compat.conf" >"$work/policy.noassert.conf"
if ! checkpolicy -M -U allow "$work/policy.noassert.conf" -o "$work/policy.33" >"$work/checkpolicy.log" 2>&1; then
  tail -n 20 "$work/checkpolicy.log" >&2; echo "goguard: checkpolicy failed" >&2; exit 1
fi

# Staged in the scratch directory and moved into place whole: a directory
# under CACHE_ROOT is always complete, and two builds racing (tests run in
# parallel) both end with the same one.
mkdir "$work/out"
for f in policy.conf policy.compat.conf file_contexts homedir_template file_contexts.homedirs \
    filetrans-repeats.txt checkpolicy-neverallow.log checkpolicy.log make.log policy.33; do
  if [ -f "$work/$f" ]; then cp "$work/$f" "$work/out/"; fi
done
echo "$(( $(date +%s) - start ))" >"$work/out/build-seconds"
touch "$work/out/complete"
if ! mv -T "$work/out" "$out" 2>/dev/null && [ ! -f "$out/complete" ]; then
  echo "goguard: cannot move the build to $out" >&2; exit 1
fi
echo "$out"

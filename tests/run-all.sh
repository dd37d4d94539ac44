#!/usr/bin/env bash
# goguard's whole test suite, from a fresh machine that has only the Rust
# toolchain: installs the system packages (see packaging/deps.sh), then runs
# formatting and lint checks, every unit and integration test, the parser
# conformance suite, a bounded fuzz run and the enforcing-SELinux tier in a
# QEMU guest (tests/selinux-vm/run.sh). Run as root (CI does): the tests
# use real xattrs, ACLs, chown, and clients run as other users.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/deps.sh

goguard_install_packages test
goguard_install_test_venv /opt/goguard-test/venv
goguard_fetch_reference_policy /opt/goguard-test/selinux-policy-default

step() { printf '\n==> %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo build --release (the packaging tests package these binaries)"
cargo build --release --locked --bins
step "cargo test (unit, integration, conformance)"
cargo test --workspace --locked
if [ -x crates/audit/fuzz/run.sh ]; then
  step "fuzzing the audit parser for ${FUZZ_SECONDS:=60}s per target"
  FUZZ_SECONDS=$FUZZ_SECONDS crates/audit/fuzz/run.sh
fi
# A real enforcing kernel: goguard's .deb in a Debian guest under QEMU
# (tests/selinux-vm/run.sh; fails, never skips, when QEMU cannot run).
step "enforcing SELinux tier (QEMU guest)"
tests/selinux-vm/run.sh
step "all tests passed"

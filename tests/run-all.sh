#!/usr/bin/env bash
# goguard's whole test suite, from a fresh machine that has only the Rust
# toolchain: installs the system packages (see packaging/deps.sh), then runs
# formatting and lint checks, every unit and integration test, the parser
# conformance suite, a bounded fuzz run and the enforcing-SELinux tier
# (tests/selinux-vm: about 10 minutes, 7 more to build its guest the first
# time). Run as root (CI does): the tests use real xattrs, ACLs, chown, and
# clients run as other users.
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
step "cargo test (unit, integration, conformance; a test that cannot run fails)"
export GOGUARD_TESTS_STRICT=1
cargo test --workspace --locked
if [ -x crates/audit/fuzz/run.sh ]; then
  step "fuzzing the audit parser for ${FUZZ_SECONDS:=60}s per target"
  FUZZ_SECONDS=$FUZZ_SECONDS crates/audit/fuzz/run.sh
fi
step "the enforcing-SELinux tier: goguard's .deb in a Debian guest under QEMU, enforcing=1"
tests/selinux-vm/run.sh
step "all tests passed"

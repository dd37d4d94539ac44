#!/usr/bin/env bash
# goguard's whole test suite, from a fresh machine that has only the Rust
# toolchain: installs the system packages (see packaging/deps.sh), then runs
# formatting and lint checks, every unit and integration test, the parser
# conformance suite and a bounded fuzz run. Run as root (CI does): the tests
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
step "cargo test (unit, integration, conformance; a test that cannot run fails)"
export GOGUARD_TESTS_STRICT=1
cargo test --workspace --locked
if [ -x crates/audit/fuzz/run.sh ]; then
  step "fuzzing the audit parser for ${FUZZ_SECONDS:=60}s per target"
  FUZZ_SECONDS=$FUZZ_SECONDS crates/audit/fuzz/run.sh
fi
# The enforcing-SELinux tier (tests/selinux-vm/run.sh, a Debian guest under
# QEMU) is not run here yet: its label-heal scenario misses its 2 s deadline
# under TCG on a loaded 2-core machine (issue 14's note); run it by hand.
step "all tests passed"

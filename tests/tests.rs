//! goguard's integration tests: one binary that starts the real `goguardd`
//! and drives it with the real `goguardctl` (found through
//! `CARGO_BIN_EXE_*`), on temp sockets and temp state directories.

mod users;
mod util;

mod audit;
mod bundle;
mod cache;
mod clean;
mod crash;
mod daemon;
mod doctor;
mod flood;
mod hostile;
mod hygiene;
mod journal;
mod output;
mod packaging;
mod policy;
mod robustness;
mod security;
mod stop;
mod systemd_units;
mod trim_stress;

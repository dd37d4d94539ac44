//! The goguard.v1 API: message types and tonic client/server stubs generated
//! from `proto/goguard/v1/goguard.proto` at build time.
//!
//! This crate holds no logic; the daemon implements the service and the CLI
//! calls it.

/// Types and service stubs of package `goguard.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("goguard.v1");
}

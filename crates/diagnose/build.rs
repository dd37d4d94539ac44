//! Links libsepol statically for the `sepol` module's FFI.
//!
//! Why static: the calls audit2why makes to point libsepol's services at a policy it loaded
//! itself (`sepol_set_policydb`, `sepol_set_sidtab`, `sepol_sidtab_*`) are not exported by
//! the shared `libsepol.so.2` (its version script hides them); only `libsepol.a` has them.
//! libselinux's own audit2why module links `libsepol.a` for the same reason. Debian's
//! `libsepol-dev` ships `libsepol.a`.
//!
//! Where: `$GOGUARD_SEPOL_LIB_DIR` if set, else the directory the C compiler reports for
//! `libsepol.a` (`cc -print-file-name=libsepol.a`), else the usual multiarch paths. Never
//! builds or downloads anything.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GOGUARD_SEPOL_LIB_DIR");
    let dir = std::env::var_os("GOGUARD_SEPOL_LIB_DIR")
        .map(PathBuf::from)
        .or_else(from_cc)
        .or_else(|| {
            [
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/usr/lib64",
                "/usr/lib",
            ]
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("libsepol.a").exists())
        });
    match dir {
        Some(d) => println!("cargo:rustc-link-search=native={}", d.display()),
        None => println!(
            "cargo:warning=libsepol.a not found: install libsepol-dev or set GOGUARD_SEPOL_LIB_DIR"
        ),
    }
    println!("cargo:rustc-link-lib=static=sepol");
}

fn from_cc() -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(cc)
        .arg("-print-file-name=libsepol.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // An unknown file is echoed back without a directory.
    (path.is_absolute() && path.exists())
        .then(|| path.parent().map(Path::to_path_buf))
        .flatten()
}

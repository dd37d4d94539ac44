//! Bundle export and import on hand-made module caches (no Go needed): a round trip through a
//! tar, an import that finds everything present, and a cache holding a different `.mod`
//! (refused as a conflict, nothing changed). The end-to-end tests with real go and real users
//! are in the workspace's tests/bundle.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use goguard_fs::RootDir;
use goguard_hygiene::bundle::export;
use goguard_hygiene::bundle::import::{self, ImportError, TrustedSums};
use goguard_hygiene::bundle::source::BundleSource;
use goguard_hygiene::dirhash;
use goguard_hygiene::gosum::SumKind;

/// A module cache with `example.com/m` and `example.com/Big/n` v1.0.0; returns their sums.
fn modcache(dir: &Path) -> BTreeMap<(String, String, SumKind), String> {
    let mut sums = BTreeMap::new();
    for (path, esc) in [
        ("example.com/m", "example.com/m"),
        ("example.com/Big/n", "example.com/!big/n"),
    ] {
        let at_v = dir.join("cache/download").join(esc).join("@v");
        std::fs::create_dir_all(&at_v).unwrap();
        let gomod = format!("module {path}\n");
        std::fs::write(at_v.join("v1.0.0.mod"), &gomod).unwrap();
        std::fs::write(at_v.join("v1.0.0.info"), r#"{"Version":"v1.0.0"}"#).unwrap();
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, body) in [("go.mod", gomod.as_str()), ("m.go", "package m\n")] {
            z.start_file(format!("{path}@v1.0.0/{name}"), opts).unwrap();
            z.write_all(body.as_bytes()).unwrap();
        }
        let zip = z.finish().unwrap().into_inner();
        let h1 = dirhash::hash_zip(std::io::Cursor::new(&zip)).unwrap();
        std::fs::write(at_v.join("v1.0.0.zip"), &zip).unwrap();
        std::fs::write(at_v.join("v1.0.0.ziphash"), &h1).unwrap();
        let key = |k| (path.to_owned(), "v1.0.0".to_owned(), k);
        sums.insert(key(SumKind::Zip), h1);
        sums.insert(key(SumKind::GoMod), dirhash::hash_go_mod(gomod.as_bytes()));
    }
    sums
}

fn listing(dir: &Path) -> BTreeSet<(String, Vec<u8>)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
                out.insert((rel, Vec::new()));
            } else {
                out.insert((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn a_round_trip_places_every_file_and_a_different_copy_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let sums = modcache(&src);
    let versions: BTreeSet<(String, String)> = sums
        .keys()
        .map(|(m, v, _)| (m.clone(), v.clone()))
        .collect();
    let out = tmp.path().join("b.tar");
    let report = export::export(
        &RootDir::open(&src).unwrap(),
        &versions,
        &sums,
        "go1.19.8",
        &out,
    )
    .unwrap();
    assert_eq!((report.versions, report.zips), (2, 2));

    let bundle = BundleSource::open(&out).unwrap();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let root = RootDir::open(&dst).unwrap();
    let plan = import::plan(&bundle, &TrustedSums::default(), Some(&root), 2).unwrap();
    assert_eq!(plan.files_to_place(), 8);
    let placed = import::place(&bundle, &root, &plan, 4).unwrap();
    assert_eq!((placed.versions_complete, placed.files_placed), (2, 8));
    // Every file as in the source cache (plus Go's lock files).
    let want = listing(&src.join("cache"));
    let have: BTreeSet<_> = listing(&dst.join("cache"))
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".lock"))
        .collect();
    assert_eq!(have, want);
    // Again: everything is present.
    let again = import::plan(&bundle, &TrustedSums::default(), Some(&root), 1).unwrap();
    assert_eq!((again.files_to_place(), again.files_present()), (0, 8));

    // A cache holding another go.mod for m: refused, nothing changed.
    let other = tmp.path().join("other");
    let at_v = other.join("cache/download/example.com/m/@v");
    std::fs::create_dir_all(&at_v).unwrap();
    std::fs::write(
        at_v.join("v1.0.0.mod"),
        "module example.com/m // not the same\n",
    )
    .unwrap();
    let before = listing(&other);
    let root = RootDir::open(&other).unwrap();
    match import::plan(&bundle, &TrustedSums::default(), Some(&root), 1) {
        Err(ImportError::Conflict { module, path, .. }) => {
            assert_eq!(module, "example.com/m@v1.0.0");
            assert_eq!(path, "cache/download/example.com/m/@v/v1.0.0.mod");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(listing(&other), before);
}

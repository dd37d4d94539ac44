//! Module cache verification against the real Go toolchain: a local `file://` GOPROXY built
//! by the test, `go mod download` into a temp GOMODCACHE, then goguard's verdict compared with
//! `go mod verify`'s on the intact cache, a modified extracted file, a modified zip, a
//! half-extracted directory (`.partial`: Go ignores it, we report it incomplete), a directory
//! missing a file; go.sum lines (written by
//! Go) checked against the cache; and the dirhash functions checked against the hashes Go
//! itself computed (go.sum, `.ziphash`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{GoEnv, add_to_proxy, esc, module_zip, write_tree};
use goguard_hygiene::dirhash;
use goguard_hygiene::gosum::{self, SumKind};
use goguard_hygiene::modverify::{
    self, Finding, GoSumOutcome, IncompleteReason, LeftoverKind, ModuleVerdict, Part,
    VerifyOptions, VerifyReport,
};

const LIB: &str = "example.com/UpperLib"; // escaped: example.com/!upper!lib
const LIB_V: &str = "v1.2.0";
const OTHER: &str = "example.com/other";
const OTHER_V: &str = "v0.3.1";

fn lib_files(greeting: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("go.mod", format!("module {LIB}\n\ngo 1.19\n").into_bytes()),
        (
            "lib.go",
            format!("package upperlib\n\nfunc Hello() string {{ return \"{greeting}\" }}\n")
                .into_bytes(),
        ),
        (
            "internal/deep/x.go",
            b"package deep\n\nconst X = 1\n".to_vec(),
        ),
        ("README.md", b"# lib\n".to_vec()),
    ]
}

fn other_files() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("// line {i}\n").into_bytes())
        .collect();
    let mut generated = b"package other\n\n".to_vec();
    generated.extend_from_slice(&big);
    vec![
        (
            "go.mod",
            format!("module {OTHER}\n\ngo 1.19\n").into_bytes(),
        ),
        (
            "other.go",
            b"package other\n\nfunc N() int { return 7 }\n".to_vec(),
        ),
        ("gen.go", generated),
    ]
}

struct Fixture {
    _tmp: tempfile::TempDir,
    env: GoEnv,
    app: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let mut env = GoEnv::new(tmp.path());
    let proxy = tmp.path().join("proxy");
    add_to_proxy(&proxy, LIB, LIB_V, &lib_files("hi"));
    add_to_proxy(&proxy, OTHER, OTHER_V, &other_files());
    env.proxy = Some(proxy);
    let app = tmp.path().join("app");
    write_tree(
        &app,
        &[
            (
                "go.mod",
                &format!(
                    "module example.com/app\n\ngo 1.19\n\nrequire (\n\t{LIB} {LIB_V}\n\t{OTHER} {OTHER_V}\n)\n"
                ),
            ),
            (
                "main.go",
                &format!(
                    "package main\n\nimport (\n\t\"fmt\"\n\tupperlib \"{LIB}\"\n\t\"{OTHER}\"\n)\n\nfunc main() {{ fmt.Println(upperlib.Hello(), other.N()) }}\n"
                ),
            ),
        ],
    );
    env.go_ok(&app, &["mod", "download"]);
    // Makes sure go.sum has every line (zip and /go.mod) and that the extraction is used.
    env.go_ok(&app, &["build", "-o", "app.bin", "."]);
    Fixture {
        _tmp: tmp,
        env,
        app,
    }
}

/// `go mod verify`: (exit success, combined output).
fn go_verify(f: &Fixture) -> (bool, String) {
    let out = f.env.go(&f.app, &["mod", "verify"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ours(f: &Fixture) -> VerifyReport {
    modverify::verify_cache(&f.env.gomodcache, &VerifyOptions::default()).unwrap()
}

fn module<'a>(r: &'a VerifyReport, path: &str) -> &'a modverify::ModuleReport {
    r.modules
        .iter()
        .find(|m| m.module == path)
        .unwrap_or_else(|| panic!("{path} not in report: {:?}", r.modules))
}

fn lib_dir(f: &Fixture) -> PathBuf {
    f.env.gomodcache.join(format!("{}@{LIB_V}", esc(LIB)))
}

fn lib_at_v(f: &Fixture) -> PathBuf {
    f.env
        .gomodcache
        .join("cache/download")
        .join(esc(LIB))
        .join("@v")
}

/// Writes `content` over a read-only file of the module cache and returns the old content.
fn overwrite(path: &Path, content: &[u8]) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let old = std::fs::read(path).unwrap();
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    old
}

#[test]
fn verdicts_agree_with_go_mod_verify() {
    let f = fixture();

    // Intact: both agree.
    let (go_ok, go_text) = go_verify(&f);
    assert!(go_ok, "{go_text}");
    assert!(go_text.contains("all modules verified"), "{go_text}");
    let r = ours(&f);
    assert!(r.is_clean(), "{:#?}", r);
    assert_eq!(r.modules.len(), 2);
    for m in &r.modules {
        assert_eq!(m.verdict, ModuleVerdict::Intact);
        assert_eq!(m.checked, vec![Part::Zip, Part::Dir], "{m:?}");
        assert!(m.bytes_hashed > 0);
    }
    // Go keeps its .lock files on purpose: counted, not leftovers.
    assert!(r.lock_files >= 2, "{}", r.lock_files);
    assert!(r.leftovers.is_empty());

    // A modified extracted file.
    let lib_go = lib_dir(&f).join("lib.go");
    let old = overwrite(
        &lib_go,
        b"package upperlib\n\nfunc Hello() string { return \"pwned\" }\n",
    );
    let (go_ok, go_text) = go_verify(&f);
    assert!(!go_ok);
    assert!(
        go_text.contains(&format!("{LIB} {LIB_V}: dir has been modified")),
        "{go_text}"
    );
    let r = ours(&f);
    let m = module(&r, LIB);
    assert_eq!(m.verdict, ModuleVerdict::Corrupted);
    assert!(
        matches!(&m.findings[..], [Finding::Corrupted { part: Part::Dir, files, .. }]
            if files == &vec![format!("{LIB}@{LIB_V}/lib.go")]),
        "{m:?}"
    );
    assert_eq!(module(&r, OTHER).verdict, ModuleVerdict::Intact);
    overwrite(&lib_go, &old);
    assert!(go_verify(&f).0 && ours(&f).is_clean());

    // A modified zip: a valid zip of other content.
    let zip = lib_at_v(&f).join(format!("{LIB_V}.zip"));
    let old_zip = overwrite(&zip, &module_zip(LIB, LIB_V, &lib_files("hello")));
    let (go_ok, go_text) = go_verify(&f);
    assert!(!go_ok);
    assert!(
        go_text.contains(&format!("{LIB} {LIB_V}: zip has been modified")),
        "{go_text}"
    );
    let r = ours(&f);
    let m = module(&r, LIB);
    assert_eq!(m.verdict, ModuleVerdict::Corrupted);
    assert!(
        matches!(
            &m.findings[..],
            [Finding::Corrupted {
                part: Part::Zip,
                ..
            }]
        ),
        "{m:?}"
    );
    // A zip with a flipped byte in compressed data: Go fails to read it, so do we.
    let mut bad = old_zip.clone();
    let at = first_data_byte(&bad, &format!("{LIB}@{LIB_V}/lib.go"));
    bad[at] ^= 0xff;
    overwrite(&zip, &bad);
    let (go_ok, go_text) = go_verify(&f);
    assert!(
        !go_ok && go_text.contains(&format!("{LIB} {LIB_V}")),
        "{go_text}"
    );
    assert_eq!(module(&ours(&f), LIB).verdict, ModuleVerdict::Corrupted);
    overwrite(&zip, &old_zip);
    assert!(go_verify(&f).0 && ours(&f).is_clean());

    // An interrupted extraction: .partial and a file not yet written.
    let partial = lib_at_v(&f).join(format!("{LIB_V}.partial"));
    std::fs::write(&partial, b"").unwrap();
    let deep = lib_dir(&f).join("internal/deep/x.go");
    let deep_content = std::fs::read(&deep).unwrap();
    let deep_dir = lib_dir(&f).join("internal/deep");
    chmod(&deep_dir, 0o755);
    std::fs::remove_file(&deep).unwrap();
    // Go treats a directory with a .partial as not there (DownloadDirPartialError is
    // fs.ErrNotExist): it checks only the zip, and re-extracts on next use. We report it.
    let (go_ok, go_text) = go_verify(&f);
    assert!(
        go_ok && go_text.contains("all modules verified"),
        "{go_text}"
    );
    let r = ours(&f);
    let m = module(&r, LIB);
    assert_eq!(m.verdict, ModuleVerdict::Incomplete);
    assert_eq!(m.checked, vec![Part::Zip]);
    assert_eq!(
        m.findings,
        vec![Finding::Incomplete(IncompleteReason::Partial)]
    );
    // Without the .partial: a directory missing a file of the zip.
    std::fs::remove_file(&partial).unwrap();
    let (go_ok, go_text) = go_verify(&f);
    assert!(
        !go_ok && go_text.contains("dir has been modified"),
        "{go_text}"
    );
    let r = ours(&f);
    assert_eq!(
        module(&r, LIB).findings,
        vec![Finding::Incomplete(IncompleteReason::MissingFiles(vec![
            format!("{LIB}@{LIB_V}/internal/deep/x.go")
        ]))]
    );
    std::fs::write(&deep, deep_content).unwrap();
    assert!(go_verify(&f).0 && ours(&f).is_clean());

    // A zip whose ziphash is gone: Go says "missing ziphash", we say incomplete.
    let ziphash = lib_at_v(&f).join(format!("{LIB_V}.ziphash"));
    let zh = std::fs::read(&ziphash).unwrap();
    std::fs::remove_file(&ziphash).unwrap();
    let (go_ok, go_text) = go_verify(&f);
    assert!(!go_ok && go_text.contains("missing ziphash"), "{go_text}");
    assert_eq!(
        module(&ours(&f), LIB).findings,
        vec![Finding::Incomplete(IncompleteReason::MissingZiphash)]
    );
    std::fs::write(&ziphash, zh).unwrap();

    // An interrupted zip download left a temp file.
    let tmpzip = lib_at_v(&f).join(format!("{LIB_V}.zip123456789.tmp"));
    std::fs::write(&tmpzip, b"partial").unwrap();
    std::fs::File::open(&tmpzip)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let r = ours(&f);
    assert_eq!(r.leftovers.len(), 1, "{:?}", r.leftovers);
    assert_eq!(r.leftovers[0].kind, LeftoverKind::TempZip);
    assert!(r.leftovers[0].stale);
    assert!(r.problems().next().is_none());
}

/// Offset of the first byte of `name`'s (compressed) data: after its local file header
/// (30 bytes, then the name, then the extra field whose length is at header offset 28).
fn first_data_byte(zip: &[u8], name: &str) -> usize {
    let pos = zip
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .expect("name in zip");
    let header = pos - 30;
    assert_eq!(&zip[header..header + 4], b"PK\x03\x04");
    let extra = usize::from(u16::from_le_bytes([zip[header + 28], zip[header + 29]]));
    pos + name.len() + extra
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn gosum_lines_and_dirhash_match_what_go_computed() {
    let f = fixture();
    let sum_text = std::fs::read_to_string(f.app.join("go.sum")).unwrap();
    let lines = gosum::parse(&sum_text).unwrap();
    // Go wrote a zip line and a /go.mod line for each dependency.
    assert_eq!(lines.len(), 4, "{sum_text}");

    // dirhash against Go's own hashes.
    for l in &lines {
        let at_v = f
            .env
            .gomodcache
            .join("cache/download")
            .join(esc(&l.module))
            .join("@v");
        match l.kind {
            SumKind::Zip => {
                let zip =
                    std::fs::File::open(at_v.join(format!("{}.zip", esc(&l.version)))).unwrap();
                assert_eq!(dirhash::hash_zip(zip).unwrap(), l.hash, "{l:?}");
                let ziphash =
                    std::fs::read_to_string(at_v.join(format!("{}.ziphash", esc(&l.version))))
                        .unwrap();
                assert_eq!(ziphash.trim(), l.hash);
            }
            SumKind::GoMod => {
                let data = std::fs::read(at_v.join(format!("{}.mod", esc(&l.version)))).unwrap();
                assert_eq!(dirhash::hash_go_mod(&data), l.hash, "{l:?}");
            }
        }
    }

    // The go.sum against the cache.
    let opts = VerifyOptions {
        gosum: Some(lines.clone()),
        ..VerifyOptions::default()
    };
    let r = modverify::verify_cache(&f.env.gomodcache, &opts).unwrap();
    assert_eq!(r.gosum.len(), 4);
    assert!(
        r.gosum.iter().all(|c| c.outcome == GoSumOutcome::Match),
        "{:?}",
        r.gosum
    );
    assert!(r.is_clean());

    // A tampered line and a module the cache does not have.
    let mut tampered = sum_text.replacen(" h1:", " h1:AAAA", 1);
    tampered
        .push_str("example.com/absent v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
    let opts = VerifyOptions {
        gosum: Some(gosum::parse(&tampered).unwrap()),
        ..VerifyOptions::default()
    };
    let r = modverify::verify_cache(&f.env.gomodcache, &opts).unwrap();
    assert!(
        matches!(r.gosum[0].outcome, GoSumOutcome::Mismatch { .. }),
        "{:?}",
        r.gosum[0]
    );
    assert_eq!(r.gosum[4].outcome, GoSumOutcome::NotInCache);
    assert!(!r.is_clean());

    // Only the go.sum's modules: a go.sum naming one module verifies just that one.
    let only_lib: Vec<_> = lines.iter().filter(|l| l.module == LIB).cloned().collect();
    let opts = VerifyOptions {
        gosum: Some(only_lib),
        only_gosum_modules: true,
        ..VerifyOptions::default()
    };
    let r = modverify::verify_cache(&f.env.gomodcache, &opts).unwrap();
    assert_eq!(r.modules.len(), 1);
    assert_eq!(r.modules[0].module, LIB);
    assert!(r.is_clean());

    // The extracted directory hashes to what Go recorded, through our fd-based walk.
    let lib_line = lines
        .iter()
        .find(|l| l.module == LIB && l.kind == SumKind::Zip)
        .unwrap();
    let r = modverify::verify_cache(&f.env.gomodcache, &VerifyOptions::default()).unwrap();
    assert!(module(&r, LIB).checked.contains(&Part::Dir));
    assert!(lib_line.hash.starts_with("h1:"));
}

#[test]
fn go_hash1_of_a_tree_matches_ours() {
    // Go's own dirhash over a tree with awkward names (sorting by bytes, nested dirs),
    // obtained by having Go download a module whose files we choose and reading its ziphash.
    let tmp = tempfile::tempdir().unwrap();
    let mut env = GoEnv::new(tmp.path());
    let proxy = tmp.path().join("proxy");
    let module = "example.com/Names";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("go.mod", format!("module {module}\n").into_bytes()),
        ("Z.go", b"package names\n".to_vec()),
        ("a.go", b"package names\n\nconst A = 1\n".to_vec()),
        ("a/b/c.txt", b"".to_vec()),
        ("a-b.txt", vec![0u8, 1, 2, 255]),
        ("\u{e9}t\u{e9}.txt", "utf-8 name".as_bytes().to_vec()),
    ];
    add_to_proxy(&proxy, module, "v0.0.1", &files);
    env.proxy = Some(proxy);
    let app = tmp.path().join("app");
    write_tree(&app, &[("go.mod", "module example.com/app\n\ngo 1.19\n")]);
    env.go_ok(&app, &["mod", "download", &format!("{module}@v0.0.1")]);
    let at_v = env
        .gomodcache
        .join("cache/download")
        .join(esc(module))
        .join("@v");
    let go_hash = std::fs::read_to_string(at_v.join("v0.0.1.ziphash")).unwrap();

    // hash1 over in-memory readers, names as Go's HashDir forms them.
    let names: Vec<Vec<u8>> = files
        .iter()
        .map(|(n, _)| format!("{module}@v0.0.1/{n}").into_bytes())
        .collect();
    let ours = dirhash::hash1(names, |name| {
        let prefix = format!("{module}@v0.0.1/");
        let rel = std::str::from_utf8(name)
            .unwrap()
            .strip_prefix(prefix.as_str())
            .unwrap();
        let content = files.iter().find(|(n, _)| *n == rel).unwrap().1.clone();
        Ok(std::io::Cursor::new(content))
    })
    .unwrap();
    assert_eq!(ours, go_hash.trim());
    // And the verifier agrees on the extracted tree.
    let r = modverify::verify_cache(&env.gomodcache, &VerifyOptions::default()).unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.modules[0].checked, vec![Part::Zip, Part::Dir]);
}

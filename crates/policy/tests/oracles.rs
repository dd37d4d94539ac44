//! Oracle tests: `goenv::resolve` against the real `go env`, and `envd` against the real
//! `systemd-environment-d-generator`, for many generated environments.
//!
//! `go` is Debian's `golang-go` at `/usr/bin/go`; the tests fail (not skip) without it. Every
//! run gets `env -i`-style environments whose HOME and XDG paths point into a temp dir,
//! `GOTOOLCHAIN=local`, empty `GOFLAGS` and `GO111MODULE`, and no `GOROOT`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use goguard_policy::envd;
use goguard_policy::goenv::{self, EnvMap, GoEnvFile, GoEnvInputs, GoVersion};

const GO: &str = "/usr/bin/go";
const GENERATOR: &str =
    "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator";

fn go_cmd() -> Command {
    assert!(
        Path::new(GO).exists(),
        "{GO} is missing: install Debian's `golang-go` package (apt-get install golang-go) to run the go env oracle tests"
    );
    let mut c = Command::new(GO);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "");
    c
}

fn go_facts() -> (String, GoVersion) {
    let tmp = tempfile::tempdir().unwrap();
    let out = go_cmd()
        .env("HOME", tmp.path())
        .env("GOENV", "off")
        .args(["env", "GOROOT", "GOVERSION"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let goroot = lines.next().unwrap().to_owned();
    let version = GoVersion::parse(lines.next().unwrap()).unwrap();
    (goroot, version)
}

/// A tiny deterministic PRNG (splitmix64) for sampling the combination space.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, options: &'a [Option<String>]) -> &'a Option<String> {
        &options[(self.next() % options.len() as u64) as usize]
    }
}

const ENV_FILES: &[Option<&str>] = &[
    None,
    Some("GOCACHE=/f/cache\nGOPATH=/f/gp\n"),
    Some("GOMODCACHE=/f/mod\nGOCACHE=\"/q\"\n"),
    Some("# comment\n GOPATH=/ignored\nGOPATH=/f/gp2:/f/gp3\r\n"),
    Some("GOCACHE=off\nGOPATH=rel\n"),
    Some("GOMODCACHE=rel/m\nGOCACHE=\nGOPATH=/f/a\nGOPATH=/f/b"),
    Some("GOPATH=~/gp\n"),
    Some("lower=1\nGOENV=/elsewhere\nGOCACHE=/f/c2//x/\n"),
];

struct Case {
    env: EnvMap,
    file: Option<&'static str>,
}

fn cases(base: &Path) -> Vec<Case> {
    let b = base.display();
    let o = |s: &str| Some(s.to_owned());
    let home = [
        None,
        o(&format!("{b}/home")),
        o(&format!("{b}/home/")),
        o("rel"),
        o("~x"),
        o(""),
    ];
    let xdg_cache = [
        None,
        o(&format!("{b}/xc")),
        o("relcache"),
        o(""),
        o(&format!("{b}//xc2/.")),
    ];
    let xdg_config = [None, o(&format!("{b}/xg")), o("relcfg")];
    let goenv_var = [
        None,
        o("off"),
        o(&format!("{b}/goenv-file")),
        o(""),
        o("relgoenv"),
    ];
    let gocache = [
        None,
        o(&format!("{b}/gc")),
        o("off"),
        o("relgc"),
        o(""),
        o(&format!("{b}/gc//y/")),
    ];
    let gopath = [
        None,
        o(&format!("{b}/gp")),
        o(&format!("{b}/gp1:{b}/gp2")),
        o(&format!(":{b}/gp")),
        o("relgp"),
        o("~/gp"),
        o(""),
        o(&format!("{b}/gp/../gq/")),
    ];
    let gomodcache = [None, o(&format!("{b}/gm")), o("relgm"), o("")];
    let mut rng = Rng(0x005e_ed0f_9090);
    let mut out = Vec::new();
    // Hand-picked essentials first, then a deterministic sample of the product.
    let essentials: Vec<Vec<(&str, Option<String>)>> = vec![
        vec![("HOME", home[1].clone())],
        vec![
            ("HOME", home[1].clone()),
            ("XDG_CACHE_HOME", xdg_cache[1].clone()),
        ],
        vec![("HOME", home[1].clone()), ("GOCACHE", gocache[2].clone())],
        vec![],
        vec![("HOME", home[3].clone())],
        vec![("HOME", home[4].clone())],
        vec![("HOME", home[1].clone()), ("GOPATH", gopath[4].clone())],
    ];
    for (i, e) in essentials.into_iter().enumerate() {
        let env = e
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
        out.push(Case {
            env,
            file: ENV_FILES[i % 2],
        });
    }
    for _ in 0..400 {
        let mut env = EnvMap::new();
        for (key, options) in [
            ("HOME", &home[..]),
            ("XDG_CACHE_HOME", &xdg_cache[..]),
            ("XDG_CONFIG_HOME", &xdg_config[..]),
            ("GOENV", &goenv_var[..]),
            ("GOCACHE", &gocache[..]),
            ("GOPATH", &gopath[..]),
            ("GOMODCACHE", &gomodcache[..]),
        ] {
            // Bias towards "unset" so the env file and defaults matter often.
            let v = if rng.next() % 3 == 0 {
                &None
            } else {
                rng.pick(options)
            };
            if let Some(v) = v {
                env.insert(key.to_owned(), v.clone());
            }
        }
        let file = ENV_FILES[(rng.next() % ENV_FILES.len() as u64) as usize];
        out.push(Case { env, file });
    }
    out
}

#[test]
fn go_env_matches_the_real_go() {
    let (goroot, version) = go_facts();
    let tmp = tempfile::tempdir().unwrap();
    let mut matched = 0;
    let mut refusals = 0;
    let all = cases(tmp.path());
    for (n, case) in all.iter().enumerate() {
        let dir = tmp.path().join(format!("case{n}"));
        let cwd = dir.join("cwd");
        std::fs::create_dir_all(&cwd).unwrap();
        // Give every absolute path of this case its own directory tree.
        let env: EnvMap = case
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.replace(
                        &tmp.path().display().to_string(),
                        &dir.display().to_string(),
                    ),
                )
            })
            .collect();
        // Write the env file where this environment says it is, as `go env -w` would.
        let location = goenv::env_file_location(&env, version);
        let mut parsed = None;
        if let (Some(text), Some(path)) = (case.file, location.readable_path()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        // The loader: read what exists at the computed location.
        if let Some(path) = location.readable_path()
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            parsed = Some(GoEnvFile::parse(&text));
        }
        let ours = goenv::resolve(&GoEnvInputs {
            process: &env,
            env_file: parsed.as_ref(),
            goroot_env: None,
            goroot: &goroot,
            version,
        });
        let out = go_cmd()
            .envs(&env)
            .current_dir(&cwd)
            .args(["env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ctx = format!(
            "case {n}: env {env:?}, file {:?}\nstdout {stdout:?}\nstderr {stderr}\nours {ours:#?}",
            case.file
        );
        match &ours.refusal {
            Some(r) => {
                assert!(
                    !out.status.success(),
                    "go accepted what we predicted it refuses: {ctx}"
                );
                let first = r.to_string();
                assert!(
                    stderr.contains(first.trim_end_matches('.')),
                    "refusal message differs: {ctx}"
                );
                refusals += 1;
            }
            None => {
                assert!(out.status.success(), "go failed: {ctx}");
                let lines: Vec<&str> = stdout.split('\n').collect();
                for (i, key) in ["GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"]
                    .iter()
                    .enumerate()
                {
                    assert_eq!(
                        Some(lines[i]),
                        ours.go_env_value(key),
                        "{key} differs: {ctx}"
                    );
                }
            }
        }
        matched += 1;
    }
    eprintln!(
        "go env oracle: {matched} combinations matched ({refusals} refused by go as predicted)"
    );
    assert!(matched >= 400);
}

/// Undoes `shell_maybe_quote` for the values used here (no control characters).
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn environment_d_matches_the_real_generator() {
    assert!(
        Path::new(GENERATOR).exists(),
        "{GENERATOR} missing (package systemd)"
    );
    let files: &[&[(&str, &str)]] = &[
        &[(
            "10-go.conf",
            "GOPATH=$HOME/gopath\nGOMODCACHE=${GOPATH}/mod\nGOCACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gb\n",
        )],
        &[
            ("20-b.conf", "B=$A-b\nA=override\n"),
            (
                "10-a.conf",
                "A=first\n# comment\n; other comment\nE=\nQ=\"\"\nS='$FOO lit'\n",
            ),
        ],
        &[(
            "50.conf",
            "  K = x y  \nD=\"a\\\"b\\$c\\d\"\nC=a\\\nb\n#c\\\nHIDDEN=1\nN=${UNSET:+alt}${FOO:+alt}\n",
        )],
        &[(
            "x.conf",
            "X=$$FOO\nY=${FOO\nZ=${FOO:x}\nW=$FOO_BAR.$FOO.\nBAD-KEY=1\n1X=2\nV=${A:-${FOO}}\n",
        )],
        &[
            ("a.conf", "GOCACHE=/srv/c\n"),
            ("b.txt", "GOCACHE=/ignored\n"),
            ("c.conf", "GOENV=$HOME/.goenv\n"),
        ],
    ];
    let mut compared = 0;
    for (n, set) in files.iter().enumerate() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".config/environment.d");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in set.iter() {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let base: EnvMap = [
            ("HOME", home.path().display().to_string()),
            ("USER", "alice".to_owned()),
            ("PATH", "/usr/bin:/bin".to_owned()),
            ("FOO", "foo".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let out = Command::new(GENERATOR)
            .env_clear()
            .envs(&base)
            .output()
            .unwrap();
        assert!(out.status.success());
        let theirs: BTreeMap<String, String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), unquote(v)))
            .collect();
        let mut dirs: Vec<PathBuf> = vec![dir.clone()];
        dirs.extend(envd::SYSTEM_DIRS.iter().map(PathBuf::from));
        let (ours, _) = envd::load(&dirs, &base);
        assert_eq!(ours, theirs, "file set {n}: {set:?}");
        compared += ours.len();
    }
    eprintln!(
        "environment.d oracle: {} file sets, {compared} variables matched",
        files.len()
    );
}

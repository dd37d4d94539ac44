//! The packaging and fleet files, built and checked with their real tools:
//! the RPM (`packaging/rpm/build-rpm.sh`, then `rpm -qlp`, `--scripts`,
//! the payload through `rpm2archive`), the Debian package
//! (`packaging/debian/build-deb.sh`, then `dpkg-deb -I`, `-x`, `-e`), the
//! SELinux module (`packaging/selinux/build.sh` against the reference
//! policy's devel Makefile, then linked into Debian's whole policy; and
//! expanded into RHEL's targeted policy built from Fedora's source by
//! `tests/selinux-rhel/build.sh`, whose file_contexts goguard must read as
//! `matchpathcon` does), the
//! Ansible role (`ansible-playbook
//! --syntax-check`, `ansible-lint`, and its template rendered with the
//! role's defaults and accepted by `goguardd --check-config`), the
//! Prometheus rules (`promtool check rules`, `promtool test rules`) and the
//! Grafana dashboard, whose metric names, like the rules', must all appear
//! in a real scrape of a running goguardd.
//!
//! The packages are built from the release binaries beside this test's own
//! target directory (`<target>/release`, so `CARGO_TARGET_DIR` is
//! respected); tests/run-all.sh builds them first, so their absence fails
//! the test. A missing tool fails with the package to install.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::*;

/// Where tests/run-all.sh creates the Python venv holding ansible-core,
/// ansible-lint and jinja2; `GOGUARD_TEST_VENV` overrides it.
const DEFAULT_VENV: &str = "/opt/goguard-test/venv";

/// Every file and directory the RPM owns (`rpm -qlp`).
const RPM_FILES: &[&str] = &[
    "/etc/goguard",
    "/etc/goguard/goguard.toml",
    "/run/goguard",
    "/usr/bin/goguardctl",
    "/usr/bin/goguardd",
    "/usr/lib/systemd/system/goguardd.service",
    "/usr/lib/systemd/system/goguardd.socket",
    "/usr/lib/systemd/user/goguardd.service",
    "/usr/lib/sysusers.d/goguard.conf",
    "/usr/lib/tmpfiles.d/goguard.conf",
    "/usr/share/bash-completion/completions/goguardctl",
    "/usr/share/fish",
    "/usr/share/fish/vendor_completions.d",
    "/usr/share/fish/vendor_completions.d/goguardctl.fish",
    "/usr/share/man/man1/goguardctl.1",
    "/usr/share/selinux/devel/include/distributed/goguard.if",
    "/usr/share/selinux/packages/goguard.pp",
    "/usr/share/zsh",
    "/usr/share/zsh/site-functions",
    "/usr/share/zsh/site-functions/_goguardctl",
    "/var/lib/goguard",
];

/// Every regular file in the Debian package.
const DEB_FILES: &[&str] = &[
    "/etc/goguard/goguard.toml",
    "/usr/bin/goguardctl",
    "/usr/bin/goguardd",
    "/usr/lib/systemd/system/goguardd.service",
    "/usr/lib/systemd/system/goguardd.socket",
    "/usr/lib/systemd/user/goguardd.service",
    "/usr/lib/sysusers.d/goguard.conf",
    "/usr/lib/tmpfiles.d/goguard.conf",
    "/usr/share/bash-completion/completions/goguardctl",
    "/usr/share/doc/goguard/README.md",
    "/usr/share/doc/goguard/copyright",
    "/usr/share/fish/vendor_completions.d/goguardctl.fish",
    "/usr/share/man/man1/goguardctl.1.gz",
    "/usr/share/selinux/devel/include/distributed/goguard.if",
    "/usr/share/selinux/packages/goguard.pp",
    "/usr/share/zsh/vendor-completions/_goguardctl",
];

/// Unit and snippet files both packages must carry unchanged:
/// (path in the package, source in the repository).
const VERBATIM: &[(&str, &str)] = &[
    (
        "usr/lib/systemd/system/goguardd.service",
        "systemd/goguardd.service",
    ),
    (
        "usr/lib/systemd/system/goguardd.socket",
        "systemd/goguardd.socket",
    ),
    (
        "usr/lib/systemd/user/goguardd.service",
        "systemd/user/goguardd.service",
    ),
    (
        "usr/lib/sysusers.d/goguard.conf",
        "systemd/sysusers.d/goguard.conf",
    ),
    (
        "usr/lib/tmpfiles.d/goguard.conf",
        "systemd/tmpfiles.d/goguard.conf",
    ),
    ("etc/goguard/goguard.toml", "packaging/goguard.toml"),
    (
        "usr/share/selinux/devel/include/distributed/goguard.if",
        "packaging/selinux/goguard.if",
    ),
];

/// The types the SELinux module must declare.
const SELINUX_TYPES: &[&str] = &[
    "goguard_t",
    "goguard_exec_t",
    "goguard_etc_t",
    "goguard_var_lib_t",
    "goguard_runtime_t",
    "goguard_tmp_t",
    "goguard_port_t",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test binary's goguardd was built in
/// (`<target>/debug/goguardd`), which honours `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    Path::new(GOGUARDD)
        .parent()
        .and_then(Path::parent)
        .expect("CARGO_BIN_EXE_goguardd lies in <target>/<profile>/")
        .to_owned()
}

/// `<target>/release`, after checking both release binaries are there.
fn release_dir() -> PathBuf {
    let dir = target_dir().join("release");
    for bin in ["goguardd", "goguardctl"] {
        let path = dir.join(bin);
        assert!(
            path.is_file(),
            "{} is missing: the packaging tests package the release binaries; run \
             `cargo build --release --locked --bins` first (tests/run-all.sh does)",
            path.display()
        );
    }
    dir
}

/// The version the release binaries report (`goguardctl 0.1.0` → `0.1.0`).
fn release_version() -> String {
    let out = run(Command::new(release_dir().join("goguardctl")).arg("--version"));
    stdout(&out)
        .split_whitespace()
        .last()
        .expect("goguardctl --version prints a version")
        .to_owned()
}

/// Runs a command that must succeed; on failure shows everything it said.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Runs one of the packaging scripts with this test's target directory and
/// returns the path it printed on its last line.
fn build_package(script: &str, out_dir: &Path) -> PathBuf {
    release_dir();
    let out = run(Command::new(repo().join(script))
        .arg(out_dir)
        .env("CARGO_TARGET_DIR", target_dir()));
    let text = stdout(&out);
    let path = PathBuf::from(text.lines().last().unwrap_or_default().trim());
    assert!(
        path.is_file() && path.starts_with(out_dir),
        "{script} printed no package path in {}:\n{text}",
        out_dir.display()
    );
    path
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The unit files, config and snippets in an unpacked package are the
/// repository's own, byte for byte.
fn assert_verbatim(root: &Path) {
    for (packaged, source) in VERBATIM {
        let got = std::fs::read(root.join(packaged))
            .unwrap_or_else(|e| panic!("{packaged} not in the package: {e}"));
        let want = std::fs::read(repo().join(source)).unwrap();
        assert!(got == want, "{packaged} differs from {source}");
    }
}

/// The unpacked binaries run and agree on the version, and the unpacked
/// config is one the unpacked daemon accepts.
fn assert_binaries_work(root: &Path, version: &str) {
    for bin in ["goguardd", "goguardctl"] {
        let path = root.join("usr/bin").join(bin);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin} has mode {mode:o}");
        let out = run(Command::new(&path).arg("--version"));
        assert_eq!(stdout(&out).trim(), format!("{bin} {version}"));
    }
    run(Command::new(root.join("usr/bin/goguardd"))
        .arg("--check-config")
        .arg("--config")
        .arg(root.join("etc/goguard/goguard.toml")));
}

#[test]
fn rpm_builds_from_the_release_binaries_with_files_and_scriptlets() {
    require_tool("rpmbuild", "rpm");
    let version = release_version();
    let dir = tempfile::tempdir().unwrap();
    let rpm = build_package("packaging/rpm/build-rpm.sh", dir.path());
    let q = |args: &[&str]| stdout(&run(Command::new("rpm").args(args).arg(&rpm)));

    // Release 1, plus %{dist} on RHEL/Fedora.
    let nvr = q(&["-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE}"]);
    assert!(nvr.starts_with(&format!("goguard {version} 1")), "{nvr}");

    // The file list, exactly (the README is the one %doc file).
    let listed: BTreeSet<String> = q(&["-qlp"])
        .lines()
        .filter(|l| !l.starts_with("/usr/share/doc/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, set(RPM_FILES));
    assert!(q(&["-qdp"]).contains("/README.md"), "README.md is not %doc");

    // The config is %config(noreplace); modes and owners are right.
    assert_eq!(q(&["-qcp"]).trim(), "/etc/goguard/goguard.toml");
    let attrs = q(&[
        "-qp",
        "--qf",
        "[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\n]",
    ]);
    for want in [
        "/etc/goguard/goguard.toml cn -rw-r--r-- root:root",
        "/usr/bin/goguardd  -rwxr-xr-x root:root",
        "/usr/bin/goguardctl  -rwxr-xr-x root:root",
        "/var/lib/goguard  drwxr-x--- root:root",
        "/run/goguard g drwxr-xr-x root:root",
    ] {
        assert!(attrs.lines().any(|l| l == want), "no `{want}` in:\n{attrs}");
    }

    // Scriptlets: the group, tmpfiles, the systemd macros and the SELinux
    // module guarded by selinuxenabled.
    let scripts = q(&["-qp", "--scripts"]);
    let section = |name: &str| -> String {
        let header = format!("{name} scriptlet (");
        let mut lines = scripts.lines().skip_while(|l| !l.starts_with(&header));
        assert!(lines.next().is_some(), "no {name} scriptlet in:\n{scripts}");
        lines
            .take_while(|l| !l.contains(" scriptlet ("))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let pre = section("preinstall");
    assert!(
        pre.contains("groupadd -r") && pre.contains("goguard"),
        "{pre}"
    );
    let post = section("postinstall");
    for want in [
        "systemd-tmpfiles --create /usr/lib/tmpfiles.d/goguard.conf",
        "selinuxenabled",
        "semodule -i /usr/share/selinux/packages/goguard.pp",
        "semanage port -a -t goguard_port_t -p tcp 9464",
        // %systemd_post: `systemctl preset` (the fallback, RHEL 8) or
        // systemd-update-helper install-system-units (RHEL 9, Fedora).
        " goguardd.socket goguardd.service",
    ] {
        assert!(post.contains(want), "postinstall lacks `{want}`:\n{post}");
    }
    let selinux_if = post.find("selinuxenabled").unwrap();
    assert!(
        selinux_if < post.find("semodule -i").unwrap(),
        "semodule runs before the selinuxenabled check:\n{post}"
    );
    assert!(post.contains("preset") || post.contains("install-system-units"));
    let preun = section("preuninstall");
    assert!(
        preun.contains(" goguardd.service goguardd.socket")
            && (preun.contains("disable --now") || preun.contains("remove-system-units")),
        "{preun}"
    );
    let postun = section("postuninstall");
    assert!(
        postun.contains("try-restart goguardd.service")
            || postun.contains("mark-restart-system-units goguardd.service"),
        "{postun}"
    );
    assert!(postun.contains("semodule -r goguard"), "{postun}");

    // The payload: unchanged units and config, working binaries, the
    // SELinux module.
    require_tool("rpm2archive", "rpm");
    let tgz = PathBuf::from(format!("{}.tgz", rpm.display()));
    run(Command::new("rpm2archive").arg(&rpm));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(&root));
    assert_verbatim(&root);
    assert_binaries_work(&root, &version);
    assert_selinux_module(
        &std::fs::read(root.join("usr/share/selinux/packages/goguard.pp")).unwrap(),
    );
    let man = std::fs::read_to_string(root.join("usr/share/man/man1/goguardctl.1")).unwrap();
    assert!(man.contains(".TH goguardctl"), "not a man page:\n{man}");
}

#[test]
fn deb_builds_from_the_release_binaries_and_unpacks_complete() {
    require_tool("dpkg-deb", "dpkg");
    let version = release_version();
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package("packaging/debian/build-deb.sh", dir.path());

    // Control fields.
    let field = |name: &str| {
        let out = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
        stdout(&out).trim().to_owned()
    };
    let arch = stdout(&run(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_owned();
    assert_eq!(field("Package"), "goguard");
    assert_eq!(field("Version"), format!("{version}-1"));
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Section"), "admin");
    let depends = field("Depends");
    assert!(depends.contains("libselinux1"), "Depends: {depends}");
    assert!(depends.contains("libc6"), "Depends: {depends}");
    let installed_kib: u64 = field("Installed-Size").parse().unwrap();
    assert!(installed_kib > 1000, "Installed-Size: {installed_kib}");
    let info = stdout(&run(Command::new("dpkg-deb").arg("-I").arg(&deb)));
    for script in ["conffiles", "postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in dpkg-deb -I:\n{info}");
    }

    // Contents: exactly the expected files, all owned by root.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let mut found = BTreeSet::new();
    collect_files(&root, &root, &mut found);
    assert_eq!(found, set(DEB_FILES));
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "not root-owned: {line}");
    }
    let state = std::fs::metadata(root.join("var/lib/goguard")).unwrap();
    assert_eq!(state.permissions().mode() & 0o7777, 0o750);
    assert_verbatim(&root);
    assert_binaries_work(&root, &version);
    assert_selinux_module(
        &std::fs::read(root.join("usr/share/selinux/packages/goguard.pp")).unwrap(),
    );

    // Control files: the conffile, and maintainer scripts that parse and do
    // what the package needs.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/goguard/goguard.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} has mode {mode:o}");
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    for want in [
        "systemd-sysusers goguard.conf",
        "systemd-tmpfiles --create goguard.conf",
        "deb-systemd-helper",
        "[ -d /run/systemd/system ]",
        "selinuxenabled",
        "semodule -i /usr/share/selinux/packages/goguard.pp",
    ] {
        assert!(postinst.contains(want), "postinst lacks `{want}`");
    }
    let prerm = std::fs::read_to_string(control.join("prerm")).unwrap();
    assert!(prerm.contains("systemctl stop goguardd.service goguardd.socket"));
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge"));
    assert!(postrm.contains("semodule -r goguard"));
}

/// Regular files and symlinks under `dir`, as absolute package paths.
fn collect_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            collect_files(root, &path, out);
        } else {
            out.insert(format!("/{}", path.strip_prefix(root).unwrap().display()));
        }
    }
}

/// A built policy package declares goguard's types and carries its file
/// contexts (both are stored as plain strings in the .pp).
fn assert_selinux_module(pp: &[u8]) {
    let text = String::from_utf8_lossy(pp);
    for ty in SELINUX_TYPES {
        assert!(text.contains(ty), "the module does not declare {ty}");
    }
    for fc in [
        "/usr/bin/goguardd",
        "/var/lib/goguard(/.*)?",
        "/run/goguard(/.*)?",
    ] {
        assert!(text.contains(fc), "the module has no file context for {fc}");
    }
}

fn selinux_makefile() {
    assert!(
        Path::new("/usr/share/selinux/devel/Makefile").is_file(),
        "/usr/share/selinux/devel/Makefile is missing: install the Debian package \
         `selinux-policy-dev` (tests/run-all.sh does)"
    );
}

#[test]
fn selinux_module_builds_without_warnings() {
    selinux_makefile();
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(repo().join("packaging/selinux/build.sh")).arg(dir.path()));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    for bad in ["warning", "error"] {
        assert!(
            !said.to_lowercase().contains(bad),
            "the module build printed a {bad}:\n{said}"
        );
    }
    assert_selinux_module(&std::fs::read(dir.path().join("goguard.pp")).unwrap());
}

/// Where tests/run-all.sh unpacks Debian's reference policy modules
/// (selinux-policy-default, not installed); `GOGUARD_TEST_POLICY` overrides it.
const DEFAULT_POLICY: &str = "/opt/goguard-test/selinux-policy-default";

#[test]
fn selinux_module_links_into_the_reference_policy() {
    // Linking the module with every module of Debian's policy and expanding
    // the result resolves each type, attribute and interface the module
    // requires outside optional blocks: what `semodule -i` does on a host.
    selinux_makefile();
    let link = require_tool("semodule_link", "semodule-utils");
    let expand = require_tool("semodule_expand", "semodule-utils");
    let policy = std::env::var_os("GOGUARD_TEST_POLICY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
    assert!(
        policy.join("base.pp").is_file(),
        "{}/base.pp is missing: tests/run-all.sh unpacks Debian's selinux-policy-default \
         there (goguard_fetch_reference_policy in packaging/deps.sh)",
        policy.display()
    );
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(repo().join("packaging/selinux/build.sh")).arg(dir.path()));
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&policy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pp") && !p.ends_with("base.pp"))
        .collect();
    modules.sort();
    assert!(modules.len() > 100, "only {} policy modules", modules.len());
    let linked = dir.path().join("linked.pp");
    run(Command::new(link)
        .arg("-o")
        .arg(&linked)
        .arg(policy.join("base.pp"))
        .args(&modules)
        .arg(dir.path().join("goguard.pp")));
    let binary = dir.path().join("policy.bin");
    run(Command::new(expand).arg(&linked).arg(&binary));
    let expanded = String::from_utf8_lossy(&std::fs::read(&binary).unwrap()).into_owned();
    for ty in SELINUX_TYPES {
        assert!(expanded.contains(ty), "{ty} is not in the expanded policy");
    }
    assert!(expanded.contains("goguard_manage_shared_caches"));
}

#[test]
fn selinux_build_fails_on_a_broken_module() {
    // The same build script on a copy whose .te calls an interface that does
    // not exist: the build must fail, or the test above would prove nothing.
    selinux_makefile();
    let dir = tempfile::tempdir().unwrap();
    for f in ["build.sh", "goguard.te", "goguard.fc", "goguard.if"] {
        std::fs::copy(repo().join("packaging/selinux").join(f), dir.path().join(f)).unwrap();
    }
    let te = dir.path().join("goguard.te");
    let mut text = std::fs::read_to_string(&te).unwrap();
    text.push_str("\ngoguard_no_such_interface(goguard_t)\n");
    std::fs::write(&te, text).unwrap();
    let out = Command::new(dir.path().join("build.sh"))
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a broken module built:\n{}",
        stdout(&out)
    );
    assert!(!dir.path().join("out/goguard.pp").exists());
}

/// The venv with ansible-core, ansible-lint and jinja2.
fn venv() -> PathBuf {
    let venv = std::env::var_os("GOGUARD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
    for tool in ["ansible-playbook", "ansible-lint", "python3"] {
        assert!(
            venv.join("bin").join(tool).is_file(),
            "{}/bin/{tool} is missing: tests/run-all.sh creates this venv with ansible-core, \
             ansible-lint and jinja2 from PyPI",
            venv.display()
        );
    }
    venv
}

/// A command from the venv, run in `cwd` with Ansible's state kept there.
fn venv_command(venv: &Path, tool: &str, cwd: &Path) -> Command {
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(venv.join("bin").join(tool));
    cmd.current_dir(cwd)
        .env("PATH", path)
        .env("HOME", cwd)
        .env("ANSIBLE_HOME", cwd.join(".ansible"))
        .env("ANSIBLE_LOCAL_TEMP", cwd.join(".ansible/tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("NO_COLOR", "1");
    cmd
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn ansible_role_passes_syntax_check_and_lint() {
    let venv = venv();
    // A copy, so ansible-lint's cache never lands in the checkout.
    let dir = tempfile::tempdir().unwrap();
    let play = dir.path().join("ansible");
    copy_tree(&repo().join("packaging/ansible"), &play);
    std::fs::write(
        play.join("inventory"),
        "[goguard_hosts]\nbuild1 ansible_connection=local\n",
    )
    .unwrap();
    let out = run(venv_command(&venv, "ansible-playbook", &play).args([
        "--syntax-check",
        "-i",
        "inventory",
        "site.yml",
    ]));
    assert!(
        stdout(&out).contains("playbook: site.yml"),
        "{}",
        stdout(&out)
    );
    let out = run(venv_command(&venv, "ansible-lint", &play).args([
        "--offline",
        "site.yml",
        "roles/goguard",
    ]));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("0 failure(s), 0 warning(s)"), "{said}");
}

/// Renders the role's template as Ansible's `template` module does
/// (Jinja2 with trim_blocks), with the role's defaults plus `extra` (JSON).
fn render_template(venv: &Path, dir: &Path, extra: &str) -> PathBuf {
    let role = repo().join("packaging/ansible/roles/goguard");
    let script = r#"
import json, sys, jinja2, yaml
role, extra, out = sys.argv[1], sys.argv[2], sys.argv[3]
variables = yaml.safe_load(open(role + "/defaults/main.yml"))
variables.update(json.loads(extra))
env = jinja2.Environment(loader=jinja2.FileSystemLoader(role + "/templates"),
                         trim_blocks=True, keep_trailing_newline=True,
                         undefined=jinja2.StrictUndefined)
open(out, "w").write(env.get_template("goguard.toml.j2").render(**variables))
"#;
    let out = dir.join(format!("goguard.{}.toml", extra.len()));
    run(venv_command(venv, "python3", dir)
        .arg("-c")
        .arg(script)
        .arg(&role)
        .arg(extra)
        .arg(&out));
    out
}

fn check_config(path: &Path) -> Output {
    Command::new(GOGUARDD)
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn ansible_template_renders_a_config_goguardd_accepts() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();

    // The defaults: every section written, and accepted.
    let defaults = render_template(&venv, dir.path(), "{}");
    let text = std::fs::read_to_string(&defaults).unwrap();
    for section in [
        "[daemon]",
        "[audit]",
        "[discovery]",
        "[selinux]",
        "[scan]",
        "[heal]",
    ] {
        assert!(text.contains(section), "no {section} in:\n{text}");
    }
    assert!(text.contains("go_tools = [\"go\", \"compile\""), "{text}");
    let out = check_config(&defaults);
    assert_eq!(out.status.code(), Some(0), "{}\n{text}", stderr(&out));

    // Real Ansible renders the same file and runs the role's `validate:`
    // command (with this build's goguardd) on it.
    let play = dir.path().join("render.yml");
    let via_ansible = dir.path().join("via-ansible.toml");
    std::fs::write(
        &play,
        format!(
            "- name: Render goguard.toml as the role does\n  hosts: localhost\n  connection: local\n  \
             gather_facts: false\n  vars_files:\n    - {role}/defaults/main.yml\n  tasks:\n    \
             - name: Write the config\n      ansible.builtin.template:\n        \
             src: {role}/templates/goguard.toml.j2\n        dest: {dest}\n        mode: \"0644\"\n        \
             validate: {goguardd} --check-config --config %s\n",
            role = repo().join("packaging/ansible/roles/goguard").display(),
            dest = via_ansible.display(),
            goguardd = GOGUARDD,
        ),
    )
    .unwrap();
    run(venv_command(&venv, "ansible-playbook", dir.path())
        .args(["-i", "localhost,", "-e"])
        .arg(format!(
            "ansible_python_interpreter={}",
            venv.join("bin/python3").display()
        ))
        .arg(&play));
    assert_eq!(std::fs::read_to_string(&via_ansible).unwrap(), text);

    // Declared roots, with every kind of value the template writes.
    let roots = r#"{"goguard_roots": [
        {"path": "/opt/go/pkg/mod", "kind": "gomodcache", "owner": "root", "group": "root",
         "acl": ["g:root:rwX", "d:g:root:rwX"],
         "heal": {"owner": "auto", "mode": "auto", "acl": "auto", "label": "alert"}},
        {"path": "/srv/ci/gocache", "kind": "gocache", "owner": 0,
         "mode": {"dir": "2775", "file": "0664"}, "label": "container_file_t"}],
        "goguard_discovery_users": ["ann", "bob"], "goguard_heal_auto": false,
        "goguard_daemon_metrics_listen": "", "goguard_audit_enabled": false}"#;
    let with_roots = render_template(&venv, dir.path(), roots);
    let text = std::fs::read_to_string(&with_roots).unwrap();
    assert_eq!(text.matches("[[root]]").count(), 2, "{text}");
    assert!(
        text.contains(r#"heal = { acl = "auto", label = "alert", mode = "auto", owner = "auto" }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mode = { dir = "2775", file = "0664" }"#),
        "{text}"
    );
    let out = check_config(&with_roots);
    assert_eq!(out.status.code(), Some(0), "{}\n{text}", stderr(&out));

    // A bad value renders, and goguardd refuses it: the role's `validate:`
    // would stop it there.
    let bad = render_template(
        &venv,
        dir.path(),
        r#"{"goguard_daemon_socket_mode": "0400"}"#,
    );
    let out = check_config(&bad);
    assert_eq!(out.status.code(), Some(1), "a bad socket mode was accepted");
    assert!(stderr(&out).contains("socket mode"), "{}", stderr(&out));
}

fn prometheus_dir() -> PathBuf {
    repo().join("packaging/prometheus")
}

#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let promtool = require_tool("promtool", "prometheus");
    let out = run(Command::new(&promtool)
        .args(["check", "rules", "goguard-rules.yml"])
        .current_dir(prometheus_dir()));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let alerts = std::fs::read_to_string(prometheus_dir().join("goguard-rules.yml"))
        .unwrap()
        .lines()
        .filter(|l| l.trim().starts_with("- alert: "))
        .count();
    assert!(alerts >= 10, "{alerts} alerts");
    assert!(
        said.contains(&format!("SUCCESS: {alerts} rules found")),
        "{said}"
    );
    let out = run(Command::new(&promtool)
        .args(["test", "rules", "goguard-rules.test.yml"])
        .current_dir(prometheus_dir()));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("SUCCESS"), "{said}");
    // Every alert has a firing case in the unit tests.
    let rules = std::fs::read_to_string(prometheus_dir().join("goguard-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(prometheus_dir().join("goguard-rules.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let firing = tests.split("- eval_time:").any(|case| {
            case.contains(&format!("alertname: {alert}\n")) && case.contains("exp_labels:")
        });
        assert!(firing, "no test makes {alert} fire");
    }
}

/// Metric names (`goguard_*`, `process_*`) mentioned in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            let w = &text[start..i];
            if w.starts_with("goguard_") || w.starts_with("process_") {
                names.insert(w.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Sample names a scrape can hold, from its `# TYPE` lines (histograms
/// also as `_bucket`, `_sum`, `_count`).
fn scraped_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// The Grafana dashboard's queries, after checking its shape.
fn dashboard_exprs() -> String {
    let path = repo().join("packaging/grafana/goguard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    assert_eq!(dash["title"], "goguard");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    let mut exprs = String::new();
    let mut ids = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {} does not use the datasource variable",
            panel["title"]
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    exprs
}

#[test]
fn dashboard_and_rules_use_only_metrics_goguardd_exports() {
    let dashboard = metric_names(&dashboard_exprs());
    let rules =
        metric_names(&std::fs::read_to_string(prometheus_dir().join("goguard-rules.yml")).unwrap());
    assert!(dashboard.len() > 20 && !rules.is_empty());
    let wanted: BTreeSet<String> = dashboard.union(&rules).cloned().collect();

    // A real goguardd with metrics and the audit follower on a log the test
    // writes; activity makes the labelled families appear: an RPC, a
    // reload, a go-related denial, a malformed line and a truncated log.
    let sb = Sandbox::new();
    let log = sb.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    sb.write_config(&format!(
        "metrics_listen = \"127.0.0.1:0\"\n[audit]\nenabled = true\nlog = \"{}\"\n\
         event_timeout_ms = 200\nretention_days = 0",
        log.display()
    ));
    let daemon = sb.start();
    let addr = status_json(&sb.socket())["metrics_address"]
        .as_str()
        .expect("metrics on")
        .to_owned();
    crate::audit::append_pub(
        &log,
        &crate::audit::avc_event(1, "compile", "write", "/home/ann/.cache/go-build/00"),
    );
    crate::audit::append_pub(&log, "type=AVC msg=audit(garbage\n");
    daemon.signal(nix::sys::signal::Signal::SIGHUP);

    let deadline = Instant::now() + STARTUP;
    let mut truncated = false;
    let missing = loop {
        let (status, _, body) = http_get(&addr, "/metrics", None);
        assert!(status.contains("200"), "{status}");
        let have = scraped_names(&body);
        let missing: Vec<_> = wanted.difference(&have).cloned().collect();
        // Every goguard family the daemon exports has a dashboard panel.
        let unused: Vec<_> = have
            .iter()
            .filter(|n| {
                n.starts_with("goguard_")
                    && !n.ends_with("_bucket")
                    && !n.ends_with("_sum")
                    && !n.ends_with("_count")
            })
            .filter(|n| {
                !["", "_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| dashboard.contains(&format!("{n}{suffix}")))
            })
            .cloned()
            .collect();
        assert!(
            unused.is_empty(),
            "goguardd exports {unused:?}, which packaging/grafana/goguard.json does not show"
        );
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        if !truncated
            && !body.contains("goguard_audit_log_events_total{")
            && have.contains("goguard_audit_denials_total")
        {
            // The denial was read: now truncate the log (copytruncate).
            std::fs::File::create(&log).unwrap();
            crate::audit::append_pub(
                &log,
                &crate::audit::avc_event(2, "link", "read", "/home/ann/.cache/go-build/01"),
            );
            truncated = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        missing.is_empty(),
        "the dashboard or rules use metrics goguardd does not export: {missing:?}\n{}",
        daemon.log_text()
    );
}

/// Where tests/selinux-rhel/build.sh keeps its builds of RHEL's targeted
/// policy (one directory per hash of its inputs); `GOGUARD_RHEL_POLICY_CACHE`
/// overrides it.
const DEFAULT_RHEL_POLICY_CACHE: &str = "/var/tmp/goguard-rhel-policy";

/// Builds (or finds already built) RHEL's targeted policy from Fedora's
/// vendored source with goguard's module in it; returns the directory with
/// policy.conf, file_contexts and file_contexts.homedirs.
fn rhel_policy() -> PathBuf {
    for (tool, package) in [
        ("m4", "m4"),
        ("make", "make"),
        ("checkpolicy", "checkpolicy"),
    ] {
        require_tool(tool, package);
    }
    let cache = std::env::var_os("GOGUARD_RHEL_POLICY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RHEL_POLICY_CACHE));
    let out = run(Command::new(repo().join("tests/selinux-rhel/build.sh")).arg(&cache));
    let dir = PathBuf::from(stdout(&out).lines().last().unwrap_or_default().trim());
    assert!(
        dir.join("policy.conf").is_file() && dir.starts_with(&cache),
        "tests/selinux-rhel/build.sh printed no policy directory:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    dir
}

/// The permissions `sesearch -A -s goguard_t -t TYPE -c CLASS` finds in a
/// binary policy on rules naming goguard_t itself.
fn goguard_perms(sesearch: &Path, policy: &Path, ty: &str, class: &str) -> BTreeSet<String> {
    let out = run(Command::new(sesearch)
        .args(["-A", "-s", "goguard_t", "-t", ty, "-c", class])
        .arg(policy));
    let head = format!("allow goguard_t {ty}:{class} ");
    stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix(&head))
        .flat_map(|rest| {
            rest.split(';')
                .next()
                .unwrap_or_default()
                .trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace())
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn selinux_module_compiles_into_rhel_targeted_policy() {
    // Fedora's own policy tree (RHEL's targeted policy derives from it), its
    // Makefile, m4 and checkpolicy: every interface goguard.te calls exists
    // there (one it lacks is left unexpanded, and build.sh fails on that),
    // the whole policy compiles with it, and the binary policy grants
    // goguard_t what goguard.te says on RHEL's types.
    let sesearch = require_tool("sesearch", "setools");
    let seinfo = require_tool("seinfo", "setools");
    let dir = rhel_policy();
    let policy = dir.join("policy.33");
    assert!(
        policy.is_file(),
        "build.sh left no policy.33 in {}",
        dir.display()
    );
    let info = run(Command::new(&seinfo).arg(&policy).arg("-t"));
    let info = stdout(&info);
    let types: BTreeSet<&str> = info.lines().map(str::trim).collect();
    for ty in SELINUX_TYPES
        .iter()
        .chain(&["cache_home_t", "user_home_t", "container_file_t"])
    {
        assert!(types.contains(ty), "{ty} is not in RHEL's compiled policy");
    }
    // RHEL names the XDG cache type cache_home_t: refpolicy's xdg_cache_t
    // does not exist there, so goguard's optional block for it is off and
    // the one for cache_home_t grants the build cache's rules.
    assert!(!types.contains("xdg_cache_t"));
    let want =
        |perms: &str| -> BTreeSet<String> { perms.split_whitespace().map(str::to_owned).collect() };
    // goguard.te, "Go's build cache": walk, watch, relabel and repair, and
    // the trim's unlink and trim.txt rewrite (list_dir_perms expanded).
    let cache_dir = goguard_perms(&sesearch, &policy, "cache_home_t", "dir");
    let cache_file = goguard_perms(&sesearch, &policy, "cache_home_t", "file");
    let cache_lnk = goguard_perms(&sesearch, &policy, "cache_home_t", "lnk_file");
    for (got, perms) in [
        (
            &cache_dir,
            "getattr search open read lock ioctl setattr relabelfrom relabelto add_name remove_name write watch",
        ),
        (
            &cache_file,
            "getattr read open setattr relabelfrom relabelto create write lock unlink",
        ),
        (&cache_lnk, "getattr read setattr relabelfrom relabelto"),
        (
            &goguard_perms(&sesearch, &policy, "user_home_t", "dir"),
            "getattr search open read setattr relabelfrom relabelto watch",
        ),
        (
            &goguard_perms(&sesearch, &policy, "user_home_t", "file"),
            "getattr read open setattr relabelfrom relabelto",
        ),
        (
            &goguard_perms(&sesearch, &policy, "container_file_t", "file"),
            "getattr read open setattr relabelfrom relabelto",
        ),
    ] {
        let missing: Vec<_> = want(perms).difference(got).cloned().collect();
        assert!(
            missing.is_empty(),
            "goguard_t lacks {missing:?} (has {got:?})"
        );
    }
    // Repairs never create or delete module cache entries.
    let home_file = goguard_perms(&sesearch, &policy, "user_home_t", "file");
    assert!(
        !home_file.contains("unlink") && !home_file.contains("create"),
        "{home_file:?}"
    );
    // The shared-cache boolean is there, off.
    let bools =
        run(Command::new(&seinfo)
            .arg(&policy)
            .args(["-x", "-b", "goguard_manage_shared_caches"]));
    assert!(
        stdout(&bools).contains("bool goguard_manage_shared_caches false;"),
        "{}",
        stdout(&bools)
    );
    // The same compile with the neverallow assertions (build.sh keeps its
    // log; RHEL installs without them): none broken by goguard_t.
    let asserts = std::fs::read_to_string(dir.join("checkpolicy-neverallow.log")).unwrap();
    // It got as far as the assertions (a parse error would stop before them
    // and prove nothing).
    assert!(
        asserts.is_empty() || asserts.contains("neverallow failures occurred"),
        "checkpolicy stopped before the neverallow checks:\n{asserts}"
    );
    let ours: Vec<_> = asserts
        .lines()
        .filter(|l| {
            l.split("violated by")
                .nth(1)
                .is_some_and(|rule| rule.contains("goguard_"))
        })
        .collect();
    assert!(
        ours.is_empty(),
        "goguard_t breaks neverallow rules:\n{}",
        ours.join("\n")
    );
}

#[test]
fn label_judgement_agrees_with_rhel_file_contexts() {
    // goguard's expected labels (goguard_fs::FileContexts, opened as the
    // daemon opens the policy's file_contexts: with .homedirs) against
    // matchpathcon on the same files, for a user's GOCACHE and GOMODCACHE:
    // the expected values come from the tool, not from this test.
    let matchpathcon = require_tool("matchpathcon", "selinux-utils");
    let dir = rhel_policy();
    let fc = dir.join("file_contexts");
    assert!(dir.join("file_contexts.homedirs").is_file());
    let ours =
        goguard_fs::FileContexts::open_full(&fc).expect("goguard reads RHEL's file_contexts");
    let cases: &[(&str, &str, u32)] = &[
        ("/home/u/.cache", "dir", libc::S_IFDIR),
        ("/home/u/.cache/go-build", "dir", libc::S_IFDIR),
        ("/home/u/.cache/go-build/3f", "dir", libc::S_IFDIR),
        ("/home/u/.cache/go-build/3f/3f9a0c-d", "file", libc::S_IFREG),
        ("/home/u/.cache/go-build/trim.txt", "file", libc::S_IFREG),
        ("/home/u/go", "dir", libc::S_IFDIR),
        ("/home/u/go/pkg/mod", "dir", libc::S_IFDIR),
        ("/home/u/go/pkg/mod/cache/download", "dir", libc::S_IFDIR),
        (
            "/home/u/go/pkg/mod/golang.org/x/mod@v0.20.0/go.mod",
            "file",
            libc::S_IFREG,
        ),
        ("/home/u", "dir", libc::S_IFDIR),
    ];
    let mut types = BTreeSet::new();
    for (path, kind, mode) in cases {
        let out = run(Command::new(&matchpathcon)
            .arg("-f")
            .arg(&fc)
            .args(["-m", kind, path]));
        let text = stdout(&out);
        let want = text
            .split_whitespace()
            .last()
            .unwrap_or_else(|| panic!("matchpathcon said nothing for {path}"));
        let got = ours.lookup(Path::new(path), *mode);
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{path}: goguard expects {got:?}, RHEL's file_contexts say {want}"
        );
        types.insert(format!(
            "{path} {}",
            goguard_fs::label::parse_context(want).unwrap().type_
        ));
    }
    // What RHEL's policy says, as matchpathcon read it: the build cache is
    // cache_home_t (not refpolicy's xdg_cache_t), the module cache user_home_t.
    let types: Vec<_> = types.into_iter().collect();
    assert!(
        types.contains(&"/home/u/.cache/go-build/3f/3f9a0c-d cache_home_t".to_string()),
        "{types:#?}"
    );
    assert!(
        types.contains(&"/home/u/go/pkg/mod/cache/download user_home_t".to_string()),
        "{types:#?}"
    );
}

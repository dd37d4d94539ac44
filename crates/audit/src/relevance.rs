//! Is a denial about Go? Pure matching of an [`Avc`] against the Go toolchain's process
//! names and the cache roots goguard guards.
//!
//! An AVC is go-related when
//! - its `comm`, or the last component of its `exe`, is a Go tool name (`go`, `compile`,
//!   `link`, ..., or a pattern such as `*.test`): exact matches only, so `gopher`, `good`
//!   and `gobject` are not Go tools (unlike `ausearch -c go`, which matches substrings);
//! - or its `exe` lies in a GOROOT's tool directory: `.../pkg/tool/<goos_goarch>/<tool>`
//!   (`/usr/lib/golang/pkg/tool/linux_amd64/compile`, `/usr/lib/go-1.19/pkg/tool/...`);
//! - or its object path lies under one of the given cache roots, compared component by
//!   component: `/home/a/.cache/go-build2` is not under `/home/a/.cache/go-build`.
//!
//! Relative roots are ignored (an AVC's path is absolute or unknown). This module never
//! touches the filesystem: no canonicalization, no symlink resolution.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::avc::Avc;

/// The Go tool names and patterns matched by default.
pub const DEFAULT_GO_TOOLS: [&str; 12] = [
    "go", "compile", "link", "asm", "cgo", "vet", "cover", "buildid", "pack", "gofmt", "gopls",
    "*.test",
];

/// Why an AVC is go-related (the first reason found, in the order of the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relevance {
    /// `comm` is a Go tool name.
    Comm,
    /// The last component of `exe` is a Go tool name.
    Exe,
    /// `exe` is in a GOROOT's `pkg/tool/<goos_goarch>/`.
    GorootTool,
    /// The object path is under this cache root.
    CacheRoot(PathBuf),
}

/// The Go tool matcher: names (`go`) and glob patterns (`*.test`; `*` is any run of
/// characters, `?` one character), plus the GOROOT `pkg/tool/` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTools {
    names: Vec<String>,
    globs: Vec<String>,
    goroot_tools: bool,
}

impl Default for GoTools {
    /// [`DEFAULT_GO_TOOLS`] with the GOROOT `pkg/tool/` rule.
    fn default() -> GoTools {
        GoTools::new(DEFAULT_GO_TOOLS.iter().map(|s| s.to_string()).collect())
    }
}

impl GoTools {
    /// A matcher for these names and patterns (an entry with `*` or `?` is a pattern), with
    /// the GOROOT `pkg/tool/` rule on. Empty entries are ignored.
    pub fn new(patterns: Vec<String>) -> GoTools {
        let (globs, names): (Vec<String>, Vec<String>) = patterns
            .into_iter()
            .filter(|p| !p.is_empty())
            .partition(|p| p.contains(['*', '?']));
        GoTools {
            names,
            globs,
            goroot_tools: true,
        }
    }

    /// Turns the GOROOT `pkg/tool/<goos_goarch>/` rule on or off.
    pub fn with_goroot_tools(mut self, on: bool) -> GoTools {
        self.goroot_tools = on;
        self
    }

    /// The names and patterns, names first.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.names.iter().chain(&self.globs).map(String::as_str)
    }

    /// True when `name` (a `comm`, or the last component of an `exe`) is a Go tool.
    pub fn is_tool_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
            || self
                .globs
                .iter()
                .any(|g| glob_match(g.as_bytes(), name.as_bytes()))
    }

    /// True when `exe` is a Go tool by its last component or by the GOROOT rule.
    pub fn is_tool_exe(&self, exe: &Path) -> bool {
        self.exe_relevance(exe).is_some()
    }

    fn exe_relevance(&self, exe: &Path) -> Option<Relevance> {
        if exe
            .file_name()
            .is_some_and(|n| self.is_tool_name(&n.to_string_lossy()))
        {
            return Some(Relevance::Exe);
        }
        (self.goroot_tools && in_goroot_tool_dir(exe)).then_some(Relevance::GorootTool)
    }

    /// Why `avc` is go-related, or `None`. `roots` are absolute cache roots (GOCACHE,
    /// GOMODCACHE, ...).
    pub fn relevance<P: AsRef<Path>>(&self, avc: &Avc, roots: &[P]) -> Option<Relevance> {
        if avc.comm.as_deref().is_some_and(|c| self.is_tool_name(c)) {
            return Some(Relevance::Comm);
        }
        if let Some(r) = avc.exe.as_deref().and_then(|e| self.exe_relevance(e)) {
            return Some(r);
        }
        let path = avc.path.as_deref()?;
        if !path.is_absolute() {
            return None;
        }
        let path_is_normal = is_normal(path.as_os_str().as_bytes());
        roots
            .iter()
            .map(AsRef::as_ref)
            .find(|root| root.is_absolute() && is_under(path, path_is_normal, root))
            .map(|root| Relevance::CacheRoot(root.to_path_buf()))
    }

    /// True when `avc` is go-related (see the module doc).
    pub fn is_go_related<P: AsRef<Path>>(&self, avc: &Avc, roots: &[P]) -> bool {
        self.relevance(avc, roots).is_some()
    }
}

/// `path.starts_with(root)` (component-wise), with a byte comparison when both are in normal
/// form (absolute, no `//`, no `.` component, no trailing `/`): then the two agree, and the
/// byte test is several times cheaper than walking components.
fn is_under(path: &Path, path_is_normal: bool, root: &Path) -> bool {
    let (p, r) = (path.as_os_str().as_bytes(), root.as_os_str().as_bytes());
    if path_is_normal && is_normal(r) {
        return p.starts_with(r) && (p.len() == r.len() || p[r.len()] == b'/' || r == b"/");
    }
    path.starts_with(root)
}

fn is_normal(b: &[u8]) -> bool {
    if b.first() != Some(&b'/') || (b.len() > 1 && b.last() == Some(&b'/')) || b.ends_with(b"/.") {
        return false;
    }
    // No `//` and no `/./`: a slash may only follow a byte that is neither `/` nor a `.`
    // that itself follows a slash.
    let (mut prev, mut prev2) = (0u8, 0u8);
    for &c in b {
        if c == b'/' && (prev == b'/' || (prev == b'.' && prev2 == b'/')) {
            return false;
        }
        (prev2, prev) = (prev, c);
    }
    true
}

/// `.../pkg/tool/<dir>/<file>`.
fn in_goroot_tool_dir(exe: &Path) -> bool {
    let mut last = exe.components().rev();
    matches!(
        (last.next(), last.next(), last.next(), last.next()),
        (
            Some(Component::Normal(_)),
            Some(Component::Normal(_)),
            Some(Component::Normal(tool)),
            Some(Component::Normal(pkg)),
        ) if tool == "tool" && pkg == "pkg"
    )
}

/// Wildcard match: `*` matches any run of bytes, `?` one byte.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avc::{AvcKind, Decision};
    use crate::event::EventId;
    use crate::record::{EventTime, Format};

    fn avc(comm: Option<&str>, exe: Option<&str>, path: Option<&str>) -> Avc {
        Avc {
            id: EventId {
                node: None,
                timestamp: "1.000".into(),
                time: EventTime::default(),
                serial: 1,
            },
            kind: AvcKind::Kernel,
            format: Format::Raw,
            decision: Decision::Denied,
            permissions: vec!["write".into()],
            pid: None,
            comm: comm.map(Into::into),
            exe: exe.map(PathBuf::from),
            name: None,
            path: path.map(PathBuf::from),
            path_source: None,
            dev: None,
            ino: None,
            scontext: None,
            tcontext: None,
            tclass: None,
            permissive: None,
            syscall: None,
            success: None,
            exit: None,
            uid: None,
            auid: None,
            cwd: None,
            proctitle: None,
        }
    }

    const NO_ROOTS: &[&str] = &[];

    #[test]
    fn tool_names_exact_and_patterns() {
        let g = GoTools::default();
        for name in DEFAULT_GO_TOOLS.iter().filter(|n| !n.contains('*')) {
            assert!(g.is_tool_name(name), "{name}");
        }
        assert!(g.is_tool_name("mypkg.test"));
        for name in [
            "gopher",
            "good",
            "gobject",
            "golangci-lint",
            "cargo",
            "go.testx",
            ".tes",
            "",
        ] {
            assert!(!g.is_tool_name(name), "{name}");
        }
        assert!(g.is_tool_name(".test"));
    }

    #[test]
    fn comm_exe_and_goroot_tools() {
        let g = GoTools::default();
        assert_eq!(
            g.relevance(&avc(Some("go"), None, None), NO_ROOTS),
            Some(Relevance::Comm)
        );
        assert!(!g.is_go_related(&avc(Some("gopher"), None, None), NO_ROOTS));
        // comm is truncated to 15 bytes; the exe still names the test binary.
        let t = avc(
            Some("averylongpackag"),
            Some("/tmp/go-build1/b001/averylongpackage.test"),
            None,
        );
        assert_eq!(g.relevance(&t, NO_ROOTS), Some(Relevance::Exe));
        for exe in [
            "/usr/lib/go-1.19/pkg/tool/linux_amd64/compile",
            "/usr/lib/golang/pkg/tool/linux_arm64/objdump",
            "/usr/local/go/pkg/tool/linux_amd64/trace",
        ] {
            let a = avc(Some("x"), Some(exe), None);
            assert!(g.is_go_related(&a, NO_ROOTS), "{exe}");
        }
        let not = avc(Some("x"), Some("/usr/lib/golang/pkg/tool"), None);
        assert!(!g.is_go_related(&not, NO_ROOTS));
        let off = GoTools::default().with_goroot_tools(false);
        let a = avc(
            Some("x"),
            Some("/usr/lib/golang/pkg/tool/linux_amd64/objdump"),
            None,
        );
        assert!(!off.is_go_related(&a, NO_ROOTS));
    }

    #[test]
    fn cache_roots_are_component_prefixes() {
        let g = GoTools::default();
        let roots = [
            "/home/a/.cache/go-build",
            "relative/root",
            "/opt/go/pkg/mod",
        ];
        let under = avc(Some("bash"), None, Some("/home/a/.cache/go-build/00/x-d"));
        assert_eq!(
            g.relevance(&under, &roots),
            Some(Relevance::CacheRoot(PathBuf::from(
                "/home/a/.cache/go-build"
            )))
        );
        let root_itself = avc(Some("bash"), None, Some("/opt/go/pkg/mod"));
        assert!(g.is_go_related(&root_itself, &roots));
        let sibling = avc(Some("bash"), None, Some("/home/a/.cache/go-build2/00"));
        assert!(!g.is_go_related(&sibling, &roots));
        let rel = avc(Some("bash"), None, Some("relative/root/x"));
        assert!(!g.is_go_related(&rel, &roots));
        let none = avc(Some("bash"), None, None);
        assert!(!g.is_go_related(&none, &roots));
        let owned: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
        assert!(g.is_go_related(&under, &owned));
    }

    #[test]
    fn configurable_list() {
        let g = GoTools::new(vec!["dlv".into(), "go?".into(), "".into()]);
        assert!(g.is_tool_name("dlv"));
        assert!(g.is_tool_name("go1"));
        assert!(!g.is_tool_name("go"));
        assert_eq!(g.patterns().collect::<Vec<_>>(), ["dlv", "go?"]);
    }

    #[test]
    fn byte_prefix_agrees_with_components() {
        let cases = [
            ("/a/b/c", "/a/b", true),
            ("/a/b", "/a/b", true),
            ("/a/bc", "/a/b", false),
            ("/a/b/c", "/", true),
            ("/a//b/c", "/a/b", true),
            ("/a/./b/c", "/a/b/", true),
            ("/a/b/c", "/a/b/.", true),
            ("/x", "/a", false),
        ];
        for (p, r, want) in cases {
            let normal = is_normal(p.as_bytes());
            assert_eq!(
                is_under(Path::new(p), normal, Path::new(r)),
                want,
                "{p} under {r}"
            );
            assert_eq!(Path::new(p).starts_with(r), want, "std: {p} under {r}");
        }
    }

    #[test]
    fn normal_form() {
        for (p, want) in [
            ("/", true),
            ("/a/b", true),
            ("/a/.b/c.", true),
            ("a/b", false),
            ("/a/", false),
            ("/a//b", false),
            ("/a/./b", false),
            ("/a/.", false),
        ] {
            assert_eq!(is_normal(p.as_bytes()), want, "{p}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*.test", b"a.test"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXbYbc"));
        assert!(!glob_match(b"a*b*c", b"aXbY"));
        assert!(glob_match(b"??", b"ab"));
        assert!(!glob_match(b"??", b"abc"));
    }
}

//! The `[[root]]` entries of `goguard.toml`: serde types the daemon's config embeds.
//!
//! Every value is checked *inside* its `Deserialize` impl, so `toml` reports a bad value
//! with its line and column; unknown keys are errors (`deny_unknown_fields`). Checks that
//! need two fields (e.g. `heal.acl = "auto"` without `acl`) run in `try_from` on the whole
//! table, so their span is that `[[root]]` table.
//!
//! ```toml
//! [[root]]
//! path = "/opt/go/pkg/mod"
//! kind = "gomodcache"              # gocache | gomodcache | gopath | custom
//! owner = "root"                   # name or uid; unset = entries may have many owners
//! group = "gobuild"                # name or gid; unset = not checked
//! mode = "go"                      # or { dir = "2775", file = "0664" }
//!                                  # or { dir_require = "2070", file_forbid = "0002", … }
//! acl = ["g:gobuild:rwX", "d:g:gobuild:rwX"]
//! label = "container_file_t"       # a type, or a full context; unset = file_contexts
//! heal = { owner = "auto", mode = "auto", acl = "auto", label = "auto", world_writable = "alert" }
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::acl::AclRule;

/// What a root holds, which decides the layout rules that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// A `GOCACHE` (build cache).
    GoCache,
    /// A `GOMODCACHE` (module cache: read-only extracted modules are normal).
    GoModCache,
    /// A whole `GOPATH` (`pkg/mod` inside it is a module cache).
    GoPath,
    /// Anything else: only the declared rules apply.
    Custom,
}

impl RootKind {
    /// The lowercase name used in config and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::GoCache => "gocache",
            RootKind::GoModCache => "gomodcache",
            RootKind::GoPath => "gopath",
            RootKind::Custom => "custom",
        }
    }

    /// The Go variable a user's root of this kind comes from.
    pub fn env_var(self) -> &'static str {
        match self {
            RootKind::GoModCache => "GOMODCACHE",
            RootKind::GoPath => "GOPATH",
            RootKind::GoCache | RootKind::Custom => "GOCACHE",
        }
    }
}

/// What to do about a kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealAction {
    /// Repair at once (through the loop guard).
    Auto,
    /// Report, change nothing.
    Alert,
    /// Do not even report.
    Off,
}

/// A heal setting for drift goguard never repairs itself (symlinks, mixed owners, odd file
/// types): `alert` or `off` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertOnly(pub HealAction);

impl<'de> Deserialize<'de> for AlertOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match HealAction::deserialize(d)? {
            HealAction::Auto => Err(de::Error::custom(
                "this drift is never repaired automatically (goguard does not change symlinks, \
                 owners of shared roots or special files): use \"alert\" or \"off\"",
            )),
            a => Ok(AlertOnly(a)),
        }
    }
}

/// `heal = { … }`: per class of drift; unset fields take the defaults of
/// [`crate::roots::HealPolicy::for_declared`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealDecl {
    /// Foreign owner, wrong group.
    pub owner: Option<HealAction>,
    /// Mode bits other than world-write.
    pub mode: Option<HealAction>,
    /// World-writable entries.
    pub world_writable: Option<HealAction>,
    /// Missing, extra or wrong ACL entries, narrow mask.
    pub acl: Option<HealAction>,
    /// SELinux type differs from the expected one.
    pub label: Option<HealAction>,
    /// Symlinks leaving the root.
    pub symlink: Option<AlertOnly>,
    /// Several owners in one root.
    pub mixed_owners: Option<AlertOnly>,
    /// Devices, fifos, sockets in a cache.
    pub file_type: Option<AlertOnly>,
}

/// A user or group, by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A name, resolved against passwd/group when the root is built.
    Name(String),
    /// A numeric id.
    Id(u32),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Name(n) => f.write_str(n),
            Principal::Id(i) => write!(f, "{i}"),
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Principal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user or group name, or a numeric id")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Principal, E> {
                if s.is_empty() || s.contains([':', ',', ' ', '\n', '\t']) {
                    return Err(E::custom(format!(
                        "{s:?} is not a valid user or group name"
                    )));
                }
                Ok(s.parse()
                    .map_or_else(|_| Principal::Name(s.to_owned()), Principal::Id))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Principal, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&v| v != u32::MAX)
                    .map(Principal::Id)
                    .ok_or_else(|| E::custom(format!("{v} is not a valid id")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Principal, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
        }
        d.deserialize_any(V)
    }
}

/// An absolute, normalized path (no `.`/`..`, no repeated or trailing `/`, not `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RootPath(pub PathBuf);

impl<'de> Deserialize<'de> for RootPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let trimmed = if s.len() > 1 {
            s.trim_end_matches('/')
        } else {
            &s
        };
        if !trimmed.starts_with('/') {
            return Err(de::Error::custom(format!(
                "root path {s:?} must be absolute"
            )));
        }
        if trimmed == "/" || trimmed.is_empty() {
            return Err(de::Error::custom(
                "the filesystem root cannot be a cache root",
            ));
        }
        if crate::goenv::clean(trimmed) != trimmed {
            return Err(de::Error::custom(format!(
                "root path {s:?} must be normalized (no \"//\", \".\" or \"..\")"
            )));
        }
        Ok(RootPath(PathBuf::from(trimmed)))
    }
}

/// Required and forbidden permission bits (`0o7777` range).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ModeBits {
    /// Bits that must be set.
    pub require: u32,
    /// Bits that must be clear.
    pub forbid: u32,
}

/// `mode = …`: Go's own modes, or declared bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ModePolicy {
    /// Go's modes (umask-dependent, so not exact): the owner can read and write (and search
    /// directories) where Go writes, read (and search) in read-only module trees; files are
    /// never setuid/setgid. World-write is its own rule.
    #[default]
    Go,
    /// Declared bits per type. File execute bits are never forbidden by an exact `file` mode
    /// (Go caches executables); write bits are never required inside read-only module trees.
    Declared {
        /// Directories.
        dir: ModeBits,
        /// Regular files.
        file: ModeBits,
    },
}

fn parse_octal<E: de::Error>(field: &str, s: &str) -> Result<u32, E> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o7777 => Ok(m),
        _ => Err(E::custom(format!(
            "{field}: {s:?} is not an octal mode like \"2775\""
        ))),
    }
}

impl<'de> Deserialize<'de> for ModePolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            dir: Option<String>,
            file: Option<String>,
            dir_require: Option<String>,
            dir_forbid: Option<String>,
            file_require: Option<String>,
            file_forbid: Option<String>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModePolicy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"go\" or a table like { dir = \"2775\", file = \"0664\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ModePolicy, E> {
                match s {
                    "go" => Ok(ModePolicy::Go),
                    _ => Err(E::custom(format!(
                        "mode {s:?}: use \"go\" or a table like {{ dir = \"2775\", file = \"0664\" }}"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ModePolicy, E> {
                Err(E::custom(
                    "write modes as strings in a table, e.g. { dir = \"2775\" }",
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModePolicy, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let bits = |exact: &Option<String>,
                            req: &Option<String>,
                            forb: &Option<String>,
                            name: &str,
                            is_file: bool|
                 -> Result<ModeBits, A::Error> {
                    if exact.is_some() && (req.is_some() || forb.is_some()) {
                        return Err(de::Error::custom(format!(
                            "{name}: give either {name} or {name}_require/{name}_forbid"
                        )));
                    }
                    let mut b = ModeBits::default();
                    if let Some(e) = exact {
                        let m = parse_octal::<A::Error>(name, e)?;
                        let x = if is_file { 0o111 } else { 0 };
                        b = ModeBits {
                            require: m,
                            forbid: 0o7777 & !m & !x,
                        };
                    }
                    if let Some(r) = req {
                        b.require = parse_octal::<A::Error>(&format!("{name}_require"), r)?;
                    }
                    if let Some(f) = forb {
                        b.forbid = parse_octal::<A::Error>(&format!("{name}_forbid"), f)?;
                    }
                    if b.require & b.forbid != 0 {
                        return Err(de::Error::custom(format!(
                            "{name}: bits {:04o} are both required and forbidden",
                            b.require & b.forbid
                        )));
                    }
                    if b.require & 0o002 != 0 {
                        return Err(de::Error::custom(format!(
                            "{name}: a cache must not be world-writable; declare a group or ACL"
                        )));
                    }
                    if is_file && b.require & 0o6000 != 0 {
                        return Err(de::Error::custom(
                            "file: setuid/setgid files have no place in a cache",
                        ));
                    }
                    Ok(b)
                };
                Ok(ModePolicy::Declared {
                    dir: bits(&t.dir, &t.dir_require, &t.dir_forbid, "dir", false)?,
                    file: bits(&t.file, &t.file_require, &t.file_forbid, "file", true)?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for AclRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AclRule::parse(&s).map_err(de::Error::custom)
    }
}

/// `label = …`: an SELinux type (`container_file_t`) or a full context
/// (`system_u:object_r:container_file_t:s0`) that replaces file_contexts' answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelOverride {
    /// The type every entry must have.
    pub type_: String,
    /// The full context, when given (used for entries without any label).
    pub context: Option<String>,
}

impl<'de> Deserialize<'de> for LabelOverride {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok_word = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        let parts: Vec<&str> = s.splitn(4, ':').collect();
        match parts.as_slice() {
            [t] if ok_word(t) => Ok(LabelOverride {
                type_: (*t).to_owned(),
                context: None,
            }),
            [u, r, t, ..] if ok_word(u) && ok_word(r) && ok_word(t) => Ok(LabelOverride {
                type_: (*t).to_owned(),
                context: Some(s.clone()),
            }),
            _ => Err(de::Error::custom(format!(
                "label {s:?}: expected a type like \"container_file_t\" or a context \
                 like \"system_u:object_r:container_file_t:s0\""
            ))),
        }
    }
}

/// One `[[root]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRootDecl")]
pub struct RootDecl {
    /// The root directory.
    pub path: PathBuf,
    /// What it holds.
    pub kind: RootKind,
    /// Owner of every entry; `None` = a shared root whose entries have many owners.
    pub owner: Option<Principal>,
    /// Group of every entry; `None` = not checked.
    pub group: Option<Principal>,
    /// Mode rules.
    pub mode: ModePolicy,
    /// True when `mode` was written (the default heal for mode depends on it).
    pub mode_declared: bool,
    /// ACL entries every entry must carry (`d:` ones on directories); `None` = ACLs are not
    /// checked; `Some([])` = no named entries allowed.
    pub acl: Option<Vec<AclRule>>,
    /// Label override.
    pub label: Option<LabelOverride>,
    /// Heal settings as written.
    pub heal: HealDecl,
    /// Size cap in bytes (GOCACHE roots only): trims evict least-recently-used entries
    /// beyond it.
    pub max_size: Option<u64>,
}

/// A size in bytes, written as a number of bytes or a string with a unit: `"512M"`,
/// `"20GiB"`, `"1.5G"` (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB are
/// powers of 1000, as `du --si` writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `text` (see the type's doc).
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" | "k" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "T" | "TiB" => 1 << 40,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?} (use K, M, G, T, KiB.., KB..)"
                ));
            }
        };
        let value: f64 = num.parse().map_err(|_| {
            format!("{text:?} is not a size (examples: 1073741824, \"512M\", \"20GiB\")")
        })?;
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("{text:?} is out of range (at least 1 byte)"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(0) => Err(serde::de::Error::custom("a size must be at least 1 byte")),
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRootDecl {
    path: RootPath,
    kind: RootKind,
    owner: Option<Principal>,
    group: Option<Principal>,
    mode: Option<ModePolicy>,
    acl: Option<Vec<AclRule>>,
    label: Option<LabelOverride>,
    #[serde(default)]
    heal: HealDecl,
    max_size: Option<ByteSize>,
}

impl TryFrom<RawRootDecl> for RootDecl {
    type Error = String;
    fn try_from(r: RawRootDecl) -> Result<Self, String> {
        let path = r.path.0.display().to_string();
        if r.heal.acl == Some(HealAction::Auto) && r.acl.is_none() {
            return Err(format!(
                "root {path}: heal.acl = \"auto\" needs an `acl` list"
            ));
        }
        if r.heal.owner == Some(HealAction::Auto) && r.owner.is_none() && r.group.is_none() {
            return Err(format!(
                "root {path}: heal.owner = \"auto\" needs `owner` or `group`"
            ));
        }
        if r.max_size.is_some() && r.kind != RootKind::GoCache {
            return Err(format!(
                "root {path}: max_size applies to kind = \"gocache\" roots only (Go trims only \
                 its build cache)"
            ));
        }
        if let Some(acl) = &r.acl {
            let mut seen = std::collections::HashSet::new();
            for rule in acl {
                if !seen.insert((rule.default, rule.subject.clone())) {
                    return Err(format!(
                        "root {path}: ACL entry {:?} is given twice",
                        rule.text
                    ));
                }
            }
        }
        Ok(RootDecl {
            path: r.path.0,
            kind: r.kind,
            owner: r.owner,
            group: r.group,
            mode_declared: r.mode.is_some(),
            mode: r.mode.unwrap_or_default(),
            acl: r.acl,
            label: r.label,
            heal: r.heal,
            max_size: r.max_size.map(|s| s.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        root: Vec<RootDecl>,
    }

    fn parse(text: &str) -> Result<Doc, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn full_entry() {
        let doc = parse(
            r#"
[[root]]
path = "/opt/go/pkg/mod/"
kind = "gomodcache"
owner = "root"
group = 2000
mode = { dir = "2775", file = "0664" }
acl = ["g:gobuild:rwX", "d:g:gobuild:rwX"]
label = "system_u:object_r:container_file_t:s0"
heal = { owner = "auto", mode = "auto", acl = "auto", label = "auto", world_writable = "alert", symlink = "off" }
"#,
        )
        .unwrap();
        let r = &doc.root[0];
        assert_eq!(r.path, PathBuf::from("/opt/go/pkg/mod"));
        assert_eq!(r.group, Some(Principal::Id(2000)));
        assert_eq!(r.owner, Some(Principal::Name("root".into())));
        assert_eq!(
            r.mode,
            ModePolicy::Declared {
                dir: ModeBits {
                    require: 0o2775,
                    forbid: 0o5002
                },
                file: ModeBits {
                    require: 0o664,
                    forbid: 0o7002
                },
            }
        );
        assert_eq!(r.label.as_ref().unwrap().type_, "container_file_t");
        assert_eq!(r.acl.as_ref().unwrap().len(), 2);
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        let span = e.span().expect("span");
        format!("{} @{}", e.message(), &text[span])
    }

    #[test]
    fn errors_point_at_the_value() {
        let base = "[[root]]\npath = \"/c\"\nkind = \"gocache\"\n";
        let e = err(&format!("{base}acl = [\"g:gobuild:rwz\"]\n"));
        // toml reports an array element with the span of its array (still the right line).
        assert!(
            e.contains("rwz") && e.ends_with("@[\"g:gobuild:rwz\"]"),
            "{e}"
        );
        let e = err(&format!("{base}mode = {{ dir = \"0777\" }}\n"));
        assert!(e.contains("world-writable"), "{e}");
        let e = err(&format!("{base}heal = {{ symlink = \"auto\" }}\n"));
        assert!(
            e.contains("never repaired") && e.ends_with("@\"auto\""),
            "{e}"
        );
        let e = err(&format!("{base}colour = 1\n"));
        assert!(e.contains("unknown field"), "{e}");
        let e = err("[[root]]\npath = \"rel\"\nkind = \"gocache\"\n");
        assert!(e.contains("absolute") && e.ends_with("@\"rel\""), "{e}");
        let e = err("[[root]]\npath = \"/a/../b\"\nkind = \"gocache\"\n");
        assert!(e.contains("normalized"), "{e}");
        let e = err("[[root]]\npath = \"/a\"\nkind = \"gocahce\"\n");
        assert!(e.contains("gocahce"), "{e}");
        let e = err(&format!("{base}heal = {{ acl = \"auto\" }}\n"));
        assert!(e.contains("needs an `acl`"), "{e}");
        let e = err(&format!("{base}mode = 755\n"));
        assert!(e.contains("strings"), "{e}");
        let e = err(&format!(
            "{base}mode = {{ dir = \"2775\", dir_forbid = \"0002\" }}\n"
        ));
        assert!(e.contains("either"), "{e}");
        let e = err(&format!("{base}label = \"a b\"\n"));
        assert!(e.contains("label"), "{e}");
        let e = err(&format!("{base}owner = -1\n"));
        assert!(e.contains("not a valid id"), "{e}");
        let e = err(&format!("{base}acl = [\"g:a:r\", \"g:a:rw\"]\n"));
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn defaults() {
        let doc = parse("[[root]]\npath = \"/c\"\nkind = \"custom\"\n").unwrap();
        let r = &doc.root[0];
        assert_eq!(
            (r.mode, r.mode_declared, r.acl.is_none()),
            (ModePolicy::Go, false, true)
        );
        assert_eq!(r.heal, HealDecl::default());
        assert_eq!(r.max_size, None);
    }

    #[test]
    fn sizes_parse_with_units_and_apply_to_build_caches_only() {
        for (text, bytes) in [
            ("1", 1),
            ("512M", 512 << 20),
            ("20GiB", 20 << 30),
            ("1.5G", 3 << 29),
            ("2GB", 2_000_000_000),
            (" 10 KiB ", 10 << 10),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in ["", "G", "12X", "-1", "0", "1e400"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
        let base = "[[root]]\npath = \"/c\"\nkind = \"gocache\"\n";
        let doc = parse(&format!("{base}max_size = \"10G\"\n")).unwrap();
        assert_eq!(doc.root[0].max_size, Some(10 << 30));
        let doc = parse(&format!("{base}max_size = 4096\n")).unwrap();
        assert_eq!(doc.root[0].max_size, Some(4096));
        let e = err(&format!("{base}max_size = \"10Q\"\n"));
        assert!(e.contains("unknown size unit"), "{e}");
        let e = err("[[root]]\npath = \"/m\"\nkind = \"gomodcache\"\nmax_size = \"1G\"\n");
        assert!(
            e.contains("applies to kind = \"gocache\" roots only"),
            "{e}"
        );
    }
}

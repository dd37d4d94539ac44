//! systemd `environment.d` (the user manager's environment), parsed and merged as
//! `systemd-environment-d-generator` does, so a user's `GOCACHE`/`GOPATH`/`XDG_*` overrides
//! set there are seen.
//!
//! Sources (systemd `src/environment-d-generator/environment-d-generator.c`,
//! `src/basic/env-file.c`, `src/basic/env-util.c`, `man 5 environment.d`):
//! - directories, highest priority first: `$XDG_CONFIG_HOME/environment.d` (else
//!   `~/.config/environment.d`), `/etc/environment.d`, `/run/environment.d`,
//!   `/usr/local/lib/environment.d`, `/usr/lib/environment.d`; only `*.conf`; a name in a
//!   higher-priority directory hides the same name below; all files are then read in
//!   lexical order of their *names* ([`conf_file_order`]);
//! - file syntax (`parse_env_file_internal`): `KEY=VALUE` per line; leading whitespace
//!   skipped; lines starting with `#` or `;` are comments (a comment ending in `\` swallows
//!   the next line too — systemd ≤ 253, which Debian 12 ships; 254 changed it); whitespace
//!   around the key and the unquoted value is trimmed; `'…'` is literal; `"…"` takes `\` before
//!   `"` `\` `` ` `` `$` (and before a newline, a continuation), else keeps the `\`; an
//!   unquoted `\` escapes the next character (`\`+newline continues the line); quotes may
//!   span lines; a line without `=` is ignored;
//! - each value is then expanded (`replace_env` with `USE_ENVIRONMENT|ALLOW_BRACELESS|
//!   ALLOW_EXTENDED`): `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alt}` (nested),
//!   `$$` → `$`; names are looked up in the variables merged so far, then in the generator's
//!   own environment (the manager's: `HOME`, `USER`, `PATH`…); unknown → empty. Quotes are
//!   removed *before* expansion, so `'$HOME'` is expanded too. Invalid keys are ignored.
//!
//! The tests compare [`merge_files`] with the real generator for the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::goenv::EnvMap;

/// The system `environment.d` directories, highest priority first (after the user's own).
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc/environment.d",
    "/run/environment.d",
    "/usr/local/lib/environment.d",
    "/usr/lib/environment.d",
];

/// The user's own `environment.d` directory for a home directory (`sd_path_lookup
/// (SD_PATH_USER_CONFIGURATION)`; goguard does not know a session's `$XDG_CONFIG_HOME`).
pub fn user_dir(home: &Path) -> PathBuf {
    home.join(".config/environment.d")
}

/// One `KEY=VALUE` assignment as the file states it (quotes and escapes removed, not yet
/// expanded), with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key, trimmed (not validated yet).
    pub key: String,
    /// The value after quote and escape processing.
    pub value: String,
    /// Line of the end of the assignment.
    pub line: u32,
}

/// Parses one file's text with `parse_env_file_internal` semantics.
pub fn parse_file(text: &str) -> Vec<Assignment> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    const WS: &[char] = &[' ', '\t', '\n', '\r'];
    const NL: &[char] = &['\n', '\r'];
    let mut out = Vec::new();
    let mut st = St::PreKey;
    let (mut key, mut value) = (String::new(), String::new());
    let (mut key_ws, mut value_ws): (Option<usize>, Option<usize>) = (None, None);
    let mut line = 1u32;

    // An empty value (`A=`, `A=""`) leaves systemd's value NULL, and merge_env_file_push
    // ignores it ("invalid syntax"): it neither sets nor clears the variable.
    let push = |out: &mut Vec<Assignment>, key: &mut String, value: &mut String, line| {
        if !value.is_empty() {
            out.push(Assignment {
                key: key.clone(),
                value: value.clone(),
                line,
            });
        }
        key.clear();
        value.clear();
    };

    for c in text.chars() {
        match st {
            St::PreKey => {
                if c == '#' || c == ';' {
                    st = St::Comment;
                } else if !WS.contains(&c) {
                    st = St::Key;
                    key_ws = None;
                    key.push(c);
                } else if c == '\n' {
                    line += 1;
                }
            }
            St::Key => {
                if NL.contains(&c) {
                    st = St::PreKey;
                    line += 1;
                    key.clear();
                } else if c == '=' {
                    st = St::PreValue;
                    value_ws = None;
                } else {
                    if !WS.contains(&c) {
                        key_ws = None;
                    } else if key_ws.is_none() {
                        key_ws = Some(key.len());
                    }
                    key.push(c);
                }
            }
            St::PreValue => {
                if NL.contains(&c) {
                    st = St::PreKey;
                    line += 1;
                    if let Some(n) = key_ws.take() {
                        key.truncate(n);
                    }
                    push(&mut out, &mut key, &mut value, line - 1);
                } else if c == '\'' {
                    st = St::Single;
                } else if c == '"' {
                    st = St::Double;
                } else if c == '\\' {
                    st = St::ValueEscape;
                } else if !WS.contains(&c) {
                    st = St::Value;
                    value.push(c);
                }
            }
            St::Value => {
                if NL.contains(&c) {
                    st = St::PreKey;
                    line += 1;
                    if let Some(n) = value_ws.take() {
                        value.truncate(n);
                    }
                    if let Some(n) = key_ws.take() {
                        key.truncate(n);
                    }
                    push(&mut out, &mut key, &mut value, line - 1);
                } else if c == '\\' {
                    st = St::ValueEscape;
                    value_ws = None;
                } else {
                    if !WS.contains(&c) {
                        value_ws = None;
                    } else if value_ws.is_none() {
                        value_ws = Some(value.len());
                    }
                    value.push(c);
                }
            }
            St::ValueEscape => {
                st = St::Value;
                if !NL.contains(&c) {
                    value.push(c);
                } else if c == '\n' {
                    line += 1;
                }
            }
            St::Single => {
                if c == '\'' {
                    st = St::PreValue;
                } else {
                    if c == '\n' {
                        line += 1;
                    }
                    value.push(c);
                }
            }
            St::Double => {
                if c == '"' {
                    st = St::PreValue;
                } else if c == '\\' {
                    st = St::DoubleEscape;
                } else {
                    if c == '\n' {
                        line += 1;
                    }
                    value.push(c);
                }
            }
            St::DoubleEscape => {
                st = St::Double;
                if "\"\\`$".contains(c) {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                } else {
                    line += 1;
                }
            }
            St::Comment => {
                if c == '\\' {
                    st = St::CommentEscape;
                } else if NL.contains(&c) {
                    st = St::PreKey;
                    line += 1;
                }
            }
            St::CommentEscape => {
                // systemd ≤ 253: an escaped character, newline included, stays in the comment.
                if c == '\n' {
                    line += 1;
                }
                st = St::Comment;
            }
        }
    }
    if matches!(
        st,
        St::PreValue | St::Value | St::ValueEscape | St::Single | St::Double | St::DoubleEscape
    ) {
        if st == St::Value
            && let Some(n) = value_ws
        {
            value.truncate(n);
        }
        if let Some(n) = key_ws {
            key.truncate(n);
        }
        push(&mut out, &mut key, &mut value, line);
    }
    out
}

/// `env_name_is_valid`: non-empty, `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name_is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `replace_env` with braceless and extended forms: expands `$X`, `${X}`, `${X:-d}`,
/// `${X:+a}`, `$$`; `lookup` answers a name (None = unset).
pub fn expand(format: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Word,
        Curly,
        Variable,
        VariableRaw,
        Test,
        Default,
        Alternate,
    }
    let s: Vec<char> = format.chars().collect();
    let mut r = String::new();
    let mut word = 0usize; // start of the text not yet copied
    let mut st = St::Word;
    let mut nest = 0i32;
    let mut name_len = 0usize;
    let mut test_value = 0usize;
    let mut i = 0usize;
    let text = |a: usize, b: usize| -> String { s[a..b].iter().collect() };
    while i < s.len() {
        let c = s[i];
        match st {
            St::Word => {
                if c == '$' {
                    st = St::Curly;
                }
            }
            St::Curly => {
                if c == '{' {
                    r.push_str(&text(word, i - 1));
                    word = i - 1;
                    st = St::Variable;
                    nest += 1;
                } else if c == '$' {
                    r.push_str(&text(word, i));
                    word = i + 1;
                    st = St::Word;
                } else if is_name_char(c) {
                    r.push_str(&text(word, i - 1));
                    word = i - 1;
                    st = St::VariableRaw;
                } else {
                    st = St::Word;
                }
            }
            St::Variable => {
                if c == '}' {
                    r.push_str(&lookup(&text(word + 2, i)).unwrap_or_default());
                    word = i + 1;
                    st = St::Word;
                    nest -= 1;
                } else if c == ':' {
                    name_len = i - word - 2;
                    st = St::Test;
                }
            }
            St::Test => {
                if c == '-' {
                    st = St::Default;
                } else if c == '+' {
                    st = St::Alternate;
                } else {
                    st = St::Word;
                    i += 1;
                    continue;
                }
                test_value = i + 1;
            }
            St::Default | St::Alternate => {
                if c == '{' {
                    nest += 1;
                } else if c == '}' {
                    nest -= 1;
                    if nest == 0 {
                        let t = lookup(&text(word + 2, word + 2 + name_len));
                        let inner = text(test_value, i);
                        let v = match (st, t) {
                            (St::Alternate, Some(_)) => expand(&inner, lookup),
                            (St::Default, None) => expand(&inner, lookup),
                            (_, None) => String::new(),
                            (_, Some(t)) => t,
                        };
                        r.push_str(&v);
                        word = i + 1;
                        st = St::Word;
                    }
                }
            }
            St::VariableRaw => {
                if !is_name_char(c) {
                    r.push_str(&lookup(&text(word + 1, i)).unwrap_or_default());
                    word = i;
                    st = St::Word;
                    continue; // re-read c in Word state
                }
            }
        }
        i += 1;
    }
    if st == St::VariableRaw {
        r.push_str(&lookup(&text(word + 1, s.len())).unwrap_or_default());
    } else {
        r.push_str(&text(word, s.len()));
    }
    r
}

/// Merges files (already in [`conf_file_order`]) as the generator does: each valid
/// assignment is expanded against what was merged so far, then `base` (the manager's own
/// environment), and set. Returns only the variables the files set.
pub fn merge_files<'a>(files: impl IntoIterator<Item = &'a str>, base: &EnvMap) -> EnvMap {
    let mut env = EnvMap::new();
    for text in files {
        for a in parse_file(text) {
            if !env_name_is_valid(&a.key) {
                continue;
            }
            let lookup = |name: &str| env.get(name).or_else(|| base.get(name)).cloned();
            let v = expand(&a.value, &lookup);
            env.insert(a.key, v);
        }
    }
    env
}

/// The files the generator reads, in order: `dirs` lists each directory's `*.conf` names,
/// highest priority first; a name seen in a higher-priority directory hides it below; the
/// result is sorted by file name. Returns (directory index, name).
pub fn conf_file_order(dirs: &[Vec<String>]) -> Vec<(usize, String)> {
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, names) in dirs.iter().enumerate() {
        for n in names.iter().filter(|n| n.ends_with(".conf")) {
            chosen.entry(n.clone()).or_insert(i);
        }
    }
    chosen.into_iter().map(|(n, i)| (i, n)).collect()
}

/// The environment a user's `go` sees when started from their session: `base` (from
/// `/etc/passwd`: `HOME`, `USER`, `LOGNAME`, `SHELL`, plus whatever the admin declared for
/// sessions) overlaid with the merged `environment.d` variables. Decision: environment.d
/// wins, because the user manager exports it to everything it starts.
pub fn session_environment(base: &EnvMap, environment_d: &EnvMap) -> EnvMap {
    let mut env = base.clone();
    env.extend(environment_d.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Loader: lists and reads the `environment.d` files of `dirs` (highest priority first) and
/// merges them against `base`. Unreadable directories and files count as empty, as for the
/// generator. Returns the variables and the files read.
pub fn load(dirs: &[PathBuf], base: &EnvMap) -> (EnvMap, Vec<PathBuf>) {
    load_as(dirs, base, None)
}

/// [`load`] with `reader`'s permissions: each file is read through
/// [`crate::userfile::read`] (regular files only, never blocking, size-capped, and only what
/// `reader` may read); a refused file counts as absent.
pub fn load_as(
    dirs: &[PathBuf],
    base: &EnvMap,
    reader: Option<&crate::userfile::Reader>,
) -> (EnvMap, Vec<PathBuf>) {
    let listings: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            std::fs::read_dir(d)
                .map(|rd| {
                    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let order = conf_file_order(&listings);
    let paths: Vec<PathBuf> = order.iter().map(|(i, n)| dirs[*i].join(n)).collect();
    let texts: Vec<String> = paths
        .iter()
        .map(|p| {
            crate::userfile::read(p, reader, crate::userfile::MAX_ENV_FILE).unwrap_or_default()
        })
        .collect();
    (merge_files(texts.iter().map(String::as_str), base), paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse_file(text)
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_quotes_comments_and_whitespace() {
        let text = "# c\n; c2\n  A = x y  \nB='a \"b\" $C'\nC=\"q\\\"\\$\\n\"\nD=a\\\nb\nNOEQ\nE=\nF=\"multi\nline\"\n";
        assert_eq!(
            kv(text),
            pairs(&[
                ("A", "x y"),
                ("B", "a \"b\" $C"),
                ("C", "q\"$\\n"),
                ("D", "ab"),
                ("F", "multi\nline"),
            ])
        );
        assert_eq!(kv("X=1"), pairs(&[("X", "1")]));
        assert_eq!(kv("#a\\\nX=1\nY=2"), pairs(&[("Y", "2")]));
    }

    #[test]
    fn expands_like_replace_env() {
        let vars: EnvMap = [("A", "1"), ("E", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |n: &str| vars.get(n).cloned();
        for (i, o) in [
            ("$A/x", "1/x"),
            ("${A}x", "1x"),
            ("$Ax", ""),
            ("${B:-d}", "d"),
            ("${A:-d}", "1"),
            ("${A:+alt$A}", "alt1"),
            ("${B:+alt}", ""),
            ("${B:-${A}}", "1"),
            ("$$A", "$A"),
            ("$", "$"),
            ("a$/b", "a$/b"),
            ("${A", "${A"),
            ("${A:x}", "${A:x}"),
        ] {
            assert_eq!(expand(i, &lookup), o, "expand({i:?})");
        }
    }

    #[test]
    fn merge_order_and_masking() {
        let order = conf_file_order(&[
            vec!["20-b.conf".into(), "x.txt".into()],
            vec!["20-b.conf".into(), "10-a.conf".into()],
        ]);
        assert_eq!(
            order,
            vec![(1, "10-a.conf".into()), (0, "20-b.conf".into())]
        );
        let base: EnvMap = [("HOME".to_string(), "/h".to_string())].into();
        let env = merge_files(
            ["GOPATH=$HOME/gp\n1BAD=x\n", "GOMODCACHE=${GOPATH}/m\n"],
            &base,
        );
        assert_eq!(env.get("GOMODCACHE").unwrap(), "/h/gp/m");
        assert!(!env.contains_key("1BAD") && !env.contains_key("HOME"));
    }
}

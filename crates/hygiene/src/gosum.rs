//! `go.sum` parsing, as `readGoSum` does it (Go 1.19.8,
//! `src/cmd/go/internal/modfetch/fetch.go` l.489–515): lines split at `\n`, each split into
//! whitespace-separated fields (`strings.Fields`); blank lines are skipped; any other line
//! must have exactly 3 fields `MODULE VERSION HASH`, where `VERSION` is either a version
//! (the hash of the module zip's content) or `VERSION/go.mod` (the hash of the `go.mod` file
//! alone). Lines carrying `emptyGoModHash` (an old Go bug, l.485) are dropped, as Go drops them.
//!
//! This module must never do I/O.

use crate::error::{HygieneError, Result};

/// `emptyGoModHash` (fetch.go l.485): the hash of a 0-length go.mod; Go drops such lines.
pub const EMPTY_GO_MOD_HASH: &str = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY=";

/// What a go.sum line is the hash of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SumKind {
    /// The module zip's content (`MODULE VERSION h1:...`).
    Zip,
    /// The module's go.mod alone (`MODULE VERSION/go.mod h1:...`).
    GoMod,
}

/// One go.sum line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoSumLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Module path, unescaped.
    pub module: String,
    /// Version without the `/go.mod` suffix.
    pub version: String,
    /// Zip content or go.mod.
    pub kind: SumKind,
    /// The hash as written, e.g. `h1:...=`.
    pub hash: String,
}

/// Parses a go.sum. A line with a wrong number of fields is an error, as in Go
/// ("malformed go.sum ... wrong number of fields").
pub fn parse(data: &str) -> Result<Vec<GoSumLine>> {
    let mut out = Vec::new();
    for (n, line) in data.split('\n').enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() != 3 {
            return Err(HygieneError::Parse {
                what: "go.sum",
                line: n + 1,
                message: format!("wrong number of fields {}", f.len()),
            });
        }
        if f[2] == EMPTY_GO_MOD_HASH {
            continue;
        }
        let (version, kind) = match f[1].strip_suffix("/go.mod") {
            Some(v) => (v, SumKind::GoMod),
            None => (f[1], SumKind::Zip),
        };
        out.push(GoSumLine {
            line: n + 1,
            module: f[0].to_string(),
            version: version.to_string(),
            kind,
            hash: f[2].to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_skips_blank_and_empty_gomod() {
        let text = format!(
            "example.com/a v1.0.0 h1:AAA=\nexample.com/a v1.0.0/go.mod h1:BBB=\n\n  \nexample.com/b v0.1.0/go.mod {EMPTY_GO_MOD_HASH}\n"
        );
        let got = parse(&text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, SumKind::Zip);
        assert_eq!(got[0].version, "v1.0.0");
        assert_eq!(got[1].kind, SumKind::GoMod);
        assert_eq!(got[1].hash, "h1:BBB=");
        assert_eq!(got[1].line, 2);
        let err = parse("example.com/a v1.0.0\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}

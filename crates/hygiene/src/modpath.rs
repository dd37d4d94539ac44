//! Module path and version escaping for module-cache file names, as
//! `golang.org/x/mod/module` does it (`escapeString`/`unescapeString`, vendored in Go 1.19.8
//! at `src/cmd/vendor/golang.org/x/mod/module/module.go` l.708–790): an upper-case ASCII letter
//! `X` becomes `!x`; `!` and non-ASCII are not allowed in the unescaped form.
//!
//! Only the escaping is mirrored, not `CheckPath`'s full validation of module paths. This
//! module must never do I/O.

/// Why an escaped or unescaped string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// `!` or a non-ASCII character in a path or version to escape.
    #[error("{0:?}: '!' and non-ASCII characters are not allowed")]
    BadChar(String),
    /// An escaped form with an upper-case letter, a dangling `!`, `!` not before `a`-`z`, or
    /// non-ASCII.
    #[error("{0:?}: invalid escaped form")]
    BadEscape(String),
}

/// Escapes a module path or version for use as a file name.
pub fn escape(s: &str) -> Result<String, EscapeError> {
    if s.chars().any(|c| c == '!' || !c.is_ascii()) {
        return Err(EscapeError::BadChar(s.to_string()));
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Reverses [`escape`].
pub fn unescape(escaped: &str) -> Result<String, EscapeError> {
    let bad = || EscapeError::BadEscape(escaped.to_string());
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for c in escaped.chars() {
        if !c.is_ascii() {
            return Err(bad());
        }
        if bang {
            bang = false;
            if !c.is_ascii_lowercase() {
                return Err(bad());
            }
            out.push(c.to_ascii_uppercase());
            continue;
        }
        if c == '!' {
            bang = true;
            continue;
        }
        if c.is_ascii_uppercase() {
            return Err(bad());
        }
        out.push(c);
    }
    if bang {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        assert_eq!(
            escape("github.com/BurntSushi/toml").unwrap(),
            "github.com/!burnt!sushi/toml"
        );
        assert_eq!(
            unescape("github.com/!burnt!sushi/toml").unwrap(),
            "github.com/BurntSushi/toml"
        );
        assert_eq!(escape("v1.0.0-RC1").unwrap(), "v1.0.0-!r!c1");
        assert_eq!(escape("example.com/plain").unwrap(), "example.com/plain");
        assert!(escape("a!b").is_err());
        assert!(escape("é").is_err());
        assert!(unescape("github.com/Burnt").is_err());
        assert!(unescape("x!").is_err());
        assert!(unescape("x!1").is_err());
    }
}

//! Output helpers for people: aligned tables, colour only when stdout is a
//! terminal (and `NO_COLOR` is unset), durations in words, user names for uids,
//! and [`term_safe`], the one escaping of untrusted text for the terminal.
//!
//! Invariant: every name, path or audit field goes through [`term_safe`] before
//! it reaches a terminal; [`Table`] applies it to every cell itself, so no cell
//! can carry a control sequence or forge a row. `--json` output goes through
//! [`json_safe`], which keeps the exact content.

use std::borrow::Cow;
use std::io::IsTerminal;

/// True for the characters a terminal must never receive raw from a name, a
/// path or an audit field: C0 controls (newline and tab included), DEL, C1
/// controls (U+0080–U+009F, which some terminals take as CSI/OSC), and the
/// invisible characters that reorder or hide text (bidi embeddings, overrides
/// and isolates, zero-width characters, line and paragraph separators, BOM).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}')
}

/// `s` made safe for a terminal, shown visibly as `ls -b` and `systemd-escape`
/// do: `\e` (ESC), `\n`, `\r`, `\t`, other C0 controls and DEL as `\x07`,
/// C1 controls and invisible formatting characters as `\u{202e}`. Everything
/// else, backslashes included, is kept as is (so printed fix commands stay
/// copy-pasteable). Borrowed when nothing needed escaping.
pub fn term_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text (from serde_json) with DEL, C1 and invisible formatting
/// characters written as `\uXXXX` escapes too. serde_json already escapes C0
/// controls (`\n`, `\u001b`); these others it writes raw. They can only occur
/// inside JSON strings, so the result is valid JSON with exactly the same
/// content, and safe to print on a terminal.
pub fn json_safe(json: String) -> String {
    // ASCII controls are structure (pretty-printing's newlines) or already escaped.
    let escape = |c: char| c == '\u{7f}' || (!c.is_ascii() && needs_escape(c));
    if !json.chars().any(escape) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escape(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` as pretty JSON plus a newline, safe for a terminal (see [`json_safe`]).
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> String {
    json_safe(serde_json::to_string_pretty(value).expect("output serializes")) + "\n"
}

/// `value` as one line of JSON (no newline), safe for a terminal.
pub fn json_line<T: serde::Serialize + ?Sized>(value: &T) -> String {
    json_safe(serde_json::to_string(value).expect("output serializes"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn new(choice: ColorChoice) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// A table with a header row; columns are padded to their widest cell
/// (measured without colour codes). The last column is not padded.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<(String, String)>>, // (plain, painted)
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of (plain text, painted text) cells. Every cell is made
    /// [`term_safe`] here: a painted cell that is the plain text wrapped in one
    /// colour keeps its colour around the escaped text; any other painted text
    /// is escaped as a whole. So no cell can carry a control character.
    pub fn row(&mut self, cells: Vec<(String, String)>) {
        self.rows
            .push(cells.into_iter().map(|(p, c)| safe_cell(p, c)).collect());
    }

    pub fn render(&self, style: &Style) -> String {
        self.render_page(style, &mut Vec::new(), true)
    }

    /// One page of a table streamed page by page: columns at least as wide as
    /// `widths` (the widest cell of the pages before, updated here), the
    /// header only when `header`.
    pub fn render_page(&self, style: &Style, widths: &mut Vec<usize>, header: bool) -> String {
        let columns = self.header.len();
        widths.resize(columns, 0);
        for (w, h) in widths.iter_mut().zip(&self.header) {
            *w = (*w).max(h.chars().count());
        }
        for row in &self.rows {
            for (i, (plain, _)) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(plain.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<(String, String)>, out: &mut String| {
            let n = cells.len();
            for (i, (plain, painted)) in cells.into_iter().enumerate() {
                out.push_str(&painted);
                if i + 1 < n {
                    let pad = widths[i] - plain.chars().count() + 2;
                    out.push_str(&" ".repeat(pad));
                }
            }
            out.push('\n');
        };
        if header {
            line(
                self.header
                    .iter()
                    .map(|h| (h.clone(), style.bold(h)))
                    .collect(),
                &mut out,
            );
        }
        for row in &self.rows {
            line(row.clone(), &mut out);
        }
        out
    }
}

/// A JSON array written item by item as pages arrive, in exactly the text
/// `serde_json::to_string_pretty` gives the whole array (and [`json_safe`]).
#[derive(Debug, Default)]
pub struct JsonArray {
    items: usize,
}

impl JsonArray {
    /// The text of one more item.
    pub fn item<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> String {
        let mut out = String::from(if self.items == 0 { "[\n" } else { ",\n" });
        self.items += 1;
        let text = json_safe(serde_json::to_string_pretty(value).expect("output serializes"));
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str("  ");
            out.push_str(line);
        }
        out
    }

    /// The closing text.
    pub fn end(&self) -> &'static str {
        if self.items == 0 { "[]\n" } else { "\n]\n" }
    }
}

/// A table cell with its text escaped (see [`Table::row`]).
fn safe_cell(plain: String, painted: String) -> (String, String) {
    let safe = term_safe(&plain).into_owned();
    let painted = if painted == plain {
        safe.clone()
    } else if let Some(code) = colour_code(&painted, &plain) {
        format!("\x1b[{code}m{safe}\x1b[0m")
    } else {
        term_safe(&painted).into_owned()
    };
    (safe, painted)
}

/// The SGR code when `painted` is exactly `plain` wrapped in one colour by [`Style`].
fn colour_code<'a>(painted: &'a str, plain: &str) -> Option<&'a str> {
    let inner = painted.strip_prefix("\x1b[")?.strip_suffix("\x1b[0m")?;
    let (code, text) = inner.split_once('m')?;
    (text == plain && !code.is_empty() && code.chars().all(|c| c.is_ascii_digit() || c == ';'))
        .then_some(code)
}

/// `3d 4h`, `5m 12s`, `42s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// The login name of `uid` (from passwd, through NSS), or the number when it has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(312.0), "5m 12s");
        assert_eq!(duration(3.0 * 3600.0 + 60.0), "3h 1m");
        assert_eq!(duration(2.0 * 86400.0 + 7200.0), "2d 2h");
    }

    #[test]
    fn tables_align_without_counting_colour_codes() {
        let style = Style { color: true };
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec![
            ("metrics".into(), style.good("metrics")),
            ("running".into(), "running".into()),
        ]);
        t.row(vec![("x".into(), "x".into()), ("off".into(), "off".into())]);
        let plain = Style { color: false };
        let mut u = Table::new(&["NAME", "STATE"]);
        u.row(vec![
            ("metrics".into(), "metrics".into()),
            ("running".into(), "running".into()),
        ]);
        u.row(vec![("x".into(), "x".into()), ("off".into(), "off".into())]);
        assert_eq!(
            u.render(&plain),
            "NAME     STATE\nmetrics  running\nx        off\n"
        );
        let colored = t.render(&style);
        assert!(
            colored.contains("\x1b[32mmetrics\x1b[0m  running"),
            "{colored:?}"
        );
    }

    /// The name from issue 18: a title change, a line erase, a cursor move up
    /// and a carriage return, to overwrite the row above with "FAKE".
    const HOSTILE: &str = "x\x1b]0;TITLE\x07\x1b[2K\x1b[1A\rFAKE";

    fn has_raw_controls(s: &str) -> bool {
        s.chars().any(|c| c != '\n' && needs_escape(c))
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(term_safe(HOSTILE), r"x\e]0;TITLE\x07\e[2K\e[1A\rFAKE");
        assert_eq!(term_safe("a\nb\tc\0d\x7fe"), r"a\nb\tc\x00d\x7fe");
        // C1 controls (U+009B is CSI on some terminals) and bidi overrides.
        assert_eq!(
            term_safe("a\u{9b}31mb\u{202e}gpj.exe\u{2066}\u{200b}\u{feff}"),
            r"a\u{9b}31mb\u{202e}gpj.exe\u{2066}\u{200b}\u{feff}"
        );
        // Printable text, non-ASCII included, and backslashes are kept and borrowed.
        for clean in [
            "/home/ann/.cache/go-build/ab/x-d",
            "zoë/日本",
            r"\.cache(/.*)?",
            "",
        ] {
            assert!(matches!(term_safe(clean), Cow::Borrowed(_)), "{clean}");
            assert_eq!(term_safe(clean), clean);
        }
        for c in (0u32..0x110000).filter_map(char::from_u32) {
            let out = term_safe(c.encode_utf8(&mut [0; 4])).into_owned();
            assert!(
                !has_raw_controls(&out) && !out.contains('\n'),
                "{c:?} → {out:?}"
            );
        }
    }

    #[test]
    fn a_name_cannot_forge_a_table_row_or_colour() {
        for color in [false, true] {
            let style = Style { color };
            let mut t = Table::new(&["SEVERITY", "PATH"]);
            let forged = format!("a\nerror     /etc/shadow\n{HOSTILE}");
            t.row(vec![
                ("error".into(), style.bad("error")),
                (forged.clone(), forged.clone()),
            ]);
            // A painted cell that is not a plain colour wrapper is escaped whole.
            t.row(vec![
                ("warning".into(), format!("\x1b[33m{HOSTILE}\x1b[0m")),
                (HOSTILE.into(), style.warn(HOSTILE)),
            ]);
            let out = t.render(&style);
            assert_eq!(out.lines().count(), 3, "{out:?}");
            let without_colour = out
                .replace("\x1b[1m", "")
                .replace("\x1b[31m", "")
                .replace("\x1b[33m", "")
                .replace("\x1b[0m", "");
            assert!(!has_raw_controls(&without_colour), "{out:?}");
            assert!(
                out.contains(r"a\nerror     /etc/shadow\nx\e]0;TITLE"),
                "{out:?}"
            );
            if color {
                assert!(out.contains("\x1b[31merror\x1b[0m"), "{out:?}");
                assert!(
                    out.contains(&format!("\x1b[33m{}\x1b[0m", term_safe(HOSTILE))),
                    "{out:?}"
                );
            }
        }
    }

    #[test]
    fn json_keeps_the_exact_content_escaped() {
        let name = format!("{HOSTILE}\n\u{7f}\u{9b}\u{202e}zoë");
        let text = json_pretty(&serde_json::json!({ "path": name }));
        assert!(!has_raw_controls(&text), "{text:?}");
        // serde_json itself escapes C0 controls; json_safe adds DEL, C1 and bidi.
        assert!(
            text.contains(r"x\u001b]0;TITLE\u0007\u001b[2K\u001b[1A\rFAKE\n\u007f\u009b\u202ezoë"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["path"], name.as_str());
        let line = json_line(&[name.as_str()]);
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Vec<String>>(&line).unwrap(), [name]);
    }

    #[test]
    fn streamed_json_arrays_and_tables_read_as_whole_ones() {
        let items = [
            serde_json::json!({"path": "/a\n", "n": [1, 2]}),
            serde_json::json!({"path": "/b\u{9b}"}),
        ];
        for n in 0..=items.len() {
            let mut a = JsonArray::default();
            let mut text: String = items[..n].iter().map(|i| a.item(i)).collect();
            text.push_str(a.end());
            assert_eq!(text, json_pretty(&items[..n]), "{n} items");
        }
        let style = Style { color: false };
        let mut widths = Vec::new();
        let mut first = Table::new(&["A", "B"]);
        first.row(vec![("x".into(), "x".into()), ("1".into(), "1".into())]);
        let mut second = Table::new(&["A", "B"]);
        second.row(vec![
            ("yyyy".into(), "yyyy".into()),
            ("2".into(), "2".into()),
        ]);
        let text = first.render_page(&style, &mut widths, true)
            + &second.render_page(&style, &mut widths, false);
        assert_eq!(text, "A  B\nx  1\nyyyy  2\n");
    }
}

//! Output helpers for people: aligned tables, colour only when stdout is a
//! terminal (and `NO_COLOR` is unset), durations in words, user names for uids.

use std::io::IsTerminal;

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

    /// Adds a row of (plain text, painted text) cells.
    pub fn row(&mut self, cells: Vec<(String, String)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, style: &Style) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
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
        line(
            self.header
                .iter()
                .map(|h| (h.clone(), style.bold(h)))
                .collect(),
            &mut out,
        );
        for row in &self.rows {
            line(row.clone(), &mut out);
        }
        out
    }
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
}

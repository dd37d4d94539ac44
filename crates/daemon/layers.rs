//! A test of the daemon's layering, read from its own sources: the `crate::` imports
//! between its modules form no circle, and only the API layer (`service`, `pb`, and
//! `run`/`main` for wiring) knows the protobuf messages. Compiled for tests only; it
//! never builds or runs anything.

use std::collections::BTreeMap;
use std::path::Path;

/// The modules that may name the generated protobuf crate.
const API_LAYER: [&str; 4] = ["service", "pb", "run", "main"];

/// This file: it spells the names it looks for.
const SELF: &str = "layers";

/// Each module's source, by module name (`crates/daemon/NAME.rs`).
fn sources() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/daemon");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("read crates/daemon") {
        let path = entry.expect("read crates/daemon").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if name != SELF {
                let text = std::fs::read_to_string(&path).expect("read a module");
                out.insert(name, text);
            }
        }
    }
    out
}

/// The source without `//` comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The modules `text` names through `crate::NAME` or `use crate::{NAME, ...}`.
fn imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text = code(text);
    let mut rest = text.as_str();
    while let Some(i) = rest.find("crate::") {
        // `goguard_crate::` or `self.crate::` are not paths from the crate root.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item = true,
                    c if item && !c.is_whitespace() => {
                        item = false;
                        out.push(ident(&group[j..]).to_owned());
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest).to_owned());
        }
    }
    out
}

/// module → the other modules it imports.
fn graph() -> BTreeMap<String, Vec<String>> {
    let sources = sources();
    sources
        .iter()
        .map(|(name, text)| {
            let mut to: Vec<String> = imports(text)
                .into_iter()
                .filter(|m| m != name && sources.contains_key(m))
                .collect();
            to.sort();
            to.dedup();
            (name.clone(), to)
        })
        .collect()
}

/// Every elementary circle found by a depth-first walk, each as the path that closes it.
fn cycles(graph: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, Vec<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        for next in &graph[at] {
            if next == start {
                let mut c = path.clone();
                c.push(start.to_owned());
                found.push(c);
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, next, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, start, start, &mut vec![start.clone()], &mut found);
    }
    found
}

#[test]
fn the_parser_reads_paths_and_groups() {
    let text = "use crate::a::B;\nuse crate::{b, c::{D, E}, d};\nlet x = crate::e::f(); \
                // crate::g\nuse goguard_crate::h;";
    assert_eq!(imports(text), ["a", "b", "c", "d", "e"]);
    let g: BTreeMap<String, Vec<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(cycles(&g), [["a", "b", "c", "a"]]);
}

#[test]
fn daemon_modules_import_each_other_without_circles() {
    let graph = graph();
    assert!(
        graph.len() > 20,
        "the daemon's sources were not found: {graph:?}"
    );
    let found = cycles(&graph);
    let shown: Vec<String> = found.iter().map(|c| c.join(" → ")).collect();
    assert!(found.is_empty(), "import circles:\n{}", shown.join("\n"));
}

#[test]
fn only_the_api_layer_knows_protobuf() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(name, text)| {
            !API_LAYER.contains(&name.as_str())
                && (code(text).contains("goguard_proto") || imports(text).iter().any(|m| m == "pb"))
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        offenders.is_empty(),
        "modules below the API layer that build protobuf messages: {offenders:?}"
    );
}

//! The shape of `src/`, checked like behaviour: modules depend one way only, and the domain
//! knows nothing of HTTP. A new import cycle fails CI here, naming the modules on it.
//!
//! Each `.rs` file is a module; `mod.rs` is its folder's module. A file's dependencies are the
//! `crate::…`, `super::…` and `self::…` paths it names (in `use` trees or inline), resolved to
//! the deepest module they reach. An edge between a module and its own ancestor (a parent
//! declaring or re-exporting a child, a child using its parent's type) is how Rust nests
//! modules and is not counted; every other edge is lifted to the two siblings under the
//! modules' closest common ancestor. Within every folder, the graph of siblings must then be
//! acyclic: the top-level modules form layers, and so do the files inside each folder.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

type Module = Vec<String>;

/// Every module of the crate, by path (`["db", "list", "sql"]`), with its source text.
fn modules() -> BTreeMap<Module, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut prefix = prefix.to_vec();
                prefix.push(name);
                walk(&path, &prefix, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if name == "main" {
                    continue; // the binary, not the library
                }
                let mut module = prefix.to_vec();
                if !matches!(name.as_str(), "mod" | "lib") {
                    module.push(name);
                }
                out.insert(module, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&PathBuf::from(SRC), &[], &mut out);
    out
}

/// Source without comments and string literals, so doc links and messages are not imports.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// The paths a file names that start at `crate`, `super` or `self`, with `use` trees
/// (`crate::{a::b, c::{d, e}}`) expanded, each as its segments.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let bytes: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| rest.starts_with(r));
        match root.filter(|_| at_word_start) {
            Some(root) => {
                let mut j = i + root.len() - 2;
                let mut prefix = vec![root.trim_end_matches("::").to_owned()];
                parse_tree(&bytes, &mut j, &mut prefix, &mut paths);
                i = j.max(i + 1);
            }
            None => i += 1,
        }
    }
    paths
}

/// Parses `::seg::seg::{tree, tree}` starting at `*i` (pointing at `::`), appending every full
/// path to `out`.
fn parse_tree(s: &[char], i: &mut usize, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let depth = prefix.len();
    loop {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
        if *i + 1 < s.len() && s[*i] == ':' && s[*i + 1] == ':' {
            *i += 2;
        } else {
            break;
        }
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            loop {
                while *i < s.len() && (s[*i].is_whitespace() || s[*i] == ',') {
                    *i += 1;
                }
                if *i >= s.len() || s[*i] == '}' {
                    *i += 1;
                    break;
                }
                let mut inner = prefix.clone();
                let start = *i;
                while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_' || s[*i] == '*') {
                    *i += 1;
                }
                inner.push(s[start..*i].iter().collect());
                parse_tree(s, i, &mut inner, out);
                // Skip `as alias` and anything else up to the next item.
                while *i < s.len() && s[*i] != ',' && s[*i] != '}' {
                    *i += 1;
                }
            }
            prefix.truncate(depth);
            return;
        }
        let start = *i;
        while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_') {
            *i += 1;
        }
        if start == *i {
            break;
        }
        prefix.push(s[start..*i].iter().collect());
    }
    out.push(prefix.clone());
    prefix.truncate(depth);
}

/// The module a path names, from inside `from`: the deepest known module it reaches.
fn resolve(from: &Module, path: &[String], known: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => from.clone(),
        Some("super") => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut deepest = base.clone();
    for segment in rest {
        base.push(segment.clone());
        if known.contains(&base) {
            deepest = base.clone();
        } else {
            break;
        }
    }
    Some(deepest)
}

/// The sibling edges: (parent folder, from child, to child).
fn sibling_edges() -> BTreeSet<(Module, String, String)> {
    let modules = modules();
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    let mut edges = BTreeSet::new();
    for (from, source) in &modules {
        for path in named_paths(&code_only(source)) {
            let Some(to) = resolve(from, &path, &known) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // One is the other's ancestor: nesting, not a dependency between peers.
            if common == from.len() || common == to.len() {
                continue;
            }
            edges.insert((
                from[..common].to_vec(),
                from[common].clone(),
                to[common].clone(),
            ));
        }
    }
    edges
}

/// A cycle in `graph`, as the modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_module_graph_of_src_has_no_cycles() {
    let mut folders: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (folder, from, to) in sibling_edges() {
        folders
            .entry(folder)
            .or_default()
            .entry(from)
            .or_default()
            .insert(to);
    }
    let cycles: Vec<String> = folders
        .iter()
        .filter_map(|(folder, graph)| {
            let cycle = find_cycle(graph)?;
            let at = if folder.is_empty() {
                "crate".to_owned()
            } else {
                format!("crate::{}", folder.join("::"))
            };
            Some(format!("in {at}: {}", cycle.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_grouped_imports_and_finds_a_planted_cycle() {
    let paths = named_paths(&code_only(
        "use crate::{app::AppState, db::{self, list::Dialect}};\n// crate::error::X\nlet x = super::Db;",
    ));
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "crate::app::AppState",
            "crate::db::self",
            "crate::db::list::Dialect",
            "super::Db"
        ]
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4));
}

#[test]
fn the_domain_imports_nothing_from_http_or_storage() {
    // The domain is the bottom layer: it may use only its own modules (`super::`) and
    // general-purpose crates, never the HTTP stack, the database drivers or the rest of the
    // crate.
    let forbidden = ["axum", "hyper", "tower", "sqlx", "rusqlite", "crate::"];
    let offenders: Vec<String> = modules()
        .into_iter()
        .filter(|(module, _)| module.first().is_some_and(|m| m == "domain"))
        .filter_map(|(module, source)| {
            let code = code_only(&source);
            let found: Vec<&str> = forbidden
                .into_iter()
                .filter(|name| code.contains(name))
                .collect();
            (!found.is_empty()).then(|| format!("{}: {found:?}", module.join("::")))
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

//! The crate's layering, read from its sources: `model` imports nothing from the crate, no two
//! top-level modules depend on each other (directly or around a cycle), and src/lib.rs declares
//! exactly the top-level modules the tree has.
//!
//! A top-level module is src/X.rs or src/X/. A dependency is a `crate::X` path (in a `use`, an
//! expression or a macro's `$crate::X`), a `use crate::{X, ...}` group, or a `super::` path
//! that climbs to the crate root, in code that is compiled into the library: comments, doc
//! comments, string literals and `#[cfg(test)]` items are left out. src/main.rs and src/bin/
//! are binaries, outside the library.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test crate: a panic is a failed test (clippy.toml's allow-*-in-tests covers the \
              #[test] functions, not the helpers beside them)"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source code without comments, string and char literals (each replaced by a space, so that
/// what was on either side stays apart).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // A raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push(' ');
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c[i] == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            // A char literal 'x' (a lifetime 'a has no closing quote).
            i += 3;
            out.push(' ');
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The end (exclusive) of the item starting at `from`: through its `{ ... }` block if one
/// opens before a `;`, else through the `;`.
fn item_end(code: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < code.len() {
        match code[i] {
            b';' => return i + 1,
            b'{' => {
                let mut depth = 0;
                while i < code.len() {
                    match code[i] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                return i;
            }
            _ => i += 1,
        }
    }
    i
}

/// `code` without its `#[cfg(test)]` items; also returns the names of `#[cfg(test)] mod x;`
/// declarations, whose files are test code too.
fn without_test_items(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let bytes = code.as_bytes();
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find(ATTR) {
        let start = at + found;
        out.push_str(&code[at..start]);
        let end = item_end(bytes, start + ATTR.len());
        let item = &code[start + ATTR.len()..end];
        let words: Vec<&str> = item
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if item.trim_end().ends_with(';')
            && let Some(pos) = words.iter().position(|w| *w == "mod")
            && let Some(name) = words.get(pos + 1)
        {
            test_mods.push(name.to_string());
        }
        at = end;
    }
    out.push_str(&code[at..]);
    (out, test_mods)
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn starts_word(code: &str, at: usize) -> bool {
    code[..at]
        .chars()
        .next_back()
        .is_none_or(|ch| !(ch.is_alphanumeric() || ch == '_'))
}

/// The top-level modules `code` (of a file in module `path`) refers to.
fn references(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if !starts_word(code, at) {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // use crate::{a, b::c, d::{e, f}}: the first name of each top-level entry.
            let mut depth = 0;
            let mut entry_start = true;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => entry_start = true,
                    ch if entry_start && (ch.is_alphanumeric() || ch == '_') => {
                        refs.insert(ident_at(&group[i..]).to_string());
                        entry_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(ident_at(rest).to_string());
        }
    }
    for (at, _) in code.match_indices("super::") {
        if !starts_word(code, at) || code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r.trim_start();
        }
        if ups == path.len() {
            refs.insert(ident_at(rest).to_string());
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

/// Each library source file with its module path (`["pki", "store"]` for src/pki/store.rs).
fn library_files() -> Vec<(PathBuf, Vec<String>)> {
    fn walk(dir: &Path, path: &[String], out: &mut Vec<(PathBuf, Vec<String>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                if path.is_empty() && name == "bin" {
                    continue;
                }
                let mut sub = path.to_vec();
                sub.push(name);
                walk(&p, &sub, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                if path.is_empty() && (stem == "main" || stem == "lib") {
                    continue;
                }
                let mut module = path.to_vec();
                if stem != "mod" {
                    module.push(stem.to_string());
                }
                out.push((p, module));
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &[], &mut out);
    out
}

/// Top-level module -> the top-level modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = library_files();
    let mut code = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for (file, module) in &files {
        let (lib, test_mods) = without_test_items(&strip(&fs::read_to_string(file).unwrap()));
        let dir = if file.file_name().unwrap() == "mod.rs" {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for m in test_mods {
            test_files.insert(dir.join(format!("{m}.rs")));
            test_files.insert(dir.join(m).join("mod.rs"));
        }
        code.insert(file.clone(), (module.clone(), lib));
    }
    let tops: BTreeSet<String> = files.iter().map(|(_, m)| m[0].clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        tops.iter().map(|t| (t.clone(), BTreeSet::new())).collect();
    for (file, (module, lib)) in &code {
        if test_files.contains(file) {
            continue;
        }
        for r in references(lib, module) {
            if r != module[0] && tops.contains(&r) {
                graph.get_mut(&module[0]).unwrap().insert(r);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in &graph[node] {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn model_imports_nothing_from_the_crate() {
    let g = graph();
    assert!(g.contains_key("model"), "src/model.rs is missing");
    let (_, module) = library_files()
        .into_iter()
        .find(|(f, _)| f.ends_with("src/model.rs"))
        .unwrap();
    let code = without_test_items(&strip(&fs::read_to_string(src().join("model.rs")).unwrap())).0;
    let refs = references(&code, &module);
    assert!(
        refs.is_empty(),
        "src/model.rs is the vocabulary every module speaks and must import nothing from the crate, but uses {refs:?}"
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let g = graph();
    // The graph is read at all (run dispatches to cmd, which reads the config), and from code
    // only (pki's doc comment names crate::plan; pki does not use it).
    assert!(
        g["run"].contains("cmd") && g["cmd"].contains("config"),
        "{g:#?}"
    );
    assert!(!g["pki"].contains("plan"), "{g:#?}");
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "the top-level modules depend on each other in a cycle: {}\nthe whole graph: {g:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn lib_rs_declares_exactly_the_modules_in_the_tree() {
    let lib = strip(&fs::read_to_string(src().join("lib.rs")).unwrap());
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .collect();
    let in_tree: BTreeSet<String> = graph().into_keys().collect();
    assert_eq!(
        declared, in_tree,
        "src/lib.rs's `pub mod` list (left) and the modules in src/ (right) differ"
    );
}

#[test]
fn the_parser_ignores_comments_strings_and_test_code() {
    let code = strip(
        "//! see [`crate::plan`]\n/// crate::fetch\nuse crate::model::Role; // crate::http\n\
         /* crate::kube /* nested crate::etcd */ */ const S: &str = \"crate::join\";\n\
         const R: &str = r#\"crate::pki\"#; const C: char = '\"'; fn f<'a>(x: &'a u8) {}\n\
         use crate::{paths::Paths, fsutil, errors::{chain, Exit}};\n\
         #[cfg(test)]\nmod tests { use crate::cli; }\n#[cfg(test)]\nmod more;\n\
         fn g() { super::retry::x(); super::super::daemon::y(); $crate::run::z(); }\n",
    );
    let (lib, test_mods) = without_test_items(&code);
    assert_eq!(test_mods, ["more"]);
    let refs: Vec<String> = references(&lib, &["fetch".to_string()])
        .into_iter()
        .collect();
    assert_eq!(
        refs,
        ["fsutil", "errors", "model", "paths", "retry", "run"]
            .map(String::from)
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    // From a submodule (fetch::download), `super::` stays inside fetch; `super::super::`
    // climbs to the root.
    let sub = references(&lib, &["fetch".to_string(), "download".to_string()]);
    assert!(sub.contains("daemon") && !sub.contains("retry"), "{sub:?}");
}

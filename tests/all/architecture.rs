//! The module structure, checked against the code:
//! - the UI crates (egui, eframe, egui_plot, rfd) may only be used under `src/ui/` and in `src/main.rs`;
//! - every `crate::` edge between top-level modules is one that ARCHITECTURE.md's dependency table allows, and the
//!   top-level modules form no cycle;
//! - the modules of `src/ui/` form no cycle among themselves (panels take commands from `ui::command`, never from
//!   the app that draws them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const UI_CRATES: &[&str] = &["egui", "eframe", "egui_plot", "egui_kittest", "rfd"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of `source` (outside comments) that name a UI crate as a path or in a `use`.
fn ui_uses(source: &str) -> Vec<(usize, String)> {
    let mut hits = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for krate in UI_CRATES {
            let as_path = format!("{krate}::");
            let found = code.match_indices(&as_path).any(|(i, _)| {
                // `egui::` must not be the tail of another identifier such as `my_egui::`.
                !code[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            let as_use = code.trim_start().starts_with(&format!("use {krate}"))
                || code.contains(&format!("extern crate {krate}"));
            if found || as_use {
                hits.push((n + 1, line.trim().to_owned()));
            }
        }
    }
    hits
}

#[test]
fn ui_crates_are_only_used_in_src_ui_and_main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 5, "found too few source files: {files:?}");
    let mut offenders = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if rel.starts_with("src/ui/") || rel == "src/main.rs" {
            continue;
        }
        for (line, text) in ui_uses(&std::fs::read_to_string(&file).unwrap()) {
            offenders.push(format!("{rel}:{line}: {text}"));
        }
    }
    assert!(offenders.is_empty(), "UI crates used outside src/ui and src/main.rs:\n{}", offenders.join("\n"));
}

#[test]
fn the_checker_catches_what_it_should() {
    assert_eq!(ui_uses("use egui::Ui;").len(), 1);
    assert_eq!(ui_uses("fn f(ctx: &eframe::Frame) {}").len(), 1);
    assert_eq!(ui_uses("let p = rfd::FileDialog::new();").len(), 1);
    assert_eq!(ui_uses("// egui::Ui in a comment").len(), 0);
    assert_eq!(ui_uses("let my_egui::x = 1;").len(), 0);
    assert_eq!(ui_uses("//! knows nothing of egui").len(), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Module edges

/// The module path of a source file: `src/store/guidance.rs` is `store::guidance`, `src/ui/app/mod.rs` is `ui::app`,
/// `src/lib.rs` is the crate root (empty), `src/main.rs` is `main` (the binary, which names the library `argus::`).
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.strip_prefix("src/").unwrap_or(rel).trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Removes comments (line, doc and block) and the contents of string literals, so that only code is read.
fn strip_comments_and_strings(source: &str) -> String {
    let (mut out, mut chars) = (String::with_capacity(source.len()), source.chars().peekable());
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
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    if c == '\n' {
                        out.push('\n');
                    }
                    prev = c;
                }
            }
            // Raw strings: r"..." and r#"..."# (their text may hold quotes and backslashes).
            'r' if !out.chars().last().is_some_and(is_ident) && matches!(chars.peek(), Some('"') | Some('#')) => {
                let mut hashes = 0;
                while chars.peek() == Some(&'#') {
                    hashes += 1;
                    chars.next();
                }
                if chars.peek() != Some(&'"') {
                    out.push('r');
                    out.extend(std::iter::repeat_n('#', hashes));
                    continue;
                }
                chars.next();
                out.push_str("\"\"");
                let mut run: Option<usize> = None;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    run = match (c, run) {
                        ('"', _) => Some(0),
                        ('#', Some(n)) => Some(n + 1),
                        _ => None,
                    };
                    if run == Some(hashes) {
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push('"');
            }
            // A char literal such as '"' must not open a string; lifetimes ('a) pass through unharmed.
            '\'' if chars.clone().nth(1) == Some('\'') => {
                out.push_str("' '");
                chars.next();
                chars.next();
            }
            '\'' if chars.peek() == Some(&'\\') => {
                out.push_str("' '");
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the code of module `module` names, resolved to an absolute module path of the crate: `crate::a::b`,
/// `super::x` and `self::y`, including each name of a grouped `use crate::{a::X, b}`. The binary's `argus::` paths
/// count as `crate::`.
fn referenced_paths(module: &[String], source: &str) -> Vec<Vec<String>> {
    let code = strip_comments_and_strings(source);
    let bytes: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_alphabetic() || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word: String = bytes[start..i].iter().collect();
        let base: Vec<String> = match word.as_str() {
            "crate" | "argus" => Vec::new(),
            "self" => module.to_vec(),
            "super" => {
                // In `a/mod.rs` (module `a`) `super` is the crate root; in `a/b.rs` (module `a::b`) it is `a`.
                let mut m = module.to_vec();
                m.pop();
                m
            }
            _ => continue,
        };
        let mut path = base;
        let mut j = i;
        // Further `super::` hops.
        loop {
            let rest: String = bytes[j..bytes.len().min(j + 7)].iter().collect();
            if rest == "::super" {
                path.pop();
                j += 7;
            } else {
                break;
            }
        }
        collect_tree(&bytes, j, path, &mut found);
        i = j.max(i);
    }
    found
}

/// Reads `::name::name`, or `::{a::b, c}` groups, from `at`, pushing every absolute path it names.
fn collect_tree(chars: &[char], mut at: usize, mut path: Vec<String>, found: &mut Vec<Vec<String>>) -> usize {
    loop {
        if chars.get(at) == Some(&':') && chars.get(at + 1) == Some(&':') {
            at += 2;
        } else {
            break;
        }
        while chars.get(at).is_some_and(|c| c.is_whitespace()) {
            at += 1;
        }
        if chars.get(at) == Some(&'{') {
            at += 1;
            loop {
                while chars.get(at).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    at += 1;
                }
                match chars.get(at) {
                    None => return at,
                    Some('}') => return at + 1,
                    _ => {}
                }
                let start = at;
                while chars.get(at).is_some_and(|c| is_ident(*c)) {
                    at += 1;
                }
                if at == start {
                    at += 1; // `*`, `self` groups and anything unexpected: step over
                    continue;
                }
                let name: String = chars[start..at].iter().collect();
                let mut inner = path.clone();
                if name != "self" {
                    inner.push(name);
                }
                at = collect_tree(chars, at, inner.clone(), found);
                found.push(inner);
            }
        }
        let start = at;
        while chars.get(at).is_some_and(|c| is_ident(*c)) {
            at += 1;
        }
        if at == start {
            break;
        }
        path.push(chars[start..at].iter().collect());
    }
    found.push(path);
    at
}

/// Edges between the modules at `depth` below `under` (`under` = [] and depth 1: the top-level modules), each with
/// one place that makes it.
type Edges = BTreeMap<(String, String), String>;

fn edges(files: &[(String, String)], under: &[&str], modules: &BTreeSet<String>) -> Edges {
    let mut out = Edges::new();
    for (rel, source) in files {
        let module = module_of(rel);
        let inside = |m: &[String]| m.len() > under.len() && m.iter().zip(under).all(|(a, b)| a == b);
        if !inside(&module) {
            continue;
        }
        let from = module[under.len()].clone();
        for path in referenced_paths(&module, source) {
            if !inside(&path) {
                continue;
            }
            let to = &path[under.len()];
            if *to != from && modules.contains(to) {
                out.entry((from.clone(), to.clone())).or_insert_with(|| format!("{rel}: {}", path.join("::")));
            }
        }
    }
    out
}

/// A cycle among `edges`, as the modules along it (first = last), if there is one.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    // 0 = unseen, 1 = on the current path, 2 = done.
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        path.push(n);
        for &m in next.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|&p| p == m).unwrap();
                    let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                    cycle.push(m.to_owned());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, next, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    let nodes: Vec<&str> = next.keys().copied().collect();
    for n in nodes {
        if state.get(n).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, &next, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// ARCHITECTURE.md's dependency table: `| `module` | `a`, `b` |` rows under the heading "## Dependencies", where
/// "nothing" allows no edge.
fn allowed_edges(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section =
        architecture.split("\n## Dependencies").nth(1).expect("ARCHITECTURE.md has a '## Dependencies' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut allowed = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let module = cells[0].trim_matches('`').to_owned();
        let uses: BTreeSet<String> = cells
            .get(1)
            .map(|c| {
                c.split(',')
                    .map(|u| u.trim().trim_matches('`').to_owned())
                    .filter(|u| !u.is_empty() && u != "nothing")
                    .collect()
            })
            .unwrap_or_default();
        allowed.insert(module, uses);
    }
    allowed
}

fn sources(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let source = std::fs::read_to_string(&f).unwrap();
            (rel, source)
        })
        .collect()
}

/// Top-level modules: every `pub mod` / `mod` of src/lib.rs, and the binary `main`.
fn top_level_modules(files: &[(String, String)]) -> BTreeSet<String> {
    let lib = &files.iter().find(|(rel, _)| rel == "src/lib.rs").expect("src/lib.rs").1;
    let mut modules: BTreeSet<String> = strip_comments_and_strings(lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            l.strip_prefix("mod ").map(|m| m.trim_end_matches(';').trim().to_owned())
        })
        .collect();
    modules.insert("main".to_owned());
    modules
}

/// What is wrong with the top-level edges of `files` against `architecture`: edges the table does not allow,
/// modules it does not name, and a cycle.
fn top_level_problems(files: &[(String, String)], architecture: &str) -> Vec<String> {
    let modules = top_level_modules(files);
    let allowed = allowed_edges(architecture);
    let found = edges(files, &[], &modules);
    let mut problems = Vec::new();
    for m in &modules {
        if !allowed.contains_key(m) {
            problems.push(format!("module `{m}` is missing from ARCHITECTURE.md's dependency table"));
        }
    }
    for ((a, b), place) in &found {
        if !allowed.get(a).is_some_and(|uses| uses.contains(b)) {
            problems.push(format!("`{a}` uses `{b}`, which ARCHITECTURE.md does not allow ({place})"));
        }
    }
    if let Some(cycle) = find_cycle(&found) {
        let places: Vec<String> = cycle.windows(2).map(|w| found[&(w[0].clone(), w[1].clone())].clone()).collect();
        problems.push(format!("a cycle between top-level modules: {} ({})", cycle.join(" -> "), places.join("; ")));
    }
    problems
}

#[test]
fn top_level_modules_use_only_what_architecture_md_allows_and_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = sources(root);
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let modules = top_level_modules(&files);
    assert!(modules.len() > 10, "found too few modules: {modules:?}");
    assert!(edges(&files, &[], &modules).len() > 20, "found too few edges: the reader is broken");
    let problems = top_level_problems(&files, &architecture);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every allowed edge the table names is a real module (no stale rows).
    for (m, uses) in allowed_edges(&architecture) {
        assert!(modules.contains(&m), "ARCHITECTURE.md names `{m}`, which is no module of src/lib.rs");
        for u in uses {
            assert!(modules.contains(&u), "ARCHITECTURE.md lets `{m}` use `{u}`, which is no module");
        }
    }
}

#[test]
fn the_modules_of_the_ui_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = sources(root);
    let ui: BTreeSet<String> = files
        .iter()
        .map(|(rel, _)| module_of(rel))
        .filter(|m| m.len() >= 2 && m[0] == "ui")
        .map(|m| m[1].clone())
        .collect();
    assert!(ui.len() > 8, "found too few ui modules: {ui:?}");
    let found = edges(&files, &["ui"], &ui);
    assert!(found.len() > 8, "found too few ui edges: {found:?}");
    if let Some(cycle) = find_cycle(&found) {
        let places: Vec<String> = cycle.windows(2).map(|w| found[&(w[0].clone(), w[1].clone())].clone()).collect();
        panic!("a cycle among the modules of src/ui: {} ({})", cycle.join(" -> "), places.join("; "));
    }
}

/// A planted cycle and a planted edge the table forbids are both caught; comments, strings and doc links are not
/// edges; grouped and `super::` paths are.
#[test]
fn the_edge_checker_fails_on_a_planted_cycle_and_a_forbidden_edge() {
    let file = |rel: &str, src: &str| (rel.to_owned(), src.to_owned());
    let lib = file("src/lib.rs", "pub mod domain;\npub mod store;\npub mod ui;\n");
    let architecture = "# x\n## Dependencies\n| module | may use |\n|---|---|\n| `domain` | nothing |\n\
                        | `store` | `domain` |\n| `ui` | `store`, `domain` |\n| `main` | `ui` |\n";
    let clean = vec![
        lib.clone(),
        file(
            "src/domain.rs",
            "//! Knows nothing of [`crate::store`].\nconst S: &str = \"crate::ui::x\";\nconst R: &str = r#\"\"crate::ui\"\"#;\n",
        ),
        file("src/store/mod.rs", "use crate::{domain::Item, domain};\nmod formats;\n"),
        file("src/store/formats.rs", "use super::Store; // crate::ui in a comment\n"),
        file("src/ui/mod.rs", "use crate::store::Store;\n/* crate::main */\n"),
        file("src/main.rs", "fn main() { argus::ui::run() }\n"),
    ];
    assert_eq!(top_level_problems(&clean, architecture), Vec::<String>::new());
    let modules = top_level_modules(&clean);
    let e = edges(&clean, &[], &modules);
    let pairs: Vec<(&str, &str)> = e.keys().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(pairs, [("main", "ui"), ("store", "domain"), ("ui", "store")]);

    let mut planted = clean.clone();
    planted[1] = file("src/domain.rs", "pub fn f() -> crate::store::formats::X { todo!() }\n");
    let problems = top_level_problems(&planted, architecture);
    assert!(problems.iter().any(|p| p.contains("`domain` uses `store`")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("cycle") && p.contains("domain -> store -> domain")), "{problems:?}");

    let mut grouped = clean.clone();
    grouped[3] = file("src/store/formats.rs", "use crate::{domain, ui::{Panel, Notice}};\n");
    let problems = top_level_problems(&grouped, architecture);
    assert!(problems.iter().any(|p| p.contains("`store` uses `ui`")), "{problems:?}");

    let mut missing = clean;
    missing[0] = file("src/lib.rs", "pub mod domain;\npub mod store;\npub mod ui;\npub mod jobs;\n");
    let problems = top_level_problems(&missing, architecture);
    assert!(problems.iter().any(|p| p.contains("`jobs` is missing")), "{problems:?}");

    // `super::` from a nested ui file resolves to the module it names.
    let nested = vec![
        file("src/ui/app/handle.rs", "use super::super::command::AppCommand;\nuse super::State;\n"),
        file("src/ui/command.rs", "use super::app::X;\n"),
    ];
    let ui: BTreeSet<String> = ["app", "command"].map(String::from).into();
    let e = edges(&nested, &["ui"], &ui);
    assert_eq!(find_cycle(&e), Some(vec!["app".to_owned(), "command".to_owned(), "app".to_owned()]));
}

//! The layout holds: no file in `src/` over 700 lines, no import cycle between files, each
//! top-level part of `src/` uses only the parts below it (the table in `src/lib.rs`'s
//! `# Layout`), and README's Layout names every folder and file of `src/`.
//!
//! An import is a path through `crate::`, `super::` or `self::` (or, in a file that declares
//! `mod x;`, a path `x::…`), resolved to the file of the longest module it names; comments
//! and `#[cfg(test)] mod tests` blocks are left out. A file that re-exports its children
//! (`mod.rs`) is thus imported by none of them: children use their siblings by path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What each top-level part of `src/` may use (a file at the top, such as `auth.rs`, is a
/// part too). `lib`, `main`, `app` and `cli` compose everything.
const MAY_USE: &[(&str, &[&str])] = &[
    ("setting", &[]),
    ("ids", &[]),
    ("rate", &["ids", "setting"]),
    ("auth", &["setting"]),
    ("engineio", &["ids", "rate", "setting"]),
    ("socketio", &["engineio", "ids", "setting"]),
    ("db", &["ids", "setting"]),
    (
        "chat",
        &[
            "auth", "db", "engineio", "ids", "rate", "setting", "socketio",
        ],
    ),
    ("cluster", &["chat", "ids", "rate", "setting", "socketio"]),
    ("admin", &["engineio", "ids", "rate", "setting", "socketio"]),
    ("http", &["auth", "chat", "db", "engineio", "setting"]),
    (
        "config",
        &[
            "admin", "auth", "chat", "cluster", "db", "engineio", "http", "rate", "setting",
            "socketio",
        ],
    ),
];

/// Parts that compose the others.
const COMPOSERS: &[&str] = &["lib", "main", "app", "cli"];

const MAX_LINES: usize = 700;

struct Source {
    path: PathBuf,
    text: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of `src/`, by module path (`chat/room/actor`; `mod.rs` is its folder).
fn sources() -> BTreeMap<Vec<String>, Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src/ is readable")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src/");
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                let last = parts.pop().unwrap_or_default();
                if parts.is_empty() && last != "mod" {
                    parts.push(last);
                }
            }
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            (parts, Source { path, text })
        })
        .collect()
}

/// `text` without comments and without its `#[cfg(test)] mod tests { … }` block.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths `crate::a::b`, `super::x`, `self::y` in `code`, as their segments (a brace
/// group `a::{b, c::d}` gives one path per item).
fn paths(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 6)].iter().collect();
        let head = ["crate", "super", "self"]
            .into_iter()
            .find(|h| rest.starts_with(h) && (i == 0 || !is_ident(bytes[i - 1])));
        let Some(head) = head else {
            i += 1;
            continue;
        };
        let mut j = i + head.len();
        let mut segs = Vec::new();
        let mut groups: Vec<Vec<String>> = Vec::new();
        loop {
            if bytes.get(j) == Some(&':') && bytes.get(j + 1) == Some(&':') {
                j += 2;
                if bytes.get(j) == Some(&'{') {
                    let end = (j..bytes.len()).find(|k| bytes[*k] == '}').unwrap_or(j);
                    let inner: String = bytes[j + 1..end].iter().collect();
                    for item in inner.split(',') {
                        let item = item.trim().split(" as ").next().unwrap_or("").trim();
                        if !item.is_empty() {
                            groups.push(
                                item.split("::")
                                    .filter(|s| !s.is_empty() && *s != "self" && *s != "{")
                                    .map(str::to_string)
                                    .collect(),
                            );
                        }
                    }
                    j = end + 1;
                    break;
                }
                let start = j;
                while j < bytes.len() && is_ident(bytes[j]) {
                    j += 1;
                }
                if start == j {
                    break;
                }
                segs.push(bytes[start..j].iter().collect::<String>());
            } else {
                break;
            }
        }
        if !segs.is_empty() || !groups.is_empty() {
            if groups.is_empty() {
                out.push((head.to_string(), segs));
            } else {
                for g in groups {
                    let mut path = segs.clone();
                    path.extend(g);
                    out.push((head.to_string(), path));
                }
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// The files each file imports.
fn imports(files: &BTreeMap<Vec<String>, Source>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| files.contains_key(m))
    };
    let mut edges = BTreeMap::new();
    for (module, source) in files {
        let code = code_of(&source.text);
        let is_mod_file = source
            .path
            .file_name()
            .is_some_and(|f| f == "mod.rs" || f == "lib.rs" || f == "main.rs");
        let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
        let mut to: BTreeSet<Vec<String>> = BTreeSet::new();
        for (head, segs) in paths(&code) {
            let base = match head.as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                _ => parent.clone(),
            };
            let mut full = base;
            full.extend(segs);
            if let Some(target) = resolve(&full) {
                if &target != module {
                    to.insert(target);
                }
            }
        }
        // `mod child;` and a path `child::…` in the same file.
        for line in code.lines() {
            let line = line.trim();
            let decl = line
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(child) = decl {
                let mut target = module.clone();
                target.push(child.to_string());
                let used = code.match_indices(&format!("{child}::")).any(|(at, _)| {
                    at == 0 || !code[..at].ends_with(|c: char| is_ident(c) || c == ':')
                });
                if used && files.contains_key(&target) {
                    to.insert(target);
                }
            }
        }
        let _ = is_mod_file;
        edges.insert(module.clone(), to);
    }
    edges
}

/// The cycles (strongly connected components of more than one file).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let nodes: Vec<&Vec<String>> = edges.keys().collect();
    let index_of: HashMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    // Tarjan's algorithm, iteratively small enough to recurse here.
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn strong(v: usize, adj: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in &adj[v] {
            match s.index[w] {
                None => {
                    strong(w, adj, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            edges[*n]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let mut s = State {
        index: vec![None; nodes.len()],
        low: vec![0; nodes.len()],
        on: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..nodes.len() {
        if s.index[v].is_none() {
            strong(v, &adj, &mut s);
        }
    }
    s.out
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|i| nodes[*i].join("/")).collect();
            names.sort();
            names
        })
        .collect()
}

fn part_of(module: &[String]) -> String {
    module.first().cloned().unwrap_or_else(|| "lib".into())
}

#[test]
fn no_file_in_src_is_over_700_lines() {
    let long: Vec<String> = sources()
        .values()
        .filter(|s| s.text.lines().count() > MAX_LINES)
        .map(|s| format!("{} ({} lines)", s.path.display(), s.text.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let files = sources();
    let found = cycles(&imports(&files));
    assert!(found.is_empty(), "import cycles between files: {found:?}");
}

#[test]
fn each_part_uses_only_the_parts_below_it() {
    let files = sources();
    let allowed: HashMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = BTreeSet::new();
    for (from, to) in imports(&files) {
        let part = part_of(&from);
        if COMPOSERS.contains(&part.as_str()) {
            continue;
        }
        let Some(may) = allowed.get(part.as_str()) else {
            wrong.insert(format!("{part}: not in the table of src/lib.rs's layout"));
            continue;
        };
        for target in to {
            let other = part_of(&target);
            if other != part && !may.contains(&other.as_str()) {
                wrong.insert(format!("{} uses {}", from.join("/"), target.join("/")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports across parts the layout does not allow: {wrong:?}"
    );
}

#[test]
fn readme_layout_names_every_folder_and_file_of_src() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let layout = readme
        .split("\n## Layout")
        .nth(1)
        .map(|rest| rest.split("\n## ").next().unwrap_or(rest))
        .expect("README.md has a Layout section");
    let root = src();
    let mut missing = Vec::new();
    for source in sources().values() {
        let rel = source.path.strip_prefix(&root).expect("under src/");
        let name = rel
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = rel
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A file is named by its name in its folder's line (or the path itself).
        let named = layout.contains(&rel.to_string_lossy().to_string())
            || layout
                .lines()
                .filter(|l| folder.is_empty() || l.contains(&format!("{folder}/")))
                .any(|l| l.contains(name.as_str()) || l.contains(name.trim_end_matches(".rs")));
        if !named {
            missing.push(rel.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "README's Layout does not name: {missing:?}"
    );
}

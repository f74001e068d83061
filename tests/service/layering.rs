//! The library's layering, checked on its source: no two files of `src/` import each other
//! (directly or round a longer cycle), no two top-level modules either, and the command line and
//! wire crates (clap, tonic, warp, hyper, and the TLS, statsd, OpenTelemetry and file-watch
//! crates) stay in the modules that own them.
//!
//! An import is any `crate::`, `super::` or `self::` path, or a path through a child module the
//! file declares; `pub use` re-exports, `mod` declarations, comments, strings and test modules
//! are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path below the crate root: `["store", "redis", "link"]`.
type Module = Vec<String>;

/// Crates that tie code to the command line or to a wire, and the top-level modules that may
/// use them (besides `main.rs`).
const CONFINED: [(&str, &[&str]); 10] = [
    ("clap", &["settings"]),
    ("tonic", &["rls", "server"]),
    ("tonic_health", &["server"]),
    ("warp", &["http"]),
    ("hyper_util", &["http"]),
    ("tokio_rustls", &["tls"]),
    ("cadence", &["statsd"]),
    ("opentelemetry_otlp", &["trace"]),
    ("opentelemetry_sdk", &["trace"]),
    ("notify", &["watch"]),
];

#[test]
fn no_two_files_import_each_other() {
    let graph = graph();
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles between files: {cycles:?}");
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, targets) in graph() {
        for to in targets {
            if from.first() != to.first() {
                top.entry(from[..1].to_vec())
                    .or_default()
                    .insert(to[..1].to_vec());
            }
        }
    }
    let cycles = cycles(&top);
    assert!(
        cycles.is_empty(),
        "import cycles between modules: {cycles:?}"
    );
}

#[test]
fn command_line_and_wire_crates_stay_in_their_faces() {
    let mut misplaced = Vec::new();
    for (module, text) in sources() {
        for (krate, allowed) in CONFINED {
            let uses = text.contains(&format!("{krate}::"));
            if uses && !allowed.contains(&module[0].as_str()) {
                misplaced.push(format!("{} uses {krate}", module.join("::")));
            }
        }
    }
    assert!(misplaced.is_empty(), "{misplaced:?}");
}

#[test]
fn the_checker_sees_a_cycle() {
    let a: Module = vec!["a".into()];
    let b: Module = vec!["b".into()];
    let graph = BTreeMap::from([
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone()])),
    ]);
    assert_eq!(cycles(&graph), [BTreeSet::from([a, b])]);
}

/// Every library file (not `main.rs`) as its module path and its code without comments,
/// strings and test modules.
fn sources() -> Vec<(Module, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .filter(|path| !path.ends_with("main.rs"))
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            (module, code(&std::fs::read_to_string(&path).unwrap()))
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The code of a file: line comments, string literals and everything from `#[cfg(test)]` on
/// removed (test modules sit at the end of their file).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut in_string = false;
        let mut escaped = false;
        for c in line.chars() {
            match (in_string, escaped, c) {
                (true, false, '\\') => escaped = true,
                (true, true, _) => escaped = false,
                (_, false, '"') => in_string = !in_string,
                (false, _, _) => out.push(c),
                _ => {}
            }
        }
        out.push('\n');
    }
    out
}

/// Which files each file imports.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let sources = sources();
    let known: BTreeSet<Module> = sources.iter().map(|(module, _)| module.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &sources {
        let mut targets = BTreeSet::new();
        let imports: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("pub use"))
            .filter(|line| !line.trim_start().starts_with("pub(crate) use"))
            .collect();
        for path in paths(module, &imports.join("\n")) {
            // The crate root only declares modules (and is where exported macros live).
            if let Some(target) = resolve(&known, &path)
                && target != *module
                && !target.is_empty()
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Every module path the code names, made absolute.
fn paths(module: &Module, code: &str) -> Vec<Module> {
    let children: Vec<String> = code
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub mod "))
                .or_else(|| line.strip_prefix("pub(crate) mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect();
    let words = tokens(code);
    let mut found = Vec::new();
    for (index, word) in words.iter().enumerate() {
        let preceded_by_path = index > 0 && words[index - 1] == "::";
        if preceded_by_path || words.get(index + 1).map(String::as_str) != Some("::") {
            continue;
        }
        let start: Module = match word.as_str() {
            "crate" => Vec::new(),
            "super" => module[..module.len().saturating_sub(1)].to_vec(),
            "self" => module.clone(),
            child if children.iter().any(|c| c == child) => {
                let mut path = module.clone();
                path.push(child.to_string());
                path
            }
            _ => continue,
        };
        let mut tails = vec![Vec::new()];
        let mut at = index + 1;
        let mut tail = Vec::new();
        while words.get(at).map(String::as_str) == Some("::") {
            match words.get(at + 1).map(String::as_str) {
                Some("{") => {
                    // A group: each member is a path of its own.
                    tails.clear();
                    let mut member = tail.clone();
                    for token in &words[at + 2..] {
                        match token.as_str() {
                            "}" | ";" => break,
                            "," => {
                                tails.push(std::mem::replace(&mut member, tail.clone()));
                            }
                            "::" | "{" => {}
                            name => member.push(name.to_string()),
                        }
                    }
                    tails.push(member);
                    break;
                }
                Some(name) => {
                    tail.push(name.to_string());
                    tails = vec![tail.clone()];
                    at += 2;
                }
                None => break,
            }
        }
        for tail in tails {
            let mut path = start.clone();
            path.extend(tail.into_iter().filter(|part| part != "super"));
            found.push(path);
        }
    }
    found
}

/// Identifiers and the punctuation that matters to paths.
fn tokens(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        match c {
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                tokens.push("::".into());
            }
            '{' | '}' | ',' | ';' => tokens.push(c.to_string()),
            _ => {}
        }
    }
    tokens
}

/// The file a path leads into: its longest prefix that is a module of the crate.
fn resolve(known: &BTreeSet<Module>, path: &Module) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|length| path[..length].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// The strongly connected components of more than one node (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<BTreeSet<Module>> {
    struct Search<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        found: Vec<BTreeSet<Module>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, node: &'g Module) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[next].min(self.low[node]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.index[next].min(self.low[node]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(member) = self.stack.pop() {
                    component.insert(member.clone());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !search.index.contains_key(node) {
            search.visit(node);
        }
    }
    search.found
}

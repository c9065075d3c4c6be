//! The shape of `src/`: the module graph has no cycle, and the leaf stays a leaf.
//!
//! The graph is read from the source text, not from a list kept by hand: every `crate::`
//! path in code (a `use` or an inline path; comments and doc links do not count) is an edge
//! from the top-level module it is written in to the top-level module it names, or to
//! `lib` for items of the crate root (which names its modules without `crate::`). `super::` inside a top-level module's own submodules
//! (`render/ignition.rs`, `mod tests`) stays within that module; anywhere else it names the
//! crate root. The tests below fail with the offending edge or cycle spelt out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules (or `lib`) it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src/ readable")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to: `src/render/ignition.rs` -> `render`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src_dir()).expect("under src/");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments (line comments, doc comments, block comments) and
/// without the contents of string literals, so that neither counts as an import.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
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
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
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
            // A char literal such as '"' must not open a string; lifetimes pass through.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let mut it = rest.chars();
                match (it.next(), it.next(), it.next()) {
                    (Some('\\'), _, _) => {
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                    }
                    (Some(_), Some('\''), _) => {
                        chars.next();
                        chars.next();
                    }
                    _ => out.push('\''),
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first names of the items in a `{a, b::c, d}` group that starts `s` (after `{`).
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident_at(&s[i..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut g = Graph::new();
    for file in &files {
        let from = module_of(file);
        if from == "main" {
            // The binary is its own crate; it reaches the library as `meshboot::`.
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable");
        let code = code_only(&text);
        let edges = g.entry(from.clone()).or_default();
        let mut target = |name: &str| {
            let to = if modules.contains(name) && name != "lib" && name != "main" {
                name.to_string()
            } else {
                "lib".to_string()
            };
            if to != from {
                edges.insert(to);
            }
        };
        for (at, _) in code.match_indices("crate::") {
            // Not `meshboot_crate::` or the like.
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + "crate::".len()..];
            match rest.strip_prefix('{') {
                Some(group) => group_heads(group).into_iter().for_each(&mut target),
                None => target(ident_at(rest)),
            }
        }
        // The crate root names its modules without `crate::` (`use spec::Spec`,
        // `source::parse(..)`).
        if from == "lib" {
            for (at, _) in code.match_indices("::") {
                let head = code[..at]
                    .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("");
                let before = code[..at - head.len()].chars().next_back();
                if modules.contains(head) && before != Some(':') {
                    target(head);
                }
            }
        }
        // `super::` in a top-level file outside its `mod tests` names the crate root.
        let top_level = file.parent() == Some(src_dir().as_path());
        if top_level {
            let outside_tests = code.split("mod tests {").next().unwrap_or("");
            if outside_tests.contains("super::") {
                edges.insert("lib".to_string());
            }
        }
    }
    g
}

/// A cycle in `g`, as the list of modules along it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn describe(g: &Graph) -> String {
    g.iter()
        .map(|(m, to)| {
            format!(
                "  {m} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Not hollow: the graph was really read (the pipeline's main edges are there).
    assert!(
        g.get("validate").is_some_and(|t| t.contains("spec")),
        "{}",
        describe(&g)
    );
    assert!(
        g.get("lib").is_some_and(|t| t.contains("plan")),
        "{}",
        describe(&g)
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "import cycle: {}\nthe graph:\n{}",
            cycle.join(" -> "),
            describe(&g)
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn imports_are_read_from_code_not_comments() {
    let code = code_only(
        "//! see [`crate::plan`]\nuse crate::{spec::Spec, redact};\nlet s = \"crate::render\";\nlet c = '\"'; crate::emit::x();\n",
    );
    assert!(!code.contains("crate::plan") && !code.contains("crate::render"));
    assert!(code.contains("crate::emit::x"), "{code}");
    let at = code.find("crate::{").expect("group");
    assert_eq!(group_heads(&code[at + 8..]), vec!["spec", "redact"]);
}

#[test]
fn redaction_is_a_leaf() {
    let g = graph();
    let edges = g.get("redact").cloned().unwrap_or_default();
    assert!(
        edges.is_empty(),
        "redact must import nothing from the crate, but refers to {edges:?}"
    );
}

/// The pipeline, in order: a module may refer only to modules before it, so the stages
/// stay a pipeline (validation does not reach into the plan, the plan does not reach into
/// rendering). A new module needs a place here.
const STAGES: &[&str] = &[
    // Leaves: redaction policy, the table of K3s flags meshboot sets, the wording of
    // problems, the typed error.
    "redact",
    "k3s_flags",
    "problem",
    "error",
    // Stage 1: text -> tree -> typed spec.
    "source",
    "diagnostics",
    "spec",
    "reader",
    // The firewall model (K3s ports, ranges) that validation and the plan both ask.
    "firewall",
    // Stage 2: what the spec means per node, the semantic checks, the secrets.
    "resolve",
    "validate",
    "secrets",
    // Minting short-lived keys from an OAuth secret (stage 2c, beside the secrets).
    "mint",
    // Stages 3-5, and beside them the cluster-wide outputs built from the spec and plan:
    // the tailnet policy, the kubeconfig commands, the upgrade Plans, and (delivery) what
    // Hetzner and its cluster-autoscaler need, planned beside the nodes'.
    "plan",
    "policy",
    "delivery",
    "render",
    "kubeconfig",
    "upgrade",
    "emit",
    "autoscaler",
    // The spec's schema, the pipeline as a whole, and the command line.
    "schema",
    "lib",
    "cli",
];

#[test]
fn every_module_refers_only_to_earlier_stages() {
    let g = graph();
    let rank = |m: &str| STAGES.iter().position(|s| *s == m);
    for (from, targets) in &g {
        let Some(r) = rank(from) else {
            panic!("module `{from}` has no place in STAGES (tests/testsuite/architecture.rs)");
        };
        for to in targets {
            let t = rank(to).unwrap_or_else(|| panic!("module `{to}` has no place in STAGES"));
            assert!(
                t < r,
                "`{from}` refers to `{to}`, a later stage\nthe graph:\n{}",
                describe(&g)
            );
        }
    }
    // The rules the issue names, spelt out.
    assert!(!g["validate"].contains("plan"), "validate imports plan");
    assert!(g["validate"].contains("resolve") && g["plan"].contains("resolve"));
}

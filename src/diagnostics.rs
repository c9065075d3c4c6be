//! Diagnostics, beside every stage: each problem found while reading, validating or
//! resolving a spec, placed and rendered.
//!
//! A [`Diagnostic`] is a [`Problem`] (what is wrong, worded in [`crate::problem`]) at a spec
//! path (`nodes[2].role`); the source map from
//! [`crate::source`] turns that path into a file, line and column when it is rendered, with
//! the source line and a caret under the offending value (or key), and a `help` line saying
//! what to do. Rendering never echoes a secret: source lines come masked from
//! [`SourceMap::display_line`], and messages pass through [`crate::redact::mask_words`].
//! Control and bidi characters are shown as `�`, tabs as four spaces, wide characters are
//! counted as two columns, and long lines are cut around the caret.

use crate::problem::Problem;
pub use crate::problem::Severity;
use crate::redact::mask_words;
use crate::source::{SourceMap, Span};
use std::fmt::Write as _;

/// What the caret points at for a diagnostic's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locus {
    /// The value at the path (the default).
    #[default]
    Value,
    /// The key that introduces the path (unknown and duplicate keys).
    Key,
    /// The key of the path's parent (a missing key: point at the mapping it is missing from).
    ParentKey,
    /// The key of the path where it is written, else its parent's key (a setting left at
    /// its default).
    KeyOrParent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Spec path such as `nodes[2].role`; empty for the document as a whole.
    pub path: String,
    /// What is wrong; its wording lives in [`crate::problem`].
    pub problem: Problem,
    /// An explicit position, for problems that have no spec path (YAML syntax errors).
    pub span: Option<Span>,
    pub locus: Locus,
    /// Text within the located line to put the caret under (one CIDR of a list, one
    /// variable name), when it appears there at or after the located column.
    pub narrow: Option<String>,
}

/// Source lines wider than this many columns are cut around the caret.
const MAX_LINE_COLUMNS: usize = 100;
/// Columns of context kept before the caret when a line is cut.
const CONTEXT_BEFORE: usize = 40;

impl Diagnostic {
    pub fn new(path: impl Into<String>, problem: Problem) -> Self {
        Diagnostic {
            path: path.into(),
            problem,
            span: None,
            locus: Locus::Value,
            narrow: None,
        }
    }

    pub fn severity(&self) -> Severity {
        self.problem.severity()
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Put the caret under `text` where it appears on the located line (at or after the
    /// located column), rather than under the whole value.
    pub fn narrow(mut self, text: impl Into<String>) -> Self {
        self.narrow = Some(text.into());
        self
    }

    /// Point the caret at the key of the path rather than its value.
    pub fn on_key(mut self) -> Self {
        self.locus = Locus::Key;
        self
    }

    /// Point the caret at the key of the path's parent (for a missing key).
    pub fn on_parent_key(mut self) -> Self {
        self.locus = Locus::ParentKey;
        self
    }

    /// Point the caret at the key of the path, or at its parent's key when the path is not
    /// written (a setting whose default is the problem).
    pub fn on_key_or_parent(mut self) -> Self {
        self.locus = Locus::KeyOrParent;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    /// Where in the source this diagnostic points, if anywhere.
    pub fn locate(&self, map: &SourceMap) -> Option<Span> {
        let span = self.locate_path(map)?;
        let Some(text) = self.narrow.as_deref().filter(|t| !t.is_empty()) else {
            return Some(span);
        };
        let line = map.display_line(span.line)?;
        let from = span.col.saturating_sub(1);
        let tail: String = line.chars().skip(from).collect();
        Some(match tail.find(text) {
            Some(at) => Span {
                line: span.line,
                col: from + tail[..at].chars().count() + 1,
                len: text.chars().count(),
            },
            None => span,
        })
    }

    fn locate_path(&self, map: &SourceMap) -> Option<Span> {
        if let Some(span) = self.span {
            return Some(span);
        }
        if self.path.is_empty() {
            return None;
        }
        match self.locus {
            Locus::Value => map.span_of(&self.path),
            Locus::Key => map.key_span_of(&self.path),
            Locus::ParentKey => {
                let parent = &self.path[..self.path.rfind(['.', '['])?];
                map.key_span_of(parent)
            }
            Locus::KeyOrParent => map.written_key_span_of(&self.path).or_else(|| {
                let parent = &self.path[..self.path.rfind(['.', '['])?];
                map.key_span_of(parent)
            }),
        }
    }

    /// Renders the diagnostic the way `just` and rustc do: headline, location, source line
    /// with a caret, then the help.
    pub fn render(&self, file: &str, map: &SourceMap) -> String {
        let label = match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let message = clean(&self.problem.to_string());
        if self.path.is_empty() {
            let _ = writeln!(out, "{label}: {message}");
        } else {
            let _ = writeln!(out, "{label}: {}: {message}", clean_path(&self.path));
        }
        let file = clean(file);
        let mut pad = " ".to_string();
        match self.locate(map) {
            Some(span) => {
                let line_no = span.line.to_string();
                pad = " ".repeat(line_no.len());
                let _ = writeln!(out, "{pad}--> {file}:{}:{}", span.line, span.col);
                let text = map.display_line(span.line).unwrap_or_default();
                let (shown, caret_at, caret_len) = excerpt(&text, span);
                let _ = writeln!(out, "{pad} |");
                if shown.is_empty() {
                    let _ = writeln!(out, "{line_no} |");
                } else {
                    let _ = writeln!(out, "{line_no} | {shown}");
                }
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(caret_at),
                    "^".repeat(caret_len)
                );
            }
            None => {
                let _ = writeln!(out, " --> {file}");
            }
        }
        let _ = writeln!(out, "{pad} = help: {}", clean(&self.problem.help()));
        out
    }
}

/// A message or path made safe to print: control, bidi and other invisible format
/// characters escaped, secrets masked.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    mask_words(&out)
}

/// A spec path made safe to print: each segment cleaned on its own, so that a key that is a
/// secret (`labels.K10...::server:pw`) is masked even though `.` joins it to the path.
fn clean_path(path: &str) -> String {
    path.split('.').map(clean).collect::<Vec<_>>().join(".")
}

/// Invisible formatting characters (Unicode category Cf and friends) that could make an
/// echoed line read differently from what it is: bidi overrides, zero-width characters.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// Terminal columns a character takes: 0 for combining marks, 2 for wide (East Asian,
/// emoji) characters, 1 otherwise. An approximation of Unicode's East Asian Width that is
/// right for the characters a spec is likely to hold.
fn char_width(c: char) -> usize {
    if ZERO_WIDTH.iter().any(|r| r.contains(&c)) {
        0
    } else if WIDE.iter().any(|r| r.contains(&c)) {
        2
    } else {
        1
    }
}

/// Combining marks: they take no column of their own.
#[rustfmt::skip]
const ZERO_WIDTH: &[std::ops::RangeInclusive<char>] = &[
    '\u{0300}'..='\u{036F}', '\u{1AB0}'..='\u{1AFF}', '\u{1DC0}'..='\u{1DFF}',
    '\u{20D0}'..='\u{20FF}', '\u{FE00}'..='\u{FE0F}', '\u{FE20}'..='\u{FE2F}',
];

/// East Asian wide characters and emoji: two columns each.
#[rustfmt::skip]
const WIDE: &[std::ops::RangeInclusive<char>] = &[
    '\u{1100}'..='\u{115F}', '\u{2E80}'..='\u{303E}', '\u{3041}'..='\u{33FF}',
    '\u{3400}'..='\u{4DBF}', '\u{4E00}'..='\u{9FFF}', '\u{A000}'..='\u{A4CF}',
    '\u{AC00}'..='\u{D7A3}', '\u{F900}'..='\u{FAFF}', '\u{FE30}'..='\u{FE4F}',
    '\u{FF00}'..='\u{FF60}', '\u{FFE0}'..='\u{FFE6}', '\u{1F300}'..='\u{1F64F}',
    '\u{1F900}'..='\u{1F9FF}', '\u{20000}'..='\u{2FFFD}', '\u{30000}'..='\u{3FFFD}',
];

/// How one source character is shown, and how many columns it takes.
fn cell(c: char) -> (String, usize) {
    match c {
        '\t' => ("    ".into(), 4),
        c if c.is_control() || is_invisible(c) => ("\u{FFFD}".into(), 1),
        c => (c.to_string(), char_width(c)),
    }
}

/// The part of `line` to show, the caret's column in it and the caret's width.
fn excerpt(line: &str, span: Span) -> (String, usize, usize) {
    let cells: Vec<(String, usize)> = line.chars().map(cell).collect();
    let first = span.col.saturating_sub(1).min(cells.len());
    let last = first.saturating_add(span.len.max(1)).min(cells.len());
    let width = |r: std::ops::Range<usize>| cells[r].iter().map(|(_, w)| w).sum::<usize>();
    let total = width(0..cells.len());
    let caret_len = width(first..last).max(1);
    if total <= MAX_LINE_COLUMNS {
        let shown: String = cells.iter().map(|(s, _)| s.as_str()).collect();
        return (shown.trim_end().to_string(), width(0..first), caret_len);
    }
    // Cut: keep up to CONTEXT_BEFORE columns before the caret.
    let mut start = first;
    while start > 0 && width(start - 1..first) <= CONTEXT_BEFORE {
        start -= 1;
    }
    let lead = if start > 0 { 1 } else { 0 };
    let budget = MAX_LINE_COLUMNS - lead - 1;
    let mut end = start;
    let mut used = 0;
    while end < cells.len() && used + cells[end].1 <= budget {
        used += cells[end].1;
        end += 1;
    }
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(cells[start..end].iter().map(|(s, _)| s.as_str()));
    if end < cells.len() {
        shown.push('…');
    }
    let caret_at = lead + width(start..first.min(end));
    let visible = if first < end {
        width(first..last.min(end)).max(1)
    } else {
        1
    };
    (shown, caret_at, visible)
}

/// Renders a batch of diagnostics, errors first, each group in source order (problems
/// without a position last), then a summary line.
pub fn render_all(diags: &[Diagnostic], file: &str, map: &SourceMap) -> String {
    let mut sorted: Vec<(usize, &Diagnostic, Option<Span>)> = diags
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d, d.locate(map)))
        .collect();
    sorted.sort_by_key(|(i, d, span)| {
        (
            d.severity(),
            span.map(|s| (0, s.line, s.col)).unwrap_or((1, 0, 0)),
            *i,
        )
    });
    let mut out = String::new();
    for (_, d, _) in &sorted {
        out.push_str(&d.render(file, map));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors > 0 || warnings > 0 {
        let _ = writeln!(
            out,
            "{}: {errors} error{}, {warnings} warning{}",
            clean(file),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    out
}

/// Reports a refused secret alone at its place. At the place of a refusal (its spec path,
/// and the key or the value there), every other problem is dropped: it could only describe
/// the secret again (an unknown role, a bad name), and the secret is what to fix. Among refusals, the
/// generic [`Problem::PastedSecret`] gives way to one that says more (a credential flag, a
/// URL with a password), and is kept once.
pub fn drop_shadowed(diags: &mut Vec<Diagnostic>) {
    let same_place =
        |a: &Diagnostic, b: &Diagnostic| a.path == b.path || (a.span.is_some() && a.span == b.span);
    let generic = |d: &Diagnostic| d.problem == Problem::PastedSecret;
    let keep: Vec<bool> = diags
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut refusals = diags
                .iter()
                .enumerate()
                .filter(|(j, r)| *j != i && r.problem.refuses_secret() && same_place(d, r));
            if !d.problem.refuses_secret() {
                refusals.next().is_none()
            } else if generic(d) {
                refusals.all(|(j, r)| generic(r) && j > i)
            } else {
                true
            }
        })
        .collect();
    let mut keep = keep.into_iter();
    diags.retain(|_| keep.next().unwrap_or(true));
}

/// "did you mean" for a misspelt key or value: the closest candidate within a distance
/// that grows with the candidate's length (1 for short names, a third of longer ones),
/// ignoring case and `-` versus `_`.
pub fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let g = norm(given);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&g, &norm(c)), *c))
        .filter(|(d, c)| *d <= 1.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(col: usize, len: usize) -> Span {
        Span { line: 1, col, len }
    }

    #[test]
    fn carets_count_display_columns() {
        assert_eq!(excerpt("a: 日本 x", span(7, 1)), ("a: 日本 x".into(), 8, 1));
        assert_eq!(excerpt("\tx: y", span(5, 1)), ("    x: y".into(), 7, 1));
        assert_eq!(excerpt("a\u{202E}b", span(3, 1)).0, "a\u{FFFD}b");
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}ERR{}", "x".repeat(500), "y".repeat(500));
        let (shown, at, len) = excerpt(&line, span(501, 3));
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(shown.chars().count() <= MAX_LINE_COLUMNS);
        assert_eq!(&shown.chars().skip(at).take(len).collect::<String>(), "ERR");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("rol", &["role", "name"]), Some("role"));
        assert_eq!(did_you_mean("auth-key", &["auth_key"]), Some("auth_key"));
        assert_eq!(did_you_mean("xy", &["os"]), None);
        assert_eq!(did_you_mean("Version", &["version"]), Some("version"));
    }
}

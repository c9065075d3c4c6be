//! Diagnostics: every problem found while loading, validating or planning a spec.
//!
//! A [`Diagnostic`] names the spec path it is about (`nodes[2].role`); the source map from
//! [`crate::source`] turns that path into a file, line and column when it is rendered, with
//! the source line and a caret under the offending value, and a `help` line saying what to do.

use crate::source::{SourceMap, Span};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Spec path such as `nodes[2].role`; empty for the document as a whole.
    pub path: String,
    pub message: String,
    pub help: Option<String>,
    /// An explicit position, for problems that have no spec path (YAML syntax errors).
    pub span: Option<Span>,
}

impl Diagnostic {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            help: None,
            span: None,
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            help: None,
            span: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic the way `just` and rustc do: headline, location, source line
    /// with a caret, then the help.
    pub fn render(&self, file: &str, map: &SourceMap) -> String {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        if self.path.is_empty() {
            let _ = writeln!(out, "{label}: {}", self.message);
        } else {
            let _ = writeln!(out, "{label}: {}: {}", self.path, self.message);
        }
        match self.span.or_else(|| map.span_of(&self.path)) {
            Some(span) => {
                let line_no = span.line.to_string();
                let pad = " ".repeat(line_no.len());
                let _ = writeln!(out, "{pad}--> {file}:{}:{}", span.line, span.col);
                let text = map.line_text(span.line).unwrap_or("");
                let text = sanitize_line(text);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line_no} | {text}");
                let caret_col = text
                    .chars()
                    .take(span.col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect::<String>();
                let avail = text
                    .chars()
                    .count()
                    .saturating_sub(span.col.saturating_sub(1));
                let width = span.len.clamp(1, avail.max(1));
                let _ = writeln!(out, "{pad} | {caret_col}{}", "^".repeat(width));
            }
            None => {
                let _ = writeln!(out, " --> {file}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// Keeps control characters out of the terminal when a source line is echoed.
fn sanitize_line(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Renders a batch of diagnostics, errors first in the order found, then a summary line.
pub fn render_all(diags: &[Diagnostic], file: &str, map: &SourceMap) -> String {
    let mut out = String::new();
    for d in diags.iter().filter(|d| d.is_error()) {
        out.push_str(&d.render(file, map));
        out.push('\n');
    }
    for d in diags.iter().filter(|d| !d.is_error()) {
        out.push_str(&d.render(file, map));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors > 0 || warnings > 0 {
        let _ = writeln!(
            out,
            "{file}: {errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    out
}

/// "did you mean" for a misspelt key or value.
pub fn did_you_mean<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

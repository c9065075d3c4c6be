//! Stage 1a, reading: YAML text -> a tree of [`Node`]s that remember where they came from.
//!
//! serde would forget line numbers; this tree keeps a [`Span`] for every key and value so that
//! [`crate::spec`] and [`crate::validate`] can report problems by spec path and the
//! [`SourceMap`] can turn that path back into `file:line:col` with the source line.
//!
//! Reading is bounded: the text, the nesting depth and the number of values (aliases
//! included, so `&a [*b, *b, ...]` cannot multiply memory) all have limits, and hitting one
//! is a positioned error, never a hang or a crash. Source lines shown in diagnostics are
//! masked wherever they hold a secret (see [`SourceMap::display_line`]).

use crate::problem::{Problem, Shape, YamlFlaw};
use crate::redact;
use std::collections::{BTreeMap, HashMap};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The largest spec meshboot reads. A real spec is a few KiB; every node's output must fit
/// in 32 KiB of user data anyway.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;
/// The deepest nesting of lists and mappings. A spec needs 5.
pub const MAX_DEPTH: usize = 64;
/// The most values (scalars, lists, mappings) a spec may hold once aliases are expanded.
pub const MAX_VALUES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// Width of the caret in characters: the length of a scalar as written, 1 for collections.
    pub len: usize,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A scalar with its text; `plain` is false for quoted and block scalars, which are
    /// always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

impl Node {
    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn shape(&self) -> Shape {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => Shape::Null,
            NodeKind::Scalar { .. } => Shape::Scalar,
            NodeKind::Seq(_) => Shape::List,
            NodeKind::Map(_) => Shape::Mapping,
        }
    }
}

/// A problem that stops reading the text at all (YAML syntax, encoding, limits), with its
/// position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Boxed, as `just` boxes its error kinds: the `Err` of a `Result` stays small.
    pub problem: Box<Problem>,
    pub span: Span,
}

/// Where every spec path sits in the source text.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
    /// Spec path -> span of its value.
    spans: BTreeMap<String, Span>,
    /// Spec path -> span of the key that introduces it (map entries only).
    key_spans: BTreeMap<String, Span>,
    /// Line -> (first column, length) of text that must never be echoed (secret values).
    masks: BTreeMap<usize, Vec<(usize, usize)>>,
}

impl SourceMap {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            text: text.to_string(),
            line_starts,
            ..SourceMap::default()
        }
    }

    /// The span of `path`'s value, or of its nearest ancestor that exists in the source.
    pub fn span_of(&self, path: &str) -> Option<Span> {
        let mut p = path;
        loop {
            if let Some(s) = self.spans.get(p) {
                return Some(*s);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The span of the key that introduces `path`, only where that key is written.
    pub fn written_key_span_of(&self, path: &str) -> Option<Span> {
        self.key_spans.get(path).copied()
    }

    /// The span of the key that introduces `path` (falls back to [`Self::span_of`]).
    pub fn key_span_of(&self, path: &str) -> Option<Span> {
        self.key_spans
            .get(path)
            .copied()
            .or_else(|| self.span_of(path))
    }

    /// The raw text of a line (without its line break).
    pub fn line_text(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self
            .line_starts
            .get(line)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        let l = self.text.get(start..end)?;
        Some(l.strip_suffix('\r').unwrap_or(l))
    }

    /// A line as it may be shown to the user: every secret value on it (the literal value of
    /// a secret field, anything that looks like a key or token) replaced by `*`, one for
    /// one, so that columns still line up.
    pub fn display_line(&self, line: usize) -> Option<String> {
        let text = self.line_text(line)?;
        let mut chars: Vec<char> = text.chars().collect();
        for (col, len) in self.masks.get(&line).into_iter().flatten() {
            let from = col.saturating_sub(1).min(chars.len());
            let to = (from + len).min(chars.len());
            chars[from..to].iter_mut().for_each(|c| *c = '*');
        }
        let masked: String = chars.into_iter().collect();
        Some(redact::mask_line(&masked))
    }

    fn index(&mut self, node: &Node, path: &str) {
        self.spans.entry(path.to_string()).or_insert(node.span);
        match &node.kind {
            NodeKind::Scalar { value, plain } => {
                if let Some((from, count)) = redact::sensitive_range(path, value) {
                    // A quoted scalar's span includes its quotes; the quotes stay visible.
                    let quotes = usize::from(!plain && node.span.len >= 2);
                    let content = node.span.len.saturating_sub(2 * quotes).max(1);
                    let rest = content.saturating_sub(from);
                    self.masks.entry(node.span.line).or_default().push((
                        node.span.col + quotes + from,
                        count.map_or(rest, |c| c.min(rest)),
                    ));
                }
            }
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.index(item, &format!("{path}[{i}]"));
                }
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    if let NodeKind::Scalar { value, .. } = &k.kind {
                        let child = join(path, value);
                        self.key_spans.entry(child.clone()).or_insert(k.span);
                        // A null value points at its key: there is nothing else to show.
                        if v.is_null() && v.span.len == 0 {
                            self.spans.entry(child.clone()).or_insert(k.span);
                        }
                        self.index(v, &child);
                    } else {
                        self.index(k, &join(path, "?"));
                    }
                }
            }
        }
    }
}

/// Joins a map key onto a path: `nodes[1]` + `role` -> `nodes[1].role`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks that a spec file is UTF-8 text; the error names the line and column of the first
/// byte that is not.
pub fn decode(bytes: &[u8]) -> Result<&str, SyntaxError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by definition.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        let line = prefix.matches('\n').count() + 1;
        let col = prefix.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
        SyntaxError {
            problem: Box::new(Problem::NotUtf8 { byte, line, col }),
            span: Span { line, col, len: 1 },
        }
    })
}

/// The text the reader and the [`SourceMap`] work on: without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Parses one YAML document. An empty document is a null scalar at 1:1.
/// Pass the text through [`strip_bom`] first, and build the [`SourceMap`] of errors from it.
pub fn parse(text: &str) -> Result<(Node, SourceMap), SyntaxError> {
    let text = strip_bom(text);
    if text.len() > MAX_SPEC_BYTES {
        return Err(SyntaxError {
            problem: Box::new(Problem::SpecTooLong {
                len: text.len(),
                max: MAX_SPEC_BYTES,
            }),
            span: Span {
                line: 1,
                col: 1,
                len: 1,
            },
        });
    }
    if let Some(err) = unprintable(text) {
        return Err(err);
    }
    let mut builder = Builder {
        lines: LineIndex::new(text),
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        values: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => return Err(yaml_error(e.info(), *e.marker())),
        };
        if ev == Event::StreamEnd {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    let root = builder.docs.pop().unwrap_or(Node {
        kind: NodeKind::Scalar {
            value: String::new(),
            plain: true,
        },
        span: Span {
            line: 1,
            col: 1,
            len: 0,
        },
    });
    let mut map = SourceMap::new(text);
    map.index(&root, "");
    Ok((root, map))
}

/// The first character YAML does not allow in a document (control characters other than
/// tab and line breaks). yaml-rust2 would stop reading at a NUL and silently drop the rest.
fn unprintable(text: &str) -> Option<SyntaxError> {
    let mut line = 1;
    let mut col = 1;
    for c in text.chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r' | '\u{85}')
            || !(c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}');
        if !allowed {
            return Some(SyntaxError {
                problem: Box::new(Problem::ControlCharacter(c)),
                span: Span { line, col, len: 1 },
            });
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

/// A yaml-rust2 error, recognised (see [`YamlFlaw::from_parser`]) and positioned.
fn yaml_error(info: &str, m: Marker) -> SyntaxError {
    SyntaxError {
        problem: Box::new(Problem::Yaml(YamlFlaw::from_parser(info))),
        span: Span {
            line: m.line().max(1),
            col: m.col() + 1,
            len: 1,
        },
    }
}

/// Byte offsets of line starts, to look at the source around a marker.
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The rest of the line from a 1-based line and 0-based character column.
    fn rest(&self, line: usize, col0: usize) -> &'t str {
        let Some(start) = line.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return "";
        };
        let end = self
            .starts
            .get(line)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        let l = self.text.get(*start..end).unwrap_or("");
        match l.char_indices().nth(col0) {
            Some((i, _)) => &l[i..],
            None => "",
        }
    }
}

/// How many characters a scalar takes on its first line, as written.
fn written_len(rest: &str, style: TScalarStyle, value: &str) -> usize {
    let rest = rest.strip_suffix('\r').unwrap_or(rest);
    let on_line = rest.chars().count();
    let n = match style {
        TScalarStyle::SingleQuoted => {
            let mut it = rest.chars().skip(1).peekable();
            let mut n = 1;
            loop {
                match it.next() {
                    None => break on_line,
                    Some('\'') if it.peek() == Some(&'\'') => {
                        it.next();
                        n += 2;
                    }
                    Some('\'') => break n + 1,
                    Some(_) => n += 1,
                }
            }
        }
        TScalarStyle::DoubleQuoted => {
            let mut it = rest.chars().skip(1);
            let mut n = 1;
            loop {
                match it.next() {
                    None => break on_line,
                    Some('\\') => {
                        n += 1;
                        if it.next().is_some() {
                            n += 1;
                        }
                    }
                    Some('"') => break n + 1,
                    Some(_) => n += 1,
                }
            }
        }
        TScalarStyle::Literal | TScalarStyle::Folded => 1,
        TScalarStyle::Plain => value
            .lines()
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            .min(on_line),
    };
    n.max(1)
}

enum Frame {
    /// Items, span, anchor id, the value count when the collection started.
    Seq(Vec<Node>, Span, usize, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Span, usize, usize),
}

struct Builder<'t> {
    lines: LineIndex<'t>,
    stack: Vec<Frame>,
    /// Anchor id -> the node and how many values it holds.
    anchors: HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    /// Values created so far, aliases counted at their full size.
    values: usize,
    error: Option<SyntaxError>,
}

impl Builder<'_> {
    fn span(&self, m: Marker, len: usize) -> Span {
        Span {
            line: m.line().max(1),
            col: m.col() + 1,
            len,
        }
    }

    fn count(&mut self, n: usize, m: Marker) -> bool {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            self.error = Some(SyntaxError {
                problem: Box::new(Problem::TooManyValues { max: MAX_VALUES }),
                span: self.span(m, 1),
            });
            return false;
        }
        true
    }

    fn push_node(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }

    fn open(&mut self, m: Marker) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            self.error = Some(SyntaxError {
                problem: Box::new(Problem::TooDeep { max: MAX_DEPTH }),
                span: self.span(m, 1),
            });
            return false;
        }
        if !self.stack.is_empty() || self.docs.is_empty() {
            return true;
        }
        self.second_document(m);
        false
    }

    fn second_document(&mut self, m: Marker) {
        self.error = Some(SyntaxError {
            problem: Box::new(Problem::TwoDocuments),
            span: self.span(m, 1),
        });
    }

    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                if self.stack.is_empty() && !self.docs.is_empty() {
                    return self.second_document(mark);
                }
                if !self.count(1, mark) {
                    return;
                }
                let rest = self.lines.rest(mark.line(), mark.col());
                let len = written_len(rest, style, &value);
                let plain = style == TScalarStyle::Plain;
                let node = Node {
                    span: self.span(mark, if plain && value.is_empty() { 0 } else { len }),
                    kind: NodeKind::Scalar { value, plain },
                };
                self.push_node(node, anchor, 1);
            }
            Event::SequenceStart(anchor, _) => {
                if self.open(mark) && self.count(1, mark) {
                    let span = self.span(mark, 1);
                    self.stack
                        .push(Frame::Seq(Vec::new(), span, anchor, self.values));
                }
            }
            Event::MappingStart(anchor, _) => {
                if self.open(mark) && self.count(1, mark) {
                    let span = self.span(mark, 1);
                    self.stack
                        .push(Frame::Map(Vec::new(), None, span, anchor, self.values));
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, span, anchor, start)) = self.stack.pop() {
                    let size = self.values - start + 1;
                    let node = Node {
                        kind: NodeKind::Seq(items),
                        span,
                    };
                    self.push_node(node, anchor, size);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, mut span, anchor, start)) = self.stack.pop() {
                    let size = self.values - start + 1;
                    // yaml-rust2 marks a block mapping after its first key; the mapping
                    // starts where that key does.
                    let flow = self.lines.rest(span.line, span.col - 1).starts_with('{');
                    if let (false, Some((k, _))) = (flow, entries.first()) {
                        span = Span {
                            len: k.span.len.max(1),
                            ..k.span
                        };
                    }
                    let node = Node {
                        kind: NodeKind::Map(entries),
                        span,
                    };
                    self.push_node(node, anchor, size);
                }
            }
            Event::Alias(id) => {
                if self.stack.is_empty() && !self.docs.is_empty() {
                    return self.second_document(mark);
                }
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    // The parser reports unknown anchors itself; stay total anyway.
                    return;
                };
                if !self.count(size, mark) {
                    return;
                }
                let Some(mut node) = self.anchors.get(&id).map(|(node, _)| node.clone()) else {
                    return;
                };
                // The alias itself is where a problem with the whole value shows.
                let rest = self.lines.rest(mark.line(), mark.col());
                let len = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !",]}#".contains(*c))
                    .count();
                node.span = self.span(mark, len.max(1));
                self.push_node(node, 0, size);
            }
            Event::DocumentStart if !self.docs.is_empty() => self.second_document(mark),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem that stops `text` from being read.
    fn problem_of(text: &str) -> Problem {
        *parse(text).expect_err("does not read").problem
    }

    fn scalar_span(text: &str, path: &str) -> Span {
        let (_, map) = parse(text).expect("parses");
        map.span_of(path).expect("has a span")
    }

    #[test]
    fn spans_of_quoted_plain_and_multibyte_scalars() {
        let text = "a: 'it''s'\nb: \"x\\\"y\" # c\nc: plain words\nd: 日本語\n日本: |\n  x\n";
        assert_eq!(
            scalar_span(text, "a"),
            Span {
                line: 1,
                col: 4,
                len: 7
            }
        );
        assert_eq!(
            scalar_span(text, "b"),
            Span {
                line: 2,
                col: 4,
                len: 6
            }
        );
        assert_eq!(
            scalar_span(text, "c"),
            Span {
                line: 3,
                col: 4,
                len: 11
            }
        );
        assert_eq!(
            scalar_span(text, "d"),
            Span {
                line: 4,
                col: 4,
                len: 3
            }
        );
        let (_, map) = parse(text).expect("parses");
        assert_eq!(
            map.key_span_of("日本"),
            Some(Span {
                line: 5,
                col: 1,
                len: 2
            })
        );
    }

    #[test]
    fn alias_bombs_hit_the_value_budget() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = if i == 1 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            let items = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("b{i}: &b{i} [{items}]\n"));
        }
        assert_eq!(
            problem_of(&text),
            Problem::TooManyValues { max: MAX_VALUES },
            "a billion laughs must not load"
        );
    }

    #[test]
    fn modest_aliases_still_work() {
        let (root, _) = parse("base: &b {os: flatcar}\nnode: *b\n").expect("parses");
        let NodeKind::Map(entries) = root.kind else {
            panic!("a map")
        };
        assert!(matches!(entries[1].1.kind, NodeKind::Map(_)));
        assert_eq!(
            entries[1].1.span,
            Span {
                line: 2,
                col: 7,
                len: 2
            }
        );
    }

    #[test]
    fn depth_is_bounded() {
        let text = format!("x: {}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(problem_of(&text), Problem::TooDeep { max: MAX_DEPTH });
    }

    #[test]
    fn bom_crlf_and_second_documents() {
        let (_, map) = parse("\u{feff}a: 1\r\nb: 2\r\n").expect("parses");
        assert_eq!(map.line_text(2), Some("b: 2"));
        assert_eq!(map.span_of("a").map(|s| s.col), Some(4));
        let err = parse("a: 1\n---\nb: 2\n").expect_err("two documents");
        assert_eq!(err.span.line, 2);
    }

    #[test]
    fn invalid_utf8_is_positioned() {
        let err = decode(b"a: 1\nb: \xff\n").expect_err("not UTF-8");
        assert_eq!((err.span.line, err.span.col), (2, 4));
        assert!(err.problem.to_string().contains("0xFF"));
    }

    #[test]
    fn secret_values_are_masked_in_displayed_lines() {
        let text = "tailscale:\n  auth_key: hunter2hunter2\n  x: 1\n";
        let (_, map) = parse(text).expect("parses");
        assert_eq!(
            map.display_line(2).as_deref(),
            Some("  auth_key: **************")
        );
    }
}

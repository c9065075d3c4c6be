//! Stage 1a, reading: YAML text -> a tree of [`Node`]s that remember where they came from.
//!
//! serde would forget line numbers; this tree keeps a [`Span`] for every key and value so that
//! [`crate::spec`] and [`crate::validate`] can report problems by spec path and the
//! [`SourceMap`] can turn that path back into `file:line:col` with the source line.

use std::collections::BTreeMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// Width of the caret: the length of a scalar, 1 for collections.
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

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error, with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
}

/// Where every spec path sits in the source text.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    text: String,
    spans: BTreeMap<String, Span>,
}

impl SourceMap {
    pub fn new(text: &str) -> Self {
        SourceMap {
            text: text.to_string(),
            spans: BTreeMap::new(),
        }
    }

    /// The span of `path`, or of its nearest ancestor that exists in the source.
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

    pub fn line_text(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }

    fn index(&mut self, node: &Node, path: &str) {
        self.spans.entry(path.to_string()).or_insert(node.span);
        match &node.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.index(item, &format!("{path}[{i}]"));
                }
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    if let NodeKind::Scalar { value, .. } = &k.kind {
                        let child = join(path, value);
                        // A null value points at its key: there is nothing else to show.
                        if v.is_null() && v.span.len == 0 {
                            self.spans.entry(child.clone()).or_insert(k.span);
                        }
                        self.index(v, &child);
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

/// Parses one YAML document. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<(Node, SourceMap), SyntaxError> {
    let mut builder = Builder {
        text,
        stack: Vec::new(),
        anchors: BTreeMap::new(),
        docs: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SyntaxError {
            message: e.info().to_string(),
            span: span_at(text, *m, 1),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let mut docs = builder.docs;
    if docs.len() > 1 {
        return Err(SyntaxError {
            message: "the spec holds more than one YAML document (a second `---`)".into(),
            span: docs[1].span,
        });
    }
    let root = docs.pop().unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
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

enum Frame {
    Seq(Vec<Node>, Span, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Span, usize),
}

struct Builder<'t> {
    text: &'t str,
    stack: Vec<Frame>,
    anchors: BTreeMap<usize, Node>,
    docs: Vec<Node>,
    error: Option<SyntaxError>,
}

/// Converts a yaml-rust2 marker (character index) into a line/column span.
fn span_at(text: &str, m: Marker, len: usize) -> Span {
    // The marker's line is 1-based; its column is 0-based in characters.
    let _ = text;
    Span {
        line: m.line().max(1),
        col: m.col() + 1,
        len,
    }
}

impl Builder<'_> {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let (NodeKind::Scalar { value: new, .. }, true) =
                        (&key.kind, self.error.is_none())
                    {
                        let dup = entries.iter().any(|(k, _)| {
                            matches!(&k.kind, NodeKind::Scalar { value, .. } if value == new)
                        });
                        if dup {
                            self.error = Some(SyntaxError {
                                message: format!(
                                    "duplicate key `{new}`: each key may appear once in a mapping"
                                ),
                                span: key.span,
                            });
                        }
                    }
                    entries.push((key, node));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let len = if plain {
                    value.chars().count()
                } else {
                    value
                        .lines()
                        .next()
                        .map(|l| l.chars().count() + 2)
                        .unwrap_or(2)
                };
                let node = Node {
                    span: span_at(self.text, mark, len),
                    kind: NodeKind::Scalar { value, plain },
                };
                self.push_node(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack
                    .push(Frame::Seq(Vec::new(), span_at(self.text, mark, 1), anchor))
            }
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Vec::new(),
                None,
                span_at(self.text, mark, 1),
                anchor,
            )),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, span, anchor)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, span, anchor)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            kind: NodeKind::Map(entries),
                            span,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => Node {
                        kind: NodeKind::Scalar {
                            value: String::new(),
                            plain: true,
                        },
                        span: span_at(self.text, mark, 1),
                    },
                };
                self.push_node(node, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

//! A YAML document as a tree of nodes that remember their line, built from yaml-rust2's event
//! parser. Compose errors name the line of the key or value they are about, which a plain value
//! tree cannot do. Anchors, aliases and merge keys (`<<: *defaults`) are resolved here, so the
//! compose reader sees plain maps.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::ComposeError;

/// Deeper nesting than any compose file needs is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;
/// Aliases can multiply a small file into a huge tree ("billion laughs"): refuse past this.
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// `plain`: written without quotes (so `80` may be read as a number, `"80"` not).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys in document order; duplicates were refused.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, ComposeError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut doc = None;
    loop {
        let (ev, mark) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            ev => {
                if doc.is_some() {
                    return Err(ComposeError::at(
                        line(mark),
                        "",
                        "a compose file holds one YAML document",
                    ));
                }
                doc = Some(b.node(ev, mark, 0)?);
            }
        }
    }
    Ok(doc.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

/// yaml-rust2's markers count lines from 1 and point at the token's start.
fn line(mark: Marker) -> usize {
    mark.line().max(1)
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), ComposeError> {
        self.parser.next_token().map_err(|e| {
            ComposeError::at(
                e.marker().line().max(1),
                "",
                format!("not valid YAML: {}", e.info()),
            )
        })
    }

    fn count(&mut self, n: usize, at: usize) -> Result<(), ComposeError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(ComposeError::at(
                at,
                "",
                format!("the document expands to more than {MAX_NODES} nodes (aliases?)"),
            ));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event, mark: Marker, depth: usize) -> Result<Node, ComposeError> {
        let at = line(mark);
        if depth > MAX_DEPTH {
            return Err(ComposeError::at(at, "", "nested too deeply"));
        }
        let before = self.nodes;
        self.count(1, at)?;
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(unsupported_tag(at, &tag.handle, &tag.suffix));
                }
                (scalar(at, text, style), anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(unsupported_tag(at, &tag.handle, &tag.suffix));
                }
                let mut items = Vec::new();
                loop {
                    let (ev, mark) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(ev, mark, depth + 1)?);
                }
                (
                    Node {
                        line: at,
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(unsupported_tag(at, &tag.handle, &tag.suffix));
                }
                (self.mapping(at, depth)?, anchor)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err(ComposeError::at(at, "", "an alias to an unknown anchor"));
                };
                self.count(size, at)?;
                return Ok(node);
            }
            other => {
                return Err(ComposeError::at(
                    at,
                    "",
                    format!("unexpected YAML event {other:?}"),
                ))
            }
        };
        if anchor > 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - before));
        }
        Ok(node)
    }

    /// A mapping's entries, with merge keys (`<<`) applied: explicit keys win over merged ones,
    /// and earlier merged maps over later ones (as YAML's merge key type says).
    fn mapping(&mut self, at: usize, depth: usize) -> Result<Node, ComposeError> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        let mut merged: Vec<(Key, Node)> = Vec::new();
        loop {
            let (ev, mark) = self.next()?;
            if ev == Event::MappingEnd {
                break;
            }
            let key_node = self.node(ev, mark, depth + 1)?;
            let key = match key_node.value {
                Value::Scalar { text, .. } => Key {
                    name: text,
                    line: key_node.line,
                },
                _ => {
                    return Err(ComposeError::at(
                        key_node.line,
                        "",
                        format!("a mapping key must be a scalar, not {}", key_node.kind()),
                    ))
                }
            };
            let (ev, mark) = self.next()?;
            let value = self.node(ev, mark, depth + 1)?;
            if key.name == "<<" {
                merge_into(&mut merged, &key, value)?;
                continue;
            }
            if entries.iter().any(|(k, _)| k.name == key.name) {
                return Err(ComposeError::at(
                    key.line,
                    &key.name,
                    "the key appears twice in this mapping",
                ));
            }
            entries.push((key, value));
        }
        for (k, v) in merged {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                entries.push((k, v));
            }
        }
        Ok(Node {
            line: at,
            value: Value::Map(entries),
        })
    }
}

fn merge_into(merged: &mut Vec<(Key, Node)>, key: &Key, value: Node) -> Result<(), ComposeError> {
    let maps = match value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items,
        _ => {
            return Err(ComposeError::at(
                key.line,
                "<<",
                "a merge key takes a mapping or a list of mappings",
            ))
        }
    };
    for m in maps {
        let Value::Map(entries) = m.value else {
            return Err(ComposeError::at(
                m.line,
                "<<",
                "a merge key takes a mapping or a list of mappings",
            ));
        };
        for (k, v) in entries {
            if !merged.iter().any(|(e, _)| e.name == k.name) {
                merged.push((k, v));
            }
        }
    }
    Ok(())
}

fn scalar(line: usize, text: String, style: TScalarStyle) -> Node {
    let plain = style == TScalarStyle::Plain;
    let value = if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        Value::Null
    } else {
        Value::Scalar { text, plain }
    };
    Node { line, value }
}

fn unsupported_tag(line: usize, handle: &str, suffix: &str) -> ComposeError {
    ComposeError::at(
        line,
        "",
        format!("YAML tags ({handle}{suffix}) are not supported"),
    )
}

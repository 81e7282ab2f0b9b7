//! Reading typed values out of YAML nodes, each failure naming the key path and line: strings,
//! booleans, numbers, durations (`1m30s`), byte sizes (`512m`), lists, "list or mapping" fields
//! (environment, labels, extra_hosts) and shell-style command strings.

use super::yaml::{Key, Node, Value};
use super::ComposeError;

pub type Entries = [(Key, Node)];

pub fn err(node: &Node, path: &str, reason: impl Into<String>) -> ComposeError {
    ComposeError::at(node.line, path, reason)
}

/// Refuses any key not in `allowed` (extension keys `x-...` are the Compose spec's own way of
/// carrying unrelated data, so they pass), naming the key and its line.
pub fn check_keys(entries: &Entries, path: &str, allowed: &[&str]) -> Result<(), ComposeError> {
    for (k, _) in entries {
        if !allowed.contains(&k.name.as_str()) && !k.name.starts_with("x-") {
            return Err(ComposeError::at(
                k.line,
                &join(path, &k.name),
                format!(
                    "Ferry does not support the key `{}` here (supported: {})",
                    k.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn map<'a>(node: &'a Node, path: &str) -> Result<&'a Entries, ComposeError> {
    match &node.value {
        Value::Map(e) => Ok(e),
        Value::Null => Ok(&[]),
        _ => Err(err(
            node,
            path,
            format!("expected a mapping, found {}", node.kind()),
        )),
    }
}

pub fn string(node: &Node, path: &str) -> Result<String, ComposeError> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(err(
            node,
            path,
            format!("expected a string, found {}", node.kind()),
        )),
    }
}

pub fn optional_string(node: &Node, path: &str) -> Result<Option<String>, ComposeError> {
    match node.value {
        Value::Null => Ok(None),
        _ => string(node, path).map(Some),
    }
}

pub fn boolean(node: &Node, path: &str) -> Result<bool, ComposeError> {
    match string(node, path)?.as_str() {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        other => Err(err(
            node,
            path,
            format!("expected true or false, found {other:?}"),
        )),
    }
}

pub fn number<T: std::str::FromStr>(node: &Node, path: &str) -> Result<T, ComposeError> {
    let s = string(node, path)?;
    s.trim()
        .parse()
        .map_err(|_| err(node, path, format!("expected a number, found {s:?}")))
}

/// A Compose duration: `90s`, `1m30s`, `500ms`, `2h`, `1.5s`; a bare number is seconds.
pub fn duration_ms(node: &Node, path: &str) -> Result<u64, ComposeError> {
    let s = string(node, path)?;
    parse_duration_ms(&s).ok_or_else(|| {
        err(
            node,
            path,
            format!("{s:?} is not a duration (like 30s, 1m30s, 500ms)"),
        )
    })
}

pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0).then_some((secs * 1000.0) as u64);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..u] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += value * unit_ms;
        rest = &rest[u..];
    }
    Some(total as u64)
}

/// A byte size: `1024`, `100k`, `512m`, `1g`, `512mb`, `1.5g` (powers of 1024, as Docker).
pub fn bytes(node: &Node, path: &str) -> Result<u64, ComposeError> {
    let s = string(node, path)?;
    parse_bytes(&s).ok_or_else(|| {
        err(
            node,
            path,
            format!("{s:?} is not a byte size (like 512m, 1g)"),
        )
    })
}

pub fn parse_bytes(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let value: f64 = lower[..digits].parse().ok()?;
    let factor: u64 = match lower[digits..].trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    Some((value * factor as f64) as u64)
}

pub fn seq<'a>(node: &'a Node, path: &str) -> Result<&'a [Node], ComposeError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ => Err(err(
            node,
            path,
            format!("expected a list, found {}", node.kind()),
        )),
    }
}

pub fn strings(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    seq(node, path)?
        .iter()
        .enumerate()
        .map(|(i, n)| string(n, &format!("{path}[{i}]")))
        .collect()
}

/// A string or a list of strings (`env_file`, `dns`-like fields).
pub fn string_or_list(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match node.value {
        Value::Scalar { .. } => Ok(vec![string(node, path)?]),
        _ => strings(node, path),
    }
}

/// `command` and `entrypoint`: a list is taken as is; a string is split like a shell would
/// (quotes and backslashes), without running one.
pub fn command(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match node.value {
        Value::Scalar { .. } => {
            let s = string(node, path)?;
            shell_words(&s).map_err(|m| err(node, path, m))
        }
        _ => strings(node, path),
    }
}

pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A field written as a list of `KEY<sep>VALUE` strings or as a mapping (environment, labels,
/// extra_hosts). A list item without the separator, or a null mapping value, has no value.
pub fn list_or_map(
    node: &Node,
    path: &str,
    sep: char,
) -> Result<Vec<(String, Option<String>)>, ComposeError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push((k.name.clone(), optional_string(v, &join(path, &k.name))?));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = string(item, &format!("{path}[{i}]"))?;
                let pair = match s.split_once(sep) {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s, None),
                };
                if out.iter().any(|(k, _)| *k == pair.0) {
                    return Err(err(item, path, format!("{:?} is given twice", pair.0)));
                }
                out.push(pair);
            }
        }
        Value::Null => {}
        Value::Scalar { .. } => {
            return Err(err(
                node,
                path,
                "expected a list or a mapping, found a scalar",
            ))
        }
    }
    Ok(out)
}

//! `${VAR}` interpolation as Compose does it, over every scalar value of the document (keys are
//! left alone): `$VAR`, `${VAR}`, `${VAR:-default}` / `${VAR-default}` (default when unset or
//! empty / unset), `${VAR:?message}` / `${VAR?message}` (an error instead), `${VAR:+alt}` /
//! `${VAR+alt}` (alt when set), `$$` for a literal `$`. Defaults may hold further `${...}`.
//! The variables are data given by the caller: a library never reads the environment.

use std::collections::{BTreeSet, HashMap};

use super::yaml::{Node, Value};
use super::ComposeError;

pub struct Vars<'a> {
    pub values: &'a HashMap<String, String>,
    /// Variables used without a value or default: Compose substitutes "" and warns.
    pub unset: BTreeSet<String>,
}

/// Interpolates every scalar value in place; an error names the value's line.
pub fn interpolate_tree(node: &mut Node, vars: &mut Vars<'_>) -> Result<(), ComposeError> {
    let line = node.line;
    match &mut node.value {
        Value::Scalar { text, .. } => {
            if text.contains('$') {
                *text = interpolate(text, vars).map_err(|m| ComposeError::at(line, "", m))?;
            }
        }
        Value::Seq(items) => {
            for item in items {
                interpolate_tree(item, vars)?;
            }
        }
        Value::Map(entries) => {
            for (_, v) in entries {
                interpolate_tree(v, vars)?;
            }
        }
        Value::Null => {}
    }
    Ok(())
}

pub fn interpolate(text: &str, vars: &mut Vars<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end =
                closing_brace(body).ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            out.push_str(&braced(&body[..end], vars)?);
            rest = &body[end + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                // A lone `$` followed by something that is no name: Compose refuses it.
                return Err(format!(
                    "invalid interpolation in {text:?}: write `$$` for a literal `$`"
                ));
            }
            out.push_str(&lookup(&after[..n], vars));
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// The index of the `}` closing a `${`, counting nested `${...}`.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, vars: &mut Vars<'_>) -> Result<String, String> {
    let n = name_len(body);
    if n == 0 {
        return Err(format!("invalid interpolation `${{{body}}}`"));
    }
    let name = &body[..n];
    let op = &body[n..];
    let value = vars.values.get(name).map(String::as_str);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let set = value.is_some_and(|v| !colon || !v.is_empty());
    let mut arg = || interpolate(op.get(1..).unwrap_or(""), vars);
    match op.chars().next() {
        None if !colon => Ok(lookup(name, vars)),
        Some('-') => match value {
            Some(v) if set => Ok(v.to_string()),
            _ => arg(),
        },
        Some('?') => match value {
            Some(v) if set => Ok(v.to_string()),
            _ => {
                let message = arg()?;
                Err(if message.is_empty() {
                    format!("variable {name} is required")
                } else {
                    format!("variable {name} is required: {message}")
                })
            }
        },
        Some('+') => {
            if set {
                arg()
            } else {
                Ok(String::new())
            }
        }
        _ => Err(format!("invalid interpolation `${{{body}}}`")),
    }
}

fn lookup(name: &str, vars: &mut Vars<'_>) -> String {
    match vars.values.get(name) {
        Some(v) => v.clone(),
        None => {
            vars.unset.insert(name.to_string());
            String::new()
        }
    }
}

//! Turns the `config` crate's error messages into ones an operator can act on: the key path
//! gets its missing dot (`streams[0].max_size_bytes`, not `streams[0]max_size_bytes`), and a
//! value that came from a `FERRY_` variable is blamed on that variable, with its value, instead
//! of on the file.

use std::collections::HashMap;

use super::ConfigError;

/// `message` from the config crate, about a configuration read from `origin` and `env`.
pub fn explain(origin: &str, message: &str, env: &HashMap<String, String>) -> ConfigError {
    let message = dotted(message);
    let from_env = key_of(&message).and_then(|key| {
        let var = format!("FERRY_{}", key.to_ascii_uppercase().replace('.', "__"));
        env.get(&var).map(|value| (var, value.clone()))
    });
    match from_env {
        Some((var, value)) => ConfigError {
            origin: format!("environment variable {var}={value:?}"),
            message,
        },
        None => ConfigError {
            origin: origin.to_string(),
            message,
        },
    }
}

/// The key a message names (`for key \`api.listen\``).
fn key_of(message: &str) -> Option<&str> {
    let start = message.find("key `")? + "key `".len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// Puts a dot between an index and the field after it: `a[0]b` becomes `a[0].b`.
fn dotted(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 4);
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
        {
            out.push('.');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_and_the_field_after_it_are_separated_by_a_dot() {
        assert_eq!(
            dotted("bad value for key `streams[0]max_size_bytes`"),
            "bad value for key `streams[0].max_size_bytes`"
        );
        assert_eq!(dotted("a[1][2] and [x]"), "a[1][2] and [x]");
    }

    #[test]
    fn a_value_from_the_environment_is_blamed_on_its_variable() {
        let env = HashMap::from([("FERRY_API__LISTEN".to_string(), "garbage".to_string())]);
        let e = explain(
            "ferry.toml",
            "invalid socket address syntax for key `api.listen`",
            &env,
        );
        assert_eq!(
            e.origin,
            "environment variable FERRY_API__LISTEN=\"garbage\""
        );
        let e = explain(
            "ferry.toml",
            "invalid value for key `api.listen`",
            &HashMap::new(),
        );
        assert_eq!(e.origin, "ferry.toml");
    }
}

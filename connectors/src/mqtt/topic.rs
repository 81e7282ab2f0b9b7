//! MQTT topic filters and routing rules, as pure functions: which streams a topic goes to.
//!
//! Matching follows MQTT 3.1.1 §4.7: `+` matches one level, `#` (last level only) matches any
//! number of levels including none, and filters starting with a wildcard do not match topics
//! starting with `$` (broker-internal topics such as `$SYS/...`).

use serde::Deserialize;

/// Checks that a filter is well formed; the error says what is wrong.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter must not be empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!(
                "{filter:?}: '#' must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("{filter:?}: '+' must be a whole level"));
        }
    }
    Ok(())
}

/// Whether `topic` matches the (valid) `filter`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A routing rule: messages whose topic matches `filter` (and, if set, that arrived through the
/// broker connection named `broker`) are appended to `stream`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub filter: String,
    pub stream: String,
    #[serde(default)]
    pub broker: Option<String>,
    /// What a full stream (`reject_new_data`) means for the messages this route sends it.
    #[serde(default)]
    pub on_full: OnFull,
}

/// What ingest does with a message whose stream is full (`reject_new_data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OnFull {
    /// Acknowledge it and count it (`stream_full`): the stream's refusal is final and every
    /// other stream of the connection keeps flowing. The default.
    #[default]
    Drop,
    /// Hold the ack back until the stream accepts (backpressure, nothing lost). Acks leave in
    /// order, so this stalls the whole broker connection, every route of it, while it waits.
    Hold,
    /// Store it in another stream instead (`on_full = { divert = "overflow" }`); if that one
    /// refuses too, hold back.
    Divert(String),
}

/// The routing table of one broker connection.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Keeps the routes that apply to the connection named `broker`.
    pub fn for_broker(routes: &[Route], broker: &str) -> Router {
        Router {
            routes: routes
                .iter()
                .filter(|r| r.broker.as_deref().is_none_or(|b| b == broker))
                .cloned()
                .collect(),
        }
    }

    /// The streams a message on `topic` goes to, each once, in route order, with what a full
    /// stream means (the first matching route's choice).
    pub fn streams_for<'a>(&'a self, topic: &str) -> Vec<(&'a str, &'a OnFull)> {
        let mut out: Vec<(&str, &OnFull)> = Vec::new();
        for r in &self.routes {
            if matches(&r.filter, topic) && !out.iter().any(|(s, _)| *s == r.stream) {
                out.push((&r.stream, &r.on_full));
            }
        }
        out
    }

    /// The distinct filters of the table, for subscribing when none are configured.
    pub fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.routes {
            if !out.contains(&r.filter) {
                out.push(r.filter.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_mqtt_specification_says() {
        let cases = [
            ("a/b/c", "a/b/c", true),
            ("a/+/c", "a/x/c", true),
            ("a/+/c", "a/x/y/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "anything/at/all", true),
            ("+", "a", true),
            ("+", "a/b", false),
            ("+/+", "/x", true),
            ("a/b", "a/b/c", false),
            ("#", "$SYS/uptime", false),
            ("+/uptime", "$SYS/uptime", false),
            ("$SYS/#", "$SYS/uptime", true),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
    }

    #[test]
    fn malformed_filters_are_rejected_with_a_reason() {
        for bad in ["", "a/#/b", "a#", "a/b+", "#/"] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
        for ok in ["#", "+", "a/+/b/#", "/"] {
            assert!(validate_filter(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_message_goes_to_every_matching_stream_once() {
        fn names(v: Vec<(&str, &OnFull)>) -> Vec<String> {
            v.into_iter().map(|(s, _)| s.to_string()).collect()
        }
        let r = |f: &str, s: &str, b: Option<&str>| Route {
            filter: f.into(),
            stream: s.into(),
            broker: b.map(Into::into),
            on_full: OnFull::default(),
        };
        let routes = vec![
            r("sensors/+/temp", "temps", None),
            r("sensors/#", "all", None),
            r("sensors/#", "all", None),
            r("sensors/#", "plant-only", Some("plant")),
        ];
        let local = Router::for_broker(&routes, "local");
        assert_eq!(
            names(local.streams_for("sensors/k1/temp")),
            vec!["temps", "all"]
        );
        assert!(local.streams_for("other").is_empty());
        let plant = Router::for_broker(&routes, "plant");
        assert_eq!(
            names(plant.streams_for("sensors/x")),
            vec!["all", "plant-only"]
        );
        assert_eq!(
            local.filters(),
            vec!["sensors/+/temp".to_string(), "sensors/#".to_string()]
        );
    }
}

//! `ferry config show`: the effective configuration — the file, the `FERRY_` variables and every
//! default — as TOML, with where it came from, and secrets redacted (the API token, broker
//! passwords, Greengrass tokens, export header values and AWS secret keys).

use std::collections::HashMap;
use std::path::Path;

use ferry_stream_manager::definition::{redact_secrets, REDACTED};

use super::{AgentConfig, CLI_VARIABLES};

/// Variable names whose values are never printed.
const SECRET_NAMES: [&str; 4] = ["TOKEN", "PASSWORD", "SECRET", "KEY"];

pub fn render(
    cfg: &AgentConfig,
    file: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    match file {
        Some(f) => out.push_str(&format!("# from {}\n", f.display())),
        None => out.push_str("# no file: built-in defaults\n"),
    }
    let mut vars: Vec<(&String, &String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("FERRY_") && !CLI_VARIABLES.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (k, v) in vars {
        let secret = SECRET_NAMES.iter().any(|s| k.contains(s));
        let shown = if secret { REDACTED } else { v.as_str() };
        out.push_str(&format!("# overridden by {k}={shown:?}\n"));
    }
    let body = toml::to_string_pretty(&redacted(cfg.clone()))
        .map_err(|e| format!("cannot print the configuration: {e}"))?;
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

fn redacted(mut c: AgentConfig) -> AgentConfig {
    let hide = |v: &mut Option<String>| {
        if v.is_some() {
            *v = Some(REDACTED.to_string());
        }
    };
    hide(&mut c.api.token);
    for b in &mut c.brokers {
        hide(&mut b.password);
    }
    for t in &mut c.greengrass.tokens {
        *t = REDACTED.to_string();
    }
    if let Some(creds) = c.greengrass.exports.credentials.as_mut() {
        hide(&mut creds.secret_access_key);
        hide(&mut creds.session_token);
    }
    c.streams = c.streams.into_iter().map(redact_secrets).collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_configuration_shows_defaults_and_sources_but_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[api]\ntoken = \"hunter2\"\n[[brokers]]\nname = \"b\"\nusername = \"u\"\npassword = \"pw-secret\"\n\
             [[streams]]\nname = \"s\"\n[[streams.exports]]\nidentifier = \"e\"\nkind = \"http\"\n\
             settings = { url = \"http://x/\", headers = { Authorization = \"Bearer tok-secret\" } }\n\
             [[routes]]\nfilter = \"#\"\nstream = \"s\"\n",
        )
        .unwrap();
        let env = HashMap::from([
            ("FERRY_LOG__LEVEL".to_string(), "debug".to_string()),
            ("FERRY_API__TOKEN".to_string(), "hunter2".to_string()),
        ]);
        let cfg = AgentConfig::load(Some(&path), &env).unwrap();
        let text = render(&cfg, Some(&path), &env).unwrap();
        for secret in ["hunter2", "pw-secret", "tok-secret"] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        assert!(
            text.contains("# overridden by FERRY_LOG__LEVEL=\"debug\""),
            "{text}"
        );
        assert!(
            text.contains("shutdown_timeout_ms = 10000"),
            "defaults shown:\n{text}"
        );
        assert!(text.contains("level = \"debug\""), "{text}");
        // What is printed reads back as a configuration.
        let back = dir.path().join("back.toml");
        std::fs::write(&back, text.replace(REDACTED, "x")).unwrap();
        assert!(AgentConfig::load(Some(&back), &HashMap::new()).is_ok());
    }
}

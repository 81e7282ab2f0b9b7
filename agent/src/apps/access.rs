//! How apps reach Ferry's streams: each app gets its own token (kept in
//! `DATA_DIR/apps/tokens/APP`, mode 0600), and its containers get `FERRY_URL` (the app API's
//! address on the Docker bridge, `docker.app_api_listen`) and `FERRY_TOKEN`. Requests with an
//! app's token may list streams, describe, read and append to them, limited to the streams its
//! `[[apps]]` entry names in `read_streams` / `write_streams` when it names any; nothing else
//! (no stream changes, no apps, no metrics).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::http::Method;

/// What one app may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `None`: every stream.
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
}

impl Grants {
    fn allows(list: &Option<Vec<String>>, stream: &str) -> bool {
        list.as_ref().is_none_or(|l| l.iter().any(|s| s == stream))
    }
}

/// Why a request with an app token is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    UnknownToken,
    Forbidden(String),
}

/// Decides a request of `app` (pure: method and path in, verdict out).
pub fn check(app: &str, grants: &Grants, method: &Method, path: &str) -> Result<(), Denied> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let forbidden = || Denied::Forbidden(format!("app {app:?} may not {method} {path}"));
    match (method, parts.as_slice()) {
        (&Method::GET, ["healthz"]) | (&Method::GET, ["v1", "streams"]) => Ok(()),
        (&Method::GET, ["v1", "streams", s]) | (&Method::GET, ["v1", "streams", s, "records"]) => {
            let stream = decode(s);
            if Grants::allows(&grants.read, &stream) {
                Ok(())
            } else {
                Err(Denied::Forbidden(format!(
                    "app {app:?} may not read stream {stream:?}"
                )))
            }
        }
        (&Method::POST, ["v1", "streams", s, "records"]) => {
            let stream = decode(s);
            if Grants::allows(&grants.write, &stream) {
                Ok(())
            } else {
                Err(Denied::Forbidden(format!(
                    "app {app:?} may not append to stream {stream:?}"
                )))
            }
        }
        _ => Err(forbidden()),
    }
}

/// Stream names may hold spaces and commas, sent percent-encoded.
fn decode(s: &str) -> String {
    s.replace("%20", " ")
        .replace("%2C", ",")
        .replace("%2c", ",")
}

/// The apps' tokens, by app and by token.
#[derive(Debug, Default)]
pub struct Tokens {
    by_app: BTreeMap<String, String>,
    by_token: HashMap<String, String>,
}

impl Tokens {
    pub fn app_of(&self, token: &str) -> Option<&str> {
        // A map lookup by the secret: equal-length tokens of random hex, so the time it takes
        // tells nothing useful.
        self.by_token.get(token).map(String::as_str)
    }

    /// The app's token, read from `dir` or made there.
    pub fn ensure(&mut self, dir: &Path, app: &str) -> std::io::Result<String> {
        if let Some(t) = self.by_app.get(app) {
            return Ok(t.clone());
        }
        let path = token_path(dir, app);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().len() == 64 => t.trim().to_string(),
            _ => {
                let token = random_hex()?;
                std::fs::create_dir_all(dir)?;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(token.as_bytes())?;
                f.sync_all()?;
                token
            }
        };
        self.by_app.insert(app.to_string(), token.clone());
        self.by_token.insert(token.clone(), app.to_string());
        Ok(token)
    }
}

fn token_path(dir: &Path, app: &str) -> PathBuf {
    dir.join(app)
}

fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_token_reaches_only_the_streams_it_was_granted() {
        let g = Grants {
            read: Some(vec!["raw".into()]),
            write: Some(vec!["aggregates".into(), "a b".into()]),
        };
        let ok = |m: Method, p: &str| check("agg", &g, &m, p).is_ok();
        assert!(ok(Method::GET, "/v1/streams"));
        assert!(ok(Method::GET, "/v1/streams/raw/records"));
        assert!(ok(Method::POST, "/v1/streams/aggregates/records"));
        assert!(ok(Method::POST, "/v1/streams/a%20b/records"));
        assert!(!ok(Method::GET, "/v1/streams/aggregates/records"));
        assert!(!ok(Method::POST, "/v1/streams/raw/records"));
        assert!(!ok(Method::DELETE, "/v1/streams/raw"));
        assert!(!ok(Method::POST, "/v1/streams"));
        assert!(!ok(Method::GET, "/v1/apps"));
        assert!(!ok(Method::GET, "/metrics"));
        let all = Grants::default();
        assert!(check("x", &all, &Method::POST, "/v1/streams/any/records").is_ok());
    }

    #[test]
    fn tokens_are_made_once_per_app_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tokens::default();
        let a = t.ensure(dir.path(), "a").unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(t.ensure(dir.path(), "b").unwrap(), a);
        let mut again = Tokens::default();
        assert_eq!(again.ensure(dir.path(), "a").unwrap(), a);
        assert_eq!(again.app_of(&a), Some("a"));
        let mode = std::fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}

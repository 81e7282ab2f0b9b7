//! The connect handshake (pure): version negotiation and the client's auth token.
//!
//! ```text
//! client: 0x01, Connect {requestId, protocolVersion, otherSupportedProtocolVersions, authToken}
//! server: 0x01, ConnectResponse {requestId, status, protocolVersion, supportedProtocolVersions}
//! ```
//! The session speaks the client's `protocolVersion` when it is 1.1.0 or 1.0.0, else the first
//! supported entry of `otherSupportedProtocolVersions`. A version not of the form `d.d.d` is
//! `InvalidProtocolVersion` (11), an unsupported one `UnsupportedProtocolVersion` (10), and
//! with authentication on, a missing, empty or unknown token is `Unauthorized` (2); each
//! failure is answered and the connection closed.

use super::messages::{ConnectRequest, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    V1_0_0,
    V1_1_0,
}

impl ProtocolVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V1_0_0 => "1.0.0",
            ProtocolVersion::V1_1_0 => "1.1.0",
        }
    }

    fn parse(s: &str) -> Option<ProtocolVersion> {
        match s {
            "1.1.0" => Some(ProtocolVersion::V1_1_0),
            "1.0.0" => Some(ProtocolVersion::V1_0_0),
            _ => None,
        }
    }
}

/// Client authentication: off, or a set of accepted tokens. Debug shows only how many.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Option<Vec<Box<[u8]>>>,
    /// Tokens of deployed container apps, checked by the app deployer.
    app_tokens: Option<AppTokens>,
}

/// Whether a token belongs to a deployed container app.
pub type AppTokens = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tokens {
            None => f.write_str("Auth(off)"),
            Some(t) => write!(f, "Auth({} tokens)", t.len()),
        }
    }
}

impl Auth {
    pub fn off() -> Auth {
        Auth {
            tokens: None,
            app_tokens: None,
        }
    }

    /// Also accepts the tokens of deployed container apps. Authentication is on from then on,
    /// even with no configured token: this is how the port is offered on the apps' network.
    pub fn with_app_tokens(mut self, app_tokens: AppTokens) -> Auth {
        self.tokens.get_or_insert_with(Vec::new);
        self.app_tokens = Some(app_tokens);
        self
    }

    pub fn tokens<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Auth {
        let tokens = tokens
            .into_iter()
            .map(|t| t.as_ref().as_bytes().into())
            .collect();
        Auth {
            tokens: Some(tokens),
            app_tokens: None,
        }
    }

    pub fn is_on(&self) -> bool {
        self.tokens.is_some()
    }

    /// Compares `given` with every token, each comparison without an early exit, so the time
    /// taken does not reveal how much of a guess matched.
    pub fn accepts(&self, given: Option<&str>) -> bool {
        let Some(tokens) = &self.tokens else {
            return true;
        };
        let Some(given) = given.filter(|g| !g.is_empty()) else {
            return false;
        };
        let configured = tokens.iter().fold(false, |ok, t| {
            ok | crate::api::constant_time_eq(t, given.as_bytes())
        });
        configured || self.app_tokens.as_ref().is_some_and(|app| app(given))
    }
}

/// The outcome of a Connect request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    Accepted(ProtocolVersion),
    Refused { status: Status, message: String },
}

pub fn negotiate(req: &ConnectRequest, auth: &Auth) -> Negotiated {
    if !is_version_form(&req.protocol_version) {
        return Negotiated::Refused {
            status: Status::InvalidProtocolVersion,
            message: format!(
                "protocolVersion {:?} is not of the form d.d.d",
                req.protocol_version
            ),
        };
    }
    let version = ProtocolVersion::parse(&req.protocol_version).or_else(|| {
        req.other_supported_protocol_versions
            .iter()
            .find_map(|v| ProtocolVersion::parse(v))
    });
    let Some(version) = version else {
        return Negotiated::Refused {
            status: Status::UnsupportedProtocolVersion,
            message: format!(
                "protocol version {:?} is not supported; this server speaks 1.1.0 and 1.0.0",
                req.protocol_version
            ),
        };
    };
    if !auth.accepts(req.auth_token.as_deref()) {
        return Negotiated::Refused {
            status: Status::Unauthorized,
            message:
                "the auth token (AWS_CONTAINER_AUTHORIZATION_TOKEN) is missing or not accepted"
                    .into(),
        };
    }
    Negotiated::Accepted(version)
}

fn is_version_form(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(version: &str, others: &[&str], token: Option<&str>) -> ConnectRequest {
        ConnectRequest {
            request_id: "c".into(),
            protocol_version: version.into(),
            other_supported_protocol_versions: others.iter().map(|s| s.to_string()).collect(),
            sdk_version: Some("1.1.2".into()),
            auth_token: token.map(String::from),
        }
    }

    #[test]
    fn a_1_1_0_client_gets_1_1_0_and_a_1_0_0_client_gets_1_0_0() {
        let off = Auth::off();
        assert_eq!(
            negotiate(&connect("1.1.0", &["1.0.0"], None), &off),
            Negotiated::Accepted(ProtocolVersion::V1_1_0)
        );
        assert_eq!(
            negotiate(&connect("1.0.0", &[], None), &off),
            Negotiated::Accepted(ProtocolVersion::V1_0_0)
        );
    }

    #[test]
    fn a_newer_client_falls_back_to_a_version_it_also_speaks() {
        assert_eq!(
            negotiate(&connect("2.0.0", &["1.1.0"], None), &Auth::off()),
            Negotiated::Accepted(ProtocolVersion::V1_1_0)
        );
    }

    #[test]
    fn an_unsupported_version_is_refused_with_status_10_and_a_malformed_one_with_11() {
        let refused = |n: Negotiated| match n {
            Negotiated::Refused { status, .. } => status,
            other => panic!("accepted: {other:?}"),
        };
        let off = Auth::off();
        assert_eq!(
            refused(negotiate(&connect("2.0.0", &[], None), &off)),
            Status::UnsupportedProtocolVersion
        );
        for bad in ["", "1.1", "1.x.0", "1..0"] {
            assert_eq!(
                refused(negotiate(&connect(bad, &[], None), &off)),
                Status::InvalidProtocolVersion,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn with_tokens_only_a_listed_token_is_accepted() {
        let auth = Auth::tokens(["alpha", "beta"]);
        assert!(auth.accepts(Some("beta")));
        assert!(!auth.accepts(Some("gamma")));
        assert!(!auth.accepts(Some("bet")));
        assert!(!auth.accepts(Some("")));
        assert!(!auth.accepts(None));
        assert_eq!(
            negotiate(&connect("1.1.0", &[], Some("wrong")), &auth),
            Negotiated::Refused {
                status: Status::Unauthorized,
                message:
                    "the auth token (AWS_CONTAINER_AUTHORIZATION_TOKEN) is missing or not accepted"
                        .into()
            }
        );
    }

    #[test]
    fn with_authentication_off_any_token_or_none_is_accepted() {
        let apps = Auth::off().with_app_tokens(std::sync::Arc::new(|t: &str| t == "app-a"));
        assert!(apps.accepts(Some("app-a")), "an app's token");
        assert!(
            !apps.accepts(Some("other")) && !apps.accepts(None),
            "on for everyone else"
        );
        let both =
            Auth::tokens(["alpha"]).with_app_tokens(std::sync::Arc::new(|t: &str| t == "app-a"));
        assert!(both.accepts(Some("alpha")) && both.accepts(Some("app-a")));
        assert!(Auth::off().accepts(None));
        assert!(Auth::off().accepts(Some("whatever")));
    }

    #[test]
    fn the_debug_output_of_auth_and_connect_never_shows_a_token() {
        let auth = Auth::tokens(["s3cret"]);
        assert_eq!(format!("{auth:?}"), "Auth(1 tokens)");
        let req = connect("1.1.0", &[], Some("s3cret"));
        assert!(!format!("{req:?}").contains("s3cret"));
    }
}

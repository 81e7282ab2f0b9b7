//! The AWS IoT credentials provider against a local HTTPS endpoint that, like the real one,
//! requires the device's client certificate: credentials are fetched, cached, refreshed before
//! they expire, and a certificate the endpoint does not trust gets nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_connectors::sinks::aws::iot::{IotProvider, IotSettings};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

fn leaf(ca: &Ca, name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    (cert, key)
}

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    last: Mutex<String>,
}

/// Serves `{"credentials": ...}` expiring `lifetime` from now, over TLS that requires a client
/// certificate signed by `ca`.
async fn endpoint(ca: &Ca, lifetime: Duration, seen: Arc<Seen>) -> u16 {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let (server_cert, server_key) = leaf(ca, "localhost");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                }; // no trusted client cert
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                *seen.last.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.requests.fetch_add(1, Ordering::SeqCst);
                let expires = SystemTime::now() + lifetime;
                let secs = expires.duration_since(UNIX_EPOCH).unwrap().as_secs();
                let body = format!(
                    r#"{{"credentials":{{"accessKeyId":"ASIAFERRY{secs}","secretAccessKey":"s","sessionToken":"t","expiration":"{}"}}}}"#,
                    rfc3339(secs)
                );
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn rfc3339(secs: u64) -> String {
    // Inverse of the provider's parser, via the same civil-date arithmetic (days to y-m-d).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn settings(
    dir: &std::path::Path,
    port: u16,
    ca: &Ca,
    client: (&rcgen::Certificate, &KeyPair),
) -> IotSettings {
    let w = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    IotSettings {
        endpoint: format!("localhost:{port}"),
        role_alias: "ferry-alias".into(),
        thing_name: Some("gateway-7".into()),
        cert_file: w("device.pem", client.0.pem()),
        key_file: w("device.key", client.1.serialize_pem()),
        ca_file: Some(w("ca.pem", ca.cert.pem())),
    }
}

#[tokio::test]
async fn credentials_are_fetched_with_the_device_certificate_cached_and_refreshed_before_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let (cert, key) = leaf(&ca, "gateway-7");
    // Long-lived credentials: fetched once, then served from the cache.
    let seen = Arc::new(Seen::default());
    let port = endpoint(&ca, Duration::from_secs(3600), seen.clone()).await;
    let p = IotProvider::new(settings(dir.path(), port, &ca, (&cert, &key))).unwrap();
    let a = p.keys().await.unwrap();
    let b = p.keys().await.unwrap();
    assert!(a.access_key_id.starts_with("ASIAFERRY") && a.session_token.as_deref() == Some("t"));
    assert_eq!(a.access_key_id, b.access_key_id);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1, "cached");
    let request = seen.last.lock().unwrap().clone();
    assert!(
        request.starts_with("GET /role-aliases/ferry-alias/credentials HTTP/1.1"),
        "{request}"
    );
    assert!(
        request
            .to_lowercase()
            .contains("x-amzn-iot-thingname: gateway-7"),
        "{request}"
    );
    // Credentials that expire within the refresh margin are fetched again on every use.
    let seen = Arc::new(Seen::default());
    let port = endpoint(&ca, Duration::from_secs(120), seen.clone()).await;
    let p = IotProvider::new(settings(dir.path(), port, &ca, (&cert, &key))).unwrap();
    p.keys().await.unwrap();
    p.keys().await.unwrap();
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        2,
        "refreshed before expiry"
    );
}

#[tokio::test]
async fn a_certificate_the_endpoint_does_not_trust_gets_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let other = self::ca();
    let (cert, key) = leaf(&other, "intruder");
    let seen = Arc::new(Seen::default());
    let port = endpoint(&ca, Duration::from_secs(3600), seen.clone()).await;
    let mut s = settings(dir.path(), port, &ca, (&cert, &key));
    s.ca_file = Some({
        let p = dir.path().join("server-ca.pem");
        std::fs::write(&p, ca.cert.pem()).unwrap();
        p
    });
    let p = IotProvider::new(s).unwrap();
    assert!(p.keys().await.is_err());
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

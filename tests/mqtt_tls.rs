//! TLS to the broker with a test CA generated here (rcgen): mutual TLS works, and a missing
//! client certificate or a broker certificate from another CA is refused.

mod support;

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rumqttc::QoS;
use support::{free_port, publish, read_stream, Ferry, Mosquitto};

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ferry test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        (
            p.signed_by(&key, &ca, &ca_key).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (server_cert, server_key) = leaf("localhost");
    let (client_cert, client_key) = leaf("ferry-gateway");
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn ferry_config(
    dir: &Path,
    port: u16,
    ca: &str,
    client: Option<(&str, &str)>,
) -> std::path::PathBuf {
    let auth = client.map_or(String::new(), |(c, k)| {
        format!("cert_file = \"{c}\"\nkey_file = \"{k}\"\n")
    });
    let path = dir.join(format!("ferry-{}.toml", client.is_some()));
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[[brokers]]\nname = \"secure\"\nhost = \"localhost\"\nport = {port}\nreconnect_min_ms = 100\n\
             [brokers.tls]\nca_file = \"{ca}\"\n{auth}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_connects_with_mutual_tls_and_stores_messages() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki();
    let tls_port = free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        write(dir.path(), "ca.pem", &pki.ca),
        write(dir.path(), "server.pem", &pki.server_cert),
        write(dir.path(), "server.key", &pki.server_key)
    );
    let broker = Mosquitto::start(dir.path(), &extra);
    let client = (
        write(dir.path(), "client.pem", &pki.client_cert),
        write(dir.path(), "client.key", &pki.client_key),
    );
    let config = ferry_config(
        dir.path(),
        tls_port,
        &dir.path().join("ca.pem").display().to_string(),
        Some((&client.0, &client.1)),
    );
    let ferry = Ferry::start(&config, dir.path());
    // The publisher uses the plain listener of the same broker.
    publish(
        broker.port,
        "pub-tls",
        vec![("secure/t".into(), b"over tls".to_vec(), QoS::AtLeastOnce)],
    )
    .await;
    ferry.wait_records("mqtt", 1);
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    let got = read_stream(&dir.path().join("data"), "mqtt");
    assert_eq!(got.len(), 1, "{logs}");
    assert_eq!(&got[0].payload[..], b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_or_a_foreign_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki();
    let tls_port = free_port();
    let extra = format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        write(dir.path(), "ca.pem", &pki.ca),
        write(dir.path(), "server.pem", &pki.server_cert),
        write(dir.path(), "server.key", &pki.server_key)
    );
    let _broker = Mosquitto::start(dir.path(), &extra);
    // No client certificate: the broker hangs up during the handshake.
    let config = ferry_config(
        dir.path(),
        tls_port,
        &dir.path().join("ca.pem").display().to_string(),
        None,
    );
    let ferry = Ferry::spawn(
        &["run", "--config", config.to_str().unwrap()],
        dir.path(),
        &[],
    );
    ferry.wait_log("cannot reach the MQTT broker", Duration::from_secs(10));
    let (_, logs) = ferry.terminate();
    assert!(!logs.contains("connected to MQTT broker"), "{logs}");
    // A CA that did not sign the broker's certificate: Ferry refuses the broker.
    let other = make_pki();
    let other_ca = write(dir.path(), "other-ca.pem", &other.ca);
    let client = (
        write(dir.path(), "client.pem", &pki.client_cert),
        write(dir.path(), "client.key", &pki.client_key),
    );
    let config = ferry_config(
        dir.path(),
        tls_port,
        &other_ca,
        Some((&client.0, &client.1)),
    );
    let ferry = Ferry::spawn(
        &["run", "--config", config.to_str().unwrap()],
        dir.path(),
        &[],
    );
    ferry.wait_log("cannot reach the MQTT broker", Duration::from_secs(10));
    let (_, logs) = ferry.terminate();
    assert!(!logs.contains("connected to MQTT broker"), "{logs}");
    assert!(
        logs.to_lowercase().contains("certificate"),
        "the error names the certificate problem:\n{logs}"
    );
}

//! The HTTP sink against servers the tests run: statuses, settings, the probe, gzip,
//! connection reuse and HTTP/2 offered over TLS.

use super::*;

#[test]
fn statuses_are_classified_as_http_clients_expect() {
    assert!(classify(204, None).is_none());
    assert_eq!(
        classify(429, Some("7")),
        Some(SinkError::Retryable {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(7))
        })
    );
    assert!(matches!(
        classify(503, None),
        Some(SinkError::Retryable {
            retry_after: None,
            ..
        })
    ));
    assert!(matches!(
        classify(400, None),
        Some(SinkError::Permanent { .. })
    ));
    assert!(matches!(
        classify(404, None),
        Some(SinkError::Permanent { .. })
    ));
}

#[tokio::test]
async fn the_probe_tells_a_listening_sink_from_a_closed_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = HttpSink::new(&HttpSettings::new(format!("http://127.0.0.1:{port}/in"))).unwrap();
    assert!(sink.probe().unwrap().await, "listening");
    drop(listener);
    assert!(!sink.probe().unwrap().await, "closed");
    let v6 = HttpSink::new(&HttpSettings::new("https://[::1]/in")).unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
}

#[test]
fn settings_are_checked() {
    let bad = HttpSettings::new("ftp://x");
    let e = HttpSink::new(&bad).err().unwrap();
    assert_eq!(e.key, "settings.url");
    assert!(e.reason.contains("http or https"), "{e}");
    let unknown = serde_json::json!({"identifier": "e", "kind": "http",
        "settings": {"url": "http://x", "verb": "PUT"}});
    let e = serde_json::from_value::<ferry_stream_manager::ExportDefinition>(unknown)
        .unwrap_err()
        .to_string();
    assert!(e.contains("verb"), "{e}");
    let mut zero = HttpSettings::new("http://x");
    zero.max_record_bytes = 0;
    let e = HttpSink::new(&zero).err().unwrap();
    assert_eq!(e.key, "settings.max_record_bytes");
}

/// What the test server saw: connections accepted, and each request's head (lower case) and
/// body.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<(String, Vec<u8>)>,
}

type SharedSeen = std::sync::Arc<std::sync::Mutex<Seen>>;

/// A minimal HTTP/1.1 server that keeps connections open and answers every request with 200
/// and `answer` as the body.
async fn serve(answer: String) -> (u16, SharedSeen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = SharedSeen::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            seen2.lock().unwrap().connections += 1;
            tokio::spawn(answer_requests(conn, answer.clone(), seen2.clone()));
        }
    });
    (port, seen)
}

async fn answer_requests(mut conn: tokio::net::TcpStream, answer: String, seen: SharedSeen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if conn.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + len {
            if conn.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        seen.lock().unwrap().requests.push((head, body));
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn records(n: u64) -> Vec<Record> {
    (0..n)
        .map(|seq| Record {
            sequence_number: seq,
            timestamp_ms: 1_795_000_000_000,
            metadata: Default::default(),
            payload: format!("{{\"temperature\": 21.{seq}, \"unit\": \"C\"}}").into(),
        })
        .collect()
}

async fn send_encoded(sink: &HttpSink, records: Vec<Record>) {
    let batch = Batch {
        body: sink.encode(&records),
        records,
    };
    sink.send(&batch).await.unwrap();
}

#[tokio::test]
async fn gzip_bodies_say_so_and_unpack_to_the_same_json() {
    let (port, seen) = serve("ok".into()).await;
    let url = format!("http://127.0.0.1:{port}/in");
    let mut settings = HttpSettings::new(&url);
    settings.compression = HttpCompression::Gzip;
    let zipped = HttpSink::new(&settings).unwrap();
    send_encoded(&zipped, records(200)).await;
    let plain = HttpSink::new(&HttpSettings::new(&url)).unwrap();
    send_encoded(&plain, records(200)).await;
    let seen = seen.lock().unwrap();
    let (zipped_head, zipped_body) = &seen.requests[0];
    let (plain_head, plain_body) = &seen.requests[1];
    assert!(
        zipped_head.contains("content-encoding: gzip"),
        "{zipped_head}"
    );
    assert!(!plain_head.contains("content-encoding"), "{plain_head}");
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped_body[..]),
        &mut unpacked,
    )
    .unwrap();
    assert_eq!(&unpacked, plain_body);
    assert!(
        zipped_body.len() * 4 < plain_body.len(),
        "{} bytes gzipped, {} plain",
        zipped_body.len(),
        plain_body.len()
    );
}

#[tokio::test]
async fn batches_go_over_one_kept_alive_connection_whatever_the_answer_holds() {
    for answer in ["".to_string(), "ok".into(), "x".repeat(20_000)] {
        let (port, seen) = serve(answer.clone()).await;
        let sink = HttpSink::new(&HttpSettings::new(format!("http://127.0.0.1:{port}/"))).unwrap();
        for _ in 0..10 {
            send_encoded(&sink, records(5)).await;
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 10);
        assert_eq!(
            seen.connections,
            1,
            "an answer of {} bytes cost a connection per batch",
            answer.len()
        );
    }
}

#[tokio::test]
async fn over_tls_the_sink_offers_http2_before_http1() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let offered = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
        let hello = acceptor.await.unwrap();
        let alpn: Vec<Vec<u8>> = hello
            .client_hello()
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        alpn
    });
    let sink = HttpSink::new(&HttpSettings::new(format!("https://127.0.0.1:{port}/"))).unwrap();
    // The test server never finishes the handshake: the send fails, the offer is what counts.
    let _ = sink.send(&Batch::default()).await;
    let offered = offered.await.unwrap();
    assert_eq!(offered, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

//! A simulated far link: a TCP relay in front of a server that delays every byte by half a
//! round trip each way and caps each direction's bandwidth with one token bucket shared by all
//! connections (a link is one pipe, whatever runs over it). A new connection's first bytes
//! wait one round trip more, as the TCP handshake would make them.
//!
//! What it does not model: loss, jitter, and TCP's own congestion window (the relay's sockets
//! are on loopback, so the sender never waits for the far end's acks). It is a bottleneck
//! queue plus propagation delay, which is what bounds a request/response exporter.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at a time: at 10 Mbit/s a chunk is 13 ms of the link.
const CHUNK_BYTES: usize = 16 * 1024;
/// The bucket holds one chunk: no burst beyond the link's rate.
const BURST_BYTES: f64 = CHUNK_BYTES as f64;

/// One direction of the link: tokens are bytes; a negative balance is the queue waiting for
/// the link, so a chunk leaves when the bytes before it (on any connection) have left.
struct Bucket {
    bytes_per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(bytes_per_second: f64) -> Self {
        Bucket {
            bytes_per_second,
            tokens: BURST_BYTES,
            last: Instant::now(),
        }
    }

    /// When `len` bytes offered now have left the sending end of the link.
    fn depart(&mut self, len: usize, now: Instant) -> Instant {
        let idle = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + idle * self.bytes_per_second).min(BURST_BYTES);
        self.last = now;
        self.tokens -= len as f64;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.bytes_per_second)
        }
    }
}

/// One direction: its bucket, its delay, and the bytes it carried.
struct Direction {
    bucket: Mutex<Bucket>,
    one_way: Duration,
    bytes: AtomicU64,
}

/// What the link carried; each direction's counters.
pub struct Link {
    pub port: u16,
    up: Arc<Direction>,
    down: Arc<Direction>,
    first_byte: Arc<Mutex<Option<Instant>>>,
}

impl Link {
    /// Bytes the client sent towards the server.
    pub fn up_bytes(&self) -> u64 {
        self.up.bytes.load(Ordering::Relaxed)
    }

    pub fn down_bytes(&self) -> u64 {
        self.down.bytes.load(Ordering::Relaxed)
    }

    /// When the first byte from a client entered the link.
    pub fn first_byte(&self) -> Option<std::time::Instant> {
        let first = self.first_byte.lock().ok().and_then(|f| *f)?;
        Some(first.into_std())
    }
}

/// Starts a link to `server` with `rtt` and `bits_per_second` each way.
pub async fn start(server: SocketAddr, rtt: Duration, bits_per_second: u64) -> Result<Link> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let direction = || {
        Arc::new(Direction {
            bucket: Mutex::new(Bucket::new(bits_per_second as f64 / 8.0)),
            one_way: rtt / 2,
            bytes: AtomicU64::new(0),
        })
    };
    let link = Link {
        port,
        up: direction(),
        down: direction(),
        first_byte: Arc::default(),
    };
    let (up, down, first) = (link.up.clone(), link.down.clone(), link.first_byte.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (up, down, first) = (up.clone(), down.clone(), first.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(server).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let handshake = Instant::now() + rtt;
                tokio::spawn(carry(client_read, server_write, up, handshake, Some(first)));
                carry(server_read, client_write, down, handshake, None).await;
            });
        }
    });
    Ok(link)
}

/// Moves bytes from `from` to `to` through one direction of the link, from `start` on.
async fn carry(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Arc<Direction>,
    start: Instant,
    first: Option<Arc<Mutex<Option<Instant>>>>,
) {
    // Chunks in the link: bounded, so a sender far ahead of the link waits, as on a real one.
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Bytes>)>(256);
    let deliver = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            match chunk {
                Some(c) if to.write_all(&c).await.is_ok() => {}
                _ => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    });
    tokio::time::sleep_until(start).await;
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        let now = Instant::now();
        if let (Some(first), true) = (&first, n > 0) {
            if let Ok(mut f) = first.lock() {
                f.get_or_insert(now);
            }
        }
        let left = match dir.bucket.lock() {
            Ok(mut b) => b.depart(n, now),
            Err(_) => now,
        };
        dir.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let chunk = (n > 0).then(|| Bytes::copy_from_slice(&buf[..n]));
        if tx.send((left + dir.one_way, chunk)).await.is_err() || n == 0 {
            break;
        }
    }
    drop(tx);
    let _ = deliver.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind a link of `rtt` and 1 Mbit/s (125,000 bytes/s).
    async fn echo_link(rtt: Duration) -> (Link, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let link = start(server, rtt, 1_000_000).await.unwrap();
        let client = TcpStream::connect(("127.0.0.1", link.port)).await.unwrap();
        (link, client)
    }

    #[tokio::test]
    async fn an_answer_takes_a_round_trip_and_the_first_one_the_handshake_too() {
        let rtt = Duration::from_millis(200);
        let (link, mut c) = echo_link(rtt).await;
        let t0 = std::time::Instant::now();
        c.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        assert!(t0.elapsed() >= 2 * rtt, "{:?}", t0.elapsed());
        let t1 = std::time::Instant::now();
        c.write_all(b"y").await.unwrap();
        c.read_exact(&mut one).await.unwrap();
        let took = t1.elapsed();
        assert!(took >= rtt && took < 2 * rtt, "{took:?}");
        assert_eq!((link.up_bytes(), link.down_bytes()), (2, 2));
    }

    #[tokio::test]
    async fn bulk_data_crosses_at_the_links_rate() {
        let (link, c) = echo_link(Duration::from_millis(20)).await;
        let (mut r, mut w) = c.into_split();
        let data = vec![7u8; 125_000]; // one second of the link, less the bucket's burst
        let t0 = std::time::Instant::now();
        let writer = tokio::spawn(async move { w.write_all(&data).await.unwrap() });
        let mut back = vec![0u8; 125_000];
        r.read_exact(&mut back).await.unwrap();
        writer.await.unwrap();
        let took = t0.elapsed().as_secs_f64();
        let least = (125_000.0 - BURST_BYTES) / 125_000.0;
        assert!(took >= least && took < 3.0, "{took} s");
        assert_eq!(link.up_bytes(), 125_000);
    }
}

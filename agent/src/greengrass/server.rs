//! The TCP side: accepts up to `max_connections` connections and runs each as one reader (this
//! loop, driving the pure [`Session`]) and one writer task. Every request runs in a task of
//! its own, so a long-polling read never holds up an append on the same connection, and its
//! answer is queued whole to the writer, which writes each frame with one `write_all`.
//!
//! Memory per connection is bounded: one frame being read (at most `max_frame_bytes`; a larger
//! one is skipped after its first 64 KiB), and at most `max_in_flight` requests running or
//! answered-but-unwritten (a permit is taken per frame and released once its answer is
//! written). A client that sends but never reads stops being read once its permits are used
//! up, and is disconnected when one answer cannot be written within `write_timeout_ms`. None
//! of this touches other connections. At shutdown the server stops accepting and reading; the
//! requests in flight end (long polls with what there is) and their answers are written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::export_settings::ExportSettings;
use super::frame::{parse_header, FrameError, HEADER_LEN};
use super::handler::Handler;
use super::handshake::Auth;
use super::session::{Action, Session};
use crate::service::Service;

/// How much of an oversized frame is kept to find its request id.
const OVERSIZED_PREFIX: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub auth: Auth,
    /// Largest frame payload read, and largest answer written.
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub write_timeout: Duration,
    /// What exports defined through this port get that the protocol cannot say.
    pub exports: ExportSettings,
}

struct Shared {
    auth: Arc<Auth>,
    handler: Handler,
    max_frame_bytes: usize,
    max_in_flight: usize,
    write_timeout: Duration,
    tasks: TaskTracker,
}

/// Binds the listener (so a taken port fails start-up) and returns the serving future, which
/// ends after `stop` once every connection has written its last answers.
pub async fn bind(
    settings: Settings,
    service: Arc<Service>,
    stop: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "the Greengrass server cannot listen on {} (set greengrass.listen): {e}",
            settings.listen
        )
    })?;
    let addr = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(listen = %addr, auth = settings.auth.is_on(), "Greengrass Stream Manager server listening");
    let shared = Arc::new(Shared {
        auth: Arc::new(settings.auth),
        handler: Handler::new(service, settings.max_frame_bytes, settings.exports),
        max_frame_bytes: settings.max_frame_bytes,
        max_in_flight: settings.max_in_flight,
        write_timeout: settings.write_timeout,
        tasks: TaskTracker::new(),
    });
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    Ok(serve(listener, shared, slots, stop))
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let refused = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, peer)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let (s, t) = (shared.clone(), stop.clone());
                    shared.tasks.spawn(connection(sock, peer, s, t, slot));
                }
                Err(_) => {
                    // Closed at once, so the client fails fast instead of hanging in a backlog.
                    if refused.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                        tracing::warn!(%peer, refused = refused.load(Ordering::Relaxed), "Greengrass connection refused: greengrass.max_connections reached");
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "Greengrass server cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    shared.tasks.close();
    shared.tasks.wait().await;
    tracing::info!("Greengrass server stopped");
}

/// A frame to write; its permit (if any) is released once it is written.
struct Outgoing {
    bytes: Vec<u8>,
    close_after: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _ = sock.set_nodelay(true);
    let (rd, wr) = sock.into_split();
    // Cancelled when the connection must end now: answers still queued are dropped.
    let dead = CancellationToken::new();
    let (tx, rx) = mpsc::channel(shared.max_in_flight + 1);
    let writer = tokio::spawn(write_loop(wr, rx, shared.write_timeout, dead.clone()));
    let mut conn = Connection {
        rd,
        tx,
        shared: shared.clone(),
        session: Session::new(shared.auth.clone()),
        permits: Arc::new(Semaphore::new(shared.max_in_flight)),
        dead: dead.clone(),
    };
    let reason = tokio::select! {
        r = conn.read_loop() => r,
        _ = stop.cancelled() => "Ferry is stopping".to_string(),
        _ = dead.cancelled() => "the answer could not be written".to_string(),
    };
    // Dropping the sender lets the writer end once the requests in flight have answered.
    drop(conn);
    if let Ok(WriterEnd::TimedOut) = writer.await {
        tracing::warn!(%peer, timeout_ms = shared.write_timeout.as_millis() as u64,
            "Greengrass client dropped: it read no answer within greengrass.write_timeout_ms");
    }
    tracing::debug!(%peer, reason, "Greengrass connection closed");
}

struct Connection {
    rd: OwnedReadHalf,
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    session: Session,
    permits: Arc<Semaphore>,
    dead: CancellationToken,
}

impl Connection {
    /// Reads and acts until the connection must close; returns why.
    async fn read_loop(&mut self) -> String {
        let mut byte = [0u8; 1];
        if let Err(e) = self.rd.read_exact(&mut byte).await {
            return self.gone(e);
        }
        if let Some(action) = self.session.on_connect_version(byte[0]) {
            return self.act(action, None).await.err().unwrap_or_default();
        }
        loop {
            let mut header = [0u8; HEADER_LEN];
            if let Err(e) = self.rd.read_exact(&mut header).await {
                return self.gone(e);
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return "closed".into();
            };
            let max = self.shared.max_frame_bytes;
            let action = match parse_header(header, max) {
                Ok(h) => {
                    let mut payload = vec![0u8; h.payload_len];
                    if let Err(e) = self.rd.read_exact(&mut payload).await {
                        return self.gone(e);
                    }
                    self.session.on_frame(h.op, &payload)
                }
                Err(FrameError::Violation(len)) => {
                    self.session.on_violation(format!("frame length {len}"))
                }
                Err(FrameError::TooLarge {
                    op, payload_len, ..
                }) => match skip_oversized(&mut self.rd, payload_len).await {
                    Ok(prefix) => self.session.on_oversized(op, &prefix, max),
                    Err(e) => return self.gone(e),
                },
            };
            if let Err(reason) = self.act(action, Some(permit)).await {
                return reason;
            }
        }
    }

    /// The client went away (or broke the stream): nobody is left to read answers.
    fn gone(&self, e: std::io::Error) -> String {
        self.dead.cancel();
        format!("read: {e}")
    }

    /// Performs an action; `Err` carries the reason to close.
    async fn act(
        &mut self,
        action: Action,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), String> {
        match action {
            Action::Send(bytes) => self.send(bytes, false, permit).await,
            Action::SendAndClose(bytes) => {
                self.send(bytes, true, permit).await?;
                Err("handshake refused".into())
            }
            Action::Close(reason) => {
                self.dead.cancel();
                Err(reason)
            }
            Action::Dispatch {
                request_id,
                response_op,
                request,
            } => {
                let version = self
                    .session
                    .version()
                    .ok_or_else(|| "no session".to_string())?;
                let (shared, tx, dead) = (self.shared.clone(), self.tx.clone(), self.dead.clone());
                self.shared.tasks.spawn(async move {
                    let answer = tokio::select! {
                        r = shared.handler.handle(request_id, response_op, request) => r,
                        _ = dead.cancelled() => return,
                    };
                    let out = Outgoing {
                        bytes: answer.encode(version),
                        close_after: false,
                        _permit: permit,
                    };
                    // Fails only when the connection is gone: the answer has no reader.
                    let _ = tx.send(out).await;
                });
                Ok(())
            }
        }
    }

    async fn send(
        &self,
        bytes: Vec<u8>,
        close_after: bool,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), String> {
        let out = Outgoing {
            bytes,
            close_after,
            _permit: permit,
        };
        self.tx
            .send(out)
            .await
            .map_err(|_| "the writer ended".to_string())
    }
}

/// Skips an oversized payload without storing it; returns its first bytes.
async fn skip_oversized<R: AsyncRead + Unpin>(rd: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let keep = len.min(OVERSIZED_PREFIX);
    let mut prefix = vec![0u8; keep];
    rd.read_exact(&mut prefix).await?;
    let rest = (len - keep) as u64;
    let skipped = tokio::io::copy(&mut rd.take(rest), &mut tokio::io::sink()).await?;
    if skipped < rest {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(prefix)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// Every answer was written (or the connection was told to end).
    Done,
    /// The client did not take an answer within the write timeout.
    TimedOut,
    Failed,
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    timeout: Duration,
    dead: CancellationToken,
) -> WriterEnd {
    let mut end = WriterEnd::Done;
    loop {
        let out = tokio::select! {
            o = rx.recv() => o,
            _ = dead.cancelled() => None,
        };
        let Some(out) = out else { break };
        let written = tokio::select! {
            w = tokio::time::timeout(timeout, wr.write_all(&out.bytes)) => match w {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some(WriterEnd::Failed),
                Err(_) => Some(WriterEnd::TimedOut),
            },
            _ = dead.cancelled() => Some(WriterEnd::Done),
        };
        if let Some(e) = written {
            dead.cancel();
            end = e;
            break;
        }
        if out.close_after {
            break;
        }
    }
    let _ = wr.shutdown().await;
    end
}

//! Helpers for Ferry's end-to-end tests: real peers (Debian's `mosquitto`, started on a free
//! port), the real `ferry` binary, and an MQTT publisher that counts the broker's PUBACKs.
//! `api::Daemon` drives a daemon through its local HTTP API.
#![allow(dead_code)] // each test file uses its own subset

pub mod api;
pub mod moto;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_stream_manager::{ManagerOptions, Record, StreamManager};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto broker of the test's own, with persistence so sessions survive its restarts and
/// with unlimited queues (the stock 1000-message limit would drop messages the test counts).
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
}

impl Mosquitto {
    pub fn start(dir: &Path, extra: &str) -> Mosquitto {
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let data = dir.join(format!("mosquitto-{port}-data"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 100\n\
                 persistence true\npersistence_location {}/\nlog_dest stderr\n{extra}\n",
                data.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            child: None,
            port,
            conf,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed by tests/run-all.sh");
        self.child = Some(child);
        wait_port(self.port);
    }

    /// Stops the broker (SIGTERM: it saves its sessions) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            c.wait().unwrap();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// The `ferry` binary under test, with its stderr collected.
pub struct Ferry {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    /// Where its local API listens.
    pub api: String,
}

impl Ferry {
    pub fn spawn(args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Ferry {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args);
        Ferry::spawn_command(cmd, cwd, env)
    }

    /// Runs `ferry ARGS` through `sh -c 'WATCHDOG_PID=$$ exec ...'`, as systemd would set it.
    pub fn spawn_with_watchdog_pid(args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Ferry {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "WATCHDOG_PID=$$ exec {} {}",
            env!("CARGO_BIN_EXE_ferry"),
            args.join(" ")
        ));
        Ferry::spawn_command(cmd, cwd, env)
    }

    fn spawn_command(mut cmd: Command, cwd: &Path, env: &[(&str, String)]) -> Ferry {
        cmd.current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // FERRYTEST_RUST_LOG raises the daemon's log level when a test needs a closer look.
        let log = std::env::var("FERRYTEST_RUST_LOG").unwrap_or_else(|_| "info,rumqttd=off".into());
        cmd.env("RUST_LOG", log);
        // Every daemon gets its own API port unless the test picks one (tests run in parallel).
        let api = match env.iter().find(|(k, _)| *k == "FERRY_API__LISTEN") {
            Some((_, v)) => v.clone(),
            None => {
                let a = format!("127.0.0.1:{}", free_port());
                cmd.env("FERRY_API__LISTEN", &a);
                a
            }
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Ferry { child, logs, api }
    }

    /// Records the stream holds now, asked through the daemon's API (`None` if it cannot say).
    pub fn records(&self, stream: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut conn = TcpStream::connect(&self.api).ok()?;
        write!(
            conn,
            "GET /v1/streams/{stream} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.api
        )
        .ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        let body = text.split_once("\r\n\r\n")?.1;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["status"]["records"].as_u64()
    }

    /// Waits until the stream holds at least `n` records (stored and durable).
    pub fn wait_records(&self, stream: &str, n: u64) {
        let start = Instant::now();
        while self.records(stream).unwrap_or(0) < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "stream {stream} never reached {n} records (has {:?}):\n{}",
                self.records(stream),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Starts `ferry run --config FILE` and waits until it reports ready.
    pub fn start(config: &Path, cwd: &Path) -> Ferry {
        let f = Ferry::spawn(&["run", "--config", config.to_str().unwrap()], cwd, &[]);
        f.wait_log("ferry is ready", Duration::from_secs(20));
        f
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.logs().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} in ferry's log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit (at most 20 s). Returns the status and the log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the log thread drain
                return (status, self.logs());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ferry did not exit after SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a whole stream from a data directory Ferry is not running on.
pub fn read_stream(data_dir: &Path, name: &str) -> Vec<Record> {
    let m = StreamManager::open(data_dir, ManagerOptions::default()).unwrap();
    let s = m.stream(name).unwrap();
    let mut out = Vec::new();
    let mut from = s.describe().unwrap().first_sequence_number;
    loop {
        let got = s.read_now(from, 10_000, 0).unwrap();
        let Some(last) = got.last() else { break };
        from = last.sequence_number + 1;
        out.extend(got);
    }
    out
}

pub fn topic(r: &Record) -> &str {
    r.metadata.get("topic").map(String::as_str).unwrap_or("")
}

/// Publishes `(topic, payload, qos)` messages and returns once the broker acknowledged every
/// QoS 1 and QoS 2 message (PUBACK, PUBCOMP) and every QoS 0 message was written to the socket.
pub async fn publish(port: u16, client_id: &str, msgs: Vec<(String, Vec<u8>, rumqttc::QoS)>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20)
        .set_inflight(100);
    let (client, mut ev) = AsyncClient::new(opts, 1000);
    let want_acks = msgs.iter().filter(|m| m.2 != QoS::AtMostOnce).count();
    let want_sent = msgs.len();
    let driver = tokio::spawn(async move {
        let (mut acks, mut sent) = (0, 0);
        while acks < want_acks || sent < want_sent {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => acks += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) => sent += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher lost the broker: {e}"),
            }
        }
    });
    for (t, p, q) in msgs {
        client.publish(t, q, false, p).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), driver)
        .await
        .expect("broker acknowledged everything")
        .unwrap();
    let _ = client.disconnect().await;
}

//! A blocking raw-protocol client for the tests of what the SDK never sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A CBOR value to send.
pub enum V<'a> {
    T(&'a str),
    U(u64),
    B(&'a [u8]),
    M(Vec<(&'a str, V<'a>)>),
}

fn put(e: &mut minicbor::Encoder<Vec<u8>>, v: &V<'_>) {
    match v {
        V::T(s) => e.str(s).map(drop).unwrap(),
        V::U(n) => e.u64(*n).map(drop).unwrap(),
        V::B(b) => e.bytes(b).map(drop).unwrap(),
        V::M(fields) => {
            e.map(fields.len() as u64).unwrap();
            for (k, v) in fields {
                e.str(k).unwrap();
                put(e, v);
            }
        }
    }
}

pub fn encode(fields: &[(&str, V<'_>)]) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.map(fields.len() as u64).unwrap();
    for (k, v) in fields {
        e.str(k).unwrap();
        put(&mut e, v);
    }
    e.into_writer()
}

/// The `status` of an answer (op, CBOR payload).
pub fn status(answer: &(u8, Vec<u8>)) -> u64 {
    let mut d = minicbor::Decoder::new(&answer.1);
    let n = d.map().unwrap().expect("a definite map");
    for _ in 0..n {
        if d.str().unwrap() == "status" {
            return d.u64().unwrap();
        }
        d.skip().unwrap();
    }
    panic!("no status in answer op {}", answer.0)
}

pub struct Client {
    s: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::connect_to(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn connect_to(addr: std::net::SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { s }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    pub fn send_frame(&mut self, op: u8, payload: &[u8]) {
        let mut f = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        f.push(op);
        f.extend_from_slice(payload);
        self.write(&f);
    }

    pub fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 5];
        self.s.read_exact(&mut h).unwrap();
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let mut payload = vec![0; len - 1];
        self.s.read_exact(&mut payload).unwrap();
        (h[4], payload)
    }

    /// Connect version byte and Connect; returns the ConnectResponse.
    pub fn handshake(&mut self, token: Option<&str>) -> (u8, Vec<u8>) {
        let mut fields = vec![("requestId", V::T("c")), ("protocolVersion", V::T("1.1.0"))];
        if let Some(t) = token {
            fields.push(("authToken", V::T(t)));
        }
        self.write(&[1]);
        self.send_frame(1, &encode(&fields));
        let mut version = [0u8; 1];
        self.s.read_exact(&mut version).unwrap();
        assert_eq!(version[0], 1, "the server's connect version byte");
        let answer = self.read_frame();
        assert_eq!(answer.0, 6, "ConnectResponse");
        answer
    }

    pub fn request(&mut self, op: u8, fields: &[(&str, V<'_>)]) -> (u8, Vec<u8>) {
        self.send_frame(op, &encode(fields));
        self.read_frame()
    }

    pub fn create(&mut self, name: &str) {
        let def = V::M(vec![("name", V::T(name)), ("strategyOnFull", V::U(1))]);
        let answer = self.request(2, &[("requestId", V::T("create")), ("definition", def)]);
        assert_eq!((answer.0, status(&answer)), (7, 0));
    }

    pub fn append(&mut self, name: &str, payload: &[u8]) {
        let fields = [
            ("requestId", V::T("append")),
            ("name", V::T(name)),
            ("payload", V::B(payload)),
        ];
        let answer = self.request(4, &fields);
        assert_eq!((answer.0, status(&answer)), (9, 0));
    }

    /// Sends a ReadMessages for `max` messages from 0 (or waiting `wait_ms` from the end).
    pub fn send_read(&mut self, id: &str, stream: &str, from: u64, max: u64, wait_ms: u64) {
        let options = V::M(vec![
            ("desiredStartSequenceNumber", V::U(from)),
            ("minMessageCount", V::U(1)),
            ("maxMessageCount", V::U(max)),
            ("readTimeoutMillis", V::U(wait_ms)),
        ]);
        let fields = [
            ("requestId", V::T(id)),
            ("streamName", V::T(stream)),
            ("readMessagesOptions", options),
        ];
        self.send_frame(5, &encode(&fields));
    }

    /// True when the server closed the connection (EOF or reset) within 10 s, with nothing read.
    pub fn is_closed(&mut self) -> bool {
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// Reads whatever is buffered until the server closes; false if it has not within `limit`.
    pub fn drains_to_close(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 16];
        while start.elapsed() < limit {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("{e}"),
            }
        }
        false
    }
}

//! The daemon's life under systemd and from the shell: READY/WATCHDOG/STOPPING notifications,
//! SIGTERM and SIGINT, `ferry config check`, and a data directory already in use.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, Ferry};

fn embedded_env(port: u16) -> (&'static str, String) {
    ("FERRY_EMBEDDED_BROKER__LISTEN", format!("127.0.0.1:{port}"))
}

#[test]
fn under_systemd_ferry_reports_ready_pings_the_watchdog_and_reports_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let ferry = Ferry::spawn_with_watchdog_pid(
        &["run"],
        dir.path(),
        &[
            embedded_env(free_port()),
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "400000".to_string()),
        ],
    );
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while messages
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got {messages:?}\n{}", ferry.logs()));
        messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
        assert!(start.elapsed() < Duration::from_secs(20));
    }
    assert!(
        messages[0].contains("READY=1"),
        "READY=1 comes first: {messages:?}"
    );
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    let mut rest = Vec::new();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
    assert!(
        logs.contains("SIGTERM received") && logs.contains("all streams flushed"),
        "{logs}"
    );
}

#[test]
fn sigint_stops_the_daemon_cleanly_and_without_ansi_colours_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::spawn(&["run"], dir.path(), &[embedded_env(free_port())]);
    ferry.wait_log("ferry is ready", Duration::from_secs(20));
    let start = Instant::now();
    // SIGINT, as a Ctrl-C would send.
    let pid = ferry.id();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    ferry.wait_log("all streams flushed", Duration::from_secs(15));
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(
        !ferry.logs().contains('\u{1b}'),
        "no ANSI escapes when stderr is a pipe"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let ferry = Ferry::spawn(
        &["run"],
        dir.path(),
        &[
            embedded_env(free_port()),
            ("FERRY_LOG__FORMAT", "json".into()),
        ],
    );
    ferry.wait_log("ferry is ready", Duration::from_secs(20));
    let (_, logs) = ferry.terminate();
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}

#[test]
fn config_check_names_the_file_and_the_key_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[brokers]]\nname = \"b\"\nprot = 1883\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("prot") && err.contains("brokers"),
        "{err}"
    );
    let good = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "config",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../ferry.example.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // `ferry run` refuses the bad file before starting anything.
    let run = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn config_check_refuses_a_broken_export_naming_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("export.toml");
    std::fs::write(
        &bad,
        "[[streams]]\nname = \"s\"\n[[streams.exports]]\nidentifier = \"h\"\nkind = \"http\"\nsettings = { url = \"ftp://example.com/in\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export.toml")
            && err.contains("key `streams[0].exports[0].settings.url`")
            && err.contains("http or https"),
        "{err}"
    );
}

#[test]
fn a_second_daemon_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ferry::spawn(&["run"], dir.path(), &[embedded_env(free_port())]);
    first.wait_log("ferry is ready", Duration::from_secs(20));
    let second = Ferry::spawn(&["run"], dir.path(), &[embedded_env(free_port())]);
    second.wait_log("already in use", Duration::from_secs(10));
    let (status, _) = second.terminate();
    assert!(!status.success());
}

#[test]
fn sighup_reloads_the_configuration_and_an_invalid_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    let port = support::free_port();
    let base = format!(
        "data_dir = \"{}\"\n[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(&config, &base).unwrap();
    let ferry = Ferry::start(&config, dir.path());
    let hup = |f: &Ferry| {
        // SAFETY: kill(2) on the daemon this test started and has not reaped.
        unsafe { libc::kill(f.id() as i32, libc::SIGHUP) };
    };
    // A new stream declared in the file appears without a restart.
    std::fs::write(
        &config,
        format!("{base}[[streams]]\nname = \"mqtt\"\n[[streams]]\nname = \"added\"\n[[routes]]\nfilter = \"#\"\nstream = \"mqtt\"\n"),
    )
    .unwrap();
    hup(&ferry);
    ferry.wait_log("stream created or updated", Duration::from_secs(20));
    assert_eq!(ferry.records("added"), Some(0), "{}", ferry.logs());
    // A broken file is refused and Ferry keeps running on the previous configuration.
    std::fs::write(&config, format!("{base}[[streams]]\nname = \"bad/name\"\n")).unwrap();
    hup(&ferry);
    ferry.wait_log("configuration reload refused", Duration::from_secs(20));
    assert_eq!(ferry.records("added"), Some(0), "still serving");
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "a SIGHUP must not kill Ferry:\n{logs}");
}

//! The Docker side of the container-app tests: a busybox image imported for one test, and a
//! guard that removes every container, network, volume and image the test made, even when it
//! fails (its Drop runs during the panic's unwinding).

#![allow(dead_code)] // each test uses its own subset

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const SOCKET: &str = "/var/run/docker.sock";

/// `false` (and a note on stderr) when this machine cannot run the tests: no engine, or no
/// busybox-static to build an image from (nothing can be pulled from the internet here).
pub fn available() -> bool {
    let engine = Command::new("docker")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let busybox = Path::new("/bin/busybox").is_file();
    let missing = format!("needs a running Docker engine (engine: {engine}) and Debian's busybox-static (busybox: {busybox})");
    // tests/run-all.sh (CI) installs both and sets FERRYTEST_REQUIRE_DOCKER: there a missing
    // peer is a failure, not a skip that would hide a gap.
    if std::env::var_os("FERRYTEST_REQUIRE_DOCKER").is_some() {
        assert!(engine && busybox, "{missing}");
    }
    if !(engine && busybox) {
        eprintln!("skipped: {missing}");
    }
    engine && busybox
}

/// A name no other test (or earlier run) uses: apps, images and hence every engine object.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}x{}x{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker_ok(args: &[&str]) {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything a test made in the engine; removed on drop.
pub struct Sandbox {
    /// `ferry-test-busybox-…:1`, an image of busybox with its applets, `/www` and `/tmp`.
    pub image: String,
    apps: Vec<String>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let image = format!("{}:1", unique("ferry-test-busybox-"));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["bin", "www", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(root.join("www/index.html"), "hello from busybox\n").unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        let import = format!(
            "tar -C {} -c . | docker import -c 'ENV PATH=/bin' - {image} >/dev/null",
            root.display()
        );
        let status = Command::new("sh").arg("-c").arg(&import).status().unwrap();
        assert!(status.success(), "{import}");
        Sandbox {
            image,
            apps: Vec::new(),
        }
    }

    /// A fresh app name whose engine objects this sandbox removes.
    pub fn app(&mut self, prefix: &str) -> String {
        let name = unique(prefix);
        self.apps.push(name.clone());
        name
    }

    /// Names of the engine objects of `kind` (`ps -a`, `network ls`, `volume ls`) of `app`.
    pub fn objects(kind: &str, app: &str) -> Vec<String> {
        let filter = format!("label=ferry.app={app}");
        let args: Vec<&str> = match kind {
            "container" => vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
            // By id: an engine before API 1.44 allows two networks of one name.
            "network" => vec!["network", "ls", "--filter", &filter, "--format", "{{.ID}}"],
            _ => vec!["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"],
        };
        docker(&args)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn inspect(container: &str, format: &str) -> String {
        docker(&["inspect", "--format", format, container])
            .trim()
            .to_string()
    }

    pub fn stop_container(container: &str) {
        docker_ok(&["stop", "-t", "1", container]);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for app in &self.apps {
            for c in Sandbox::objects("container", app) {
                docker(&["rm", "-f", &c]);
            }
            for n in Sandbox::objects("network", app) {
                docker(&["network", "rm", &n]);
            }
            for v in Sandbox::objects("volume", app) {
                docker(&["volume", "rm", "-f", &v]);
            }
        }
        docker(&["rmi", "-f", &self.image]);
    }
}

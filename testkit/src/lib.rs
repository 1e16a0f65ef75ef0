//! Fixtures shared by the workspace's tests. Only tests depend on this
//! crate.
//!
//! - [`Etcd`]: a real etcd member on loopback, in a temporary directory,
//!   started on free ports and killed (its data removed) when dropped. It
//!   needs the `etcd` binary (Debian's etcd-server, which
//!   `./scripts/setup.sh` installs); without it, starting one panics with
//!   that advice rather than skipping silently.
//! - [`rpcs`]: the gRPC methods the `.proto` files declare.

mod rpcs;

pub use rpcs::{Rpc, rpcs};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd member.
pub struct Etcd {
    child: Child,
    /// Its client URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts a member with default settings and waits until it is healthy.
    pub fn start() -> Etcd {
        Self::start_with(&[])
    }

    /// Starts a member with extra flags (e.g. `--quota-backend-bytes`).
    pub fn start_with(extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({e}): install it with ./scripts/setup.sh \
                     (Debian's etcd-server)"
                )
            });
        let mut etcd = Etcd {
            child,
            endpoint,
            port,
            dir,
        };
        etcd.wait_healthy();
        etcd
    }

    /// `etcd://127.0.0.1:PORT`, as `wasmesos master --store` takes it.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.port)
    }

    /// Freezes the member (SIGSTOP): it neither answers nor times anything
    /// out until [`resume`](Self::resume)d — an outage as its clients see it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused member (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {sig} etcd failed");
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Where the member keeps its files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("etcd exited ({status}); its log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("etcd was not healthy within 30 s; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// etcd's own health endpoint says so.
    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

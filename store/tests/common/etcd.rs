//! A real etcd member on loopback, in a temporary directory, for one test:
//! started on free ports, killed (and its data removed) when dropped. Needs
//! the `etcd` binary (Debian's etcd-server; `./scripts/setup.sh` installs
//! it).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmesos_store::EtcdStore;

pub struct Etcd {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts a member with default settings.
    pub async fn start() -> Etcd {
        Self::start_with(&[]).await
    }

    /// Starts a member with extra flags (e.g. `--quota-backend-bytes`).
    pub async fn start_with(extra: &[&str]) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
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
                panic!("cannot start etcd ({e}): install it with ./scripts/setup.sh (Debian's etcd-server)")
            });
        let etcd = Etcd {
            child,
            endpoint,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
                .await
                .is_ok()
            {
                return etcd;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(etcd._dir.path().join("etcd.log")).unwrap_or_default();
                panic!("etcd did not answer within 30 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(std::slice::from_ref(&self.endpoint))
            .await
            .expect("connect to etcd")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

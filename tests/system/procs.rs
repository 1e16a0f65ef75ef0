//! Master and agent processes started one by one, for tests that stop,
//! kill and restart them (the `Cluster` of `harness` starts a fixed set).

use std::path::Path;
use std::process::Child;

use crate::harness::{eventually, spawn, wait_for_addr, wasmesos};

/// Processes killed when the test ends, however it ends; by name, so a test
/// can kill one and start it again.
#[derive(Default)]
pub struct Procs(Vec<(String, Child)>);

impl Procs {
    pub fn add(&mut self, name: &str, child: Child) {
        self.0.push((name.to_string(), child));
    }

    /// Kills (SIGKILL: no warning, no flush) every process named `name`.
    pub fn kill(&mut self, name: &str) {
        self.0.retain_mut(|(n, child)| {
            if n != name {
                return true;
            }
            let _ = child.kill();
            let _ = child.wait();
            false
        });
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (for a master that must come back on the same one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `wasmesos master` named `name` under `dir` (data in `dir/name`,
/// log in `dir/name.log`) on `port` (0: any) with `extra` flags; returns it
/// and its URL once it listens (as leader or standby).
pub fn master(dir: &Path, name: &str, port: u16, extra: &[&str]) -> (Child, String) {
    let addr_file = dir.join(format!("{name}.addr"));
    let log = dir.join(format!("{name}.log"));
    // A restart must not read the address its last run left.
    let _ = std::fs::remove_file(&addr_file);
    let data = dir.join(name).display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let addr_path = addr_file.display().to_string();
    let mut args = vec![
        "master",
        "--listen",
        &listen,
        "--data-dir",
        &data,
        "--addr-file",
        &addr_path,
    ];
    args.extend_from_slice(extra);
    let mut child = spawn(&args, &log);
    let addr = wait_for_addr(&addr_file, &mut child, &log);
    (child, format!("http://{addr}"))
}

/// Starts `wasmesos agent` named `name` under `dir` offering cpus:2,
/// mem:2GiB, disk:1GiB to `masters` (comma-separated).
pub fn agent(dir: &Path, name: &str, masters: &str) -> Child {
    let addr_file = dir.join(format!("{name}.addr"));
    let log = dir.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&addr_file);
    let mut child = spawn(
        &[
            "agent",
            "--master",
            masters,
            "--listen",
            "127.0.0.1:0",
            "--resources",
            "cpus:2,mem:2GiB,disk:1GiB",
            "--work-dir",
            &dir.join(name).display().to_string(),
            "--addr-file",
            &addr_file.display().to_string(),
        ],
        &log,
    );
    wait_for_addr(&addr_file, &mut child, &log);
    child
}

/// Waits until the master at `url` lists an ACTIVE agent.
pub fn wait_for_agent(url: &str, what: &str) {
    eventually(what, || {
        wasmesos(Some(url), &["agents"])
            .stdout
            .contains("ACTIVE")
            .then_some(())
    });
}

/// The bundled hello task written into `dir`; its path.
pub fn hello(dir: &Path) -> String {
    let path = dir.join("hello.wasm");
    std::fs::write(&path, wasmesos_builtin::HELLO_TASK).unwrap();
    path.display().to_string()
}

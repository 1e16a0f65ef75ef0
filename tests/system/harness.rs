//! Starting clusters as processes and running the CLI against them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wasmesos")
}

/// How long a test waits for something that normally takes moments.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A command's output, decoded.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The credentials every cluster of this test run uses: an admin and an
/// agent token, generated once per test process into files that every
/// master is told to accept (`WASMESOS_ADMIN_TOKEN_FILE`,
/// `WASMESOS_AGENT_TOKEN_FILE`), every agent attaches with, and every CLI
/// call carries (`WASMESOS_TOKEN_FILE`). The CLI's config file points into
/// the same directory, so no test reads or writes the user's.
pub struct Credentials {
    pub dir: PathBuf,
    pub admin_file: PathBuf,
    pub agent_file: PathBuf,
    pub admin_token: String,
}

pub fn credentials() -> &'static Credentials {
    static CREDS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
    CREDS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wasmesos-test-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("credentials directory");
        let token = || {
            use std::io::Read;
            let mut bytes = [0u8; 38];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .expect("random bytes");
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("wsm_{}_{}", &hex[..12], &hex[12..])
        };
        let admin_token = token();
        let admin_file = dir.join("admin.token");
        let agent_file = dir.join("agent.token");
        std::fs::write(&admin_file, &admin_token).expect("admin token file");
        std::fs::write(&agent_file, token()).expect("agent token file");
        Credentials {
            dir,
            admin_file,
            agent_file,
            admin_token,
        }
    })
}

/// Gives a `wasmesos` command this test run's credentials.
pub fn with_credentials(cmd: &mut Command) -> &mut Command {
    let c = credentials();
    cmd.env("WASMESOS_ADMIN_TOKEN_FILE", &c.admin_file)
        .env("WASMESOS_AGENT_TOKEN_FILE", &c.agent_file)
        .env("WASMESOS_TOKEN_FILE", &c.admin_file)
        .env("WASMESOS_CONFIG", c.dir.join("config.toml"))
        .env_remove("WASMESOS_TOKEN")
}

/// Runs `wasmesos ARGS` against `master` (None: no master configured).
pub fn wasmesos(master: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    with_credentials(&mut cmd);
    cmd.args(args).env_remove("WASMESOS_MASTER");
    if let Some(m) = master {
        cmd.env("WASMESOS_MASTER", m);
    }
    cmd.output().expect("running wasmesos").into()
}

/// Waits for `path` to hold an address; panics with `log` if `child` dies.
pub fn wait_for_addr(path: &Path, child: &mut Child, log: &Path) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(addr) = std::fs::read_to_string(path)
            && !addr.trim().is_empty()
        {
            return addr.trim().to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "process exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no address in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Retries `check` until it returns Some, or panics with `what`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `wasmesos ARGS` with its stderr in `log`.
pub fn spawn(args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    with_credentials(&mut Command::new(bin()))
        .args(args)
        .env(
            "RUST_LOG",
            "info,wasmesos_master=debug,wasmesos_agent=debug",
        )
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawning wasmesos")
}

fn stop(child: &mut Child) {
    stop_within(child, Duration::from_secs(10));
}

/// Asks a process to stop (SIGTERM), and kills it if it has not within
/// `patience`.
pub fn stop_within(child: &mut Child, patience: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A master process and agent processes on loopback.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub master: String,
    master_proc: Child,
    agent_procs: Vec<Child>,
}

impl Cluster {
    /// A master and one agent.
    pub fn start() -> Cluster {
        Cluster::start_with(1)
    }

    /// A master and `agents` agents (cpus:2, mem:2GiB, disk:1GiB each),
    /// once all are ACTIVE. Agent 0 keeps its files under `agent*` in the
    /// cluster's directory, agent N under `agent-N*`.
    pub fn start_with(agents: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let mut master_proc = spawn(
            &[
                "master",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &d.join("master").display().to_string(),
                "--addr-file",
                &d.join("master.addr").display().to_string(),
            ],
            &d.join("master.log"),
        );
        let addr = wait_for_addr(
            &d.join("master.addr"),
            &mut master_proc,
            &d.join("master.log"),
        );
        let master = format!("http://{addr}");
        let mut agent_procs = Vec::new();
        for i in 0..agents {
            let name = agent_name(i);
            let log = d.join(format!("{name}.log"));
            let addr_file = d.join(format!("{name}.addr"));
            let mut agent = spawn(
                &[
                    "agent",
                    "--master",
                    &master,
                    "--listen",
                    "127.0.0.1:0",
                    "--resources",
                    "cpus:2,mem:2GiB,disk:1GiB",
                    "--work-dir",
                    &d.join(&name).display().to_string(),
                    "--addr-file",
                    &addr_file.display().to_string(),
                ],
                &log,
            );
            wait_for_addr(&addr_file, &mut agent, &log);
            agent_procs.push(agent);
        }
        let cluster = Cluster {
            dir,
            master,
            master_proc,
            agent_procs,
        };
        cluster.wait_for_agents(agents);
        cluster
    }

    fn wait_for_agents(&self, n: usize) {
        eventually(&format!("{n} agent(s) to register"), || {
            let r = self.run(&["agents"]);
            (r.stdout.matches("ACTIVE").count() >= n).then_some(())
        });
    }

    /// `wasmesos ARGS` against this cluster.
    pub fn run(&self, args: &[&str]) -> Run {
        wasmesos(Some(&self.master), args)
    }

    /// The bundled hello task, as a file.
    pub fn hello(&self) -> PathBuf {
        let path = self.dir.path().join("hello.wasm");
        if !path.exists() {
            std::fs::write(&path, wasmesos_builtin::HELLO_TASK).expect("writing hello.wasm");
        }
        path
    }

    /// Waits until `wasmesos tasks` shows `task` in `state`.
    pub fn wait_for_state(&self, task: &str, state: &str) {
        eventually(&format!("{task} to be {state}"), || {
            let r = self.run(&["tasks"]);
            r.stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(task) && l.contains(state))
                .then_some(())
        });
    }

    /// The master's and agents' logs, for failure messages.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        let mut out = format!("--- master.log\n{}", read("master.log"));
        for i in 0..self.agent_procs.len() {
            let log = format!("{}.log", agent_name(i));
            out.push_str(&format!("--- {log}\n{}", read(&log)));
        }
        out
    }
}

/// The file-name stem of agent `i`: `agent`, then `agent-1`, `agent-2`, …
fn agent_name(i: usize) -> String {
    if i == 0 {
        "agent".to_string()
    } else {
        format!("agent-{i}")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agent_procs {
            stop(agent);
        }
        stop(&mut self.master_proc);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A `wasmesos up` process.
pub struct Up {
    pub master: String,
    proc: Child,
    log: PathBuf,
}

impl Up {
    pub fn start(data_dir: &Path) -> Up {
        let log = data_dir.with_extension("up.log");
        let addr_file = data_dir.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut proc = spawn(
            &[
                "up",
                "--listen",
                "127.0.0.1:0",
                "--agent-listen",
                "127.0.0.1:0",
                "--resources",
                "cpus:2,mem:1GiB,disk:1GiB",
                "--data-dir",
                &data_dir.display().to_string(),
                "--addr-file",
                &addr_file.display().to_string(),
            ],
            &log,
        );
        let addr = wait_for_addr(&addr_file, &mut proc, &log);
        let up = Up {
            master: format!("http://{addr}"),
            proc,
            log,
        };
        eventually("the local agent to register", || {
            wasmesos(Some(&up.master), &["agents"])
                .stdout
                .contains("ACTIVE")
                .then_some(())
        });
        up
    }

    pub fn run(&self, args: &[&str]) -> Run {
        wasmesos(Some(&self.master), args)
    }

    /// Stops the process (SIGTERM, as Ctrl-C would).
    pub fn stop(mut self) {
        stop(&mut self.proc);
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        stop(&mut self.proc);
        if std::thread::panicking() {
            eprintln!("{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

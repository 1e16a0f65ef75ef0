//! The web UI in a real browser: headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `scripts/setup.sh`
//! installs), against a real master and agent with tasks running. It opens
//! every page, checks what they show against the JSON API and the CLI,
//! follows a task to its output (hostile output must show as text), watches
//! a task change state live, and saves a screenshot of each page under
//! `target/ui-screenshots/`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::{Cluster, PATIENCE, credentials};
use crate::procs::free_port;

/// What a hostile task prints (as its arguments, which `hello` echoes).
const HOSTILE: &str = "<script>alert(1)</script>";
const HOSTILE_IMG: &str = "<img src=x onerror=alert(2)>";

/// Finds a program on PATH, or fails naming the package that brings it.
fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the browser test needs `{program}` (Debian package `{package}`), which is not on PATH: \
             run scripts/setup.sh, or apt-get install chromium chromium-driver"
        )
    })
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(log: &std::path::Path) -> Driver {
        let program = require("chromedriver", "chromium-driver");
        require("chromium", "chromium");
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("driver log"))
            .spawn()
            .expect("starting chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET against the master's JSON API (plain HTTP/1.1, read whole).
fn api(master: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let addr = master.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).expect("connecting to the master");
    write!(
        tcp,
        "GET /api/v1/{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        credentials().admin_token
    )
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The browser session and where screenshots go.
struct Browser {
    client: Client,
    master: String,
    shots: PathBuf,
}

impl Browser {
    async fn open(&self, route: &str) {
        self.client
            .goto(&format!("{}/#/{route}", self.master))
            .await
            .expect("navigating");
    }

    /// Waits until the element's text satisfies `ok`; returns the text.
    async fn text_until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never showed what was expected; last seen: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.text_until(css, |_| true).await
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("saving screenshot");
    }
}

fn job_id(submit_stdout: &str) -> String {
    submit_stdout
        .split_whitespace()
        .find(|w| w.starts_with("job-"))
        .unwrap_or_else(|| panic!("no job id in {submit_stdout:?}"))
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[test]
fn ui_pages_in_a_real_browser() {
    let c = Cluster::start();
    let hello = c.hello().display().to_string();
    let r = c.run(&[
        "submit",
        &hello,
        "--name",
        "hostile",
        "--wait",
        "--",
        HOSTILE,
        HOSTILE_IMG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = c.run(&[
        "submit",
        &hello,
        "--name",
        "sleeper",
        "--",
        "--sleep-ms",
        "600000",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let hostile = "job-1.1";
    let sleeper = format!("{}.1", job_id(&r.stdout));
    c.wait_for_state(&sleeper, "RUNNING");

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let driver = Driver::start(&c.dir.path().join("chromedriver.log"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-dev-shm-usage",
                "--window-size=1400,1000",
            ]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium ({e}); its log:\n{}",
                    std::fs::read_to_string(c.dir.path().join("chromedriver.log"))
                        .unwrap_or_default()
                )
            });
        let b = Browser {
            client,
            master: c.master.clone(),
            shots,
        };
        let result = pages(&b, &c, hostile, &sleeper).await;
        let _ = b.client.clone().close().await;
        result
    });
}

/// Signing in: a page asked for without a session goes to the sign-in
/// page; a wrong token is refused there with the reason (as text); the
/// admin token signs in.
async fn sign_in(b: &Browser) {
    b.open("").await;
    let deadline = Instant::now() + PATIENCE;
    while !b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/login")
    {
        assert!(Instant::now() < deadline, "not sent to the sign-in page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let submit = |token: String| async move {
        let field = b
            .client
            .find(Locator::Css("#token"))
            .await
            .expect("a token field");
        field.send_keys(&token).await.unwrap();
        b.client
            .find(Locator::Css("#login button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };
    submit(format!("wsm_000000000000_{}", "0".repeat(64))).await;
    let refused = b
        .text_until("#error", |t| t.contains("unknown token"))
        .await;
    assert!(refused.contains("000000000000"), "{refused}");
    b.screenshot("sign-in-refused").await;
    submit(credentials().admin_token.clone()).await;
    b.text_until("#whoami", |t| t.contains("admin")).await;
}

async fn pages(b: &Browser, c: &Cluster, hostile: &str, sleeper: &str) {
    sign_in(b).await;
    // Overview: the same figures as the API and the CLI.
    b.open("").await;
    let summary = api(&c.master, "summary");
    let active = b.text_until("#agents-active", |t| t == "1").await;
    assert_eq!(active, summary["agents"]["active"].to_string());
    let cli_agents = c.run(&["agents"]).stdout.matches("ACTIVE").count();
    assert_eq!(active, cli_agents.to_string(), "UI and CLI agree");
    let running = b.text("#tasks-RUNNING").await;
    assert_eq!(running, summary["tasks"]["by_state"]["RUNNING"].to_string());
    let cli_running = c.run(&["tasks", "--state", "running"]);
    let cli_running = cli_running
        .stdout
        .lines()
        .filter(|l| l.contains("RUNNING"))
        .count();
    assert_eq!(running, cli_running.to_string(), "UI and CLI agree");
    let cpus = b.text("#bar-cpus").await;
    assert!(cpus.ends_with("/ 2 cpus"), "{cpus}");
    assert_eq!(b.text("#leader").await, summary["leader"].as_str().unwrap());
    b.screenshot("overview").await;

    // Frameworks, then the built-in one with its log.
    b.open("frameworks").await;
    b.text_until("#frameworks", |t| t.contains("jobs")).await;
    b.screenshot("frameworks").await;
    b.client
        .find(Locator::LinkText("jobs"))
        .await
        .expect("a link to the jobs framework")
        .click()
        .await
        .unwrap();
    let fw = api(&c.master, "frameworks/jobs");
    let status = b.text("#fw-status").await;
    assert_eq!(status, fw["framework"]["status"].as_str().unwrap());
    b.screenshot("framework").await;

    // Tasks: the list matches the API page, filtered on the server.
    b.open("tasks").await;
    let listed = api(&c.master, "tasks?limit=50");
    let rows = listed["tasks"].as_array().unwrap().len();
    b.text_until("#tasks-table", |t| {
        t.contains(sleeper) && t.contains(hostile)
    })
    .await;
    let shown = b
        .client
        .find_all(Locator::Css("#tasks-table tbody tr"))
        .await
        .unwrap()
        .len();
    assert_eq!(shown, rows, "rows shown = tasks in the API's page");
    b.screenshot("tasks").await;
    b.open("tasks?state=RUNNING").await;
    let table = b.text_until("#tasks-table", |t| t.contains(sleeper)).await;
    assert!(!table.contains(hostile), "the filter applies: {table}");

    // Follow the hostile task to its output: shown as text, never run.
    b.open("tasks").await;
    b.text_until("#tasks-table", |t| t.contains(hostile)).await;
    b.client
        .find(Locator::LinkText(hostile))
        .await
        .expect("a link to the task")
        .click()
        .await
        .unwrap();
    let log = b
        .text_until("#task-log", |t| t.contains("hello from wasmesos!"))
        .await;
    assert!(log.contains(&format!("arg: {HOSTILE}")), "{log}");
    assert!(log.contains(&format!("arg: {HOSTILE_IMG}")), "{log}");
    let markup = b
        .client
        .find(Locator::Css("#task-log"))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    assert!(
        markup.contains("&lt;script&gt;") && !markup.contains("<script"),
        "the output is text: {markup}"
    );
    assert!(
        b.client
            .find_all(Locator::Css("#task img, #task script"))
            .await
            .unwrap()
            .is_empty(),
        "no element came from task output"
    );
    assert!(
        b.client.get_alert_text().await.is_err(),
        "no script from task output ran"
    );
    assert!(b.text("#task-args").await.contains(HOSTILE));
    let task = api(&c.master, &format!("tasks/jobs/{hostile}"));
    assert_eq!(b.text("#task-state").await, task["state"].as_str().unwrap());
    let wall = b.text("#usage-wall").await;
    assert_eq!(
        wall,
        match task["usage"]["wall_ms"].as_u64().unwrap() {
            0 => "0".to_string(),
            ms if ms < 1000 => format!("{ms} ms"),
            ms => format!("{:.2} s", ms as f64 / 1000.0),
        },
        "usage as the API reports it"
    );
    b.screenshot("task-hostile").await;

    // A running task, then killed from the CLI: the page follows live.
    b.open(&format!("tasks/jobs/{sleeper}")).await;
    b.text_until("#task-state", |t| t == "RUNNING").await;
    b.text_until("#task-log", |t| t.contains("arg: --sleep-ms"))
        .await;
    b.screenshot("task-running").await;
    let kill = c.run(&["task", "kill", sleeper]);
    assert_eq!(kill.code, 0, "{kill:?}");
    b.text_until("#task-state", |t| t == "KILLED").await;

    // Agents and one agent with its resources.
    b.open("agents").await;
    let agents = api(&c.master, "agents");
    let id = agents["agents"][0]["id"].as_str().unwrap().to_string();
    b.text_until("#agents-table", |t| t.contains(&id)).await;
    b.screenshot("agents").await;
    b.client
        .find(Locator::LinkText(&id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.text_until("#agent", |t| t.contains("/ 2 cpus")).await;
    b.screenshot("agent").await;

    // Roles.
    b.open("roles").await;
    b.text_until("#roles-table", |t| t.contains("default"))
        .await;
    b.screenshot("roles").await;

    // Unknown ids: the UI's 404 page.
    b.open("agents/agent-999").await;
    b.text_until("#not-found", |t| t.contains("no agent")).await;
    b.open("tasks/jobs/job-999.1").await;
    b.text_until("#not-found", |t| t.contains("job-999.1"))
        .await;
    b.screenshot("not-found").await;
}

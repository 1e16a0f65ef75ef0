//! The HTTP side against a real master on loopback (embedded store, no
//! agents): every path the OpenAPI file documents answers as documented,
//! unknown ids give JSON 404s, page sizes are clamped, `/metrics` parses as
//! Prometheus text, and the event stream sends a summary.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{MasterConfig, RunningMaster};

/// A response, read whole.
pub(crate) struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The operator token the test masters accept (written to their admin
/// token file before they start).
pub(crate) const TEST_TOKEN: &str =
    "wsm_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A plain HTTP/1.1 GET as the test operator (the master speaks HTTP/1
/// and 2 on one port).
pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> Reply {
    request(
        addr,
        "GET",
        path,
        &format!("Authorization: Bearer {TEST_TOKEN}\r\n"),
        "",
    )
    .await
}

/// A request with the given extra header lines (each ending in CRLF) and
/// body.
pub(crate) async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Reply {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn master() -> (tempfile::TempDir, RunningMaster) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MasterConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("m"));
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    std::fs::write(cfg.admin_token_file.as_ref().unwrap(), TEST_TOKEN).unwrap();
    let m = crate::start(cfg).await.expect("master starts");
    (dir, m)
}

/// Paths and their documented status codes, read from the OpenAPI file
/// (its layout is ours: paths at two spaces, codes at eight).
fn documented() -> Vec<(String, Vec<u16>)> {
    let mut out: Vec<(String, Vec<u16>)> = Vec::new();
    let mut in_paths = false;
    for line in include_str!("../../ui/openapi.yaml").lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_paths = false;
        }
        if !in_paths {
            continue;
        }
        if let Some(path) = line
            .strip_prefix("  ")
            .filter(|l| l.starts_with('/'))
            .and_then(|l| l.strip_suffix(':'))
        {
            out.push((path.to_string(), Vec::new()));
        } else if let Some(code) = line
            .strip_prefix("        \"")
            .and_then(|l| l.split('"').next())
            .and_then(|c| c.parse().ok())
        {
            out.last_mut().expect("a path first").1.push(code);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_path_answers_as_documented() {
    let (_dir, m) = master().await;
    let paths = documented();
    assert!(
        paths.len() >= 12,
        "paths read from the OpenAPI file: {paths:?}"
    );
    for (path, codes) in paths {
        // Ids of things that exist where there are some (the built-in jobs
        // framework), and unknown ones elsewhere (no agent, no task).
        let url = path
            .replace("{name}", "jobs")
            .replace("{id}", "agent-404")
            .replace("{framework}", "jobs")
            .replace("{task}", "job-404.1");
        if path == "/api/v1/events" {
            let reply = tokio::time::timeout(Duration::from_secs(10), first_event(m.addr))
                .await
                .expect("the event stream sends within 10 s");
            assert!(reply.contains("event: summary"), "{reply}");
            continue;
        }
        let reply = get(m.addr, &url).await;
        assert!(
            codes.contains(&reply.status),
            "GET {url}: {} not among the documented {codes:?}: {}",
            reply.status,
            reply.body
        );
        if url.starts_with("/api/v1/") && !url.ends_with(".yaml") {
            reply.json();
        }
    }
    m.shutdown();
}

/// Reads the event stream until its first event.
async fn first_event(addr: std::net::SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nCookie: wasmesos_session={TEST_TOKEN}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream closed");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.contains("\ndata: ") {
            return text.to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_json_404s_and_pages_are_clamped() {
    let (_dir, m) = master().await;
    for path in [
        "/api/v1/agents/agent-999",
        "/api/v1/agents/not%20an%20id",
        "/api/v1/frameworks/nope",
        "/api/v1/tasks/jobs/job-999.1",
        "/api/v1/tasks/nope/job-1.1",
        "/api/v1/tasks/jobs/job-999.1/logs",
        "/api/v1/no-such-thing",
    ] {
        let r = get(m.addr, path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], 404, "{path}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let page = get(m.addr, "/api/v1/tasks?limit=100000").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.json()["limit"], 1000, "clamped to the maximum");
    let agents = get(m.addr, "/api/v1/agents?limit=5000").await.json();
    assert_eq!(agents["total"], 0);
    for (path, why) in [
        ("/api/v1/tasks?limit=lots", "limit"),
        ("/api/v1/tasks?state=sleeping", "unknown task state"),
        ("/api/v1/agents?state=asleep", "unknown agent state"),
        ("/api/v1/tasks/jobs/job-1.1/logs?stream=stdin", "stream"),
        ("/api/v1/tasks?page_token=elsewhere/x", "another listing"),
    ] {
        let r = get(m.addr, path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(why), "{path}: {message}");
    }
    // A browser asking for a page that does not exist gets one saying so.
    let r = get(m.addr, "/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.head.to_ascii_lowercase().contains("text/html"));
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_assets_are_embedded_with_a_strict_policy() {
    let (_dir, m) = master().await;
    for name in super::ui::names() {
        let r = get(m.addr, &format!("/ui/{name}")).await;
        assert_eq!(r.status, 200, "{name}");
        assert!(!r.body.is_empty(), "{name}");
        let head = r.head.to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{name}: {head}"
        );
        if name.ends_with(".js") {
            // Data goes into the page as text; the policy stops inline
            // script, and no module parses strings as HTML.
            assert!(!r.body.contains("innerHTML"), "{name} uses innerHTML");
            assert!(!r.body.contains("insertAdjacentHTML"), "{name}");
            assert!(!r.body.contains("document.write"), "{name}");
        }
    }
    let index = get(m.addr, "/").await;
    assert_eq!(index.status, 200);
    assert!(index.body.contains("/ui/app.js"));
    assert!(
        !index.body.contains("<script>"),
        "no inline script in the page"
    );
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text() {
    let (_dir, m) = master().await;
    // Something to count: the jobs framework is registered at start.
    let r = get(m.addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("text/plain; version=0.0.4"));
    let lines = r.body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the text format parses");
    let names: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "wasmesos_allocation_round_seconds_count",
        "wasmesos_offers_made_total",
        "wasmesos_offers_declined_total",
        "wasmesos_offers_rescinded_total",
        "wasmesos_tasks_launched_total",
        "wasmesos_tasks",
        "wasmesos_agents",
        "wasmesos_framework_callbacks_total",
        "wasmesos_framework_callback_fuel_total",
        "wasmesos_framework_callback_seconds_total",
        "wasmesos_store_commit_seconds_count",
        "wasmesos_leader",
        "wasmesos_leader_epoch",
    ] {
        assert!(names.contains(family), "{family} missing from:\n{}", r.body);
    }
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("wasmesos_leader_epoch", None), Some(1.0));
    assert_eq!(
        value("wasmesos_agents", Some(("state", "active"))),
        Some(0.0)
    );
    assert!(
        value("wasmesos_store_commit_seconds_count", None).unwrap() >= 1.0,
        "the epoch bump and the jobs framework were committed"
    );
    assert!(
        names.contains("wasmesos_framework_callbacks_total"),
        "the jobs framework is listed"
    );
    m.shutdown();
}

#[test]
fn label_values_are_escaped() {
    use crate::core::{ClusterSummary, Counters, FrameworkMetrics};
    let fw = FrameworkMetrics {
        name: "a\"b\\c\nd".into(),
        role: "r".into(),
        ..Default::default()
    };
    let text = super::metrics::render(
        &Counters::default(),
        &Default::default(),
        &ClusterSummary::default(),
        &[fw],
    );
    assert!(text.contains(r#"framework="a\"b\\c\nd""#), "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("parses");
}

/// Every documented path but the public ones refuses a request without
/// credentials (401, JSON), a forged or agent token (401 / 403); a browser
/// asking for a page is sent to sign in; signing in sets a session cookie
/// that then opens the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_valid_credentials_are_refused_everywhere() {
    let (dir, m) = master().await;
    let public = ["/health", "/login", "/logout"];
    let forged = format!("wsm_0123456789ab_{}", "f".repeat(64));
    let agent_token = std::fs::read_to_string(dir.path().join("m/agent.token")).unwrap();
    for (path, _) in documented() {
        let url = path
            .replace("{name}", "jobs")
            .replace("{id}", "agent-1")
            .replace("{framework}", "jobs")
            .replace("{task}", "job-1.1");
        if public.contains(&url.as_str()) {
            continue;
        }
        let none = request(m.addr, "GET", &url, "", "").await;
        assert_eq!(
            none.status, 401,
            "GET {url} without credentials: {}",
            none.body
        );
        assert!(
            none.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("token")
        );
        let bad = request(
            m.addr,
            "GET",
            &url,
            &format!("Authorization: Bearer {forged}\r\n"),
            "",
        )
        .await;
        assert_eq!(bad.status, 401, "GET {url} with a forged token");
        assert!(bad.body.contains("unknown token"), "{}", bad.body);
        let cookie = request(
            m.addr,
            "GET",
            &url,
            &format!("Cookie: wasmesos_session={forged}\r\n"),
            "",
        )
        .await;
        assert_eq!(cookie.status, 401, "GET {url} with a forged session");
        let agent = request(
            m.addr,
            "GET",
            &url,
            &format!("Authorization: Bearer {}\r\n", agent_token.trim()),
            "",
        )
        .await;
        assert_eq!(
            agent.status, 403,
            "GET {url} with an agent token: {}",
            agent.body
        );
    }
    // A browser is sent to the sign-in page, whose files need no session.
    let page = request(m.addr, "GET", "/", "Accept: text/html\r\n", "").await;
    assert_eq!(page.status, 303);
    assert!(
        page.head.to_ascii_lowercase().contains("location: /login"),
        "{}",
        page.head
    );
    assert_eq!(request(m.addr, "GET", "/login", "", "").await.status, 200);
    assert_eq!(
        request(m.addr, "GET", "/ui/login.js", "", "").await.status,
        200
    );

    // Signing in: a wrong token goes back with the reason; the right one
    // sets an HttpOnly, SameSite=Strict cookie that opens the API.
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let wrong = request(m.addr, "POST", "/login", form, &format!("token={forged}")).await;
    assert_eq!(wrong.status, 303);
    assert!(
        wrong.head.contains("/login?error=unknown%20token"),
        "{}",
        wrong.head
    );
    let ok = request(
        m.addr,
        "POST",
        "/login",
        form,
        &format!("token={TEST_TOKEN}"),
    )
    .await;
    assert_eq!(ok.status, 303);
    let set = ok
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = set
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim();
    let me = request(
        m.addr,
        "GET",
        "/api/v1/whoami",
        &format!("Cookie: {session}\r\n"),
        "",
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["kind"], "operator");
    m.shutdown();
}

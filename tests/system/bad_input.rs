//! Bad input gets a clear one-line error and a non-zero exit, and the
//! cluster keeps serving.

use crate::harness::{Cluster, wasmesos};

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got: {stderr}");
    lines[0]
}

#[test]
fn a_file_that_is_not_wasm_is_refused_and_the_cluster_keeps_serving() {
    let c = Cluster::start();
    let bogus = c.dir.path().join("notes.txt");
    std::fs::write(&bogus, "hello, I am text").unwrap();
    let r = c.run(&["submit", &bogus.display().to_string(), "--wait"]);
    assert_ne!(r.code, 0);
    let line = one_line(&r.stderr);
    assert!(
        line.contains("notes.txt is not a WebAssembly binary"),
        "{r:?}"
    );

    let broken = c.dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x01\0\0\0\x01\x05\xff").unwrap();
    let r = c.run(&["submit", &broken.display().to_string()]);
    assert_ne!(r.code, 0);
    assert!(
        one_line(&r.stderr).contains("broken.wasm is not a valid WebAssembly module"),
        "{r:?}"
    );

    let missing = c.run(&["submit", "/nonexistent/x.wasm"]);
    assert!(
        one_line(&missing.stderr).contains("cannot read /nonexistent/x.wasm"),
        "{missing:?}"
    );

    let ok = c.run(&["submit", &c.hello().display().to_string(), "--wait"]);
    assert_eq!(ok.code, 0, "{ok:?}");
}

#[test]
fn unknown_tasks_are_named_in_the_error() {
    let c = Cluster::start();
    for args in [
        &["logs", "nope"][..],
        &["task", "kill", "nope"],
        &["task", "show", "nope"],
    ] {
        let r = c.run(args);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            one_line(&r.stderr).contains("no task or job 'nope'"),
            "{r:?}"
        );
    }
}

#[test]
fn a_master_that_is_not_running_is_reported_with_what_to_do() {
    let r = wasmesos(Some("http://127.0.0.1:1"), &["tasks"]);
    assert_ne!(r.code, 0);
    let line = one_line(&r.stderr);
    assert!(
        line.contains(
            "cannot reach master at http://127.0.0.1:1: is it running? try `wasmesos up`"
        ),
        "{r:?}"
    );
}

#[test]
fn malformed_flags_are_refused() {
    let r = wasmesos(None, &["agent", "--resources", "cpus=2"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("NAME:AMOUNT"), "{r:?}");
    let r = wasmesos(None, &["agent", "--resources", "cpus:2,mem:4XB"]);
    assert!(r.stderr.contains("invalid size '4XB'"), "{r:?}");
    let r = wasmesos(None, &["submit", "x.wasm", "--mem", "64XB"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid size '64XB'"), "{r:?}");
    let r = wasmesos(None, &["submit", "x.wasm", "--timeout", "soon"]);
    assert!(r.stderr.contains("invalid duration 'soon'"), "{r:?}");
}

#[test]
fn a_port_in_use_is_reported() {
    let c = Cluster::start();
    let addr = c.master.trim_start_matches("http://").to_string();
    let data = c.dir.path().join("second");
    let r = wasmesos(
        None,
        &[
            "master",
            "--listen",
            &addr,
            "--data-dir",
            &data.display().to_string(),
        ],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("port is in use"), "{r:?}");
}

#[test]
fn plaintext_off_loopback_and_an_agent_without_a_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m").display().to_string();
    let r = wasmesos(
        None,
        &["master", "--listen", "0.0.0.0:0", "--data-dir", &data],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("not a loopback address") && r.stderr.contains("--allow-plaintext"),
        "{r:?}"
    );
    let mut cmd = std::process::Command::new(crate::harness::bin());
    crate::harness::with_credentials(&mut cmd).env_remove("WASMESOS_AGENT_TOKEN_FILE");
    let r: crate::harness::Run = cmd
        .args([
            "agent",
            "--master",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--work-dir")
        .arg(dir.path().join("a"))
        .output()
        .unwrap()
        .into();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--token-file"), "{r:?}");
}

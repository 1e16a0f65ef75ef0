//! A master serving over TLS (its own certificate, made here with the
//! `openssl` command): an agent attaches over https with the CA, the CLI
//! submits and follows a task through it, the JSON API answers curl with
//! the CA; a client without the CA, and a plaintext one, get nowhere.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{Run, bin, eventually, wait_for_addr, with_credentials};
use crate::procs::{Procs, master};

/// A CA (`ca.pem`) and a certificate it signed for 127.0.0.1 and
/// localhost (`cert.pem`, `key.pem`).
fn certificate(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the TLS test needs the `openssl` command (Debian package openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=wasmesos-test-ca",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca-key.pem", "-out", "ca.pem"]);
    openssl(&ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=wasmesos-test-master"];
    csr.extend(ec);
    csr.extend(["-keyout", "key.pem", "-out", "master.csr"]);
    openssl(&csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "master.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
}

fn cli(master: &str, ca: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    with_credentials(&mut cmd)
        .env("WASMESOS_MASTER", master)
        .args(args);
    match ca {
        Some(ca) => cmd.env("WASMESOS_CA_FILE", ca),
        None => cmd.env_remove("WASMESOS_CA_FILE"),
    };
    cmd.output().expect("running wasmesos").into()
}

#[test]
fn a_cluster_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificate(d);
    let (cert, key, ca) = (d.join("cert.pem"), d.join("key.pem"), d.join("ca.pem"));
    let mut procs = Procs::default();
    let (m, url) = master(
        d,
        "m",
        0,
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    procs.add("m", m);
    let https = url.replace("http://", "https://");

    let log = d.join("agent.log");
    let addr_file = d.join("agent.addr");
    let mut agent = with_credentials(&mut Command::new(bin()))
        .args(["agent", "--master", &https, "--listen", "127.0.0.1:0"])
        .args(["--resources", "cpus:2,mem:2GiB,disk:1GiB", "--ca-file"])
        .arg(&ca)
        .arg("--work-dir")
        .arg(d.join("agent"))
        .arg("--addr-file")
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_addr(&addr_file, &mut agent, &log);
    procs.add("agent", agent);
    eventually("the agent to attach over TLS", || {
        let r = cli(&https, Some(&ca), &["agents"]);
        r.stdout.contains("ACTIVE").then_some(())
    });

    let hello = d.join("hello.wasm");
    std::fs::write(&hello, wasmesos_builtin::HELLO_TASK).unwrap();
    let r = cli(
        &https,
        Some(&ca),
        &[
            "submit",
            &hello.display().to_string(),
            "--wait",
            "--",
            "over-tls",
        ],
    );
    assert_eq!(
        r.code,
        0,
        "{r:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(r.stdout.contains("arg: over-tls"), "{r:?}");

    // The JSON API over TLS, for a client that trusts the CA.
    let token = crate::harness::credentials().admin_token.clone();
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{https}/api/v1/whoami"))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("\"operator\""),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the CA the certificate is not trusted; plaintext gets no
    // answer from a TLS port.
    let untrusted = cli(&https, None, &["tasks"]);
    assert_ne!(untrusted.code, 0, "{untrusted:?}");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );
    let plain = cli(&url, Some(&ca), &["tasks"]);
    assert_ne!(plain.code, 0, "{plain:?}");
}

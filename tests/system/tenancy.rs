//! Tenants on one real cluster, through the CLI: each tenant's token sees
//! and acts on its own jobs, frameworks and logs only, deploys only into
//! its roles, and cannot manage tenants or tokens; revoked and expired
//! tokens, a missing token and an agent's token are refused with what to
//! do. Every submission of a tenant goes to its own jobs framework in its
//! own role.

use std::process::Command;

use crate::harness::{Cluster, Run, bin, eventually, with_credentials};

/// `wasmesos ARGS` against `c` with `token` (None: no credentials at all).
fn as_token(c: &Cluster, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    with_credentials(&mut cmd)
        .env("WASMESOS_MASTER", &c.master)
        .env_remove("WASMESOS_TOKEN_FILE")
        // No config file either (an `up` elsewhere in this run may have
        // written one).
        .env("WASMESOS_CONFIG", c.dir.path().join("no-config.toml"))
        .args(args);
    if let Some(t) = token {
        cmd.env("WASMESOS_TOKEN", t);
    }
    cmd.output().expect("running wasmesos").into()
}

fn token_for(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let r = c.run(&all);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_string()
}

fn job_of(r: &Run) -> String {
    r.stdout
        .split_whitespace()
        .find(|w| w.starts_with("job-"))
        .unwrap_or_else(|| panic!("no job id in {r:?}"))
        .trim_end_matches(|ch: char| !ch.is_ascii_alphanumeric())
        .to_string()
}

#[test]
fn tenants_see_and_touch_only_their_own() {
    let c = Cluster::start();
    for (name, roles) in [("acme", "analytics"), ("globex", "web,batch")] {
        let r = c.run(&["tenant", "create", name, "--roles", roles]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let acme = token_for(&c, &["acme", "--name", "acme-ci"]);
    let globex = token_for(&c, &["globex"]);
    let (acme, globex) = (Some(acme.as_str()), Some(globex.as_str()));

    let me = as_token(&c, acme, &["whoami"]);
    assert!(
        me.stdout.contains("tenant  acme") && me.stdout.contains("roles   analytics"),
        "{me:?}"
    );

    // Each tenant's submissions go to its own jobs framework, in its role.
    let hello = c.hello().display().to_string();
    let sleeper = as_token(
        &c,
        acme,
        &[
            "submit",
            &hello,
            "--name",
            "a-sleeper",
            "--",
            "--sleep-ms",
            "600000",
        ],
    );
    assert_eq!(sleeper.code, 0, "{sleeper:?}");
    let acme_task = format!("{}.1", job_of(&sleeper));
    let done = as_token(&c, globex, &["submit", &hello, "--", "globex-secret"]);
    assert_eq!(done.code, 0, "{done:?}");
    let globex_task = format!("{}.1", job_of(&done));
    c.wait_for_state(&globex_task, "FINISHED");
    c.wait_for_state(&acme_task, "RUNNING");
    let frameworks = c.run(&["frameworks"]);
    for role in ["default", "analytics", "web"] {
        assert!(
            frameworks
                .stdout
                .lines()
                .any(|l| l.starts_with("jobs") && l.contains(role)),
            "a jobs framework in role {role}: {frameworks:?}"
        );
    }

    // Lists show one's own only; the operator sees both.
    let listed = as_token(&c, acme, &["tasks"]);
    assert!(listed.stdout.contains(&acme_task), "{listed:?}");
    assert!(!listed.stdout.contains(&globex_task), "{listed:?}");
    let listed = as_token(&c, globex, &["tasks"]);
    assert!(
        listed.stdout.contains(&globex_task) && !listed.stdout.contains(&acme_task),
        "{listed:?}"
    );
    let all = c.run(&["tasks"]);
    assert!(
        all.stdout.contains(&acme_task) && all.stdout.contains(&globex_task),
        "{all:?}"
    );
    let fws = as_token(&c, acme, &["frameworks"]);
    assert_eq!(
        fws.stdout.lines().filter(|l| l.starts_with("jobs")).count(),
        1,
        "{fws:?}"
    );

    // Another tenant's task can be neither killed nor read.
    let kill = as_token(&c, globex, &["task", "kill", &acme_task]);
    assert_ne!(kill.code, 0, "{kill:?}");
    let logs = as_token(&c, acme, &["logs", &globex_task]);
    assert_ne!(logs.code, 0, "{logs:?}");
    assert!(!logs.stdout.contains("globex-secret"), "{logs:?}");
    let own = as_token(&c, globex, &["logs", &globex_task]);
    assert!(own.stdout.contains("globex-secret"), "{own:?}");
    c.wait_for_state(&acme_task, "RUNNING");

    // Deployments go into one's own roles only.
    let chaos = c.dir.path().join("chaos.wasm");
    std::fs::write(&chaos, wasmesos_builtin::CHAOS_SCHEDULER).unwrap();
    let chaos = chaos.display().to_string();
    let foreign = as_token(
        &c,
        acme,
        &[
            "framework",
            "deploy",
            &chaos,
            "--name",
            "c",
            "--role",
            "web",
        ],
    );
    assert!(
        foreign.stderr.contains("permission denied") && foreign.stderr.contains("analytics"),
        "{foreign:?}"
    );
    let own_role = as_token(&c, acme, &["framework", "deploy", &chaos, "--name", "c"]);
    assert_eq!(own_role.code, 0, "{own_role:?}");
    let shown = c.run(&["frameworks"]);
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.starts_with("c ") && l.contains("analytics")),
        "{shown:?}"
    );

    // Tenants do not manage tenants or tokens.
    for args in [
        &["tenant", "create", "evil", "--roles", "x"][..],
        &["token", "create", "acme"][..],
        &["token", "create", "--kind", "operator"][..],
    ] {
        let r = as_token(&c, acme, args);
        assert!(r.stderr.contains("only operators"), "{args:?}: {r:?}");
    }
    let tenants = as_token(&c, acme, &["tenants"]);
    assert!(
        tenants.stdout.contains("acme") && !tenants.stdout.contains("globex"),
        "{tenants:?}"
    );

    // The operator kills acme's task.
    let kill = c.run(&["task", "kill", &acme_task]);
    assert_eq!(kill.code, 0, "{kill:?}");
    c.wait_for_state(&acme_task, "KILLED");

    // The audit log has who did what, refusals included; operators only.
    let audit = c.run(&["audit", "--limit", "200"]);
    for needle in [
        "tenant.create",
        "token.create",
        "job.submit",
        "framework.deploy",
        "task.kill",
    ] {
        assert!(audit.stdout.contains(needle), "{needle}: {audit:?}");
    }
    let denied = c.run(&["audit", "--tenant", "acme", "--action", "framework.deploy"]);
    assert!(
        denied.stdout.contains("PermissionDenied") && denied.stdout.contains("ok"),
        "{denied:?}"
    );
    let submits = c.run(&["audit", "--tenant", "globex", "--action", "submit"]);
    assert_eq!(
        submits.stdout.lines().count(),
        2,
        "a header and one submit: {submits:?}"
    );
    let tenant_reads = as_token(&c, acme, &["audit"]);
    assert!(
        tenant_reads.stderr.contains("only operators"),
        "{tenant_reads:?}"
    );
}

#[test]
fn missing_revoked_expired_and_agent_tokens_are_refused() {
    let c = Cluster::start();
    let r = c.run(&["tenant", "create", "acme", "--roles", "analytics"]);
    assert_eq!(r.code, 0, "{r:?}");

    let none = as_token(&c, None, &["tasks"]);
    assert!(
        none.stderr.contains("not signed in") && none.stderr.contains("WASMESOS_TOKEN"),
        "{none:?}"
    );
    let garbage = as_token(&c, Some("hunter2"), &["tasks"]);
    assert!(
        garbage.stderr.contains("not a wasmesos token"),
        "{garbage:?}"
    );

    let token = token_for(&c, &["acme"]);
    assert_eq!(as_token(&c, Some(&token), &["tasks"]).code, 0);
    let id = token[4..16].to_string();
    let listed = c.run(&["tokens", "--tenant", "acme"]);
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("valid"),
        "{listed:?}"
    );
    assert!(
        !listed.stdout.contains(&token[17..]),
        "a listing never shows a secret"
    );
    let revoked = c.run(&["token", "revoke", &id]);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    let refused = as_token(&c, Some(&token), &["tasks"]);
    assert!(refused.stderr.contains("revoked"), "{refused:?}");

    let short = token_for(&c, &["acme", "--ttl", "1s"]);
    eventually("the short token to expire", || {
        let r = as_token(&c, Some(&short), &["whoami"]);
        r.stderr.contains("expired").then_some(())
    });

    let agent_token = std::fs::read_to_string(&crate::harness::credentials().agent_file).unwrap();
    let agent = as_token(&c, Some(agent_token.trim()), &["tasks"]);
    assert!(agent.stderr.contains("agent token"), "{agent:?}");

    // Refusals are in the master's log with who was refused.
    let log = std::fs::read_to_string(c.dir.path().join("master.log")).unwrap_or_default();
    assert!(
        log.contains("unauthenticated") && log.contains("revoked"),
        "{}",
        c.logs()
    );
}

#[test]
fn a_tenant_is_held_to_its_limits_and_others_are_not() {
    let c = Cluster::start();
    let r = c.run(&[
        "tenant",
        "create",
        "acme",
        "--roles",
        "analytics",
        "--max-running-tasks",
        "1",
        "--max-task-mem",
        "128MiB",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("tasks:1 mem:128MiB"), "{r:?}");
    let token = token_for(&c, &["acme"]);
    let acme = Some(token.as_str());
    let hello = c.hello().display().to_string();

    // One task at a time: the second job waits queued until the first ends.
    let sleep = |name: &str| {
        let r = as_token(
            &c,
            acme,
            &[
                "submit",
                &hello,
                "--name",
                name,
                "--",
                "--sleep-ms",
                "600000",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        format!("{}.1", job_of(&r))
    };
    let first = sleep("first");
    c.wait_for_state(&first, "RUNNING");
    let second = sleep("second");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let listed = c.run(&["tasks"]);
    assert!(!listed.stdout.contains(&second), "still queued: {listed:?}");
    // The operator's own jobs are not held back by acme's limit.
    let own = c.run(&["submit", &hello, "--wait", "--", "operator"]);
    assert_eq!(own.code, 0, "{own:?}");
    assert_eq!(c.run(&["task", "kill", &first]).code, 0);
    c.wait_for_state(&second, "RUNNING");
    assert_eq!(c.run(&["task", "kill", &second]).code, 0);

    // Per-task memory and fuel.
    let big = as_token(&c, acme, &["submit", &hello, "--mem", "256MiB"]);
    assert!(big.stderr.contains("at most 128MiB"), "{big:?}");
    let r = c.run(&["tenant", "limits", "acme", "--max-task-fuel", "1000"]);
    assert!(
        r.stdout.contains("fuel:1000") && r.stdout.contains("tasks:1"),
        "{r:?}"
    );
    let starved = as_token(&c, acme, &["submit", &hello, "--wait"]);
    assert!(starved.stderr.contains("fuel"), "{starved:?}");

    // Module size: refused before any bytes are stored.
    let r = c.run(&["tenant", "limits", "acme", "--max-module-size", "1KiB"]);
    assert_eq!(r.code, 0, "{r:?}");
    let other = c.dir.path().join("other.wasm");
    let mut bytes = wasmesos_builtin::HELLO_TASK.to_vec();
    bytes.extend_from_slice(&[0, 4, b'p', b'a', b'd', 0]); // a custom section
    std::fs::write(&other, bytes).unwrap();
    let upload = as_token(&c, acme, &["submit", &other.display().to_string()]);
    assert!(
        upload.stderr.contains("modules of at most 1KiB"),
        "{upload:?}"
    );

    // Request rate: a tight loop is refused past its burst; others are not.
    let r = c.run(&["tenant", "limits", "acme", "--max-requests-per-second", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let refused = (0..6)
        .map(|_| as_token(&c, acme, &["tasks"]))
        .filter(|r| r.stderr.contains("requests per second"))
        .count();
    assert!(refused >= 1, "no request was refused");
    assert_eq!(c.run(&["tasks"]).code, 0, "the operator is not limited");
    let tenants = c.run(&["tenants"]);
    assert!(tenants.stdout.contains("rps:2"), "{tenants:?}");
}

#[test]
fn a_tenants_schedulers_run_under_its_callback_limits() {
    let c = Cluster::start();
    let r = c.run(&[
        "tenant",
        "create",
        "tight",
        "--roles",
        "t",
        "--max-callback-fuel",
        "1000",
    ]);
    assert!(r.stdout.contains("callback-fuel:1000"), "{r:?}");
    let token = token_for(&c, &["tight"]);
    let chaos = c.dir.path().join("chaos.wasm");
    std::fs::write(&chaos, wasmesos_builtin::CHAOS_SCHEDULER).unwrap();
    let chaos = chaos.display().to_string();
    let deploy_chaos = || {
        as_token(
            &c,
            Some(&token),
            &["framework", "deploy", &chaos, "--name", "c"],
        )
    };
    let deploy = deploy_chaos();
    // 1,000 fuel does not get a scheduler through its start: it fails
    // and says why (at once, or in its record); the operator's own
    // frameworks are not touched.
    if deploy.code == 0 {
        let shown = eventually("the tenant's scheduler to fail", || {
            let r = as_token(&c, Some(&token), &["framework", "show", "c"]);
            r.stdout.contains("fuel").then_some(r)
        });
        assert!(shown.stdout.contains("fail"), "{shown:?}");
    } else {
        assert!(deploy.stderr.contains("fuel"), "{deploy:?}");
    }
    let own = c.run(&["submit", &c.hello().display().to_string(), "--wait"]);
    assert_eq!(own.code, 0, "{own:?}");

    // Lifting the limit applies to the running master at once: the
    // failed scheduler is started again under the new limits.
    let r = c.run(&["tenant", "limits", "tight", "--max-callback-fuel", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    if deploy.code != 0 {
        let again = deploy_chaos();
        assert_eq!(again.code, 0, "{again:?}");
    }
    eventually(
        "the tenant's scheduler to run under the lifted limit",
        || {
            let r = as_token(&c, Some(&token), &["framework", "show", "c"]);
            r.stdout
                .lines()
                .any(|l| l.starts_with("status") && l.contains("running"))
                .then_some(r)
        },
    );
}

//! Builds the guest workspace (`examples/`) for wasm with a nested cargo and
//! copies the outputs into OUT_DIR, where `src/lib.rs` embeds them.
//!
//! The nested build gets its own target dir (`target/guests`), shared by
//! every profile and tool of the host build so the guests are built once,
//! and an environment cleaned of what the outer cargo set for this script:
//! its flags, wrappers (clippy-driver must not compile guests), target and
//! jobserver belong to the host build, not to the guests.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// (package, target, output file) of each guest. Guests of one target are
/// built by one nested cargo run, so the schedulers after `jobs` (the
/// `chaos` fixture and the `service` and `pi` examples) share the SDK's
/// build with it and cost only their own crate and link; `pi-task` rides
/// along with `hello`.
const GUESTS: &[(&str, &str, &str)] = &[
    ("jobs", "wasm32-wasip2", "jobs.wasm"),
    ("chaos", "wasm32-wasip2", "chaos.wasm"),
    ("service", "wasm32-wasip2", "service.wasm"),
    ("pi", "wasm32-wasip2", "pi.wasm"),
    ("hello", "wasm32-wasip1", "hello.wasm"),
    ("pi-task", "wasm32-wasip1", "pi-task.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let root = manifest_dir
        .parent()
        .expect("builtin/ sits in the repository root");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("run by cargo"));
    for dir in ["examples", "sdk", "wit"] {
        watch(&root.join(dir));
    }
    check_targets();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("guests");
    let mut targets: Vec<&str> = GUESTS.iter().map(|(_, target, _)| *target).collect();
    targets.sort_unstable();
    targets.dedup();
    for target in targets {
        let guests: Vec<_> = GUESTS.iter().filter(|(_, t, _)| *t == target).collect();
        let mut cmd = Command::new(&cargo);
        cmd.arg("build")
            .arg("--release")
            .arg("--manifest-path")
            .arg(root.join("examples").join("Cargo.toml"))
            .args(["--target", target])
            .arg("--target-dir")
            .arg(&target_dir);
        for (package, _, _) in &guests {
            cmd.args(["-p", package]);
        }
        clean_env(&mut cmd);
        // Our stdout carries `cargo:` directives: keep the nested output off it.
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", cargo.to_string_lossy())));
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            let names: Vec<&str> = guests.iter().map(|(package, _, _)| *package).collect();
            fail(&format!(
                "building the guests {} for {target} failed (see above)",
                names.join(", ")
            ));
        }
        for (_, _, file) in guests {
            let built = target_dir.join(target).join("release").join(file);
            std::fs::copy(&built, out_dir.join(file))
                .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", built.display())));
        }
    }
}

/// Reruns this script when guest sources change. Each entry of the
/// directory is watched rather than the directory itself, so that a
/// `target/` inside (from building `sdk/` or `examples/` by hand) is not
/// scanned and does not trigger rebuilds.
fn watch(dir: &Path) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
    for entry in entries.flatten() {
        if entry.file_name() != "target" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
}

/// Fails early, with the fix, when a wasm target's standard library is not
/// installed (cargo's own error would only say `can't find crate for std`).
fn check_targets() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", rustc.to_string_lossy())));
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let missing: Vec<&str> = ["wasm32-wasip1", "wasm32-wasip2"]
        .into_iter()
        .filter(|t| !sysroot.join("lib").join("rustlib").join(t).is_dir())
        .collect();
    if !missing.is_empty() {
        fail(&format!(
            "wasm target missing ({}): run `rustup target add wasm32-wasip1 wasm32-wasip2` \
             (the README's set-up command does this)",
            missing.join(", ")
        ));
    }
}

/// Removes what the outer cargo set for this build script and what would
/// make the nested cargo build guests like host code. User settings for the
/// network and registries (CARGO_HOME, CARGO_NET_*, …) pass through.
fn clean_env(cmd: &mut Command) {
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRY_",
        "CARGO_REGISTRIES_",
        "CARGO_TERM_",
    ];
    const REMOVE: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "MAKEFLAGS",
        "MFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "NUM_JOBS",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
    ];
    for (key, _) in env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        let cargo_var = (name.starts_with("CARGO_") || name.starts_with("__CARGO"))
            && !KEEP
                .iter()
                .any(|k| name == *k || (k.ends_with('_') && name.starts_with(k)));
        if cargo_var || REMOVE.contains(&name) {
            cmd.env_remove(OsStr::new(name));
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

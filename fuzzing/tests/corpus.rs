//! Replays the fuzz targets' inputs on every test run: the built-in seeds
//! and every file under `fuzzing/corpus/<target>/` (where inputs that once
//! found a bug are kept, named after what they found). A fuzzer run
//! (`scripts/fuzz.sh`) explores further; this keeps what it found fixed.

use std::path::{Path, PathBuf};

use wasmesos_fuzzing::{module, request};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn module_seeds_and_corpus_load_without_findings() {
    let seeds = module::seeds();
    for (name, bytes) in &seeds {
        let v = module::check(bytes);
        eprintln!("{name}: {v:?}");
    }
    let verdict = |name: &str| {
        let bytes = &seeds.iter().find(|(n, _)| *n == name).unwrap().1;
        module::check(bytes)
    };
    // The seeds mean what they say: the loaders are really exercised.
    let command = verdict("command");
    assert!(
        command.upload.is_ok() && command.task.is_ok(),
        "{command:?}"
    );
    assert!(command.scheduler.is_err());
    let library = verdict("library");
    assert!(library.upload.is_ok(), "{library:?}");
    assert!(
        library.task.as_ref().unwrap_err().contains("_start"),
        "{library:?}"
    );
    let text = verdict("text");
    assert!(text.upload.is_err() && text.task.is_err() && text.scheduler.is_err());
    let jobs = module::check(wasmesos_builtin::JOBS_SCHEDULER);
    assert!(jobs.upload.is_ok() && jobs.scheduler.is_ok(), "{jobs:?}");
    assert!(
        jobs.task
            .as_ref()
            .unwrap_err()
            .contains("may import only WASI 0.2"),
        "{jobs:?}"
    );
    for (path, bytes) in corpus("module") {
        eprintln!("{}", path.display());
        module::check(&bytes);
    }
}

#[test]
fn request_seeds_and_corpus_get_answers() {
    let seeds = request::seeds();
    assert!(seeds.len() > 150, "{} seeds", seeds.len());
    for input in &seeds {
        request::check(input);
    }
    for (path, bytes) in corpus("request") {
        eprintln!("{}", path.display());
        request::check(&bytes);
    }
}

/// The target list covers every method in the `.proto` files, with the
/// right streaming shape.
#[test]
fn the_grpc_targets_are_every_method() {
    let declared: Vec<_> = [("master.proto", "Master"), ("agent.proto", "AgentLink")]
        .into_iter()
        .flat_map(|(file, service)| wasmesos_testkit::rpcs(file, service))
        .map(|r| {
            let shape = match (r.client_streaming, r.server_streaming) {
                (false, false) => request::Shape::Unary,
                (true, false) => request::Shape::ClientStream,
                (false, true) => request::Shape::ServerStream,
                (true, true) => request::Shape::Bidi,
            };
            (r.path, shape)
        })
        .collect();
    let targets: Vec<_> = request::GRPC
        .iter()
        .map(|(p, s)| (p.to_string(), *s))
        .collect();
    assert_eq!(targets, declared);
}

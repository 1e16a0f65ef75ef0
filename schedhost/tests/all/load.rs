//! What `SchedHost::compile` accepts and refuses, and how it says why:
//! garbage is not Wasm, a core module (a task, like `hello`) is not a
//! component, and a component that does not implement the scheduler world
//! is named as such. The wrong-world components are written in WAT here
//! rather than built: an empty component, and one importing an interface
//! the host does not provide.

use wasmesos_schedhost::{LoadError, SchedHost, SchedHostConfig};

fn host() -> SchedHost {
    SchedHost::new(SchedHostConfig::default()).unwrap()
}

fn refusal(bytes: &[u8]) -> LoadError {
    match host().compile(bytes) {
        Ok(_) => panic!("compiled something that is not a scheduler"),
        Err(e) => e,
    }
}

#[test]
fn the_bundled_schedulers_compile() {
    let host = host();
    host.compile(wasmesos_builtin::JOBS_SCHEDULER).unwrap();
    host.compile(wasmesos_builtin::CHAOS_SCHEDULER).unwrap();
}

#[test]
fn garbage_is_not_wasm() {
    for bytes in [&b""[..], b"\0as", b"#!/bin/sh\necho hi\n", b"(component)"] {
        assert!(matches!(refusal(bytes), LoadError::NotWasm), "{bytes:?}");
    }
}

#[test]
fn a_core_module_is_refused_with_the_fix() {
    let err = refusal(wasmesos_builtin::HELLO_TASK);
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[test]
fn a_broken_component_is_invalid() {
    // A component's header, then nonsense.
    let err = refusal(b"\0asm\x0d\x00\x01\x00\xff\xff\xff\xff");
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let empty = wat::parse_str("(component)").unwrap();
    let err = refusal(&empty);
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("wasmesos:scheduler@0.1.0"), "{text}");

    // Imports the host does not provide are named in the error.
    let stranger = wat::parse_str(
        r#"(component (import "acme:rockets/launch@1.0.0" (instance (export "fire" (func)))))"#,
    )
    .unwrap();
    let err = refusal(&stranger);
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");
    assert!(err.to_string().contains("acme:rockets/launch"), "{err}");
}

#[test]
fn a_component_of_another_version_is_refused_naming_the_supported_ones() {
    // What a scheduler built against a future wasmesos:scheduler@0.2.0
    // imports: the same interfaces, another version.
    let future = wat::parse_str(
        r#"(component
             (import "wasmesos:scheduler/state@0.2.0" (instance (export "get" (func))))
             (import "wasmesos:scheduler/log@0.2.0" (instance (export "info" (func)))))"#,
    )
    .unwrap();
    let err = refusal(&future);
    match &err {
        LoadError::WrongVersion { found, supported } => {
            assert_eq!(found, "wasmesos:scheduler@0.2.0");
            assert_eq!(supported, "wasmesos:scheduler@0.1.0");
        }
        other => panic!("expected a version refusal, got: {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("targets wasmesos:scheduler@0.2.0")
            && text.contains("this master hosts wasmesos:scheduler@0.1.0"),
        "{text}"
    );
}

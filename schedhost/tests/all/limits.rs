//! The limits every callback runs under, obeyed and violated, with the
//! `chaos` fixture misbehaving on demand: a callback that never returns hits
//! the time limit, one that computes too long runs out of fuel, one that
//! allocates without end hits the memory cap, a panic and a stack overflow
//! trap. Each failure poisons its own instance only: the next call on it is
//! refused, a fresh instance of the same component works, and instances
//! running at the same time (even on the same thread) never notice.
//!
//! Time is asserted on through the error kind only, never on elapsed time,
//! so that a slow or loaded machine cannot fail these tests. The one
//! ordering check (a spinning callback does not starve its thread) pits a
//! few milliseconds of work against a two-second limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmesos_schedhost::{
    CallbackError, CallbackOutput, Command, Event, LoadError, SchedHost, SchedHostConfig,
    SchedulerComponent, SchedulerInstance,
};

use crate::common::{chaos, fresh, offer, registered, reply, user};

const MIB: u64 = 1 << 20;
/// The budget of the fuel tests: far more than a sane callback burns, far
/// less than a second of compute.
const FUEL: u64 = 20_000_000;
/// The memory cap of the memory tests (the brief's 16 MiB: the chaos
/// component starts well within it).
const MEMORY: u64 = 16 * MIB;

/// Limits small enough that each misbehaviour hits its own limit quickly:
/// a short time limit, but fuel enough that a spin ends by time.
fn timed() -> SchedHostConfig {
    SchedHostConfig {
        callback_timeout: Duration::from_millis(200),
        fuel_per_callback: 1 << 50,
        ..SchedHostConfig::default()
    }
}

fn fuelled() -> SchedHostConfig {
    SchedHostConfig {
        fuel_per_callback: FUEL,
        ..SchedHostConfig::default()
    }
}

fn capped() -> SchedHostConfig {
    SchedHostConfig {
        memory_bytes: MEMORY,
        ..SchedHostConfig::default()
    }
}

/// A chaos instance that has started sanely.
async fn started(host: &SchedHost, component: &SchedulerComponent) -> SchedulerInstance {
    let mut sched = fresh(host, component).await;
    let out = sched.call(&registered(&[])).await.expect("registered");
    assert_eq!(out.commands, [Command::Suppress]);
    sched
}

/// After a failure: this instance refuses every further call, and a fresh
/// instance of the same component behaves.
async fn poisoned_alone(
    host: &SchedHost,
    component: &SchedulerComponent,
    sched: &mut SchedulerInstance,
) {
    assert!(sched.is_poisoned());
    for event in [user("echo"), registered(&[])] {
        match sched.call(&event).await {
            Err(CallbackError::Poisoned) => {}
            other => panic!("a failed instance must stay failed, got {other:?}"),
        }
    }
    let mut again = started(host, component).await;
    let out = again.call(&user("echo")).await.expect("a fresh instance");
    assert_eq!(reply(&out), Ok("echo".to_string()));
    assert!(!again.is_poisoned());
}

#[tokio::test]
async fn a_sane_scheduler_declines_offers_and_echoes() {
    let (host, component) = chaos(SchedHostConfig::default());
    let mut sched = started(&host, &component).await;
    let out = sched
        .call(&Event::Offers(vec![offer("o-1", "agent-1", 1.0, MIB)]))
        .await
        .unwrap();
    match &out.commands[..] {
        [Command::Decline { offer_ids, refuse }] => {
            assert_eq!(offer_ids[0].as_str(), "o-1");
            assert_eq!(*refuse, Duration::from_secs(1));
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    let out = sched.call(&user("echo")).await.unwrap();
    assert_eq!(reply(&out), Ok("echo".to_string()));
    let out = sched.call(&user("no such thing")).await.unwrap();
    assert!(reply(&out).unwrap_err().contains("unknown command"));
}

#[tokio::test]
async fn a_callback_that_never_returns_times_out() {
    let (host, component) = chaos(timed());
    let mut sched = started(&host, &component).await;
    match sched.call(&user("loop")).await {
        Err(CallbackError::TimedOut { callback, limit }) => {
            assert_eq!(callback, "message");
            assert_eq!(limit, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    poisoned_alone(&host, &component, &mut sched).await;
}

#[tokio::test]
async fn fuel_is_metered_within_the_budget_and_stops_beyond_it() {
    let (host, component) = chaos(fuelled());
    let mut sched = started(&host, &component).await;

    let out = sched
        .call(&user("fuel:10000"))
        .await
        .expect("within budget");
    assert_eq!(reply(&out), Ok("burned 10000".to_string()));
    assert!(out.fuel_used > 10_000, "fuel used: {}", out.fuel_used);
    assert!(out.fuel_used < FUEL);

    match sched.call(&user(&format!("fuel:{FUEL}"))).await {
        Err(CallbackError::FuelExhausted { callback, fuel }) => {
            assert_eq!(callback, "message");
            assert_eq!(fuel, FUEL);
        }
        other => panic!("expected fuel exhaustion, got {other:?}"),
    }
    poisoned_alone(&host, &component, &mut sched).await;
}

#[tokio::test]
async fn the_budget_is_per_callback() {
    let (host, component) = chaos(fuelled());
    let mut sched = started(&host, &component).await;
    // What a round of `fuel:N` costs with this build, to aim at half the
    // budget per callback.
    let probe = sched.call(&user("fuel:1000")).await.unwrap().fuel_used;
    let rounds = FUEL / 2 / (probe / 1000).max(1);
    // Five callbacks of about half the budget each: more than twice the
    // budget in all, each within it.
    for _ in 0..5 {
        let out = sched
            .call(&user(&format!("fuel:{rounds}")))
            .await
            .expect("each fits");
        assert!(out.fuel_used > FUEL / 4 && out.fuel_used < FUEL);
    }
}

#[tokio::test]
async fn memory_is_capped() {
    let (host, component) = chaos(capped());
    let mut sched = started(&host, &component).await;
    // Obeyed: ordinary work fits in the cap.
    let out = sched
        .call(&user("state:64"))
        .await
        .expect("64 KiB of state");
    assert!(reply(&out).unwrap().starts_with("wrote 64"));

    match sched.call(&user("alloc")).await {
        Err(CallbackError::MemoryExceeded { callback, limit }) => {
            assert_eq!(callback, "message");
            assert_eq!(limit, MEMORY);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    poisoned_alone(&host, &component, &mut sched).await;
}

#[tokio::test]
async fn a_panic_traps_with_its_message() {
    let (host, component) = chaos(SchedHostConfig::default());
    let mut sched = started(&host, &component).await;
    match sched.call(&user("trap")).await {
        Err(CallbackError::Trap { callback, message }) => {
            assert_eq!(callback, "message");
            assert!(message.contains("chaos: trap requested"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    poisoned_alone(&host, &component, &mut sched).await;
}

#[tokio::test]
async fn unbounded_recursion_traps() {
    let (host, component) = chaos(SchedHostConfig::default());
    let mut sched = started(&host, &component).await;
    match sched.call(&user("recurse")).await {
        // Whichever stack runs out first: Rust's shadow stack in linear
        // memory (it sits at the bottom, so overflowing it leaves memory)
        // or wasmtime's native one.
        Err(CallbackError::Trap { callback, message }) => {
            assert_eq!(callback, "message");
            assert!(
                message.contains("out of bounds memory access")
                    || message.contains("call stack exhausted"),
                "{message}"
            );
        }
        other => panic!("expected a trap (stack overflow), got {other:?}"),
    }
    poisoned_alone(&host, &component, &mut sched).await;
}

/// Whether an error is the one a case expects.
type Expected = fn(&CallbackError) -> bool;

#[tokio::test]
async fn registered_can_fail_like_any_callback() {
    let (host, component) = chaos(timed());
    let cases: [(&str, Expected); 3] = [
        ("trap", |e| {
            matches!(e, CallbackError::Trap { callback: "registered", message }
                if message.contains("chaos: trap requested"))
        }),
        ("loop", |e| {
            matches!(
                e,
                CallbackError::TimedOut {
                    callback: "registered",
                    ..
                }
            )
        }),
        // A typo in the config must not pass for a sane scheduler.
        (
            "tarp",
            |e| matches!(e, CallbackError::Trap { message, .. } if message.contains("unknown command")),
        ),
    ];
    for (word, expected) in cases {
        let mut sched = fresh(&host, &component).await;
        let err = sched
            .call(&registered(&[("on-registered", word)]))
            .await
            .expect_err(word);
        assert!(expected(&err), "on-registered={word}: {err}");
        poisoned_alone(&host, &component, &mut sched).await;
    }
    // Obeyed: a word that completes still ends in `suppress`.
    let mut sched = fresh(&host, &component).await;
    let out = sched
        .call(&registered(&[("on-registered", "state:2")]))
        .await
        .unwrap();
    assert_eq!(out.commands, [Command::Suppress]);
    assert_eq!(out.kv_writes.len(), 2);
}

#[tokio::test]
async fn starting_an_instance_runs_under_the_limits_too() {
    // Obeyed: the chaos component starts and works in 2 MiB.
    let (host, component) = chaos(SchedHostConfig {
        memory_bytes: 2 * MIB,
        ..SchedHostConfig::default()
    });
    let mut sched = started(&host, &component).await;
    assert_eq!(
        reply(&sched.call(&user("echo")).await.unwrap()),
        Ok("echo".into())
    );

    // Violated: 1 MiB is less than its initial memory; one unit of fuel is
    // less than its start-up code needs.
    let tiny_memory = SchedHostConfig {
        memory_bytes: MIB,
        ..SchedHostConfig::default()
    };
    let no_fuel = SchedHostConfig {
        fuel_per_callback: 1,
        ..SchedHostConfig::default()
    };
    for (config, want) in [(tiny_memory, "memory limit"), (no_fuel, "fuel budget")] {
        let (host, component) = chaos(config);
        match host.instantiate(&component, Default::default()).await {
            Err(LoadError::Start(reason)) => assert!(reason.contains(want), "{reason}"),
            Err(other) => panic!("expected a start failure, got {other}"),
            Ok(_) => panic!("started beyond its limits ({want})"),
        }
    }
}

/// What a failing instance did, checked by kind.
fn expect_failure(word: &str, result: Result<CallbackOutput, CallbackError>) {
    let ok = matches!(
        (word, &result),
        ("loop", Err(CallbackError::TimedOut { .. }))
            | ("alloc", Err(CallbackError::MemoryExceeded { .. }))
            | ("trap" | "recurse", Err(CallbackError::Trap { .. }))
    );
    assert!(ok, "{word}: {result:?}");
}

/// A well-behaved instance's round of work, checked: state, log, fuel and
/// an offers callback.
async fn good_round(sched: &mut SchedulerInstance) {
    let out = sched.call(&user("state:4")).await.expect("good: state");
    assert_eq!(
        reply(&out),
        Ok("wrote 4, read back 4, listed 4".to_string())
    );
    let out = sched.call(&user("log:3")).await.expect("good: log");
    assert_eq!(out.logs.len(), 3);
    let out = sched.call(&user("fuel:1000")).await.expect("good: fuel");
    assert!(out.fuel_used >= 1000);
    let out = sched
        .call(&Event::Offers(vec![offer("o-1", "agent-1", 1.0, MIB)]))
        .await
        .expect("good: offers");
    assert_eq!(out.commands.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_instance_does_not_affect_concurrent_ones() {
    // Limits that every misbehaviour below breaks, and good work does not.
    // Fuel is plentiful so that the spin ends by time (fuel exhaustion has
    // its own test above).
    let config = SchedHostConfig {
        memory_bytes: MEMORY,
        callback_timeout: Duration::from_millis(500),
        fuel_per_callback: 1 << 50,
        ..SchedHostConfig::default()
    };
    let (host, component) = chaos(config);
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let (host, component, stop) = (host.clone(), component.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sched = started(&host, &component).await;
            let mut rounds = 0;
            // At least a few rounds, and on until every bad one is done.
            while rounds < 5 || !stop.load(Ordering::Relaxed) {
                good_round(&mut sched).await;
                rounds += 1;
                tokio::task::yield_now().await;
            }
            rounds
        })
    };
    let bad: Vec<_> = ["loop", "alloc", "trap", "recurse"]
        .into_iter()
        .map(|word| {
            let (host, component) = (host.clone(), component.clone());
            tokio::spawn(async move {
                let mut sched = started(&host, &component).await;
                let result = sched.call(&user(word)).await;
                expect_failure(word, result);
                poisoned_alone(&host, &component, &mut sched).await;
            })
        })
        .collect();
    for task in bad {
        task.await.expect("a bad instance's checks");
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = good.await.expect("the good instance was never disturbed");
    assert!(rounds >= 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_instance_does_not_starve_others_on_its_thread() {
    // One thread for both: the spinning callback must yield to the good
    // instance at every epoch tick rather than hold the thread until its
    // time is up.
    let (host, component) = chaos(SchedHostConfig {
        callback_timeout: Duration::from_secs(2),
        fuel_per_callback: 1 << 50,
        ..SchedHostConfig::default()
    });
    let mut bad = started(&host, &component).await;
    let mut good = started(&host, &component).await;
    let bad_done = AtomicBool::new(false);
    let spin = async {
        let result = bad.call(&user("loop")).await;
        bad_done.store(true, Ordering::Relaxed);
        result
    };
    let work = async {
        for _ in 0..3 {
            good_round(&mut good).await;
        }
        // Done while the spinner still spins: nothing here waited for it.
        bad_done.load(Ordering::Relaxed)
    };
    let (spun, waited) = tokio::join!(spin, work);
    assert!(
        matches!(spun, Err(CallbackError::TimedOut { .. })),
        "{spun:?}"
    );
    assert!(
        !waited,
        "the good instance only ran once the spinner was done"
    );
}

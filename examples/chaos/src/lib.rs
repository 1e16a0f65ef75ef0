//! `chaos`: a scheduler component that misbehaves on demand, a test fixture
//! for the scheduler host (`schedhost/tests`) — its isolation, limits and
//! error reporting. `builtin/` embeds it as `CHAOS_SCHEDULER`; nothing
//! deploys it.
//!
//! Left alone it is a sane, idle scheduler: `registered` returns `suppress`
//! and `offers` declines every offer for one second. A "user" message whose
//! body is one of the words below makes it act in that callback:
//!
//! | body | what it does | the host should report |
//! |---|---|---|
//! | `trap` | panics (a wasm trap: `panic = "abort"`) | a trap, with the panic message |
//! | `loop` | spins forever | the time limit |
//! | `alloc` | allocates and touches memory until none is left | the memory limit |
//! | `recurse` | recurses without end | a trap (stack overflow) |
//! | `fuel:N` | runs N rounds of a small loop (each costs several units of fuel) and replies `burned N` | fuel used > N, or the fuel limit |
//! | `state:N` | writes N keys `chaos/000000`… of 1 KiB each, reads them back and lists them; replies `wrote N, read back N, listed N` | N writes, or a refusal |
//! | `log:N` | writes N log lines (`chaos line I`) and replies `logged N` | N lines, some dropped past the cap |
//! | `echo` | replies with the body it got | — |
//! | `sane` | nothing; replies `sane` | — |
//!
//! A refused `state.set` is surfaced, not hidden: a message is refused with
//! `Err("state:N refused at chaos/… after I writes: <host's reason>")`, so
//! a test can read the host's reason in the reply; in `registered`, which
//! has no reply, it panics with the same text. Any other body, or a message
//! of another kind, is refused with the list of words.
//!
//! The framework config key `on-registered` takes the same words, so that
//! `registered` itself can misbehave (a scheduler that traps on start);
//! `echo` there does nothing. An unknown word there panics: a typo in a test
//! must not pass for a sane scheduler.

use std::hint::black_box;

use wasmesos_sdk::{
    Command, Guest, Message, Offer, Registration, Reply, TaskStatus, bindings, cmd,
};

/// The config key that sets what `registered` does.
const ON_REGISTERED: &str = "on-registered";
/// Prefix of the keys `state:N` writes.
const STATE_PREFIX: &str = "chaos/";
/// Size of each value `state:N` writes.
const VALUE_BYTES: usize = 1024;
/// How long a declined offer's agent is refused: short, so tests that run
/// the scheduler for long see offers again.
const REFUSE_SECONDS: f64 = 1.0;
/// Every word this scheduler acts on, for refusals.
const WORDS: &str = "trap, loop, alloc, recurse, fuel:N, state:N, log:N, echo, sane";

/// One misbehaviour (or none).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Sane,
    Trap,
    Loop,
    Alloc,
    Recurse,
    Fuel(u64),
    State(u32),
    Log(u32),
    Echo,
}

impl Act {
    fn parse(word: &str) -> Result<Act, String> {
        let count = |n: &str| {
            n.parse::<u64>()
                .map_err(|_| format!("chaos: {word:?}: the count must be a whole number"))
        };
        let act = match word.split_once(':') {
            None => match word {
                "sane" => Act::Sane,
                "trap" => Act::Trap,
                "loop" => Act::Loop,
                "alloc" => Act::Alloc,
                "recurse" => Act::Recurse,
                "echo" => Act::Echo,
                _ => return Err(unknown(word)),
            },
            Some(("fuel", n)) => Act::Fuel(count(n)?),
            Some(("state", n)) => Act::State(count(n)?.try_into().map_err(|_| unknown(word))?),
            Some(("log", n)) => Act::Log(count(n)?.try_into().map_err(|_| unknown(word))?),
            Some(_) => return Err(unknown(word)),
        };
        Ok(act)
    }

    /// Carries the act out. Returns the reply body, or a refusal.
    fn perform(self, body: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Act::Sane => Ok(b"sane".to_vec()),
            Act::Echo => Ok(body.to_vec()),
            Act::Trap => panic!("chaos: trap requested"),
            Act::Loop => spin(),
            Act::Alloc => exhaust_memory(),
            Act::Recurse => {
                recurse(0);
                unreachable!("chaos: recursion without end came back")
            }
            Act::Fuel(n) => {
                burn(n);
                Ok(format!("burned {n}").into_bytes())
            }
            Act::State(n) => write_state(n).map(String::into_bytes),
            Act::Log(n) => {
                for i in 0..n {
                    wasmesos_sdk::log::info(&format!("chaos line {i}"));
                }
                Ok(format!("logged {n}").into_bytes())
            }
        }
    }
}

fn unknown(word: &str) -> String {
    format!("chaos: unknown command {word:?}; expected one of {WORDS}")
}

/// Never returns: only the host's time limit (or fuel) ends it.
fn spin() -> ! {
    let mut i = 0u64;
    loop {
        // black_box: the loop must do work the compiler cannot remove.
        i = black_box(i.wrapping_add(1));
    }
}

/// Never returns: grows memory a MiB at a time, touching every page and
/// keeping every chunk, until the host refuses to grow it further.
fn exhaust_memory() -> ! {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        // black_box: the chunks must be live, not optimised away unread.
        held.push(black_box(chunk));
        black_box(&held);
    }
}

/// Recurses until the stack runs out. The frame's array and the
/// black_boxes stop the compiler turning this into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    black_box(recurse(depth + 1)).wrapping_add(frame[1])
}

/// N rounds of a small loop: N units of work. Each round is several wasm
/// instructions, each costing a unit of fuel, so `fuel:N` burns more than N
/// fuel and, at or past a budget, always exhausts it. Only the ends go
/// through `black_box` (the loop cannot be removed; its body stays lean).
fn burn(n: u64) -> u64 {
    let mut acc = black_box(0u64);
    for i in 0..black_box(n) {
        acc = acc.wrapping_mul(31).wrapping_add(i);
    }
    black_box(acc)
}

/// Writes `n` keys of 1 KiB, then checks that this callback's reads see its
/// own writes (each key read back, all listed). A refused write stops it
/// and is returned with the host's reason.
fn write_state(n: u32) -> Result<String, String> {
    use bindings::wasmesos::scheduler::state;
    let key = |i: u32| format!("{STATE_PREFIX}{i:06}");
    let value = |i: u32| vec![b'a' + (i % 26) as u8; VALUE_BYTES];
    for i in 0..n {
        state::set(&key(i), &value(i)).map_err(|reason| {
            format!("state:{n} refused at {} after {i} writes: {reason}", key(i))
        })?;
    }
    let read_back = (0..n)
        .filter(|&i| state::get(&key(i)).as_deref() == Some(&value(i)[..]))
        .count();
    let listed = state::list(STATE_PREFIX, "", 0).len();
    Ok(format!("wrote {n}, read back {read_back}, listed {listed}"))
}

struct Chaos;

impl Guest for Chaos {
    fn registered(info: Registration) -> Vec<Command> {
        let word = info
            .config
            .iter()
            .find(|(k, _)| k == ON_REGISTERED)
            .map_or("sane", |(_, v)| v.as_str());
        // `registered` has no reply: a bad word or a refused write panics.
        let act = Act::parse(word).unwrap_or_else(|e| panic!("{ON_REGISTERED}: {e}"));
        if let Err(e) = act.perform(&[]) {
            panic!("{ON_REGISTERED}: {e}");
        }
        vec![cmd::suppress()]
    }

    fn offers(offers: Vec<Offer>) -> Vec<Command> {
        vec![cmd::decline(
            offers.into_iter().map(|o| o.id).collect(),
            REFUSE_SECONDS,
        )]
    }

    fn offer_rescinded(_offer_id: String) -> Vec<Command> {
        Vec::new()
    }

    fn status_update(_status: TaskStatus) -> Vec<Command> {
        Vec::new()
    }

    fn message(msg: Message) -> Result<Reply, String> {
        if msg.kind != "user" {
            return Err(format!(
                "chaos: takes only \"user\" messages (one of {WORDS}), got kind {:?}",
                msg.kind
            ));
        }
        let word = std::str::from_utf8(&msg.body).map_err(|_| unknown("<not UTF-8>"))?;
        let body = Act::parse(word.trim())?.perform(&msg.body)?;
        Ok(Reply {
            body,
            commands: Vec::new(),
        })
    }

    fn agent_lost(_agent_id: String) -> Vec<Command> {
        Vec::new()
    }

    fn timer(_id: String) -> Vec<Command> {
        Vec::new()
    }
}

wasmesos_sdk::export_scheduler!(Chaos);

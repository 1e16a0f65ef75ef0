//! The ergonomic way to write a scheduler: implement [`Scheduler`] (every
//! callback has a default, so only what matters to you is written) and
//! export it with [`scheduler!`](crate::scheduler!).
//!
//! Compared with implementing the generated [`Guest`](crate::Guest) trait
//! directly:
//!
//! - callbacks take `&mut self`: one value of your type lives as long as the
//!   component instance (created with `Default` before the first callback),
//!   a cache of what `state` holds and of the config from `registered`;
//! - callbacks take the host (`&mut impl Host`) as an argument, so the same
//!   code runs against the real imports inside the master and against
//!   [`MemoryHost`](crate::MemoryHost) in native unit tests;
//! - callbacks return [`Outcome`]: `Err` aborts the callback. The adapter
//!   panics with the error, which traps the instance; the master then drops
//!   the callback's writes and commands, starts a fresh instance from the
//!   committed state and delivers the event again (see `wit/scheduler.wit`).
//!   Use it for what a retry can fix or nothing can (a refused state write,
//!   corrupt state); answer bad *input* with a refusal (`Ok(Err(..))` from
//!   [`Scheduler::message`]) instead.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::{Command, Host, Imports, Message, Offer, Registration, Reply, TaskStatus};

/// Why a callback gave up. Anything that converts into a boxed error does,
/// so `?` works on [`HostError`](crate::HostError), `String` and `&str`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What a callback returns: by default its commands, or why it aborted.
pub type Outcome<T = Vec<Command>> = Result<T, Error>;

/// A framework scheduler. Every method defaults to doing nothing (returning
/// no commands), except [`message`](Scheduler::message), which by default
/// refuses every message.
///
/// Note what "nothing" means for offers: offers a callback neither launches
/// on nor holds lapse when it returns and count as declined for five
/// seconds. A scheduler that never wants offers should return
/// [`cmd::suppress`](crate::cmd::suppress) from `registered`.
pub trait Scheduler {
    /// The scheduler (re)started: first deployment, master restart,
    /// upgrade, or a fresh instance after a trap. `info.config` holds the
    /// operator's `--config` pairs; durable state from an earlier run may
    /// exist when `info.reregistered`.
    fn registered(&mut self, host: &mut impl Host, info: &Registration) -> Outcome {
        let _ = (host, info);
        Ok(Vec::new())
    }

    /// New offers, valid until this call returns unless held. See
    /// [`Packer`](crate::Packer) for placing tasks on them.
    fn offers(&mut self, host: &mut impl Host, offers: &[Offer]) -> Outcome {
        let _ = (host, offers);
        Ok(Vec::new())
    }

    /// A held offer was withdrawn.
    fn offer_rescinded(&mut self, host: &mut impl Host, offer_id: &str) -> Outcome {
        let _ = (host, offer_id);
        Ok(Vec::new())
    }

    /// A task changed state, or a reconciliation answer.
    fn status_update(&mut self, host: &mut impl Host, status: &TaskStatus) -> Outcome {
        let _ = (host, status);
        Ok(Vec::new())
    }

    /// A message: `Ok(Ok(reply))` answers it, `Ok(Err(text))` refuses it
    /// (the sender sees the text; a refused submission creates no job),
    /// `Err` aborts the callback.
    fn message(&mut self, host: &mut impl Host, msg: &Message) -> Outcome<Result<Reply, String>> {
        let _ = host;
        Ok(Err(format!(
            "this scheduler takes no messages (got one of kind {:?})",
            msg.kind
        )))
    }

    /// An agent is gone; each of its tasks also gets a `lost` update.
    fn agent_lost(&mut self, host: &mut impl Host, agent_id: &str) -> Outcome {
        let _ = (host, agent_id);
        Ok(Vec::new())
    }

    /// A timer set with [`cmd::set_timer`](crate::cmd::set_timer) fired.
    fn timer(&mut self, host: &mut impl Host, id: &str) -> Outcome {
        let _ = (host, id);
        Ok(Vec::new())
    }
}

/// Runs one callback on the instance in `slot` (created with `Default` on
/// first use) against `host`, panicking when it aborts. Public for the
/// [`scheduler!`](crate::scheduler!) macro and for tests of the adapter;
/// not meant to be called by hand.
#[doc(hidden)]
pub fn dispatch<S, H, T>(
    slot: &mut Option<S>,
    host: &mut H,
    callback: &str,
    f: impl FnOnce(&mut S, &mut H) -> Outcome<T>,
) -> T
where
    S: Scheduler + Default,
    H: Host,
{
    let scheduler = slot.get_or_insert_with(S::default);
    match f(scheduler, host) {
        Ok(value) => value,
        // The panic message reaches the framework's log (the host reads it
        // from stderr before reporting the trap).
        Err(e) => panic!("{callback} aborted: {e}"),
    }
}

/// [`dispatch`] against the real imports, with the instance in a
/// thread-local (a component instance is single-threaded).
#[doc(hidden)]
pub fn call<S, T>(
    slot: &'static LocalKey<RefCell<Option<S>>>,
    callback: &str,
    f: impl FnOnce(&mut S, &mut Imports) -> Outcome<T>,
) -> T
where
    S: Scheduler + Default + 'static,
{
    slot.with(|cell| dispatch(&mut cell.borrow_mut(), &mut Imports, callback, f))
}

/// Exports a type implementing [`Scheduler`] and `Default` as the
/// scheduler component: `wasmesos_sdk::scheduler!(MyScheduler);` once, at
/// the crate's root (of a `cdylib` built for `wasm32-wasip2`).
#[macro_export]
macro_rules! scheduler {
    ($ty:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct WasmesosSchedulerExport;

            impl $crate::Guest for WasmesosSchedulerExport {
                fn registered(info: $crate::Registration) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "registered", |s, h| {
                        $crate::Scheduler::registered(s, h, &info)
                    })
                }
                fn offers(
                    offers: ::std::vec::Vec<$crate::Offer>,
                ) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "offers", |s, h| {
                        $crate::Scheduler::offers(s, h, &offers)
                    })
                }
                fn offer_rescinded(
                    offer_id: ::std::string::String,
                ) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "offer-rescinded", |s, h| {
                        $crate::Scheduler::offer_rescinded(s, h, &offer_id)
                    })
                }
                fn status_update(status: $crate::TaskStatus) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "status-update", |s, h| {
                        $crate::Scheduler::status_update(s, h, &status)
                    })
                }
                fn message(
                    msg: $crate::Message,
                ) -> ::core::result::Result<$crate::Reply, ::std::string::String> {
                    $crate::__call(&INSTANCE, "message", |s, h| {
                        $crate::Scheduler::message(s, h, &msg)
                    })
                }
                fn agent_lost(agent_id: ::std::string::String) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "agent-lost", |s, h| {
                        $crate::Scheduler::agent_lost(s, h, &agent_id)
                    })
                }
                fn timer(id: ::std::string::String) -> ::std::vec::Vec<$crate::Command> {
                    $crate::__call(&INSTANCE, "timer", |s, h| {
                        $crate::Scheduler::timer(s, h, &id)
                    })
                }
            }

            $crate::export_scheduler!(WasmesosSchedulerExport);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostError, MemoryHost, cmd};

    /// Implements two callbacks; the rest keep their defaults.
    #[derive(Default)]
    struct Counter {
        calls: u32,
    }

    impl Scheduler for Counter {
        fn registered(&mut self, host: &mut impl Host, _: &Registration) -> Outcome {
            self.calls += 1;
            host.set_json("calls", &self.calls)?;
            Ok(vec![cmd::suppress()])
        }

        fn timer(&mut self, host: &mut impl Host, id: &str) -> Outcome {
            self.calls += 1;
            if id == "bad" {
                // A refused write aborts the callback through `?`.
                host.set(&"k".repeat(1000), b"")?;
            }
            Err(format!("timer {id} is not mine").into())
        }
    }

    fn registration() -> Registration {
        Registration {
            framework_id: "fw-1".into(),
            name: "counter".into(),
            role: "default".into(),
            config: Vec::new(),
            reregistered: false,
        }
    }

    #[test]
    fn defaults_do_nothing_and_refuse_messages() {
        let mut s = Counter::default();
        let mut h = MemoryHost::default();
        assert!(s.offers(&mut h, &[]).unwrap().is_empty());
        assert!(s.offer_rescinded(&mut h, "o").unwrap().is_empty());
        assert!(s.agent_lost(&mut h, "a").unwrap().is_empty());
        let msg = Message {
            kind: "user".into(),
            sender: "me".into(),
            body: Vec::new(),
        };
        let refusal = s.message(&mut h, &msg).unwrap().unwrap_err();
        assert!(refusal.contains("takes no messages"), "{refusal}");
        assert!(h.state.is_empty());
    }

    #[test]
    fn dispatch_creates_the_instance_once_and_keeps_it() {
        let mut slot: Option<Counter> = None;
        let mut h = MemoryHost::default();
        let info = registration();
        for _ in 0..2 {
            let cmds = dispatch(&mut slot, &mut h, "registered", |s, h| {
                s.registered(h, &info)
            });
            assert_eq!(cmds, [cmd::suppress()]);
        }
        assert_eq!(slot.as_ref().map(|s| s.calls), Some(2));
        assert_eq!(h.get_json::<u32>("calls").unwrap(), Some(2));
    }

    #[test]
    #[should_panic(expected = "timer aborted: timer t is not mine")]
    fn dispatch_panics_when_a_callback_aborts() {
        let mut slot: Option<Counter> = None;
        dispatch(&mut slot, &mut MemoryHost::default(), "timer", |s, h| {
            s.timer(h, "t")
        });
    }

    #[test]
    fn host_errors_convert_with_question_mark() {
        let mut s = Counter::default();
        let err = s.timer(&mut MemoryHost::default(), "bad").unwrap_err();
        let host_error = err.downcast_ref::<HostError>().expect("a HostError");
        assert!(matches!(host_error, HostError::Refused { .. }));
    }
}

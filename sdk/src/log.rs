//! Shorthands for the `log` import: the framework's log, which the master
//! keeps (`wasmesos framework show`). Inside a guest only; native code
//! (tests) logs through a [`crate::Host`] instead.

use crate::Level;
use crate::bindings::wasmesos::scheduler::log::write;

pub fn trace(message: &str) {
    write(Level::Trace, message)
}

pub fn debug(message: &str) {
    write(Level::Debug, message)
}

pub fn info(message: &str) {
    write(Level::Info, message)
}

pub fn warn(message: &str) {
    write(Level::Warn, message)
}

pub fn error(message: &str) {
    write(Level::Error, message)
}

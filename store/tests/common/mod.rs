//! Shared by the store's integration tests: the etcd model and a real etcd
//! member to run against.

#![allow(dead_code)] // each test binary uses part of this

pub mod etcd;
pub mod model;

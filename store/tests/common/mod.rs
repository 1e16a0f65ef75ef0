//! Shared by the store's integration tests: the etcd model.

#![allow(dead_code)] // each test binary uses part of this

pub mod model;

//! Test support shared by the integration tests. Each test binary uses only part of it.
#![allow(dead_code)]

pub mod tls;

//! meshboot's integration tests: one test binary, one module per area, shared support.
//!
//! One binary instead of one per file (as cargo's own `tests/testsuite/main.rs`): the
//! library and its dependencies are linked once, every test runs in one pool of threads,
//! and the support module is compiled once, so any of it that no test uses is a warning.
//! Run one area with `cargo test --test testsuite firstboot::` (a module path filter).

mod architecture;
mod autoscaler;
mod cli;
mod consumers;
mod diagnostics;
mod firstboot;
mod hcloud;
mod hygiene;
mod injection;
mod mesh;
mod mint;
mod packer;
mod props;
mod readme;
mod render;
mod support;
mod systemd;

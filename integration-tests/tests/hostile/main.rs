//! The standing hostile suite: each attack on the standalone binary (a child
//! process under a memory cap) as a test asserting the attack's outcome, that
//! the process is alive within its memory bound, and that a second client's
//! findOne is answered during the attack.
//!
//! To add a probe: start a [`harness::Server`] with the [`harness::Settings`] it needs, start
//! `server.probe()`, attack, then assert the outcome, `assert_healthy` and
//! `probe.finish().await.assert_served()`, all inside [`harness::bounded`].

mod connections;
mod engine;
mod harness;

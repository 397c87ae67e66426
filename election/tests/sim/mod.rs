//! The seeded simulation of controller mode: see `tests/simulation.rs`.

pub mod broker;
pub mod checker;
pub mod master;
pub mod network;
pub mod rng;
pub mod world;

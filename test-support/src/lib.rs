//! What the workspace's tests share instead of copying: a commit log record encoder and
//! readers of records (`record`), the store fixtures and the log-range reader (`store`), a
//! seeded xorshift generator (`rng`), free ports (`ports`) and child processes killed on
//! drop (`process`). A dev-dependency only: nothing here ships.

pub mod ports;
pub mod process;
pub mod record;
pub mod rng;
pub mod store;

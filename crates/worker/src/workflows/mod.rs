//! Running workflows (workflows.md §3, §4).
//!
//! | Module | What it does |
//! |---|---|
//! | `start` | events start executions and wake the ones waiting for them (from the dispatcher) |
//! | `engine` | runs an execution's steps, each recorded once, until it waits or ends |
//! | `timers` | the scheduler's tick queues the executions whose DELAY or timeout is due |
//! | `webhook_step` | a WEBHOOK step's request and how its answer is judged |

pub mod engine;
pub mod start;
pub mod timers;
pub mod webhook_step;

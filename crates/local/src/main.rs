//! `plunk`: the admin CLI and the local server (`plunk serve`).

mod background;
mod cli;
mod commands;
mod http_server;
mod outbox_page;
mod output;
mod serve;
mod simulate;
mod stream_feed;

use std::process::ExitCode;

/// mimalloc rather than the system allocator: a fan-out builds and drops a few dozen small
/// strings and maps per recipient, and glibc's malloc took a quarter of its CPU
/// (`docs/benchmarks.md`, campaign fan-out).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run().await
}

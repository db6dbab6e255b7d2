//! `plunk`: the admin CLI (spec admin-cli.md) and the local server (`plunk serve`).

mod cli;
mod commands;
mod output;
mod serve;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run().await
}

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

#[tokio::main]
async fn main() -> ExitCode {
    cli::run().await
}

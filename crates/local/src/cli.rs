//! Argument parsing and dispatch. Exit codes (admin-cli.md §1): 0 success, 1 usage or validation,
//! 2 not found, 3 conflict, 4 store or network error.

use crate::commands;
use crate::output::Failure;
use clap::{Args, Parser, Subcommand, ValueEnum};
use plunk_store::config::StoreConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// Admin CLI and local server of the Plunk-compatible email platform.
#[derive(Debug, Parser)]
#[command(name = "plunk", version, about)]
pub struct Cli {
    /// Machine-readable output: one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Skip confirmation prompts.
    #[arg(long, global = true)]
    pub yes: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which store to use.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Backend: the embedded database (default) or a DynamoDB table.
    #[arg(
        long,
        global = true,
        env = "PLUNK_STORE",
        value_enum,
        default_value = "sqlite"
    )]
    pub store: StoreKind,
    /// Data directory of the embedded store.
    #[arg(long, global = true, env = "PLUNK_DATA_DIR", default_value = ".plunk")]
    pub data_dir: PathBuf,
    /// DynamoDB table name.
    #[arg(long, global = true, env = "PLUNK_TABLE")]
    pub table: Option<String>,
    /// DynamoDB endpoint (e.g. DynamoDB Local); region and credentials come from the AWS
    /// environment.
    #[arg(long, global = true, env = "PLUNK_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Create the DynamoDB table if it does not exist (for emulators and first installs).
    #[arg(long, global = true)]
    pub create_table: bool,
}

/// Store backends.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Dynamo,
}

impl StoreArgs {
    /// The store configuration these arguments name.
    /// Says on stderr when the embedded store's data directory does not exist yet (it is about to
    /// be created), so a command run from the wrong folder does not silently start a new store.
    pub fn config(&self) -> Result<StoreConfig, Failure> {
        match self.store {
            StoreKind::Sqlite => {
                self.announce_new_data_dir("the embedded store");
                Ok(StoreConfig::Sqlite {
                    data_dir: self.data_dir.clone(),
                })
            }
            StoreKind::Dynamo => {
                let table = self.table.clone().ok_or_else(|| {
                    Failure::usage("--table (or PLUNK_TABLE) is required with --store dynamo")
                })?;
                if let Some(problem) = table_name_problem(&table) {
                    return Err(Failure::usage(format!(
                        "--table '{table}' is not a DynamoDB table name: {problem}"
                    )));
                }
                Ok(StoreConfig::Dynamo {
                    table,
                    endpoint: self.dynamodb_endpoint.clone(),
                    create_table: self.create_table,
                })
            }
        }
    }

    /// One line on stderr naming `what` and the data directory, when the directory is new.
    pub fn announce_new_data_dir(&self, what: &str) {
        if !self.data_dir.exists() {
            eprintln!(
                "plunk: creating {} for {what} (choose another with --data-dir or PLUNK_DATA_DIR)",
                self.data_dir.display()
            );
        }
    }
}

/// What is wrong with `name` as a DynamoDB table name (3 to 255 of `a-z A-Z 0-9 _ - .`), if
/// anything.
pub fn table_name_problem(name: &str) -> Option<String> {
    if name.len() < 3 || name.len() > 255 {
        return Some(format!(
            "it must be 3 to 255 characters long, not {}",
            name.len()
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map(|c| format!("'{c}' is not allowed (only letters, digits, '_', '-' and '.')"))
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the server's own secrets (cursor encryption, unsubscribe and preference links).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Run the local server: every endpoint group in one process.
    Serve(ServeArgs),
    /// Inject provider feedback for a sent email, as SES would report it; the running
    /// `plunk serve` applies it from the local feedback queue.
    Simulate(SimulateArgs),
}

/// `plunk project …`
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project with one secret and one public key.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        rate_limit: Option<u32>,
        #[arg(long)]
        tracking: Option<String>,
        #[arg(long)]
        language: Option<String>,
    },
    /// List projects.
    List,
    /// Show a project's settings and active key hints.
    Show { project_id: String },
    /// Change a project's settings.
    Update {
        project_id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        rate_limit: Option<u32>,
        #[arg(long)]
        tracking: Option<String>,
        #[arg(long)]
        language: Option<String>,
    },
    /// Disable a project: writes are refused with 403 PROJECT_DISABLED.
    Disable {
        project_id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enable a disabled project.
    Enable { project_id: String },
}

/// `plunk keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List a project's active keys.
    List {
        #[arg(long)]
        project: String,
        /// Include revoked and expired keys.
        #[arg(long)]
        all: bool,
    },
    /// Create new key(s); the previous active key(s) of that type expire after the grace period.
    Rotate {
        #[arg(long)]
        project: String,
        #[arg(long = "type", value_enum, default_value = "secret")]
        key_type: RotateType,
        /// e.g. 0, 30m, 24h, 7d (at most 7d). Default 0: revoked now.
        #[arg(long, default_value = "0")]
        grace: String,
    },
    /// Revoke one key immediately.
    Revoke {
        #[arg(long)]
        project: String,
        #[arg(long)]
        key: String,
    },
}

/// `plunk secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Add a fresh secret that signs ten minutes from now (once every process has loaded it);
    /// every older secret keeps opening what it made, so no cursor or link breaks.
    Rotate {
        #[arg(long, value_enum, default_value = "all")]
        kind: SecretKindArg,
    },
    /// Move the secrets an earlier build kept in the shared SYSTEM partition to their own
    /// partitions (once, after upgrading; `plunk serve` does it by itself).
    Migrate,
}

/// Which secrets `secrets rotate` rotates.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SecretKindArg {
    /// List cursors.
    Cursor,
    /// Hosted-page tokens (unsubscribe and preference links in sent email).
    PageTokens,
    /// Both.
    All,
}

/// Key types `rotate` can create.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RotateType {
    Secret,
    Public,
    Both,
}

/// `plunk serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PLUNK_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Let webhooks call loopback and private addresses (a receiver on this machine). Never
    /// available in deployed functions.
    #[arg(long)]
    pub allow_private_webhooks: bool,
}

/// `plunk simulate` options.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// What the provider reports.
    #[arg(value_enum)]
    pub kind: SimulateKind,
    /// The email's id.
    pub email_id: String,
    /// The email's project (default: whichever project has the email).
    #[arg(long)]
    pub project: Option<String>,
    /// The followed link, for `click`.
    #[arg(long, default_value = "https://example.com/")]
    pub link: String,
}

/// Feedback `plunk simulate` can inject.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SimulateKind {
    /// The recipient's server accepted the message.
    Delivery,
    /// A permanent bounce: the address is suppressed and the contact unsubscribed.
    Bounce,
    /// A spam complaint: the address is suppressed and the contact unsubscribed.
    Complaint,
    /// The recipient opened the message (tracked emails only).
    Open,
    /// The recipient followed a link (tracked emails only).
    Click,
}

/// Parses arguments, runs the command and maps the outcome to an exit code.
pub async fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage_error { 1 } else { 0 });
        }
    };
    let json = cli.json;
    let result = match &cli.command {
        Command::Serve(args) => crate::serve::run(&cli, args).await,
        Command::Simulate(args) => crate::simulate::run(&cli, args).await,
        _ => commands::run(&cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(json),
    }
}

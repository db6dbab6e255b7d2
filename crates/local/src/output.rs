//! Printing results and failures, as text or as one JSON object.

use plunk_store::table::StoreError;
use plunk_store::ProjectError;
use serde_json::{json, Value};
use std::process::ExitCode;

/// A failed command and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    /// Exit 1: usage or validation.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            kind: "usage",
            message: message.into(),
        }
    }
    /// Exit 2: not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            kind: "not_found",
            message: message.into(),
        }
    }
    /// Exit 3: conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            kind: "conflict",
            message: message.into(),
        }
    }
    /// Exit 4: store or network.
    pub fn store(message: impl Into<String>) -> Self {
        Self {
            code: 4,
            kind: "store",
            message: message.into(),
        }
    }

    /// Prints the failure (JSON on stdout with `--json`, text on stderr otherwise).
    pub fn report(self, json: bool) -> ExitCode {
        if json {
            println!(
                "{}",
                json!({ "error": { "kind": self.kind, "message": self.message } })
            );
        } else {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::store(e.to_string())
    }
}

impl From<ProjectError> for Failure {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::NotFound(m) => Self::not_found(m),
            ProjectError::Conflict(m) => Self::conflict(m),
            ProjectError::Invalid(m) => Self::usage(m),
            ProjectError::Store(e) => e.into(),
        }
    }
}

/// Prints `value` as one JSON line with `--json`, else `text`.
pub fn emit(json: bool, value: &Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

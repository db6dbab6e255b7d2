//! Choosing and opening a backend from settings shared by the CLI, the local server and the
//! Lambda functions.

use crate::backend::dynamo::DynamoTable;
use crate::backend::sqlite::SqliteTable;
use crate::table::StoreError;
use crate::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded database in a data directory (`plunk.db` inside it).
    Sqlite { data_dir: PathBuf },
    /// A DynamoDB table, optionally at a custom endpoint (DynamoDB Local, moto).
    Dynamo {
        table: String,
        endpoint: Option<String>,
        /// Create the table when missing (tests and local use; never in Lambda).
        create_table: bool,
    },
}

impl StoreConfig {
    /// From the environment: `PLUNK_STORE` (`sqlite` or `dynamo`, default `default`), then
    /// `PLUNK_DATA_DIR` (default `.plunk`) or `PLUNK_TABLE` and `PLUNK_DYNAMODB_ENDPOINT`.
    pub fn from_env(default: &str) -> Result<Self, StoreError> {
        let kind = std::env::var("PLUNK_STORE").unwrap_or_else(|_| default.to_owned());
        match kind.as_str() {
            "sqlite" => Ok(Self::Sqlite {
                data_dir: std::env::var("PLUNK_DATA_DIR")
                    .unwrap_or_else(|_| ".plunk".into())
                    .into(),
            }),
            "dynamo" => Ok(Self::Dynamo {
                table: std::env::var("PLUNK_TABLE")
                    .map_err(|_| StoreError::Other("PLUNK_TABLE is not set".into()))?,
                endpoint: std::env::var("PLUNK_DYNAMODB_ENDPOINT").ok(),
                create_table: false,
            }),
            other => Err(StoreError::Other(format!(
                "PLUNK_STORE must be sqlite or dynamo, not '{other}'"
            ))),
        }
    }

    /// Opens the store, reusing lookups for `PLUNK_KEY_CACHE_SECONDS` (default 60, at most 60,
    /// like key lookups; see `lookup_cache`).
    pub async fn open(&self) -> Result<Store, StoreError> {
        let ttl = std::env::var("PLUNK_KEY_CACHE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60);
        Ok(self
            .open_uncached()
            .await?
            .with_lookup_ttl(std::time::Duration::from_secs(ttl)))
    }

    async fn open_uncached(&self) -> Result<Store, StoreError> {
        match self {
            Self::Sqlite { data_dir } => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    StoreError::Other(format!("cannot create {}: {e}", data_dir.display()))
                })?;
                let table = SqliteTable::open(&data_dir.join("plunk.db"))?;
                Ok(Store::sqlite(table))
            }
            Self::Dynamo {
                table,
                endpoint,
                create_table,
            } => {
                let t = DynamoTable::from_env(table, endpoint.as_deref()).await;
                if *create_table {
                    t.create_table_if_missing().await?;
                }
                Ok(Store::new(Arc::new(t)))
            }
        }
    }
}

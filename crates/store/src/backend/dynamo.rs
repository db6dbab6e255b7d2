//! DynamoDB backend: one DynamoDB table (AWS, or any DynamoDB-compatible endpoint such as
//! DynamoDB Local) reached through `aws-sdk-dynamodb`.
//!
//! Table design (see [`DynamoTable::create_table_if_missing`]): `pk` (S, hash) / `sk` (S, range);
//! global secondary index `gsi1` on `g1pk` (S, hash) / `g1sk` (S, range) projecting all
//! attributes; on-demand billing; TTL on `ttl`.
//!
//! Item layout: `pk` S, `sk` S, `g1pk` S and `g1sk` S (only for items listed on `gsi1`), `ttl` N
//! (optional, Unix seconds), `v` N (version), `n` N (counter, optional) and `b` S (the body as
//! JSON text; `"null"` for counter items).
//!
//! DynamoDB removes expired items only lazily, so expiry is enforced here: reads drop items whose
//! `ttl` is in the past and every condition treats them as absent. Writes that must see an expired
//! item as absent (a counter `add` on an expired counter) first delete it with a condition that it
//! is still expired, then retry; that delete is invisible to readers, who never see expired items.
//!
//! Queries read one item past `limit` so that `Page::last` is only set when more items follow.
//! On `gsi1`, items sharing a `g1sk` come in DynamoDB's own stable order (DynamoDB Local uses a
//! hash of the table key), not by table key as in the embedded backend; paging visits each once.
//!
//! One known difference from the embedded backend: `add` with a `ttl` on an existing live item
//! that has no `ttl` gives it that `ttl` (`SET ttl = if_not_exists(ttl, :ttl)`), where SQLite only
//! applies `ttl` when it creates the item. Repositories pass a `ttl` only for counter keys that
//! always carry one.
//!
//! Item bodies are never logged; error messages carry DynamoDB's error text and the item key.

use crate::table::{
    unix_now, Condition, Index, Item, Key, Page, Position, Query, StoreError, Table, WriteOp,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::BehaviorVersion;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::time::Duration;

/// The name of the secondary index.
pub const GSI1: &str = "gsi1";

const PK: &str = "pk";
const SK: &str = "sk";
const G1PK: &str = "g1pk";
const G1SK: &str = "g1sk";
const TTL: &str = "ttl";
const VERSION: &str = "v";
const COUNTER: &str = "n";
const BODY: &str = "b";

/// How many keys one BatchGetItem call may carry.
const BATCH_GET_MAX: usize = 100;
/// Most items one `BatchWriteItem` takes.
const BATCH_WRITE_MAX: usize = 25;
/// Attempts for loops that retry after clearing an expired item or after unprocessed keys.
const ATTEMPTS: u32 = 8;

type Attrs = HashMap<String, AttributeValue>;

/// The DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    /// Wraps a client and the name of the table it should use.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A table reached with the default AWS configuration chain (environment, profile, instance
    /// role), optionally at another endpoint (DynamoDB Local, an emulator).
    pub async fn from_env(table: &str, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self::new(Client::new(&config), table)
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with its secondary index and TTL if it does not exist yet, and waits
    /// until it is active. Enabling TTL is best effort (some emulators lack it).
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.create_table().await?;
            }
            Err(e) => return Err(sdk_error("DescribeTable", e)),
        }
        self.wait_until_active().await?;
        self.enable_ttl().await;
        Ok(())
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let gsi1 = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(G1PK, KeyType::Hash)?)
            .key_schema(key(G1SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr(PK)?)
            .attribute_definitions(attr(SK)?)
            .attribute_definitions(attr(G1PK)?)
            .attribute_definitions(attr(G1SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(gsi1)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(new_image_stream()?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else created it meanwhile.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("CreateTable", e)),
        }
    }

    /// The ARN of the table's stream, enabling one (`NEW_IMAGE`, as the deployed template has)
    /// when the table has none: `plunk serve` on DynamoDB reads it to dispatch events.
    pub async fn ensure_stream(&self) -> Result<String, StoreError> {
        for attempt in 0..60 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            let table = out.table();
            let enabled = table
                .and_then(|t| t.stream_specification())
                .is_some_and(|s| s.stream_enabled());
            if let Some(arn) = table.and_then(|t| t.latest_stream_arn()) {
                if enabled {
                    return Ok(arn.to_owned());
                }
            }
            if !enabled && attempt == 0 {
                self.client
                    .update_table()
                    .table_name(&self.table)
                    .stream_specification(new_image_stream()?)
                    .send()
                    .await
                    .map_err(|e| sdk_error("UpdateTable (enable the stream)", e))?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "the stream of table {} did not become enabled",
            self.table
        )))
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        // A new table with a GSI takes seconds to a few minutes on AWS; DynamoDB Local is instant.
        for _ in 0..600 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            if let Some(table) = out.table() {
                let active = table.table_status() == Some(&TableStatus::Active)
                    && table
                        .global_secondary_indexes()
                        .iter()
                        .all(|g| g.index_status() == Some(&IndexStatus::Active));
                if active {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {} did not become active",
            self.table
        )))
    }

    async fn enable_ttl(&self) {
        let status = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.time_to_live_description()
                    .and_then(|d| d.time_to_live_status().cloned())
            });
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return;
        }
        let spec = match TimeToLiveSpecification::builder()
            .attribute_name(TTL)
            .enabled(true)
            .build()
        {
            Ok(spec) => spec,
            Err(_) => return,
        };
        if let Err(e) = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            // Expiry is enforced on read anyway; the sweep only reclaims space.
            tracing::warn!(table = %self.table, error = %DisplayErrorContext(&e), "could not enable TTL");
        }
    }

    /// Deletes the item at `key` if it is (still) expired. Readers never see expired items, so
    /// this is invisible to them; it lets writes that must treat the item as absent proceed.
    async fn delete_expired(&self, key: &Key) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .condition_expression("#ttl < :now")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", num(unix_now()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteItem", e)),
        }
    }

    /// The raw `ttl` of the item at `key`, read consistently (expired or not).
    async fn raw_ttl(&self, key: &Key) -> Result<Option<i64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .projection_expression("#ttl")
            .expression_attribute_names("#ttl", TTL)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item().and_then(|i| get_num(i, TTL)))
    }

    /// One transaction item for `op`.
    fn transact_item(&self, op: &WriteOp, now: i64) -> Result<TransactWriteItem, StoreError> {
        Ok(match op {
            WriteOp::Put { item, condition } => {
                let c = condition_expr(*condition, now);
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item_attrs(item)))
                            .set_condition_expression(c.expr)
                            .set_expression_attribute_names(c.names)
                            .set_expression_attribute_values(c.values)
                            .build()
                            .map_err(build_error)?,
                    )
                    .build()
            }
            WriteOp::Delete { key, condition } => {
                let c = condition_expr(*condition, now);
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attrs(key)))
                            .set_condition_expression(c.expr)
                            .set_expression_attribute_names(c.names)
                            .set_expression_attribute_values(c.values)
                            .build()
                            .map_err(build_error)?,
                    )
                    .build()
            }
            WriteOp::Check { key, condition } => {
                let c = match condition {
                    // A ConditionCheck needs an expression: one that always holds.
                    Condition::None => Cond {
                        expr: Some("attribute_not_exists(#pk) OR attribute_exists(#pk)".into()),
                        names: Some(HashMap::from([("#pk".into(), PK.into())])),
                        values: None,
                    },
                    condition => condition_expr(*condition, now),
                };
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attrs(key)))
                            .set_condition_expression(c.expr)
                            .set_expression_attribute_names(c.names)
                            .set_expression_attribute_values(c.values)
                            .build()
                            .map_err(build_error)?,
                    )
                    .build()
            }
            WriteOp::Add { key, delta } => {
                let u = add_expr(*delta, None, None, now);
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attrs(key)))
                            .update_expression(u.update)
                            .condition_expression(u.condition)
                            .set_expression_attribute_names(Some(u.names))
                            .set_expression_attribute_values(Some(u.values))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build()
            }
        })
    }

    /// One BatchGetItem round for up to 100 distinct keys, retrying unprocessed keys.
    async fn batch_get_chunk(
        &self,
        keys: &[&Key],
        found: &mut HashMap<Key, Item>,
        now: i64,
        consistent: bool,
    ) -> Result<(), StoreError> {
        let mut pending: Vec<Attrs> = keys.iter().map(|k| key_attrs(k)).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt > 0 {
                if attempt >= ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "dynamodb BatchGetItem: {} keys still unprocessed after {ATTEMPTS} attempts",
                        pending.len()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            attempt += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(build_error)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                for raw in items {
                    let item = decode_item(raw)?;
                    if is_live(item.ttl, now) {
                        found.insert(item.key.clone(), item);
                    }
                }
            }
            if let Some(unprocessed) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = unprocessed.keys().to_vec();
            }
        }
        Ok(())
    }
}

impl DynamoTable {
    /// `BatchGetItem` over any number of keys, strongly consistent or not.
    async fn batch_get_items(
        &self,
        keys: &[Key],
        consistent: bool,
    ) -> Result<Vec<Option<Item>>, StoreError> {
        // BatchGetItem rejects duplicate keys in one request: ask for each key once.
        let mut unique: Vec<&Key> = Vec::with_capacity(keys.len());
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        for key in keys {
            if seen.insert(key) {
                unique.push(key);
            }
        }
        let now = unix_now();
        let mut found = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            self.batch_get_chunk(chunk, &mut found, now, consistent)
                .await?;
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// `GetItem`, strongly consistent or not.
    async fn get_item(&self, key: &Key, consistent: bool) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        let now = unix_now();
        match out.item() {
            Some(raw) => {
                let item = decode_item(raw)?;
                Ok(is_live(item.ttl, now).then_some(item))
            }
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.get_item(key, true).await
    }

    async fn get_eventually(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.get_item(key, false).await
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        let c = condition_expr(condition, unix_now());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_attrs(&item)))
            .set_condition_expression(c.expr)
            .set_expression_attribute_names(c.names)
            .set_expression_attribute_values(c.values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::ConditionFailed { index: None })
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let c = condition_expr(condition, unix_now());
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .set_condition_expression(c.expr)
            .set_expression_attribute_names(c.names)
            .set_expression_attribute_values(c.values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::ConditionFailed { index: None })
            }
            Err(e) => Err(sdk_error("DeleteItem", e)),
        }
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        for _ in 0..ATTEMPTS {
            let now = unix_now();
            let u = add_expr(delta, max, ttl, now);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .update_expression(u.update)
                .condition_expression(u.condition)
                .set_expression_attribute_names(Some(u.names))
                .set_expression_attribute_values(Some(u.values))
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let failed_ttl = match result {
                Ok(out) => {
                    return out
                        .attributes()
                        .and_then(|a| get_num(a, COUNTER))
                        .ok_or_else(|| {
                            StoreError::Other(format!(
                                "dynamodb UpdateItem returned no counter for {key:?}"
                            ))
                        });
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        c.item().map(|old| get_num(old, TTL))
                    }
                    _ => return Err(sdk_error("UpdateItem", e)),
                },
            };
            // Either the counter would pass `max`, or the item is expired (and so, to callers,
            // absent). The old item comes back with the failure; read it if it did not.
            let old_ttl = match failed_ttl {
                Some(ttl) => ttl,
                None => self.raw_ttl(key).await?,
            };
            if old_ttl.is_some_and(|t| t < now) {
                self.delete_expired(key).await?;
                continue;
            }
            return Err(StoreError::ConditionFailed { index: None });
        }
        Err(StoreError::Unavailable(format!(
            "dynamodb UpdateItem: counter {key:?} kept expiring during add"
        )))
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.batch_get_items(keys, true).await
    }

    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item_attrs(item)))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, StoreError>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt >= ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "dynamodb BatchWriteItem: {} items still unprocessed after {ATTEMPTS} attempts",
                            pending.len()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                if let Some(unprocessed) = out.unprocessed_items().and_then(|u| u.get(&self.table))
                {
                    pending = unprocessed.to_vec();
                }
            }
        }
        Ok(())
    }

    async fn batch_get_eventually(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.batch_get_items(keys, false).await
    }

    async fn query(&self, q: Query) -> Result<Page, StoreError> {
        let limit = q.limit.max(1);
        let (index_name, pcol, scol) = match q.index {
            Index::Primary => (None, PK, SK),
            Index::Gsi1 => (Some(GSI1), G1PK, G1SK),
        };
        let mut names = HashMap::from([("#p".to_string(), pcol.to_string())]);
        let mut values = HashMap::from([(":p".to_string(), s(&q.partition))]);
        let mut key_condition = "#p = :p".to_string();
        if let Some(prefix) = &q.sort_prefix {
            names.insert("#s".into(), scol.into());
            values.insert(":prefix".into(), s(prefix));
            key_condition.push_str(" AND begins_with(#s, :prefix)");
        }
        let mut start = match &q.start_after {
            Some(position) => Some(start_key(q.index, position)?),
            None => None,
        };
        let now = unix_now();
        let mut items: Vec<Item> = Vec::with_capacity(limit.min(1000));
        // Read one item beyond `limit` so that `last` is only set when more items follow, and keep
        // reading while expired items (dropped here) leave the page short.
        loop {
            let want = limit.saturating_add(1) - items.len();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index_name.map(str::to_owned))
                .key_condition_expression(&key_condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!q.descending)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                // Strongly consistent reads are not available on a GSI.
                .set_consistent_read(index_name.is_none().then_some(true))
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for raw in out.items() {
                let item = decode_item(raw)?;
                if is_live(item.ttl, now) {
                    items.push(item);
                }
            }
            if items.len() > limit {
                items.truncate(limit);
                let last = items.last().map(|i| i.position(q.index));
                return Ok(Page { items, last });
            }
            match out.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => return Ok(Page { items, last: None }),
            }
        }
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        for _ in 0..ATTEMPTS {
            let now = unix_now();
            let items = ops
                .iter()
                .map(|op| self.transact_item(op, now))
                .collect::<Result<Vec<_>, _>>()?;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Vec<Option<String>> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(sdk_error("TransactWriteItems", err)),
            };
            let failed: Vec<usize> = reasons
                .iter()
                .enumerate()
                .filter(|(_, code)| code.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect();
            if let Some(&index) = failed
                .iter()
                .find(|&&i| !matches!(ops.get(i), Some(WriteOp::Add { .. })))
            {
                return Err(StoreError::ConditionFailed { index: Some(index) });
            }
            if !failed.is_empty() {
                // Only counter additions failed, and their one condition is that the item is not
                // expired: clear those expired items (absent to callers) and try again.
                for &i in &failed {
                    if let Some(WriteOp::Add { key, .. }) = ops.get(i) {
                        self.delete_expired(key).await?;
                    }
                }
                continue;
            }
            let transient = reasons.iter().any(|code| {
                matches!(
                    code.as_deref(),
                    Some(
                        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                    )
                )
            });
            let message = format!(
                "dynamodb TransactWriteItems: {} (reasons {:?})",
                DisplayErrorContext(&err),
                reasons
            );
            return Err(if transient {
                StoreError::Unavailable(message)
            } else {
                StoreError::Other(message)
            });
        }
        Err(StoreError::Unavailable(
            "dynamodb TransactWriteItems: counters kept expiring during the transaction".into(),
        ))
    }
}

/// A condition expression with its placeholders; all `None` for `Condition::None`.
struct Cond {
    expr: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<Attrs>,
}

fn condition_expr(condition: Condition, now: i64) -> Cond {
    let live = "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl >= :now)";
    let (expr, version) = match condition {
        Condition::None => {
            return Cond {
                expr: None,
                names: None,
                values: None,
            }
        }
        Condition::NotExists => ("attribute_not_exists(#pk) OR #ttl < :now".to_string(), None),
        Condition::Exists => (live.to_string(), None),
        Condition::VersionEquals(v) => (format!("{live} AND #v = :v"), Some(v)),
    };
    let mut names = HashMap::from([
        ("#pk".to_string(), PK.to_string()),
        ("#ttl".to_string(), TTL.to_string()),
    ]);
    let mut values = HashMap::from([(":now".to_string(), num(now))]);
    if let Some(v) = version {
        names.insert("#v".into(), VERSION.into());
        values.insert(":v".into(), num(v));
    }
    Cond {
        expr: Some(expr),
        names: Some(names),
        values: Some(values),
    }
}

/// An UpdateItem that adds to a counter.
struct AddExpr {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Attrs,
}

/// `ADD n :d`, creating the item's body and version (and `ttl`, when given) if absent. The
/// condition: the item is absent or live (an expired one is cleared by the caller and the call
/// retried), and with `max`, the new value stays at or below it.
fn add_expr(delta: i64, max: Option<i64>, ttl: Option<i64>, now: i64) -> AddExpr {
    let names = HashMap::from([
        ("#b".to_string(), BODY.to_string()),
        ("#v".to_string(), VERSION.to_string()),
        ("#n".to_string(), COUNTER.to_string()),
        ("#ttl".to_string(), TTL.to_string()),
    ]);
    let mut values = HashMap::from([
        (":null".to_string(), s("null")),
        (":zero".to_string(), num(0)),
        (":d".to_string(), num(delta)),
        (":now".to_string(), num(now)),
    ]);
    let mut update = "SET #b = if_not_exists(#b, :null), #v = if_not_exists(#v, :zero)".to_string();
    if let Some(ttl) = ttl {
        update.push_str(", #ttl = if_not_exists(#ttl, :ttl)");
        values.insert(":ttl".into(), num(ttl));
    }
    update.push_str(" ADD #n :d");
    let mut condition = "(attribute_not_exists(#ttl) OR #ttl >= :now)".to_string();
    if let Some(max) = max {
        // new = old + delta <= max  <=>  old <= max - delta; a missing counter counts as 0 + delta.
        // (DynamoDB numbers have 38 digits; only the i64 bound needs care.)
        values.insert(":mmd".into(), num(i128::from(max) - i128::from(delta)));
        if delta <= max {
            condition.push_str(" AND (attribute_not_exists(#n) OR #n <= :mmd)");
        } else {
            condition.push_str(" AND (attribute_exists(#n) AND #n <= :mmd)");
        }
    }
    AddExpr {
        update,
        condition,
        names,
        values,
    }
}

/// The `ExclusiveStartKey` for a position on `index`.
fn start_key(index: Index, position: &Position) -> Result<Attrs, StoreError> {
    let mut key = key_attrs(&position.key);
    if index == Index::Gsi1 {
        let (g1pk, g1sk) = position.gsi1.as_ref().ok_or_else(|| {
            StoreError::Other("query on gsi1 started after a position without gsi1 keys".into())
        })?;
        key.insert(G1PK.into(), s(g1pk));
        key.insert(G1SK.into(), s(g1sk));
    }
    Ok(key)
}

fn is_live(ttl: Option<i64>, now: i64) -> bool {
    ttl.is_none_or(|t| t >= now)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn num(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([(PK.to_string(), s(&key.pk)), (SK.to_string(), s(&key.sk))])
}

fn item_attrs(item: &Item) -> Attrs {
    let mut attrs = key_attrs(&item.key);
    if let Some((g1pk, g1sk)) = &item.gsi1 {
        attrs.insert(G1PK.into(), s(g1pk));
        attrs.insert(G1SK.into(), s(g1sk));
    }
    if let Some(ttl) = item.ttl {
        attrs.insert(TTL.into(), num(ttl));
    }
    attrs.insert(VERSION.into(), num(item.version));
    if let Some(counter) = item.counter {
        attrs.insert(COUNTER.into(), num(counter));
    }
    attrs.insert(BODY.into(), AttributeValue::S(item.body.to_string()));
    attrs
}

fn get_str<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    attrs
        .get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_num<T: std::str::FromStr>(attrs: &Attrs, name: &str) -> Option<T> {
    attrs
        .get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn decode_item(attrs: &Attrs) -> Result<Item, StoreError> {
    let (Some(pk), Some(sk)) = (get_str(attrs, PK), get_str(attrs, SK)) else {
        return Err(StoreError::Other("corrupt item: missing pk or sk".into()));
    };
    let key = Key::new(pk, sk);
    let corrupt = |field: &str| StoreError::Other(format!("corrupt item {key:?}: bad {field}"));
    // A numeric attribute: absent is fine, anything but a parsable number is corruption.
    fn number<T: std::str::FromStr>(attrs: &Attrs, field: &str) -> Result<Option<T>, ()> {
        match attrs.get(field) {
            None => Ok(None),
            Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }
    let ttl = number(attrs, TTL).map_err(|()| corrupt(TTL))?;
    let version = number(attrs, VERSION)
        .map_err(|()| corrupt(VERSION))?
        .unwrap_or(0);
    let counter = number(attrs, COUNTER).map_err(|()| corrupt(COUNTER))?;
    let body = match attrs.get(BODY) {
        None => serde_json::Value::Null,
        Some(AttributeValue::S(text)) => serde_json::from_str(text)
            // serde_json's message names a position, never the content.
            .map_err(|e| StoreError::Other(format!("corrupt item {key:?}: body: {e}")))?,
        Some(_) => return Err(corrupt(BODY)),
    };
    Ok(Item {
        gsi1: get_str(attrs, G1PK)
            .zip(get_str(attrs, G1SK))
            .map(|(p, s)| (p.to_owned(), s.to_owned())),
        ttl,
        version,
        counter,
        body,
        key,
    })
}

fn new_image_stream() -> Result<StreamSpecification, StoreError> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .map_err(build_error)
}

fn build_error(e: BuildError) -> StoreError {
    StoreError::Other(format!("dynamodb request: {e}"))
}

/// Maps an SDK error: throttling, service unavailability, timeouts and connection failures are
/// `Unavailable` (retrying later may succeed), everything else `Other`.
fn sdk_error<E>(operation: &str, e: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some(
                    "ThrottlingException"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "ServiceUnavailableException"
                        | "TransactionConflictException"
                        | "TransactionInProgressException"
                )
            ) || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let message = format!("dynamodb {operation}: {}", DisplayErrorContext(&e));
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Other(message)
    }
}

/// Decodes an item image as DynamoDB Streams deliver it to Lambda (`NewImage`, DynamoDB JSON such
/// as `{"pk": {"S": "…"}, "v": {"N": "1"}}`). Only the attribute types this backend writes
/// (strings and numbers) are read; others are ignored.
pub fn item_from_stream_image(image: &serde_json::Value) -> Result<Item, StoreError> {
    let Some(object) = image.as_object() else {
        return Err(StoreError::Other("stream image is not an object".into()));
    };
    let attrs: Attrs = object
        .iter()
        .filter_map(|(name, value)| {
            let typed = if let Some(s) = value.get("S").and_then(|s| s.as_str()) {
                AttributeValue::S(s.to_owned())
            } else if let Some(n) = value.get("N").and_then(|n| n.as_str()) {
                AttributeValue::N(n.to_owned())
            } else {
                return None;
            };
            Some((name.clone(), typed))
        })
        .collect();
    decode_item(&attrs)
}

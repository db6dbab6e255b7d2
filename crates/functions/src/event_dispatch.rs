//! The event-dispatch function: the table's DynamoDB stream (filtered in template.yaml to the
//! fed writes of `plunk_store::keys::fed`: new events, contact writes, STATIC membership
//! changes) in, [`Dispatcher`] over them. Stream batches are ordered per
//! shard, so on failure the whole batch is reported from its first record and comes back
//! (at-least-once; deliveries are idempotent, counters may count a retried batch twice).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use plunk_store::backend::dynamo::item_from_stream_image;
use plunk_store::keys;
use plunk_worker::dispatch::Dispatcher;

/// Handles one stream batch.
pub async fn handle(
    dispatcher: &Dispatcher,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = event.payload.records;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        let is_new = match record.event_name.as_str() {
            "INSERT" => true,
            "MODIFY" => false,
            _ => continue,
        };
        let image = serde_json::to_value(&record.change.new_image)?;
        match item_from_stream_image(&image) {
            Ok(item) if keys::is_fed_write(&item.key.pk, is_new) => items.push(item),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, event_id = %record.event_id, "skipping an unreadable stream record")
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    if let Err(e) = dispatcher.handle(&items).await {
        tracing::warn!(error = %e, "event dispatch failed; the batch comes back");
        let first = records
            .first()
            .and_then(|r| r.change.sequence_number.clone());
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = first;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

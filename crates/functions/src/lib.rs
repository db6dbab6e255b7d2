//! Shared wiring of the Lambda binaries.
//!
//! - HTTP functions serve one endpoint group's router through `lambda_http` ([`run`]); the
//!   hosted pages are the `pages` group.
//! - `send-consumer` takes the send queues' SQS events ([`send_consumer`]).
//! - `feedback-consumer` takes the feedback queue's SQS events ([`feedback_consumer`]).
//! - `scheduler` runs the every-minute tick ([`scheduler`]).
//! - `event-dispatch` takes the table's stream of new events ([`event_dispatch`]).
//! - `webhook-delivery` takes the webhook queue's SQS events ([`webhook_delivery`]).
//! - `workflow-worker` takes the workflow queue's SQS events ([`workflow_worker`]).
//!
//! Every adapter comes from the environment ([`adapters`]): the store from `PLUNK_STORE`
//! (default `dynamo`; `PLUNK_TABLE`, optional `PLUNK_DYNAMODB_ENDPOINT`), the AWS resources from
//! the variables the SAM template sets, the local ones under `PLUNK_DATA_DIR` otherwise.

/// Every Lambda binary links this crate, so this is their allocator: mimalloc rather than the system allocator: a fan-out builds and drops a few dozen small
/// strings and maps per recipient, and glibc's malloc took a quarter of its CPU
/// (`docs/benchmarks.md`, campaign fan-out).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod adapters;
pub mod concurrent_batch;
pub mod event_dispatch;
pub mod feedback_consumer;
pub mod scheduler;
pub mod send_consumer;
pub mod webhook_delivery;
pub mod webhook_key;
pub mod workflow_worker;

use lambda_http::request::RequestContext;
use lambda_http::{Error, Request, RequestExt};
use plunk_api::Group;
use plunk_http_kit::pipeline::{GatewayRequestId, GatewaySourceIp};
use tower::ServiceExt;

/// JSON log lines for CloudWatch, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn".into()),
        )
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line
        .init();
}

/// Runs `group` as a Lambda function until the runtime stops it.
pub async fn run(group: Group) -> Result<(), Error> {
    init_tracing();
    let env = adapters::Environment::from_env(group.function_name()).await?;
    let state = env.app_state(group).await?;
    let service = plunk_api::service(state, &[group]);
    lambda_http::run(service.map_request(with_gateway_context)).await
}

/// Copies API Gateway's request id (so responses and logs carry it) and the client's source
/// address (the hosted pages' per-source limit) into the request.
pub fn with_gateway_context(mut req: Request) -> Request {
    let (id, source_ip) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            (ctx.request_id.clone(), ctx.http.source_ip.clone())
        }
        #[allow(unreachable_patterns)] // other gateways are compiled out
        _ => (None, None),
    };
    if let Some(id) = id {
        req.extensions_mut().insert(GatewayRequestId(id));
    }
    if let Some(ip) = source_ip {
        req.extensions_mut().insert(GatewaySourceIp(ip));
    }
    req
}

//! Shared wiring of the Lambda binaries.
//!
//! - HTTP functions serve one endpoint group's router through `lambda_http` ([`run`]).
//! - `send-consumer` takes the send queues' SQS events ([`send_consumer`]).
//! - `feedback-consumer` takes the feedback queue's SQS events ([`feedback_consumer`]).
//! - `scheduler` runs the every-minute tick ([`scheduler`]).
//!
//! Every adapter comes from the environment ([`adapters`]): the store from `PLUNK_STORE`
//! (default `dynamo`; `PLUNK_TABLE`, optional `PLUNK_DYNAMODB_ENDPOINT`), the AWS resources from
//! the variables the SAM template sets, the local ones under `PLUNK_DATA_DIR` otherwise.

pub mod adapters;
pub mod feedback_consumer;
pub mod scheduler;
pub mod send_consumer;

use lambda_http::request::RequestContext;
use lambda_http::{Error, Request, RequestExt};
use plunk_api::Group;
use plunk_http_kit::pipeline::GatewayRequestId;
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
    let env = adapters::Environment::from_env().await?;
    let state = env.app_state(group).await?;
    let service = plunk_api::service(state, &[group]);
    lambda_http::run(service.map_request(with_gateway_request_id)).await
}

/// Copies API Gateway's request id into the request, so responses and logs carry it.
fn with_gateway_request_id(mut req: Request) -> Request {
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)] // other gateways are compiled out
        _ => None,
    };
    if let Some(id) = id {
        req.extensions_mut().insert(GatewayRequestId(id));
    }
    req
}

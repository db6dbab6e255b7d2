//! Shared wiring of the Lambda binaries: each one serves one endpoint group's router through
//! `lambda_http`, with the store named by the environment (`PLUNK_STORE`, default `dynamo`;
//! `PLUNK_TABLE`; optional `PLUNK_DYNAMODB_ENDPOINT`).

use lambda_http::request::RequestContext;
use lambda_http::{Error, Request, RequestExt};
use plunk_api::Group;
use plunk_http_kit::pipeline::GatewayRequestId;
use plunk_http_kit::{AppState, Settings};
use plunk_store::config::StoreConfig;
use tower::ServiceExt;

/// Runs `group` as a Lambda function until the runtime stops it.
pub async fn run(group: Group) -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time() // CloudWatch stamps each line
        .init();
    let store = StoreConfig::from_env("dynamo")?.open().await?;
    let service = plunk_api::service(AppState::new(store, Settings::from_env()), &[group]);
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

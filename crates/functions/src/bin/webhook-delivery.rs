//! Lambda function for the webhook queue: one signed attempt per job.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, init_tracing, webhook_delivery};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let worker = Environment::from_env("webhook-delivery")
        .await?
        .webhook_worker()
        .await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        webhook_delivery::handle(&worker, event)
    }))
    .await
}

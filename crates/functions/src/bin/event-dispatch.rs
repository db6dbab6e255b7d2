//! Lambda function for the table's stream of new events: counters and webhook fan-out.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, event_dispatch, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let dispatcher = Environment::from_env("event-dispatch")
        .await?
        .dispatcher()
        .await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        event_dispatch::handle(&dispatcher, event)
    }))
    .await
}

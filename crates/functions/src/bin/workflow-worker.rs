//! Lambda function for the workflow queue: runs executions' steps.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, init_tracing, workflow_worker};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let engine = Environment::from_env("workflow-worker")
        .await?
        .engine()
        .await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        workflow_worker::handle(&engine, event)
    }))
    .await
}

//! Lambda function for the every-minute EventBridge schedule: one scheduler tick per event.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, init_tracing, scheduler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let environment = Environment::from_env("scheduler").await?;
    let scheduler = environment.scheduler().await?;
    let workflow_queue = environment.required_workflow_queue().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        scheduler::handle(&scheduler, workflow_queue.as_ref(), event)
    }))
    .await
}

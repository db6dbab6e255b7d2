//! Lambda function for the three send queues' SQS event sources: sends each queued email and
//! reports the messages to retry as partial batch failures.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, init_tracing, send_consumer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let env = Environment::from_env("send-consumer").await?;
    let worker = env.send_worker().await?;
    let queues = env.sqs_queues_by_name().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        send_consumer::handle(&worker, &queues, event)
    }))
    .await
}

//! Lambda function for the feedback queue's SQS event source: applies SES notifications to
//! their emails and reports the messages to retry as partial batch failures.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use plunk_functions::{adapters::Environment, feedback_consumer, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let worker = Environment::from_env("feedback-consumer")
        .await?
        .feedback_worker();
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
        feedback_consumer::handle(&worker, event)
    }))
    .await
}

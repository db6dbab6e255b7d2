//! Lambda function for the `/webhooks` endpoint group.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::Webhooks).await
}

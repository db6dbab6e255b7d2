//! Lambda function for the `/events` endpoint group.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::Events).await
}

//! Lambda function for the `/workflows` endpoint group.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::Workflows).await
}

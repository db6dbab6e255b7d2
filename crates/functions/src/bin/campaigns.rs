//! Lambda function for the `/campaigns` endpoint group.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::Campaigns).await
}

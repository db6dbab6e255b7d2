//! Lambda function for `/health` and `/openapi.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::System).await
}

//! Lambda function for `POST /v1/send` (the public API, CORS included).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::PublicApi).await
}

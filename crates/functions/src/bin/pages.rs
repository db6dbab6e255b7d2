//! Lambda function for the hosted pages: `/unsubscribe`, `/subscribe` and `/manage` with a token.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    plunk_functions::run(plunk_api::Group::Pages).await
}

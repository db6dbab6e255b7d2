//! S3 adapter: objects in one Amazon S3 bucket (or any S3-compatible endpoint, such as moto's
//! server) reached through `aws-sdk-s3`. The key is the object key, checked by the same rule as
//! the folder adapter ([`check_key`]). In AWS the bucket, with its lifecycle rule, comes from the
//! SAM template; [`S3Blobs::create_bucket`] is for tests and emulators.
//!
//! Errors: throttling (`SlowDown`), 5xx answers, timeouts and failures to reach S3 are
//! [`BlobError::Unavailable`]; anything else is [`BlobError::Other`] with S3's error and the key.

use super::folder::check_key;
use super::{BlobError, BlobStore};
use async_trait::async_trait;
use aws_sdk_s3::config::BehaviorVersion;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use bytes::Bytes;

/// Blobs in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    /// The S3 client.
    pub client: Client,
    /// The bucket name.
    pub bucket: String,
}

impl S3Blobs {
    /// Wraps a client and a bucket name.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// A bucket reached with the default AWS configuration (environment, profile, instance role),
    /// optionally at another endpoint (an emulator such as moto), which is then addressed
    /// path-style (`http://endpoint/bucket/key`) since emulators rarely serve bucket subdomains.
    pub async fn from_env(bucket: &str, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(endpoint.is_some())
            .build();
        Self::new(Client::from_conf(config), bucket)
    }

    /// Creates the bucket in the client's region (doing nothing if this account already owns
    /// it). For tests and emulators.
    pub async fn create_bucket(&self) -> Result<(), BlobError> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = self.client.config().region() {
            if region.as_ref() != "us-east-1" {
                request = request.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region.as_ref()))
                        .build(),
                );
            }
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("CreateBucket", &self.bucket, e)),
        }
    }
}

fn sdk_error<E>(operation: &str, key: &str, e: SdkError<E>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            matches!(
                service.err().code(),
                Some("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout")
            ) || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let message = format!("s3 {operation} {key:?}: {}", DisplayErrorContext(&e));
    if transient {
        BlobError::Unavailable(message)
    } else {
        BlobError::Other(message)
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        check_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error("GetObject", key, e)),
        };
        let body = out.body.collect().await.map_err(|e| {
            BlobError::Unavailable(format!("s3 GetObject {key:?}: reading the body: {e}"))
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteObject", key, e))?;
        Ok(())
    }
}

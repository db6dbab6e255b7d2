//! The functions wired to AWS services by their environment, against moto's server at
//! `PLUNK_TEST_AWS_ENDPOINT` (skipped without it; `make test-rust` starts moto): the real
//! `public-api` binary queues on SQS and stores attachments and large bodies in S3, and the real
//! `send-consumer` binary takes the SQS message and reads them back from S3, each held to its
//! blob prefixes as its role holds it on AWS.

mod common;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};
use common::Function;
use plunk_domain::email_record::EmailStatus;
use plunk_messaging::blob::s3::S3Blobs;
use plunk_messaging::queue::sqs::{create_queue_with_dead_letter_queue, SqsQueue};
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendJob;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

const ENDPOINT_VAR: &str = "PLUNK_TEST_AWS_ENDPOINT";

fn endpoint() -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(e) if !e.trim().is_empty() => Some(e),
        _ => {
            println!("skipped: {ENDPOINT_VAR} not set");
            None
        }
    }
}

#[tokio::test]
async fn the_api_and_the_consumer_use_sqs_and_s3_named_by_their_environment() {
    let Some(endpoint) = endpoint() else { return };
    // Arrange: queues and a bucket at moto, a project with a verified domain in the store.
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let run = Uuid::now_v7().simple().to_string();
    let mut queues: Vec<SqsQueue> = Vec::new();
    for class in ["transactional", "workflow", "campaign"] {
        let name = format!("plunk-{}-{class}", &run[20..]);
        let (queue, _dlq) = create_queue_with_dead_letter_queue(&sqs, &name, 10)
            .await
            .unwrap();
        queues.push(queue);
    }
    let bucket = format!("plunk-{}", &run[20..]);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let blobs = S3Blobs::new(s3, &bucket);
    blobs.create_bucket().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store_in(dir.path());
    let (project, secret) = common::project(&store).await;
    common::verified_domain(&store, project.id).await;
    let outbox = dir.path().join("sent");
    let aws_env = [
        ("PLUNK_SEND_QUEUE_TRANSACTIONAL_URL", queues[0].url.as_str()),
        ("PLUNK_SEND_QUEUE_WORKFLOW_URL", queues[1].url.as_str()),
        ("PLUNK_SEND_QUEUE_CAMPAIGN_URL", queues[2].url.as_str()),
        ("PLUNK_BLOB_BUCKET", bucket.as_str()),
        ("PLUNK_AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];

    // Act 1: the public API accepts an email with an attachment and a body too large for a
    // table item (both kept in S3, under the prefixes the functions' roles grant).
    let mut api =
        Function::start_with(env!("CARGO_BIN_EXE_public-api"), dir.path(), &aws_env).await;
    let large_body = format!(
        "<p>Attached.</p>{}",
        "<p>Line of the report.</p>".repeat(600)
    );
    let body = json!({
        "to": "ada@example.org",
        "from": format!("hello@{}", common::SENDER_DOMAIN),
        "subject": "Your report",
        "body": large_body,
        "attachments": [{
            "filename": "report.txt",
            "content": "aGVsbG8=", // "hello"
            "contentType": "text/plain",
        }],
    })
    .to_string();
    let mut request = common::fixture("contacts-create.json", &[("__SECRET_KEY__", &secret)]);
    request["rawPath"] = "/v1/send".into();
    request["routeKey"] = "ANY /v1/{proxy+}".into();
    request["requestContext"]["routeKey"] = "ANY /v1/{proxy+}".into();
    request["requestContext"]["http"]["path"] = "/v1/send".into();
    request["headers"]["content-length"] = body.len().to_string().into();
    request["body"] = body.into();
    let accepted = api.invoke(request).await;
    assert_eq!(accepted["statusCode"], 200, "{accepted}");

    // The job is on the SQS transactional queue, the attachment in the bucket.
    let messages = queues[0]
        .receive(10, Duration::from_secs(60), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let job: SendJob = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(job.project_id, project.id);
    let record = store
        .emails()
        .get(project.id, job.email_id)
        .await
        .unwrap()
        .unwrap();
    let content = store
        .emails()
        .content(project.id, &record)
        .await
        .unwrap()
        .unwrap();
    let key = &content.attachments[0].blob_key;
    use plunk_messaging::blob::BlobStore;
    assert_eq!(
        blobs.get(key).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    let body_key = content
        .body_blob
        .as_deref()
        .expect("the large body is kept in S3");
    assert_eq!(
        blobs.get(body_key).await.unwrap().as_deref(),
        Some(large_body.as_bytes())
    );

    // Act 2: Lambda hands the message to the consumer.
    let queue_name = queues[0].url.rsplit('/').next().unwrap();
    let mut event = common::fixture("sqs-send-batch.json", &[]);
    event["Records"].as_array_mut().unwrap().truncate(1);
    let record_json = &mut event["Records"][0];
    record_json["messageId"] = messages[0].message_id.clone().into();
    record_json["receiptHandle"] = messages[0].receipt.clone().into();
    record_json["body"] = messages[0].body.clone().into();
    record_json["eventSourceARN"] =
        format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}").into();
    let mut consumer_env = aws_env.to_vec();
    consumer_env.extend([
        ("PLUNK_MAILER", "outbox"),
        ("PLUNK_OUTBOX_DIR", outbox.to_str().unwrap()),
        ("PLUNK_SEND_RATE", "1000"),
    ]);
    let mut consumer = Function::start_with(
        env!("CARGO_BIN_EXE_send-consumer"),
        dir.path(),
        &consumer_env,
    )
    .await;
    let response = consumer.invoke(event).await;

    // Assert: sent with the attachment read back from S3.
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let sent = store
        .emails()
        .get(project.id, job.email_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, EmailStatus::Sent);
    let message = plunk_messaging::mailer::outbox::read(&outbox, job.email_id).unwrap();
    assert_eq!(message.attachments.len(), 1);
    assert_eq!(
        message.attachments[0].filename.as_deref(),
        Some("report.txt")
    );
    assert!(
        message
            .html
            .as_deref()
            .unwrap_or_default()
            .contains("Line of the report."),
        "the body read back from S3 was sent"
    );
}

#[tokio::test]
async fn the_webhook_data_key_is_stored_wrapped_by_kms_and_unwrapped_alike_by_every_cold_start() {
    let Some(endpoint) = endpoint() else { return };
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let table = common::store_in(dir.path());
    let profile = |name| plunk_store::access::AccessProfile::of(name).unwrap();
    let api = table.with_access(profile("webhooks"));
    let worker = table.with_access(profile("webhook-delivery"));

    // Two cold starts at once agree on one key; a later one unwraps the same.
    let (a, b) = tokio::join!(
        plunk_functions::webhook_key::load(&api, &kms, &key_id),
        plunk_functions::webhook_key::load(&worker, &kms, &key_id)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let sealed = a.seal("w1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(
        b.open("w1", &sealed).unwrap(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    let later = plunk_functions::webhook_key::load(&worker, &kms, &key_id)
        .await
        .unwrap();
    assert!(later.open("w1", &sealed).is_ok());

    // The table holds only the wrapped key; no other function may even read it.
    let item = table
        .table()
        .get(&plunk_store::keys::webhook_data_key())
        .await
        .unwrap()
        .unwrap();
    assert!(item.body["wrapped"].as_str().is_some_and(|w| w.len() > 40));
    assert_eq!(item.body.as_object().unwrap().len(), 2, "{}", item.body);
    for other in ["event-dispatch", "pages", "send-consumer", "contacts"] {
        let denied = table
            .with_access(profile(other))
            .table()
            .get(&plunk_store::keys::webhook_data_key())
            .await;
        assert!(denied.is_err(), "{other} must not read the data key");
    }
}

//! The SES v2 mailer against moto (when `PLUNK_TEST_AWS_ENDPOINT` is set) and against a fake SES
//! endpoint with canned answers (always), for what moto cannot show: the configuration set and
//! tags on the request, throttling and server errors, `GetAccount`.
//!
//! moto 5.2.5 gaps: `GetAccount` answers 404; sent messages are recorded without their
//! configuration set or tags; a configuration set that does not exist is accepted.

mod ses_support;

use mail_parser::{MessageParser, MimeHeaders};
use plunk_messaging::mailer::ses::SesMailer;
use plunk_messaging::mailer::{Attachment, Disposition, MailError, Mailbox, Mailer, OutgoingEmail};
use ses_support::{client, fake_ses, http_get, moto_endpoint, unique_domain, Reply};
use uuid::Uuid;

fn email(from_domain: &str) -> OutgoingEmail {
    OutgoingEmail {
        email_id: Uuid::now_v7(),
        project_id: Uuid::from_u128(42),
        from: Mailbox {
            name: Some("Acme Ünited".into()),
            email: format!("billing@{from_domain}"),
        },
        to: Mailbox {
            name: None,
            email: "ada@example.org".into(),
        },
        reply_to: Some("support@acme.io".into()),
        subject: "Your receipt".into(),
        html: r#"<p>Thanks <img src="cid:logo"></p>"#.into(),
        text: "Thanks".into(),
        headers: vec![("List-Unsubscribe".into(), "<https://acme.io/u/1>".into())],
        attachments: vec![
            Attachment {
                filename: "logo.png".into(),
                content_type: "image/png".into(),
                disposition: Disposition::Inline,
                content_id: Some("logo".into()),
                content: vec![1, 2, 3, 4],
            },
            Attachment {
                filename: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                disposition: Disposition::Attachment,
                content_id: None,
                content: b"%PDF-1.4".to_vec(),
            },
        ],
        configuration_set: None,
    }
}

#[tokio::test]
async fn a_message_sent_through_moto_arrives_raw_with_our_headers_and_parts() {
    let Some(endpoint) = moto_endpoint() else {
        println!("skipped: PLUNK_TEST_AWS_ENDPOINT not set");
        return;
    };
    let client = client(&endpoint);
    let domain = unique_domain();
    client
        .create_email_identity()
        .email_identity(&domain)
        .send()
        .await
        .expect("create identity");
    let mailer = SesMailer::new(client, Some("plunk-tracking".into()));
    let e = email(&domain);

    let id = mailer.send(&e).await.expect("sent");
    assert!(!id.is_empty());

    let data: serde_json::Value =
        serde_json::from_str(&http_get(&endpoint, "/moto-api/data.json").await).unwrap();
    let sent = data["ses"]["RawMessage"]
        .as_array()
        .expect("ses.RawMessage")
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("our message in moto");
    assert_eq!(sent["source"], e.from.email.as_str());
    assert!(sent["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "ada@example.org"));
    let raw = sent["raw_data"].as_str().unwrap();
    let msg = MessageParser::new().parse(raw.as_bytes()).unwrap();
    assert_eq!(msg.subject(), Some("Your receipt"));
    assert_eq!(
        msg.message_id(),
        Some(format!("{}@{domain}", e.email_id).as_str())
    );
    assert_eq!(
        msg.from().unwrap().first().unwrap().name(),
        Some("Acme Ünited")
    );
    assert_eq!(
        msg.header_raw("List-Unsubscribe").map(str::trim),
        Some("<https://acme.io/u/1>")
    );
    assert_eq!(msg.body_html(0).unwrap(), e.html);
    let parts: Vec<_> = msg.attachments().collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_id(), Some("logo"));
    assert_eq!(parts[0].contents(), [1, 2, 3, 4]);
    assert_eq!(parts[1].attachment_name(), Some("invoice.pdf"));
}

#[tokio::test]
async fn an_unverified_sender_is_a_permanent_error_at_moto() {
    let Some(endpoint) = moto_endpoint() else {
        println!("skipped: PLUNK_TEST_AWS_ENDPOINT not set");
        return;
    };
    let mailer = SesMailer::new(client(&endpoint), None);
    let err = mailer
        .send(&email(&unique_domain()))
        .await
        .expect_err("unverified sender");
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("MessageRejected"), "{err}");
}

#[tokio::test]
async fn moto_has_no_get_account_so_the_send_rate_is_unknown() {
    let Some(endpoint) = moto_endpoint() else {
        println!("skipped: PLUNK_TEST_AWS_ENDPOINT not set");
        return;
    };
    let mailer = SesMailer::new(client(&endpoint), None);
    assert_eq!(mailer.account_send_rate().await, None);
}

#[tokio::test]
async fn the_request_carries_raw_content_the_configuration_set_and_the_email_and_project_tags() {
    let (endpoint, seen) = fake_ses(|_, _| Reply::ok(r#"{"MessageId":"ses-123"}"#)).await;
    let mailer = SesMailer::new(client(&endpoint), Some("default-set".into()));

    let e = email("acme.io");
    assert_eq!(mailer.send(&e).await.unwrap(), "ses-123");
    let mut own_set = email("acme.io");
    own_set.configuration_set = Some("no-tracking".into());
    mailer.send(&own_set).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v2/email/outbound-emails")
    );
    let first: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(first["FromEmailAddress"], "billing@acme.io");
    assert_eq!(first["Destination"]["ToAddresses"][0], "ada@example.org");
    assert_eq!(first["ConfigurationSetName"], "default-set");
    assert_eq!(
        first["EmailTags"],
        serde_json::json!([
            {"Name": "email_id", "Value": e.email_id.to_string()},
            {"Name": "project_id", "Value": e.project_id.to_string()},
        ])
    );
    assert!(first["Content"]["Raw"]["Data"].is_string(), "raw content");
    assert!(first["Content"].get("Simple").is_none());
    let second: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(second["ConfigurationSetName"], "no-tracking");
}

#[tokio::test]
async fn ses_errors_map_to_throttled_permanent_or_transient() {
    let cases = [
        (429, "TooManyRequestsException", "throttled"),
        (400, "LimitExceededException", "throttled"),
        (400, "MessageRejected", "permanent"),
        (400, "MailFromDomainNotVerifiedException", "permanent"),
        (400, "AccountSuspendedException", "permanent"),
        (400, "SendingPausedException", "permanent"),
        (400, "BadRequestException", "permanent"),
        (500, "InternalFailure", "transient"),
        (503, "ServiceUnavailable", "transient"),
    ];
    for (status, code, expected) in cases {
        let (endpoint, _) = fake_ses(move |_, _| Reply::error(status, code)).await;
        let mailer = SesMailer::new(client(&endpoint), None);
        let err = mailer.send(&email("acme.io")).await.expect_err(code);
        let kind = match err {
            MailError::Throttled(_) => "throttled",
            MailError::Permanent(_) => "permanent",
            MailError::Transient(_) => "transient",
        };
        assert_eq!(kind, expected, "{status} {code}: {err}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = SesMailer::new(client(&format!("http://127.0.0.1:{port}")), None);
    let err = mailer.send(&email("acme.io")).await.expect_err("no server");
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn the_account_send_rate_comes_from_get_account() {
    let (endpoint, seen) = fake_ses(|_, _| {
        Reply::ok(r#"{"SendQuota":{"Max24HourSend":50000,"MaxSendRate":14,"SentLast24Hours":3}}"#)
    })
    .await;
    let mailer = SesMailer::new(client(&endpoint), None);
    assert_eq!(mailer.account_send_rate().await, Some(14.0));
    let seen = seen.lock().unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/v2/email/account")
    );
}

#[tokio::test]
async fn a_failing_get_account_gives_no_send_rate() {
    let (endpoint, _) = fake_ses(|_, _| Reply::error(500, "InternalFailure")).await;
    let mailer = SesMailer::new(client(&endpoint), None);
    assert_eq!(mailer.account_send_rate().await, None);
}

//! `/webhooks` in-process on both backends, and deliveries to a real local receiver: events from
//! `/v1/track` through the dispatcher and the webhook worker, signed as Standard Webhooks.

mod common;

use common::webhook_receiver::{deliver, receiver, Received};
use common::{test_settings, Backend, TestApp};
use http::{Method, StatusCode};
use plunk_http_kit::Settings;
use plunk_webhooks::signature::{verify, DEFAULT_TOLERANCE};
use plunk_webhooks::WebhookSecret;
use serde_json::{json, Value};
use std::sync::Arc;

async fn private_app(backend: Backend) -> Option<TestApp> {
    TestApp::with_settings(
        backend,
        Settings {
            allow_private_webhooks: true,
            ..test_settings()
        },
    )
    .await
}

fn verifies(received: &Received, secrets: &[&str]) -> bool {
    let header = |n: &str| {
        received
            .headers
            .get(n)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let secrets: Vec<WebhookSecret> = secrets
        .iter()
        .map(|s| WebhookSecret::parse(s).unwrap())
        .collect();
    verify(
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &received.body,
        &header("webhook-signature"),
        &secrets,
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE,
    )
    .is_ok()
}

async fn create(app: &TestApp, body: Value) -> common::TestResponse {
    app.call(Method::POST, "/webhooks", Some(body)).await
}

on_both_backends! {
    async fn webhooks_crud_never_shows_the_secret_again(app: TestApp) {
        let res = create(&app, json!({"url": "https://hooks.acme.io/plunk", "events": ["email.bounce", "email.complaint", "contact.*"]})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let id = res.data()["id"].as_str().unwrap().to_owned();
        let secret = res.data()["secret"].as_str().unwrap();
        assert!(WebhookSecret::parse(secret).is_ok() && secret.starts_with("whsec_"));
        assert_eq!(res.data()["enabled"], json!(true));
        assert_eq!(res.data()["description"], Value::Null);

        let read = app.call(Method::GET, &format!("/webhooks/{id}"), None).await;
        assert_eq!(read.data().get("secret"), None);
        assert_eq!(read.data()["events"], json!(["email.bounce", "email.complaint", "contact.*"]));
        let list = app.call(Method::GET, "/webhooks", None).await;
        assert_eq!(list.data()["items"][0].get("secret"), None);

        let patched = app.call(Method::PATCH, &format!("/webhooks/{id}"), Some(json!({"enabled": false, "description": "CRM"}))).await;
        assert_eq!(patched.data()["enabled"], json!(false));
        assert_eq!(patched.data()["description"], json!("CRM"));
        let patched = app.call(Method::PATCH, &format!("/webhooks/{id}"), Some(json!({"description": null}))).await;
        assert_eq!(patched.data()["description"], Value::Null);

        let gone = app.call(Method::DELETE, &format!("/webhooks/{id}"), None).await;
        assert_eq!(gone.data(), &json!({"id": id, "deleted": true}));
        let missing = app.call(Method::GET, &format!("/webhooks/{id}"), None).await;
        assert_eq!(missing.code(), "WEBHOOK_NOT_FOUND");
    }

    async fn webhook_validation_and_the_limit(app: TestApp) {
        let res = create(&app, json!({"url": "http://10.0.0.5/hook"})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(res.body["error"]["errors"][0]["field"], json!("url"));
        assert_eq!(res.body["error"]["errors"][0]["code"], json!("forbidden_address"));
        let res = create(&app, json!({"url": "ftp://x.io", "events": ["ok", "email*", 3], "description": "d".repeat(501)})).await;
        let fields: Vec<&str> = res.body["error"]["errors"].as_array().unwrap().iter()
            .map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["url", "events[2]", "description"], "items named as sent");
        let res = create(&app, json!({"url": "https://x.io", "events": ["ok", "email*", "ok"]})).await;
        let errors: Vec<(&str, &str)> = res.body["error"]["errors"].as_array().unwrap().iter()
            .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap())).collect();
        assert_eq!(errors, [("events[1]", "invalid_string"), ("events[2]", "duplicate")]);
        let res = create(&app, json!({"url": "https://x.io", "events": []})).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        for i in 0..20 {
            let res = create(&app, json!({"url": format!("https://x.io/{i}")})).await;
            assert_eq!(res.status, StatusCode::CREATED);
        }
        let res = create(&app, json!({"url": "https://x.io/21"})).await;
        assert_eq!(res.code(), "WEBHOOK_LIMIT_REACHED");
    }
}

#[tokio::test]
async fn loopback_targets_need_the_local_flag() {
    let app = TestApp::new().await;
    let res = create(&app, json!({"url": "http://127.0.0.1:9/hook"})).await;
    assert_eq!(
        res.body["error"]["errors"][0]["code"],
        json!("forbidden_address")
    );
    let app = private_app(Backend::Sqlite).await.unwrap();
    let res = create(&app, json!({"url": "http://127.0.0.1:9/hook"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
}

mod delivered {
    use super::*;

    async fn signing_secrets_are_stored_sealed_and_plain_ones_are_sealed_on_the_next_save(
        app: TestApp,
    ) {
        let rx = receiver().await;
        let res = create(&app, json!({"url": rx.url})).await;
        let id: uuid::Uuid = res.data()["id"].as_str().unwrap().parse().unwrap();
        let secret = res.data()["secret"].as_str().unwrap().to_owned();
        let project = app.project.id;
        let (stored, version) = app
            .store
            .webhooks()
            .get(project, id)
            .await
            .unwrap()
            .unwrap();
        let raw = &stored.secrets[0].secret;
        assert!(raw.starts_with("enc1:"), "{raw}");
        let item = serde_json::to_string(&stored).unwrap();
        assert!(!item.contains(&secret) && !item.contains(&secret["whsec_".len()..]));
        // A box over another key cannot open it; the deployment's can.
        assert!(plunk_webhooks::SecretBox::ephemeral()
            .open(&id.to_string(), raw)
            .is_err());
        assert_eq!(
            app.state
                .webhook_secrets
                .open(&id.to_string(), raw)
                .unwrap(),
            secret
        );

        // A secret saved in plain text by an earlier build still signs, and is sealed when the
        // webhook is next saved.
        let legacy = WebhookSecret::generate();
        let mut old = stored.clone();
        old.secrets[0].secret = legacy.expose().to_owned();
        app.store
            .webhooks()
            .save(project, &old, version)
            .await
            .unwrap();
        let sent = app
            .call(Method::POST, &format!("/webhooks/{id}/test"), None)
            .await;
        assert!(sent.status.is_success(), "{}", sent.body);
        deliver(&app).await;
        let seen = rx.seen.lock().unwrap().clone();
        assert!(verifies(&seen[0], &[legacy.expose()]));
        app.call(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(json!({"description": "x"})),
        )
        .await;
        let (resaved, _) = app
            .store
            .webhooks()
            .get(project, id)
            .await
            .unwrap()
            .unwrap();
        assert!(resaved.secrets[0].secret.starts_with("enc1:"));
        assert_eq!(
            app.state
                .webhook_secrets
                .open(&id.to_string(), &resaved.secrets[0].secret)
                .unwrap(),
            legacy.expose()
        );
    }

    async fn matching_events_reach_the_receiver_signed(app: TestApp) {
        let rx = receiver().await;
        let res = create(
            &app,
            json!({"url": rx.url, "events": ["signed_up", "contact.*"]}),
        )
        .await;
        let webhook = res.data()["id"].as_str().unwrap().to_owned();
        let secret = res.data()["secret"].as_str().unwrap().to_owned();
        let public = app.public.clone();
        let tracked = app
            .raw(Method::POST, "/v1/track", Some(&public),
                Some(json!({"event": "signed_up", "email": "ada@example.org", "data": {"plan": "pro"}}).to_string()),
                &[("content-type", "application/json")])
            .await;
        let event_id = tracked.data()["event"].as_str().unwrap().to_owned();
        let contact_id = tracked.data()["contact"].as_str().unwrap().to_owned();
        app.raw(
            Method::POST,
            "/v1/track",
            Some(&public),
            Some(json!({"event": "ignored", "email": "ada@example.org"}).to_string()),
            &[("content-type", "application/json")],
        )
        .await;
        app.dispatch_events().await;
        // The change feed may repeat an event: still one delivery.
        app.dispatch_events().await;
        deliver(&app).await;

        let seen = rx.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "only the matching event");
        let got = &seen[0];
        assert_eq!(got.headers["webhook-id"], event_id.as_str());
        assert_eq!(got.headers["user-agent"], "plunk-webhooks/1");
        assert_eq!(got.headers["content-type"], "application/json");
        assert!(verifies(got, &[&secret]));
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["type"], json!("signed_up"));
        assert_eq!(body["data"]["eventId"], json!(event_id));
        assert_eq!(
            body["data"]["contact"],
            json!({"id": contact_id, "email": "ada@example.org"})
        );
        assert_eq!(body["data"]["data"], json!({"plan": "pro"}));

        let deliveries = app
            .call(
                Method::GET,
                &format!("/webhooks/{webhook}/deliveries"),
                None,
            )
            .await;
        let items = deliveries.data()["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["status"], json!("SUCCEEDED"));
        assert_eq!(items[0]["attempts"], json!(1));
        assert_eq!(items[0]["responseStatus"], json!(200));
        assert_eq!(items[0]["eventType"], json!("signed_up"));
        assert_eq!(items[0].get("payload"), None);
        let one = app
            .call(
                Method::GET,
                &format!(
                    "/webhooks/{webhook}/deliveries/{}",
                    items[0]["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(one.data()["id"], items[0]["id"]);
    }

    async fn rotation_signs_with_both_secrets_and_test_sends_skip_filters(app: TestApp) {
        let rx = receiver().await;
        let res = create(&app, json!({"url": rx.url, "events": ["nothing.matches"]})).await;
        let webhook = res.data()["id"].as_str().unwrap().to_owned();
        let old = res.data()["secret"].as_str().unwrap().to_owned();
        let rotated = app
            .call(
                Method::POST,
                &format!("/webhooks/{webhook}/rotate-secret"),
                Some(json!({"expireCurrentInSeconds": 3600})),
            )
            .await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
        let new = rotated.data()["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(rotated.data()["webhook"]["id"], json!(webhook));

        let test = app
            .call(Method::POST, &format!("/webhooks/{webhook}/test"), None)
            .await;
        assert_eq!(test.status, StatusCode::OK, "{}", test.body);
        assert_eq!(test.data()["status"], json!("PENDING"));
        assert_eq!(test.data()["eventType"], json!("webhook.test"));
        deliver(&app).await;
        let seen = rx.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let signatures = seen[0].headers["webhook-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(verifies(&seen[0], &[&old]) && verifies(&seen[0], &[&new]));
        let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(body["type"], json!("webhook.test"));
        assert_eq!(body["data"]["contact"], Value::Null);
        assert_eq!(body["data"]["data"], json!({"message": "test"}));
        let events = app.call(Method::GET, "/events", None).await;
        assert_eq!(
            events.data()["items"],
            json!([]),
            "test events are not stored"
        );

        // Rotating again with no grace period retires the current secret at once; the first
        // one keeps its hour.
        let third = app
            .call(
                Method::POST,
                &format!("/webhooks/{webhook}/rotate-secret"),
                Some(json!({"expireCurrentInSeconds": 0})),
            )
            .await;
        let third = third.data()["secret"].as_str().unwrap().to_owned();
        app.call(Method::POST, &format!("/webhooks/{webhook}/test"), None)
            .await;
        deliver(&app).await;
        let seen = rx.seen.lock().unwrap().clone();
        assert_eq!(
            seen[1].headers["webhook-signature"]
                .to_str()
                .unwrap()
                .split(' ')
                .count(),
            2
        );
        assert!(verifies(&seen[1], &[&third]) && verifies(&seen[1], &[&old]));
        assert!(!verifies(&seen[1], &[&new]));
        for (value, code) in [
            (json!(604801), "too_big"),
            (json!(-1), "too_small"),
            (json!("1h"), "invalid_type"),
        ] {
            let bad = app
                .call(
                    Method::POST,
                    &format!("/webhooks/{webhook}/rotate-secret"),
                    Some(json!({"expireCurrentInSeconds": value})),
                )
                .await;
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                bad.body["error"]["errors"][0]["code"],
                json!(code),
                "{value}"
            );
        }
    }

    async fn failures_retry_on_schedule_410_disables_and_manual_retry_works(app: TestApp) {
        let rx = receiver().await;
        *rx.status.lock().unwrap() = 500;
        let res = create(&app, json!({"url": rx.url})).await;
        let webhook = res.data()["id"].as_str().unwrap().to_owned();
        let test = app
            .call(Method::POST, &format!("/webhooks/{webhook}/test"), None)
            .await;
        let delivery = test.data()["id"].as_str().unwrap().to_owned();
        deliver(&app).await;
        let path = format!("/webhooks/{webhook}/deliveries/{delivery}");
        let after = app.call(Method::GET, &path, None).await;
        assert_eq!(after.data()["status"], json!("PENDING"));
        assert_eq!(after.data()["attempts"], json!(1));
        assert_eq!(after.data()["responseStatus"], json!(500));
        let last =
            chrono::DateTime::parse_from_rfc3339(after.data()["lastAttemptAt"].as_str().unwrap())
                .unwrap();
        let next =
            chrono::DateTime::parse_from_rfc3339(after.data()["nextAttemptAt"].as_str().unwrap())
                .unwrap();
        let wait = (next - last).num_milliseconds();
        assert!((4_500..=5_500).contains(&wait), "5 s ± 10 %: {wait} ms");

        // A manual retry runs now; the receiver answers 410, which disables the webhook.
        *rx.status.lock().unwrap() = 410;
        let retried = app.call(Method::POST, &format!("{path}/retry"), None).await;
        assert_eq!(retried.data()["status"], json!("PENDING"));
        deliver(&app).await;
        let after = app.call(Method::GET, &path, None).await;
        assert_eq!(after.data()["status"], json!("FAILED"));
        assert_eq!(after.data()["attempts"], json!(2));
        let hook = app
            .call(Method::GET, &format!("/webhooks/{webhook}"), None)
            .await;
        assert_eq!(hook.data()["enabled"], json!(false));
        let failed = app
            .call(
                Method::GET,
                &format!("/webhooks/{webhook}/deliveries?status=FAILED&eventType=webhook.test"),
                None,
            )
            .await;
        assert_eq!(failed.data()["items"].as_array().unwrap().len(), 1);

        // A manual retry of an ended delivery is one attempt: failing again, it ends again.
        app.call(
            Method::PATCH,
            &format!("/webhooks/{webhook}"),
            Some(json!({"enabled": true})),
        )
        .await;
        *rx.status.lock().unwrap() = 500;
        app.call(Method::POST, &format!("{path}/retry"), None).await;
        deliver(&app).await;
        let after = app.call(Method::GET, &path, None).await;
        assert_eq!(after.data()["status"], json!("FAILED"), "no new schedule");
        assert_eq!(after.data()["attempts"], json!(3));
        assert_eq!(after.data()["nextAttemptAt"], Value::Null);
        app.call(
            Method::PATCH,
            &format!("/webhooks/{webhook}"),
            Some(json!({"enabled": false})),
        )
        .await;

        // A disabled webhook's pending deliveries stop without a request.
        let before = rx.seen.lock().unwrap().len();
        app.call(Method::POST, &format!("/webhooks/{webhook}/test"), None)
            .await;
        deliver(&app).await;
        assert_eq!(rx.seen.lock().unwrap().len(), before);
        let missing = app
            .call(
                Method::GET,
                &format!("/webhooks/{webhook}/deliveries/0193a1f2-0000-7000-8000-000000000000"),
                None,
            )
            .await;
        assert_eq!(missing.code(), "WEBHOOK_DELIVERY_NOT_FOUND");
    }

    macro_rules! both {
        ($($name:ident),*) => {$(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::private_app(super::Backend::Sqlite).await.unwrap()).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dynamo() {
                    if let Some(app) = super::private_app(super::Backend::Dynamo).await {
                        super::$name(app).await
                    }
                }
            }
        )*};
    }
    both!(
        signing_secrets_are_stored_sealed_and_plain_ones_are_sealed_on_the_next_save,
        matching_events_reach_the_receiver_signed,
        rotation_signs_with_both_secrets_and_test_sends_skip_filters,
        failures_retry_on_schedule_410_disables_and_manual_retry_works
    );
}

on_both_backends! {
    async fn concurrent_creates_never_pass_twenty_webhooks(app: TestApp) {
        let app = Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..30 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                app.call(
                    Method::POST,
                    "/webhooks",
                    Some(json!({"url": format!("https://hooks{i}.example.com/x")})),
                )
                .await
                .status
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(created, 20);
        let listed = app.call(Method::GET, "/webhooks?limit=100", None).await;
        assert_eq!(listed.data()["items"].as_array().unwrap().len(), 20);
        // Paged 8 at a time, every webhook comes once.
        let mut seen = std::collections::BTreeSet::new();
        let mut path = "/webhooks?limit=8".to_owned();
        loop {
            let page = app.call(Method::GET, &path, None).await;
            for item in page.data()["items"].as_array().unwrap() {
                assert!(seen.insert(item["id"].as_str().unwrap().to_owned()));
            }
            match page.data()["nextCursor"].as_str() {
                Some(cursor) => path = format!("/webhooks?limit=8&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 20);
        // Deleting one frees one place.
        let id = listed.data()["items"][0]["id"].as_str().unwrap().to_owned();
        app.call(Method::DELETE, &format!("/webhooks/{id}"), None).await;
        app.call(Method::DELETE, &format!("/webhooks/{id}"), None).await;
        let one_more = app.call(Method::POST, "/webhooks", Some(json!({"url": "https://late.example.com/x"}))).await;
        assert_eq!(one_more.status, StatusCode::CREATED);
        let too_many = app.call(Method::POST, "/webhooks", Some(json!({"url": "https://later.example.com/x"}))).await;
        assert_eq!(too_many.code(), "WEBHOOK_LIMIT_REACHED");
    }

    async fn test_sends_and_retries_are_bounded_per_minute(app: TestApp) {
        let created = app.call(Method::POST, "/webhooks", Some(json!({"url": "https://hooks.example.com/x"}))).await;
        let id = created.data()["id"].as_str().unwrap().to_owned();
        for i in 0..10 {
            let sent = app.call(Method::POST, &format!("/webhooks/{id}/test"), None).await;
            assert_eq!(sent.status, StatusCode::OK, "call {i}: {}", sent.body);
        }
        let refused = app.call(Method::POST, &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), "RATE_LIMIT_EXCEEDED");
        assert_eq!(refused.body["error"]["details"]["limit"], json!(10));
        assert!(refused.header("retry-after").is_some());
    }

    async fn a_disabled_webhook_refuses_test_sends_and_retries(app: TestApp) {
        let created = app.call(Method::POST, "/webhooks", Some(json!({"url": "https://hooks.example.com/x"}))).await;
        let id = created.data()["id"].as_str().unwrap().to_owned();
        let sent = app.call(Method::POST, &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        let delivery = sent.data()["id"].as_str().unwrap().to_owned();
        let off = app.call(Method::PATCH, &format!("/webhooks/{id}"), Some(json!({"enabled": false}))).await;
        assert_eq!(off.status, StatusCode::OK);

        let test = app.call(Method::POST, &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(test.status, StatusCode::CONFLICT, "{}", test.body);
        assert_eq!(test.code(), "WEBHOOK_DISABLED");
        assert!(test.body["error"]["suggestion"].as_str().unwrap().contains("enabled"));
        let retry = app
            .call(Method::POST, &format!("/webhooks/{id}/deliveries/{delivery}/retry"), None)
            .await;
        assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.body);
        assert_eq!(retry.code(), "WEBHOOK_DISABLED");
        let deliveries = app.call(Method::GET, &format!("/webhooks/{id}/deliveries"), None).await;
        assert_eq!(deliveries.data()["items"].as_array().unwrap().len(), 1, "nothing new queued");
    }
}

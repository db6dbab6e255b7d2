//! `POST /v1/send` and `/emails` in-process: validation, semantics, side effects, idempotency.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

async fn verified_domain(app: &TestApp, domain: &str) {
    let res = app
        .call(Method::POST, "/domains", Some(json!({ "domain": domain })))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let id = res.data()["id"].as_str().unwrap().to_owned();
    let res = app
        .call(Method::POST, &format!("/domains/{id}/verify"), None)
        .await;
    assert_eq!(res.data()["verified"], json!(true), "{}", res.body);
}

async fn template(app: &TestApp, kind: &str) -> String {
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(json!({"name": "T", "subject": "Hi {{ name ?? \"there\" }}", "body": "<p>{{ plan }}</p>",
                "from": "hello@acme.io", "fromName": "Acme", "type": kind})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_inline_send_creates_a_contact_a_pending_email_and_a_queued_job() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": "Ada@Example.org ", "subject": "Your receipt", "body": "<p>Thanks {{ name ?? \"there\" }}!</p>", "from": "billing@acme.io"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let item = &res.data()["emails"][0];
    assert_eq!(item["status"], json!("PENDING"));
    assert_eq!(item["contact"]["email"], json!("ada@example.org"));
    let id = item["email"].as_str().unwrap();
    let email = app.call(Method::GET, &format!("/emails/{id}"), None).await;
    assert_eq!(email.status, StatusCode::OK);
    let e = email.data();
    assert_eq!(e["status"], json!("PENDING"));
    assert_eq!(e["to"], json!("ada@example.org"));
    assert_eq!(e["from"], json!("billing@acme.io"));
    assert_eq!(
        e["fromName"],
        json!("Test"),
        "the project name is the last fallback"
    );
    assert_eq!(e["sourceType"], json!("TRANSACTIONAL"));
    assert_eq!(e["marketing"], json!(false));
    assert_eq!(e["subject"], json!("Your receipt"));
    assert!(e["queuedAt"].is_string());
    let contact = app
        .call(
            Method::GET,
            &format!("/contacts/{}", item["contact"]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        contact.data()["subscribed"],
        json!(false),
        "contacts created by a send are unsubscribed"
    );
}

#[tokio::test]
async fn every_problem_is_reported_and_nothing_is_written() {
    let app = TestApp::new().await;
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": ["a@b.co", "A@B.co", "nope"], "subject": "a\nb", "from": {"email": "x"},
                "headers": {"From": "x"}, "attachments": [{"filename": "x.exe", "content": "aGk=", "contentType": "a/b"}]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
    let fields: Vec<&str> = res.body["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "to[1]",
        "to[2]",
        "subject",
        "template",
        "from.email",
        "headers.From",
        "attachments[0].filename",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    assert_eq!(
        app.store.contacts().counts(app.project.id).await.unwrap(),
        (0, 0)
    );
}

#[tokio::test]
async fn unverified_or_unknown_sender_domains_are_403() {
    let app = TestApp::new().await;
    let body = json!({"to": "a@b.co", "subject": "s", "body": "b", "from": "me@nowhere.io"});
    let res = app.call(Method::POST, "/v1/send", Some(body.clone())).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.code(), "DOMAIN_NOT_VERIFIED");
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "nowhere.io", "reason": "NOT_REGISTERED"})
    );
    app.call(
        Method::POST,
        "/domains",
        Some(json!({"domain": "nowhere.io"})),
    )
    .await;
    let res = app.call(Method::POST, "/v1/send", Some(body)).await;
    assert_eq!(
        res.body["error"]["details"]["reason"],
        json!("NOT_VERIFIED")
    );
    assert_eq!(
        app.store.contacts().counts(app.project.id).await.unwrap(),
        (0, 0)
    );
}

#[tokio::test]
async fn template_sends_resolve_sender_and_refuse_unsubscribed_marketing_recipients() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let missing = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": "a@b.co", "template": "0193a1f3-0000-7000-8000-000000000000"})),
        )
        .await;
    assert_eq!(missing.code(), "TEMPLATE_NOT_FOUND");
    assert_eq!(missing.body["error"]["details"]["field"], json!("template"));

    let marketing = template(&app, "MARKETING").await;
    app.call(
        Method::POST,
        "/contacts",
        Some(json!({"email": "sub@b.co"})),
    )
    .await;
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": ["sub@b.co", "new@b.co"], "template": marketing})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    assert_eq!(res.code(), "CONTACT_UNSUBSCRIBED");
    assert_eq!(res.body["error"]["details"]["emails"], json!(["new@b.co"]));
    assert_eq!(
        app.store.contacts().counts(app.project.id).await.unwrap(),
        (1, 1),
        "nothing written"
    );

    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(
                json!({"to": ["sub@b.co", "new@b.co"], "template": marketing, "subscribed": true}),
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let id = res.data()["emails"][1]["email"].as_str().unwrap();
    let e = app.call(Method::GET, &format!("/emails/{id}"), None).await;
    assert_eq!(e.data()["from"], json!("hello@acme.io"));
    assert_eq!(e.data()["fromName"], json!("Acme"));
    assert_eq!(e.data()["marketing"], json!(true));
    assert_eq!(e.data()["templateId"], json!(marketing));

    let transactional = template(&app, "TRANSACTIONAL").await;
    let res = app
        .call(Method::POST, "/v1/send", Some(json!({"to": "other@b.co", "template": transactional, "from": {"name": "Billing", "email": "billing@acme.io"}})))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let id = res.data()["emails"][0]["email"].as_str().unwrap();
    let e = app.call(Method::GET, &format!("/emails/{id}"), None).await;
    assert_eq!(
        (e.data()["from"].clone(), e.data()["fromName"].clone()),
        (json!("billing@acme.io"), json!("Billing"))
    );
}

#[tokio::test]
async fn liquid_syntax_errors_are_422_with_a_position() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let res = app
        .call(Method::POST, "/v1/send", Some(json!({"to": "a@b.co", "subject": "ok", "body": "{% if plan %}unclosed", "from": "x@acme.io"})))
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let e = &res.body["error"]["errors"][0];
    assert_eq!(
        (e["field"].clone(), e["code"].clone()),
        (json!("body"), json!("template_syntax"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1, column "),
        "{e}"
    );
}

#[tokio::test]
async fn suppressed_addresses_are_recorded_as_suppressed_and_not_queued() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let email = plunk_domain::EmailAddress::parse("gone@b.co").unwrap();
    app.store
        .suppressions()
        .add(
            app.project.id,
            &email,
            plunk_store::repo::suppressions::SuppressionReason::HardBounce,
            Default::default(),
        )
        .await
        .unwrap();
    let res = app
        .call(Method::POST, "/v1/send", Some(json!({"to": ["gone@b.co", "ok@b.co"], "subject": "s", "body": "b", "from": "x@acme.io"})))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.data()["emails"][0]["status"], json!("SUPPRESSED"));
    assert_eq!(res.data()["emails"][1]["status"], json!("PENDING"));
    let id = res.data()["emails"][0]["email"].as_str().unwrap();
    let e = app.call(Method::GET, &format!("/emails/{id}"), None).await;
    assert_eq!(e.data()["status"], json!("SUPPRESSED"));
    assert!(e.data()["suppressedAt"].is_string());
    let listed = app
        .call(Method::GET, "/emails?status=SUPPRESSED", None)
        .await;
    assert_eq!(listed.data()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_is_replayed_not_repeated() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let body =
        json!({"to": ["a@b.co", "c@d.co"], "subject": "s", "body": "b", "from": "x@acme.io"})
            .to_string();
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "order-42"),
    ];
    let first = app
        .raw(
            Method::POST,
            "/v1/send",
            Some(&app.secret),
            Some(body.clone()),
            &headers,
        )
        .await;
    let second = app
        .raw(
            Method::POST,
            "/v1/send",
            Some(&app.secret),
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, second.body);
    let listed = app.call(Method::GET, "/emails", None).await;
    assert_eq!(
        listed.data()["items"].as_array().unwrap().len(),
        2,
        "no second set of emails"
    );
    // One at a time: the cursor leads to the other one, then ends.
    let first_page = app.call(Method::GET, "/emails?limit=1", None).await;
    let cursor = first_page.data()["nextCursor"].as_str().unwrap().to_owned();
    let second_page = app
        .call(
            Method::GET,
            &format!("/emails?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_ne!(
        first_page.data()["items"][0]["id"],
        second_page.data()["items"][0]["id"]
    );
    assert_eq!(second_page.data()["hasMore"], json!(false));
    let other = app
        .raw(
            Method::POST,
            "/v1/send",
            Some(&app.secret),
            Some(
                json!({"to": "z@b.co", "subject": "s", "body": "b", "from": "x@acme.io"})
                    .to_string(),
            ),
            &headers,
        )
        .await;
    assert_eq!(other.code(), "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn emails_list_filters_and_validates() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let res = app
        .call(Method::POST, "/v1/send", Some(json!({"to": ["a@b.co", "c@d.co"], "subject": "s", "body": "b", "from": "x@acme.io"})))
        .await;
    let contact = res.data()["emails"][0]["contact"]["id"].as_str().unwrap();
    let listed = app
        .call(Method::GET, &format!("/emails?contactId={contact}"), None)
        .await;
    assert_eq!(listed.data()["items"].as_array().unwrap().len(), 1);
    for q in ["status=sent", "contactId=nope", "limit=0"] {
        assert_eq!(
            app.call(Method::GET, &format!("/emails?{q}"), None)
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{q}"
        );
    }
    assert_eq!(
        app.call(Method::GET, "/emails/nope", None).await.code(),
        "EMAIL_NOT_FOUND"
    );
    let (_, other_key) = app.other_project().await;
    let id = res.data()["emails"][0]["email"].as_str().unwrap();
    let foreign = app
        .raw(
            Method::GET,
            &format!("/emails/{id}"),
            Some(&other_key),
            None,
            &[],
        )
        .await;
    assert_eq!(foreign.code(), "EMAIL_NOT_FOUND");
}

#[tokio::test]
async fn a_body_too_large_for_a_table_item_goes_to_blob_storage() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let big = format!("<p>{}</p>", "x".repeat(450_000));
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": "a@b.co", "subject": "s", "body": big, "from": "x@acme.io"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let id: uuid::Uuid = res.data()["emails"][0]["email"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let record = app
        .store
        .emails()
        .get(app.project.id, id)
        .await
        .unwrap()
        .unwrap();
    let content = app
        .store
        .emails()
        .content(app.project.id, &record)
        .await
        .unwrap()
        .unwrap();
    assert!(content.body.is_empty());
    let key = content.body_blob.expect("the body is kept in blob storage");
    let stored = app.state.blobs.get(&key).await.unwrap().unwrap();
    assert_eq!(stored.len(), big.len());
}

#[tokio::test]
async fn an_integer_beyond_64_bits_is_a_422_and_the_key_stays_usable() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let send = |subject: &'static str| {
        let body = json!({"to": "ada@example.org", "subject": subject, "body": "<p>x</p>", "from": "a@acme.io"});
        let app = &app;
        async move {
            app.raw(
                Method::POST,
                "/v1/send",
                Some(&app.secret),
                Some(body.to_string()),
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", "order-1"),
                ],
            )
            .await
        }
    };
    let refused = send("Total {{ 99999999999999999999 }}").await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.body["error"]["errors"][0]["code"],
        json!("template_syntax")
    );
    // The 4xx released the key: the corrected request runs at once.
    let corrected = send("Total {{ 9223372036854775807 }}").await;
    assert_eq!(corrected.status, StatusCode::OK, "{}", corrected.body);
}

#[tokio::test]
async fn a_recipient_whose_data_would_overflow_refuses_the_whole_send_before_any_write() {
    let app = TestApp::new().await;
    verified_domain(&app, "acme.io").await;
    let full = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": "full@example.org", "data": {"blob": "x".repeat(32_000)}})),
        )
        .await;
    assert_eq!(full.status, StatusCode::CREATED, "{}", full.body);
    let mut to: Vec<serde_json::Value> = (0..49)
        .map(|i| json!(format!("r{i}@example.org")))
        .collect();
    to.push(json!("full@example.org"));
    let send = |data: serde_json::Value| {
        let body = json!({"to": to.clone(), "subject": "s", "body": "b", "from": "a@acme.io", "data": data});
        let app = &app;
        async move {
            app.raw(
                Method::POST,
                "/v1/send",
                Some(&app.secret),
                Some(body.to_string()),
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", "batch-1"),
                ],
            )
            .await
        }
    };
    let refused = send(json!({"note": "y".repeat(2_000)})).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["errors"][0]["code"], json!("too_big"));
    assert!(refused.body["error"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("to[49]"));
    // Nothing was written: no email, no new contact.
    let emails = app.call(Method::GET, "/emails", None).await;
    assert_eq!(emails.data()["items"], json!([]));
    let contacts = app.call(Method::GET, "/contacts", None).await;
    assert_eq!(contacts.data()["total"], json!(1));
    // The corrected request (same key) sends each email once.
    let sent = send(json!({"note": "short"})).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.data()["emails"].as_array().unwrap().len(), 50);
    let again = send(json!({"note": "short"})).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/emails?limit=100&cursor={c}"),
            None => "/emails?limit=100".to_owned(),
        };
        let page = app.call(Method::GET, &path, None).await;
        all.extend(page.data()["items"].as_array().unwrap().clone());
        match page.data()["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(all.len(), 50);
}

#[tokio::test]
async fn an_error_echoing_a_huge_member_name_stays_small() {
    let app = TestApp::new().await;
    let name = "X".repeat(100_000);
    let mut headers = serde_json::Map::new();
    headers.insert(name, json!("v"));
    let res = app
        .call(
            Method::POST,
            "/v1/send",
            Some(json!({"to": "a@example.org", "subject": "s", "body": "b", "from": "a@acme.io", "headers": headers})),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.body.to_string().len()
    );
    let field = res.body["error"]["errors"][0]["field"].as_str().unwrap();
    assert!(
        field.starts_with("headers.XXX") && field.chars().count() == 256,
        "{}",
        field.len()
    );
    assert!(
        res.body.to_string().len() < 2_000,
        "the whole answer stays small"
    );
}

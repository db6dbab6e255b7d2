//! Black-box tests of the contacts API and the shared request pipeline, in-process.

mod common;

use common::{Backend, TestApp};
use http::{Method, StatusCode};
use plunk_http_kit::Settings;
use serde_json::{json, Value};
use std::collections::HashSet;

const MISSING_ID: &str = "0193a1f3-0000-7000-8000-000000000000";

async fn create(app: &TestApp, email: &str) -> Value {
    let res = app
        .call(Method::POST, "/contacts", Some(json!({ "email": email })))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    res.data().clone()
}

fn assert_error_envelope(res: &common::TestResponse, status: u16, code: &str) {
    assert_eq!(res.status.as_u16(), status, "{}", res.body);
    assert_eq!(res.body["success"], json!(false));
    assert_eq!(res.code(), code);
    assert_eq!(res.body["error"]["statusCode"], json!(status));
    let request_id = res.header("x-request-id").expect("x-request-id");
    assert_eq!(res.body["error"]["requestId"], json!(request_id));
    assert!(res.body["error"]["suggestion"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(res.body["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 24));
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[tokio::test]
async fn health_needs_no_key_and_carries_a_request_id() {
    let app = TestApp::new().await;
    let res = app
        .raw(
            Method::GET,
            "/health",
            None,
            None,
            &[("x-request-id", "mine")],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.data()["status"], json!("ok"));
    let id = res.header("x-request-id").unwrap();
    assert_ne!(id, "mine", "a client-supplied request id is ignored");
    assert!(res.header("ratelimit-limit").is_none());
}

#[tokio::test]
async fn unknown_paths_are_404_not_found_in_the_envelope() {
    let app = TestApp::new().await;
    let res = app.raw(Method::GET, "/nope", None, None, &[]).await;
    assert_error_envelope(&res, 404, "NOT_FOUND");
    let res = app
        .raw(Method::GET, "/Contacts", Some(&app.secret), None, &[])
        .await;
    assert_error_envelope(&res, 404, "NOT_FOUND");
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow_before_authentication() {
    let app = TestApp::new().await;
    let res = app.raw(Method::PUT, "/contacts", None, None, &[]).await;
    assert_error_envelope(&res, 405, "METHOD_NOT_ALLOWED");
    let allow = res.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let res = app.raw(Method::OPTIONS, "/contacts", None, None, &[]).await;
    assert_error_envelope(&res, 405, "METHOD_NOT_ALLOWED");
    assert!(res.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_trailing_slash_is_ignored() {
    let app = TestApp::new().await;
    let res = app
        .raw(Method::GET, "/contacts/", Some(&app.secret), None, &[])
        .await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401_missing_auth() {
    let app = TestApp::new().await;
    for header in [
        None,
        Some("Basic abc"),
        Some("Bearer"),
        Some("Bearer  two-spaces"),
    ] {
        let headers: Vec<(&str, &str)> = header
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let res = app
            .raw(Method::GET, "/contacts", None, None, &headers)
            .await;
        assert_error_envelope(&res, 401, "MISSING_AUTH");
        assert!(
            res.header("ratelimit-limit").is_none(),
            "failed auth is not counted"
        );
    }
    let res = app
        .raw(
            Method::GET,
            "/contacts",
            None,
            None,
            &[("authorization", &format!("bEaReR {}", app.secret))],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "the scheme is case-insensitive");
}

#[tokio::test]
async fn malformed_unknown_and_revoked_keys_are_401_invalid_api_key() {
    let app = TestApp::new().await;
    let unknown = format!("sk_{}", "A".repeat(43));
    for key in ["sk_short", "nonsense", unknown.as_str()] {
        let res = app
            .raw(Method::GET, "/contacts", Some(key), None, &[])
            .await;
        assert_error_envelope(&res, 401, "INVALID_API_KEY");
    }
    // Every group answers alike (and counts the failure against the source).
    for path in [
        "/domains",
        "/emails",
        "/templates",
        "/events",
        "/suppressions",
        "/webhooks",
        "/segments",
        "/campaigns",
        "/workflows",
    ] {
        let res = app.get_from("203.0.113.9", path, &unknown).await;
        assert_error_envelope(&res, 401, "INVALID_API_KEY");
    }
    let keys = app
        .store
        .projects()
        .keys(app.project.id, false)
        .await
        .unwrap();
    let secret = keys
        .iter()
        .find(|k| k.key_type == plunk_domain::project::KeyType::Secret)
        .unwrap();
    app.store
        .projects()
        .revoke(app.project.id, secret.key_id)
        .await
        .unwrap();
    let res = app
        .raw(Method::GET, "/contacts", Some(&app.secret), None, &[])
        .await;
    assert_error_envelope(&res, 401, "INVALID_API_KEY");
}

#[tokio::test]
async fn a_public_key_on_contacts_is_403_invalid_key_type() {
    let app = TestApp::new().await;
    let res = app
        .raw(Method::GET, "/contacts", Some(&app.public), None, &[])
        .await;
    assert_error_envelope(&res, 403, "INVALID_KEY_TYPE");
}

#[tokio::test]
async fn every_authenticated_response_carries_rate_limit_headers() {
    let app = TestApp::new().await;
    let ok = app.call(Method::GET, "/contacts", None).await;
    let err = app
        .call(Method::GET, &format!("/contacts/{MISSING_ID}"), None)
        .await;
    for res in [&ok, &err] {
        assert_eq!(res.header("ratelimit-limit"), Some("1000"));
        let reset: u32 = res.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    assert_eq!(ok.header("ratelimit-remaining"), Some("999"));
    assert_eq!(err.header("ratelimit-remaining"), Some("998"));
}

#[tokio::test]
async fn the_request_over_the_limit_gets_429_with_retry_after() {
    let app = TestApp::new().await;
    app.store
        .projects()
        .update(app.project.id, |p| {
            p.rate_limit_per_minute = 3;
            Ok(())
        })
        .await
        .unwrap();
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let res = app.call(Method::GET, "/contacts", None).await;
        statuses.push(res.status.as_u16());
        last = Some(res);
    }
    let last = last.unwrap();
    // The minute may roll over mid-test; then the window restarts and all four pass.
    if statuses == [200, 200, 200, 429] {
        assert_error_envelope(&last, 429, "RATE_LIMIT_EXCEEDED");
        assert_eq!(last.header("ratelimit-remaining"), Some("0"));
        assert_eq!(last.header("retry-after"), last.header("ratelimit-reset"));
        let retry: u64 = last.header("retry-after").unwrap().parse().unwrap();
        assert_eq!(
            last.body["error"]["details"],
            json!({ "limit": 3, "retryAfter": retry })
        );
    } else {
        assert!(
            statuses.iter().filter(|s| **s == 429).count() <= 1,
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_disabled_project_refuses_writes_but_serves_reads_and_lookup() {
    let app = TestApp::new().await;
    let contact = create(&app, "ada@example.org").await;
    app.store
        .projects()
        .update(app.project.id, |p| {
            p.disabled = true;
            p.disabled_reason = Some("MANUAL".into());
            Ok(())
        })
        .await
        .unwrap();
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": "new@example.org"})),
        )
        .await;
    assert_error_envelope(&res, 403, "PROJECT_DISABLED");
    assert_eq!(res.body["error"]["details"]["reason"], json!("MANUAL"));
    let id = contact["id"].as_str().unwrap();
    for (method, path) in [
        (Method::PATCH, format!("/contacts/{id}")),
        (Method::DELETE, format!("/contacts/{id}")),
    ] {
        let res = app.call(method, &path, Some(json!({}))).await;
        assert_error_envelope(&res, 403, "PROJECT_DISABLED");
    }
    assert_eq!(
        app.call(Method::GET, &format!("/contacts/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let res = app
        .call(
            Method::POST,
            "/contacts/lookup",
            Some(json!({"emails": ["ada@example.org"]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.data()["found"], json!(["ada@example.org"]));
    assert_eq!(
        app.store.contacts().counts(app.project.id).await.unwrap(),
        (1, 1)
    );
}

#[tokio::test]
async fn bad_bodies_are_400_invalid_request_body() {
    let app = TestApp::new().await;
    let cases: [(&str, Option<&str>); 7] = [
        ("{\"email\":\"a@b.co\"", Some("application/json")),
        (
            "{\"email\":\"a@b.co\",\"email\":\"c@d.co\"}",
            Some("application/json"),
        ),
        ("[]", Some("application/json")),
        ("{\"email\":\"a@b.co\"}", Some("text/plain")),
        ("{\"email\":\"a@b.co\"}", None),
        ("", Some("text/plain")),
        (
            "{\"data\":{\"x\":{\"y\":1,\"y\":2}}}",
            Some("application/json"),
        ),
    ];
    for (body, content_type) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| vec![("content-type", c)])
            .unwrap_or_default();
        let res = app
            .raw(
                Method::POST,
                "/contacts",
                Some(&app.secret),
                Some(body.to_owned()),
                &headers,
            )
            .await;
        assert_error_envelope(&res, 400, "INVALID_REQUEST_BODY");
    }
    let res = app
        .raw(
            Method::POST,
            "/contacts",
            Some(&app.secret),
            Some(r#"{"email":"a@b.co"}"#.into()),
            &[("content-type", "Application/JSON; charset=UTF-8")],
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "media type is case-insensitive with parameters"
    );
}

#[tokio::test]
async fn an_empty_body_is_an_empty_object() {
    let app = TestApp::new().await;
    let res = app
        .raw(Method::POST, "/contacts", Some(&app.secret), None, &[])
        .await;
    assert_error_envelope(&res, 422, "VALIDATION_ERROR");
    assert_eq!(
        res.body["error"]["errors"],
        json!([{"field": "email", "message": "Required", "code": "required"}])
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_the_limit() {
    let settings = Settings {
        body_limit_bytes: 64,
        ..common::test_settings()
    };
    let app = TestApp::with_settings(Backend::Sqlite, settings)
        .await
        .unwrap();
    let body = json!({ "email": "a@b.co", "data": { "pad": "x".repeat(100) } }).to_string();
    let res = app
        .raw(
            Method::POST,
            "/contacts",
            Some(&app.secret),
            Some(body),
            &[("content-type", "application/json")],
        )
        .await;
    assert_error_envelope(&res, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(res.body["error"]["details"], json!({ "limitBytes": 64 }));
    // Size is checked before authentication.
    let res = app
        .raw(
            Method::POST,
            "/contacts",
            None,
            Some("x".repeat(65)),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(res.code(), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn validation_lists_every_field_error_and_writes_nothing() {
    let app = TestApp::new().await;
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({ "email": "not-an-email", "subscribed": "yes", "data": { "a.b": 1, "locale": 3 } })),
        )
        .await;
    assert_error_envelope(&res, 422, "VALIDATION_ERROR");
    let fields: Vec<(&str, &str)> = res.body["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("email", "invalid_string"),
            ("subscribed", "invalid_type"),
            ("data.a.b", "invalid_string"),
            ("data.locale", "invalid_type"),
        ]
    );
    assert_eq!(
        app.store.contacts().counts(app.project.id).await.unwrap(),
        (0, 0)
    );
}

on_both_backends! {
    async fn create_then_update_by_email_reports_meta_and_status(app: TestApp) {
        let res = app
            .call(Method::POST, "/contacts", Some(json!({"email": " Kim@Example.com", "data": {"plan": "free"}})))
            .await;
        assert_eq!(res.status, StatusCode::CREATED);
        let created = res.data().clone();
        assert_eq!(created["email"], json!("kim@example.com"));
        assert_eq!(created["subscribed"], json!(true));
        assert_eq!(created["data"], json!({"plan": "free"}));
        assert_eq!(created["_meta"], json!({"isNew": true, "isUpdate": false}));
        assert!(uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap().get_version_num() == 7);

        let res = app
            .call(Method::POST, "/contacts", Some(json!({"email": "kim@example.com", "subscribed": false})))
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.data()["id"], created["id"]);
        assert_eq!(res.data()["subscribed"], json!(false));
        assert_eq!(res.data()["data"], json!({"plan": "free"}));
        assert_eq!(res.data()["_meta"], json!({"isNew": false, "isUpdate": true}));
        assert_eq!(app.store.contacts().counts(app.project.id).await.unwrap(), (1, 0));

        let id = created["id"].as_str().unwrap();
        let events = app.call(Method::GET, &format!("/contacts/{id}/events"), None).await;
        assert_eq!(events.status, StatusCode::OK, "{}", events.body);
        let items = events.data()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "creating emits no subscription event; the change does");
        assert_eq!(items[0]["name"], json!("contact.unsubscribed"));
        assert_eq!(items[0]["data"], json!({"source": "api"}));
        assert_eq!(items[0]["source"], json!("SYSTEM"));
        assert_eq!(items[0]["contactId"], json!(id));
        assert_eq!(items[0]["contactEmail"], json!("kim@example.com"));
        assert_eq!(items[0]["emailId"], Value::Null);
    }

    async fn patch_applies_the_data_rules_of_the_spec_example(app: TestApp) {
        let res = app
            .call(Method::POST, "/contacts", Some(json!({"email": "ada@example.org", "data": {"name": "Ada", "trial": true, "note": "n"}})))
            .await;
        let id = res.data()["id"].as_str().unwrap().to_owned();
        let before = res.data()["updatedAt"].clone();
        let res = app
            .call(
                Method::PATCH,
                &format!("/contacts/{}", id.to_uppercase()),
                Some(json!({"subscribed": false, "data": {"plan": "team", "trial": null, "note": "", "plunk_id": "x",
                    "code": {"value": "1", "persistent": false}, "tier": {"value": 2, "persistent": true}}})),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["data"], json!({"name": "Ada", "note": "n", "plan": "team", "tier": 2}));
        assert_eq!(res.data()["subscribed"], json!(false));
        assert_ne!(res.data()["updatedAt"], before);
        assert!(res.data().get("_meta").is_none());

        let res = app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"data": null}))).await;
        assert_eq!(res.data()["data"], json!({}));
        let unchanged = app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({}))).await;
        assert_eq!(unchanged.status, StatusCode::OK);
        assert_eq!(unchanged.data(), res.data());
    }

    async fn changing_email_to_a_taken_address_is_409_and_changes_nothing(app: TestApp) {
        create(&app, "ada@example.org").await;
        let kim = create(&app, "kim@example.org").await;
        let id = kim["id"].as_str().unwrap();
        let res = app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"email": "ADA@example.org"}))).await;
        assert_error_envelope(&res, 409, "CONTACT_EMAIL_TAKEN");
        let res = app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"email": "kim2@example.org"}))).await;
        assert_eq!(res.data()["email"], json!("kim2@example.org"));
        let lookup = app
            .call(Method::POST, "/contacts/lookup", Some(json!({"emails": ["kim@example.org", "kim2@example.org"]})))
            .await;
        assert_eq!(lookup.data()["found"], json!(["kim2@example.org"]));
        // The old address is free again.
        assert_eq!(create(&app, "kim@example.org").await["email"], json!("kim@example.org"));
    }

    async fn paging_250_contacts_by_7_returns_each_once_newest_first(app: TestApp) {
        let mut created = Vec::new();
        for i in 0..250 {
            let res = app
                .call(Method::POST, "/contacts", Some(json!({"email": format!("c{i}@example.org"), "subscribed": i % 3 != 0})))
                .await;
            created.push(res.data()["id"].as_str().unwrap().to_owned());
        }
        created.reverse();
        for (filter, expected_total) in [("", 250usize), ("&subscribed=false", 84), ("&subscribed=true", 166)] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/contacts?limit=7{filter}&cursor={c}"),
                    None => format!("/contacts?limit=7{filter}"),
                };
                let res = app.call(Method::GET, &path, None).await;
                assert_eq!(res.status, StatusCode::OK, "{}", res.body);
                let data = res.data();
                if pages == 0 {
                    assert_eq!(data["total"], json!(expected_total));
                } else {
                    assert!(data.get("total").is_none());
                }
                pages += 1;
                for item in data["items"].as_array().unwrap() {
                    seen.push(item["id"].as_str().unwrap().to_owned());
                }
                if data["hasMore"] == json!(false) {
                    assert_eq!(data["nextCursor"], Value::Null);
                    break;
                }
                cursor = Some(data["nextCursor"].as_str().unwrap().to_owned());
            }
            let expected: Vec<String> = created
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let original = 249 - i;
                    match filter {
                        "&subscribed=false" => original % 3 == 0,
                        "&subscribed=true" => original % 3 != 0,
                        _ => true,
                    }
                })
                .map(|(_, id)| id.clone())
                .collect();
            assert_eq!(seen, expected, "filter {filter}");
            assert_eq!(seen.iter().collect::<HashSet<_>>().len(), expected_total);
            assert_eq!(pages, expected_total.div_ceil(7));
        }
    }

    async fn search_matches_substrings_case_insensitively_without_total(app: TestApp) {
        for email in ["alpha@example.org", "beta@example.org", "ALPHONSE@example.org", "gamma@other.org"] {
            create(&app, email).await;
        }
        let mut seen = Vec::new();
        let mut path = "/contacts?search=ALPH&limit=1".to_owned();
        loop {
            let res = app.call(Method::GET, &path, None).await;
            assert!(res.data().get("total").is_none());
            for item in res.data()["items"].as_array().unwrap() {
                seen.push(item["email"].as_str().unwrap().to_owned());
            }
            match res.data()["nextCursor"].as_str() {
                Some(c) => path = format!("/contacts?search=ALPH&limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, vec!["alphonse@example.org", "alpha@example.org"]);
    }

    async fn tampered_or_foreign_cursors_are_400_invalid_cursor(app: TestApp) {
        for i in 0..3 {
            create(&app, &format!("p{i}@example.org")).await;
        }
        let res = app.call(Method::GET, "/contacts?limit=1", None).await;
        let cursor = res.data()["nextCursor"].as_str().unwrap().to_owned();
        let mut tampered = cursor.clone().into_bytes();
        let i = tampered.len() - 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for path in [
            format!("/contacts?limit=1&cursor={tampered}"),
            format!("/contacts?limit=1&cursor={cursor}&subscribed=true"),
            format!("/contacts?limit=1&cursor={cursor}&search=p"),
            "/contacts?cursor=not-a-cursor".to_owned(),
        ] {
            let res = app.call(Method::GET, &path, None).await;
            assert_error_envelope(&res, 400, "INVALID_CURSOR");
        }
        let (_, other_key) = app.other_project().await;
        let res = app
            .raw(Method::GET, &format!("/contacts?limit=1&cursor={cursor}"), Some(&other_key), None, &[])
            .await;
        assert_error_envelope(&res, 400, "INVALID_CURSOR");
        let res = app.call(Method::GET, &format!("/contacts?limit=2&cursor={cursor}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "changing only limit is allowed");
        // An empty cursor is the first page, on every list.
        let first = app.call(Method::GET, "/contacts?limit=1", None).await;
        let empty = app.call(Method::GET, "/contacts?limit=1&cursor=", None).await;
        assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
        assert_eq!(empty.data()["items"], first.data()["items"]);
        for list in ["/emails", "/events", "/templates", "/domains", "/suppressions", "/webhooks"] {
            let res = app.call(Method::GET, &format!("{list}?cursor="), None).await;
            assert_eq!(res.status, StatusCode::OK, "{list}: {}", res.body);
        }
    }

    async fn a_key_of_one_project_never_reads_or_changes_another_projects_contacts(app: TestApp) {
        let mine = create(&app, "mine@example.org").await;
        let id = mine["id"].as_str().unwrap();
        let (other, other_key) = app.other_project().await;
        let as_other = |method: Method, path: String, body: Option<Value>| {
            let key = other_key.clone();
            let app = &app;
            async move {
                app.raw(method, &path, Some(&key), body.map(|b| b.to_string()), &[("content-type", "application/json")]).await
            }
        };
        assert_eq!(as_other(Method::GET, format!("/contacts/{id}"), None).await.code(), "CONTACT_NOT_FOUND");
        assert_eq!(as_other(Method::PATCH, format!("/contacts/{id}"), Some(json!({"subscribed": false}))).await.code(), "CONTACT_NOT_FOUND");
        assert_eq!(as_other(Method::DELETE, format!("/contacts/{id}"), None).await.code(), "CONTACT_NOT_FOUND");
        let list = as_other(Method::GET, "/contacts".into(), None).await;
        assert_eq!(list.data()["items"], json!([]));
        assert_eq!(list.data()["total"], json!(0));
        let lookup = as_other(Method::POST, "/contacts/lookup".into(), Some(json!({"emails": ["mine@example.org"]}))).await;
        assert_eq!(lookup.data()["notFound"], json!(["mine@example.org"]));
        // The same address in the other project is a separate contact.
        let theirs = as_other(Method::POST, "/contacts".into(), Some(json!({"email": "mine@example.org"}))).await;
        assert_eq!(theirs.status, StatusCode::CREATED);
        assert_ne!(theirs.data()["id"], mine["id"]);
        assert_eq!(app.store.contacts().counts(other.id).await.unwrap(), (1, 1));
        let again = app.call(Method::GET, &format!("/contacts/{id}"), None).await;
        assert_eq!(again.data()["subscribed"], json!(true));
    }

    async fn delete_removes_the_contact_and_frees_its_address(app: TestApp) {
        let c = create(&app, "gone@example.org").await;
        let id = c["id"].as_str().unwrap();
        let res = app.call(Method::DELETE, &format!("/contacts/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}));
        assert_eq!(app.call(Method::GET, &format!("/contacts/{id}"), None).await.code(), "CONTACT_NOT_FOUND");
        assert_eq!(app.call(Method::DELETE, &format!("/contacts/{id}"), None).await.code(), "CONTACT_NOT_FOUND");
        assert_eq!(app.store.contacts().counts(app.project.id).await.unwrap(), (0, 0));
        assert_eq!(create(&app, "gone@example.org").await["_meta"]["isNew"], json!(true));
    }
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_404_contact_not_found() {
    let app = TestApp::new().await;
    for path in [
        format!("/contacts/{MISSING_ID}"),
        "/contacts/not-a-uuid".into(),
        "/contacts/%FF".into(),
    ] {
        let res = app.call(Method::GET, &path, None).await;
        assert_error_envelope(&res, 404, "CONTACT_NOT_FOUND");
    }
    let res = app
        .call(
            Method::PATCH,
            "/contacts/nope",
            Some(json!({"subscribed": true})),
        )
        .await;
    assert_error_envelope(&res, 404, "CONTACT_NOT_FOUND");
    let res = app
        .call(
            Method::PATCH,
            "/contacts/nope",
            Some(json!({"subscribed": 1})),
        )
        .await;
    assert_error_envelope(&res, 422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn lookup_places_each_input_as_given() {
    let app = TestApp::new().await;
    create(&app, "kim@example.com").await;
    let res = app
        .call(
            Method::POST,
            "/contacts/lookup",
            Some(json!({"emails": ["Kim@example.com", "nobody@example.com", "not-an-email"]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.data(),
        &json!({"found": ["Kim@example.com"], "notFound": ["nobody@example.com", "not-an-email"]})
    );
}

#[tokio::test]
async fn lookup_validates_the_array() {
    let app = TestApp::new().await;
    let many: Vec<String> = (0..501).map(|i| format!("a{i}@b.co")).collect();
    for (body, field, code) in [
        (json!({}), "emails", "required"),
        (json!({"emails": []}), "emails", "too_small"),
        (json!({"emails": many}), "emails", "too_big"),
        (
            json!({"emails": ["a@b.co", 5]}),
            "emails[1]",
            "invalid_type",
        ),
        (json!({"emails": "a@b.co"}), "emails", "invalid_type"),
    ] {
        let res = app.call(Method::POST, "/contacts/lookup", Some(body)).await;
        assert_error_envelope(&res, 422, "VALIDATION_ERROR");
        assert_eq!(res.body["error"]["errors"][0]["field"], json!(field));
        assert_eq!(res.body["error"]["errors"][0]["code"], json!(code));
    }
}

#[tokio::test]
async fn list_query_values_are_validated() {
    let app = TestApp::new().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("subscribed=yes", "subscribed"),
        ("search=", "search"),
    ] {
        let res = app
            .call(Method::GET, &format!("/contacts?{query}"), None)
            .await;
        assert_error_envelope(&res, 422, "VALIDATION_ERROR");
        assert_eq!(res.body["error"]["errors"][0]["field"], json!(field));
    }
    let res = app.call(Method::GET, "/contacts?limit=1000", None).await;
    assert_eq!(res.status, StatusCode::OK, "large limits are clamped");
}

#[tokio::test]
async fn v1_paths_answer_preflight_and_other_paths_send_no_cors_headers() {
    let app = TestApp::new().await;
    let res = app
        .raw(
            Method::OPTIONS,
            "/v1/track",
            None,
            None,
            &[("origin", "https://a.example")],
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        res.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert_eq!(
        res.header("access-control-allow-headers"),
        Some("Authorization, Content-Type, Idempotency-Key")
    );
    assert_eq!(res.header("access-control-max-age"), Some("86400"));
    assert!(res.header("x-request-id").is_some());
    let res = app.call(Method::GET, "/contacts", None).await;
    assert!(res.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_openapi_document_lists_every_contacts_operation_and_error_code() {
    let app = TestApp::new().await;
    let res = app.raw(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = &res.body["paths"];
    for (path, method) in [
        ("/contacts", "get"),
        ("/contacts", "post"),
        ("/contacts/{id}", "get"),
        ("/contacts/{id}", "patch"),
        ("/contacts/{id}", "delete"),
        ("/contacts/lookup", "post"),
        ("/contacts/{id}/events", "get"),
        ("/health", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert!(paths["/contacts/{id}"]["patch"]["responses"]["409"].is_object());
    let codes = res.body["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(codes.len(), plunk_http_kit::ErrorCode::ALL.len());
}

on_both_backends! {
    async fn contact_events_page_newest_first_and_filter_by_name(app: TestApp) {
        let c = create(&app, "flip@example.org").await;
        let id = c["id"].as_str().unwrap();
        for subscribed in [false, true, false, true, false] {
            app.call(Method::PATCH, &format!("/contacts/{id}"), Some(json!({"subscribed": subscribed}))).await;
        }
        let mut names = Vec::new();
        let mut path = format!("/contacts/{id}/events?limit=2");
        loop {
            let res = app.call(Method::GET, &path, None).await;
            assert_eq!(res.status, StatusCode::OK);
            names.extend(res.data()["items"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()));
            match res.data()["nextCursor"].as_str() {
                Some(c) => path = format!("/contacts/{id}/events?limit=2&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(names, ["contact.unsubscribed", "contact.subscribed", "contact.unsubscribed", "contact.subscribed", "contact.unsubscribed"]);
        let res = app.call(Method::GET, &format!("/contacts/{id}/events?name=contact.subscribed"), None).await;
        assert_eq!(res.data()["items"].as_array().unwrap().len(), 2);
        // A cursor of one contact's events is not valid for another contact's.
        let other = create(&app, "other@example.org").await;
        let res = app.call(Method::GET, &format!("/contacts/{id}/events?limit=1"), None).await;
        let cursor = res.data()["nextCursor"].as_str().unwrap().to_owned();
        let res = app.call(Method::GET, &format!("/contacts/{}/events?limit=1&cursor={cursor}", other["id"].as_str().unwrap()), None).await;
        assert_eq!(res.code(), "INVALID_CURSOR");
        let res = app.call(Method::GET, &format!("/contacts/{MISSING_ID}/events"), None).await;
        assert_eq!(res.code(), "CONTACT_NOT_FOUND");
    }
}

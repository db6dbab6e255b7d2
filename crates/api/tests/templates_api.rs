//! Black-box tests of the templates API, in-process.

mod common;

use common::{TestApp, TestResponse};
use http::{Method, StatusCode};
use plunk_store::keys;
use plunk_store::table::{Condition, Item};
use serde_json::{json, Value};
use std::collections::HashSet;

const MISSING_ID: &str = "0193a0c4-2e11-7a3b-8c45-1d2e3f405162";

/// Claims `name` for the app's project the way the domains API does, so sender checks pass
/// (`verified: true`) or see a registered but unverified domain.
async fn claim_domain(app: &TestApp, name: &str, verified: bool) {
    let body = json!({
        "projectId": app.project.id,
        "domainId": uuid::Uuid::now_v7(),
        "verified": verified,
    });
    app.store
        .table()
        .put(Item::new(keys::domain_name(name), body), Condition::None)
        .await
        .unwrap();
}

/// The spec's example body.
fn welcome() -> Value {
    json!({"name": "Welcome", "subject": "Welcome, {{ data.firstName ?? \"friend\" }}", "type": "MARKETING",
        "body": "<h1>Hi {{ firstName ?? 'there' }}</h1>{% if plan == \"pro\" %}<p>Thanks for going Pro.</p>{% endif %}",
        "from": "hello@acme.io", "fromName": "Acme"})
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

async fn create(app: &TestApp, body: Value) -> Value {
    let res = app.call(Method::POST, "/templates", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data().clone()
}

fn assert_error(res: &TestResponse, status: u16, code: &str) {
    assert_eq!(res.status.as_u16(), status, "{}", res.body);
    assert_eq!(res.body["success"], json!(false));
    assert_eq!(res.code(), code, "{}", res.body);
    assert_eq!(res.body["error"]["statusCode"], json!(status));
    assert!(res.body["error"]["suggestion"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

/// `(field, code)` of every entry of a 422.
fn field_errors(res: &TestResponse) -> Vec<(String, String)> {
    assert_error(res, 422, "VALIDATION_ERROR");
    res.body["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect()
}

/// Every item of a list, following cursors; also returns the number of pages.
async fn list_all(app: &TestApp, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/templates?{query}&cursor={c}"),
            None => format!("/templates?{query}"),
        };
        let res = app.call(Method::GET, &path, None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        pages += 1;
        let data = res.data();
        assert!(
            data.get("total").is_none(),
            "templates lists carry no total"
        );
        items.extend(data["items"].as_array().unwrap().iter().cloned());
        if data["hasMore"] == json!(false) {
            assert_eq!(data["nextCursor"], Value::Null);
            return (items, pages);
        }
        cursor = Some(data["nextCursor"].as_str().unwrap().to_owned());
    }
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|t| t["name"].as_str().unwrap()).collect()
}

on_both_backends! {
    async fn creating_the_spec_example_returns_the_template(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        let res = app.call(Method::POST, "/templates", Some(with(welcome(), json!({"from": " Hello@ACME.io "})))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let t = res.data();
        let id = t["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        assert_eq!(t["name"], json!("Welcome"));
        assert_eq!(t["description"], Value::Null);
        assert_eq!(t["subject"], welcome()["subject"]);
        assert_eq!(t["body"], welcome()["body"]);
        assert_eq!(t["from"], json!("hello@acme.io"));
        assert_eq!(t["fromName"], json!("Acme"));
        assert_eq!(t["replyTo"], Value::Null);
        assert_eq!(t["type"], json!("MARKETING"));
        assert_eq!(t["createdAt"], t["updatedAt"]);
        assert!(t["createdAt"].as_str().unwrap().ends_with('Z'));
        let keys: HashSet<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["id", "name", "description", "subject", "body", "from", "fromName",
            "replyTo", "type", "createdAt", "updatedAt"]));

        let got = app.call(Method::GET, &format!("/templates/{id}"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.data(), t);
        let upper = app.call(Method::GET, &format!("/templates/{}", id.to_uppercase()), None).await;
        assert_eq!(upper.data(), t, "uppercase ids are accepted");
    }

    async fn list_filters_by_type_and_search_newest_first(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        let made = [
            ("Receipt", "TRANSACTIONAL", None, "Your order"),
            ("Welcome", "MARKETING", Some("First mail"), "Hello"),
            ("Order shipped", "TRANSACTIONAL", Some("Sent with the RECEIPT link"), "On its way"),
            ("Newsletter", "HEADLESS", None, "News"),
            ("Invoice", "TRANSACTIONAL", None, "Your receipt #{{ number }}"),
        ];
        for (name, kind, description, subject) in made {
            create(&app, with(welcome(), json!({"name": name, "type": kind, "description": description, "subject": subject}))).await;
        }
        let (all, _) = list_all(&app, "limit=100").await;
        assert_eq!(names(&all), ["Invoice", "Newsletter", "Order shipped", "Welcome", "Receipt"]);
        let (tx, _) = list_all(&app, "type=TRANSACTIONAL").await;
        assert_eq!(names(&tx), ["Invoice", "Order shipped", "Receipt"]);
        // The spec example: type and search together, matching name, description or subject.
        let (found, _) = list_all(&app, "type=TRANSACTIONAL&search=receipt").await;
        assert_eq!(names(&found), ["Invoice", "Order shipped", "Receipt"]);
        let (found, _) = list_all(&app, "search=ReCeIpT").await;
        assert_eq!(names(&found), ["Invoice", "Order shipped", "Receipt"]);
        let (found, _) = list_all(&app, "search=first%20mail").await;
        assert_eq!(names(&found), ["Welcome"]);
        let (found, _) = list_all(&app, "type=HEADLESS&search=receipt").await;
        assert!(found.is_empty());
        let res = app.call(Method::GET, "/templates?type=MARKETING", None).await;
        assert_eq!(res.data()["items"].as_array().unwrap().len(), 1);
        assert_eq!(res.data()["items"][0]["type"], json!("MARKETING"));
        assert_eq!(res.data()["hasMore"], json!(false));
    }

    async fn paging_returns_every_template_once_newest_first(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        let mut created = Vec::new();
        for i in 0..23 {
            let kind = if i % 3 == 0 { "TRANSACTIONAL" } else { "MARKETING" };
            let t = create(&app, with(welcome(), json!({"name": format!("t{i}"), "type": kind}))).await;
            created.push(t["id"].as_str().unwrap().to_owned());
        }
        created.reverse();
        let (all, pages) = list_all(&app, "limit=5").await;
        let ids: Vec<&str> = all.iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, created);
        assert_eq!(pages, 5);
        let (tx, pages) = list_all(&app, "limit=3&type=TRANSACTIONAL").await;
        assert_eq!(tx.len(), 8);
        assert_eq!(pages, 3);
        assert!(tx.iter().all(|t| t["type"] == json!("TRANSACTIONAL")));
        let (found, _) = list_all(&app, "limit=2&search=T1").await;
        assert_eq!(names(&found), ["t19", "t18", "t17", "t16", "t15", "t14", "t13", "t12", "t11", "t10", "t1"]);
    }

    async fn cursors_are_bound_to_project_endpoint_and_filters(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        for i in 0..3 {
            create(&app, with(welcome(), json!({"name": format!("c{i}"), "type": "TRANSACTIONAL"}))).await;
        }
        let res = app.call(Method::GET, "/templates?limit=1&type=TRANSACTIONAL&search=c", None).await;
        let cursor = res.data()["nextCursor"].as_str().unwrap().to_owned();
        for path in [
            format!("/templates?limit=1&cursor={cursor}"),
            format!("/templates?limit=1&type=MARKETING&search=c&cursor={cursor}"),
            format!("/templates?limit=1&type=TRANSACTIONAL&cursor={cursor}"),
            format!("/templates?limit=1&type=TRANSACTIONAL&search=c0&cursor={cursor}"),
            format!("/contacts?limit=1&cursor={cursor}"),
            "/templates?cursor=garbled".to_owned(),
        ] {
            let res = app.call(Method::GET, &path, None).await;
            assert_error(&res, 400, "INVALID_CURSOR");
        }
        let (_, other_key) = app.other_project().await;
        let res = app
            .raw(Method::GET, &format!("/templates?limit=1&type=TRANSACTIONAL&search=c&cursor={cursor}"), Some(&other_key), None, &[])
            .await;
        assert_error(&res, 400, "INVALID_CURSOR");
        // Search is case-insensitive, so its case does not change the filter; limit may change.
        let res = app.call(Method::GET, &format!("/templates?limit=5&type=TRANSACTIONAL&search=C&cursor={cursor}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(names(res.data()["items"].as_array().unwrap()), ["c1", "c0"]);
    }

    async fn patch_changes_any_subset_and_clears_nullable_members(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        claim_domain(&app, "news.acme.io", true).await;
        let t = create(&app, with(welcome(), json!({"description": "d", "replyTo": "help@acme.io"}))).await;
        let id = t["id"].as_str().unwrap();
        let res = app
            .call(Method::PATCH, &format!("/templates/{id}"), Some(json!({"description": null, "fromName": null, "replyTo": null,
                "type": "TRANSACTIONAL", "subject": "New {{ name ?? 'you' }}", "from": "Mail@News.Acme.io"})))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let p = res.data();
        assert_eq!(p["id"], t["id"]);
        assert_eq!(p["description"], Value::Null);
        assert_eq!(p["fromName"], Value::Null);
        assert_eq!(p["replyTo"], Value::Null);
        assert_eq!(p["type"], json!("TRANSACTIONAL"));
        assert_eq!(p["subject"], json!("New {{ name ?? 'you' }}"));
        assert_eq!(p["from"], json!("mail@news.acme.io"));
        assert_eq!(p["body"], t["body"]);
        assert_eq!(p["name"], t["name"]);
        assert_eq!(p["createdAt"], t["createdAt"]);
        assert!(p["updatedAt"].as_str().unwrap() >= t["updatedAt"].as_str().unwrap());
        assert_eq!(app.call(Method::GET, &format!("/templates/{id}"), None).await.data(), p);
        // The type index follows the change.
        let (tx, _) = list_all(&app, "type=TRANSACTIONAL").await;
        assert_eq!(tx.len(), 1);
        let (mk, _) = list_all(&app, "type=MARKETING").await;
        assert!(mk.is_empty());

        // An empty body, or changes that change nothing, leave the template as it is.
        let same = app.call(Method::PATCH, &format!("/templates/{id}"), Some(json!({}))).await;
        assert_eq!(same.status, StatusCode::OK);
        assert_eq!(same.data(), p);
        let empty = app.raw(Method::PATCH, &format!("/templates/{id}"), Some(&app.secret), None, &[]).await;
        assert_eq!(empty.data(), p);
        let noop = app.call(Method::PATCH, &format!("/templates/{id}"), Some(json!({"name": "Welcome", "description": null}))).await;
        assert_eq!(noop.data(), p);
    }

    async fn a_key_of_one_project_never_sees_another_projects_templates(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        let t = create(&app, welcome()).await;
        let id = t["id"].as_str().unwrap();
        let (_, other) = app.other_project().await;
        for (method, path, body) in [
            (Method::GET, format!("/templates/{id}"), None),
            (Method::PATCH, format!("/templates/{id}"), Some(json!({"name": "x"}))),
            (Method::DELETE, format!("/templates/{id}"), None),
            (Method::POST, format!("/templates/{id}/duplicate"), None),
            (Method::GET, format!("/templates/{id}/usage"), None),
        ] {
            let res = app
                .raw(method, &path, Some(&other), body.map(|b: Value| b.to_string()), &[("content-type", "application/json")])
                .await;
            assert_error(&res, 404, "TEMPLATE_NOT_FOUND");
        }
        let list = app.raw(Method::GET, "/templates", Some(&other), None, &[]).await;
        assert_eq!(list.data()["items"], json!([]));
        // The sender domain belongs to the first project: the other one may not use it.
        let res = app
            .raw(Method::POST, "/templates", Some(&other), Some(welcome().to_string()), &[("content-type", "application/json")])
            .await;
        assert_error(&res, 403, "DOMAIN_NOT_VERIFIED");
        assert_eq!(res.body["error"]["details"], json!({"domain": "acme.io", "reason": "NOT_REGISTERED"}));
        assert_eq!(app.call(Method::GET, &format!("/templates/{id}"), None).await.data(), &t);
    }

    async fn delete_duplicate_and_usage(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        let t = create(&app, with(welcome(), json!({"type": "HEADLESS", "description": "d", "replyTo": "r@acme.io"}))).await;
        let id = t["id"].as_str().unwrap();

        let res = app.call(Method::GET, &format!("/templates/{id}/usage"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.data(), &json!({"workflows": [], "canDelete": true}));

        // The spec example: a copy named "Welcome (copy)" with the same content and type.
        let res = app.call(Method::POST, &format!("/templates/{id}/duplicate"), None).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let copy = res.data().clone();
        assert_eq!(copy["name"], json!("Welcome (copy)"));
        assert_ne!(copy["id"], t["id"]);
        for member in ["description", "subject", "body", "from", "fromName", "replyTo", "type"] {
            assert_eq!(copy[member], t[member], "{member}");
        }
        assert_eq!(copy["createdAt"], copy["updatedAt"]);
        let again = app.call(Method::POST, &format!("/templates/{}/duplicate", copy["id"].as_str().unwrap()), None).await;
        assert_eq!(again.data()["name"], json!("Welcome (copy) (copy)"));

        let res = app.call(Method::DELETE, &format!("/templates/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}));
        for (method, path) in [
            (Method::GET, format!("/templates/{id}")),
            (Method::DELETE, format!("/templates/{id}")),
            (Method::GET, format!("/templates/{id}/usage")),
            (Method::POST, format!("/templates/{id}/duplicate")),
        ] {
            assert_error(&app.call(method, &path, None).await, 404, "TEMPLATE_NOT_FOUND");
        }
        let (left, _) = list_all(&app, "limit=10").await;
        assert_eq!(names(&left), ["Welcome (copy) (copy)", "Welcome (copy)"]);
    }
}

#[tokio::test]
async fn an_unclosed_block_is_the_spec_syntax_error() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"body": "{% if plan %}unclosed"}))),
        )
        .await;
    assert_error(&res, 422, "VALIDATION_ERROR");
    assert_eq!(
        res.body["error"]["errors"],
        json!([{"field": "body", "code": "template_syntax",
            "message": "line 1, column 1: 'if' tag is not closed"}])
    );
    let (items, _) = list_all(&app, "limit=10").await;
    assert!(items.is_empty(), "nothing is stored");
}

#[tokio::test]
async fn syntax_errors_are_one_entry_per_failing_field_with_positions() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(
                welcome(),
                json!({"subject": "Hi {{ name | nosuchfilter }}",
                    "body": "<p>ok</p>\n  {% include 'footer' %}"}),
            )),
        )
        .await;
    assert_eq!(
        field_errors(&res),
        pairs(&[("subject", "template_syntax"), ("body", "template_syntax")])
    );
    let errors = &res.body["error"]["errors"];
    assert_eq!(
        errors[0]["message"],
        json!("line 1, column 14: Unknown filter 'nosuchfilter'")
    );
    assert_eq!(
        errors[1]["message"],
        json!("line 2, column 3: The 'include' tag is not supported")
    );
    for (body, message) in [
        (
            "{% render 'x' %}",
            "line 1, column 1: The 'render' tag is not supported",
        ),
        (
            "{% layout 'x' %}",
            "line 1, column 1: The 'layout' tag is not supported",
        ),
        (
            "{{ a ?? b ?? c }}",
            "line 1, column 11: Only one '??' is allowed per output tag",
        ),
        (
            "x\n{% if a ?? 'b' %}y{% endif %}",
            "line 2, column 9: '??' is only allowed in output tags ({{ }}), not in {% %} tags",
        ),
        (
            "{% nosuchtag %}",
            "line 1, column 4: Unknown tag 'nosuchtag'",
        ),
    ] {
        let res = app
            .call(
                Method::POST,
                "/templates",
                Some(with(welcome(), json!({ "body": body }))),
            )
            .await;
        assert_eq!(
            res.body["error"]["errors"],
            json!([{"field": "body", "code": "template_syntax", "message": message}]),
            "{body}"
        );
    }
}

#[tokio::test]
async fn field_rules_list_every_problem_before_syntax_and_domain() {
    let app = TestApp::new().await;
    // No domain at all: field and syntax errors still come first.
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(
                json!({"name": "", "description": "d".repeat(501), "subject": "a\r\nb",
                "body": "{% if x %}", "from": "not-an-email", "fromName": "x".repeat(101),
                "replyTo": "nope", "type": "PROMO"}),
            ),
        )
        .await;
    assert_eq!(
        field_errors(&res),
        pairs(&[
            ("name", "too_small"),
            ("description", "too_big"),
            ("subject", "invalid_string"),
            ("from", "invalid_string"),
            ("fromName", "too_big"),
            ("replyTo", "invalid_string"),
            ("type", "invalid_enum_value"),
            ("body", "template_syntax"),
        ])
    );
    let res = app.call(Method::POST, "/templates", Some(json!({}))).await;
    assert_eq!(
        field_errors(&res),
        pairs(&[
            ("name", "required"),
            ("subject", "required"),
            ("body", "required"),
            ("from", "required")
        ])
    );
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(
                json!({"name": 5, "subject": ["x"], "body": null, "from": "a@acme.io",
                "fromName": "Acme\nInc", "type": "marketing"}),
            ),
        )
        .await;
    assert_eq!(
        field_errors(&res),
        pairs(&[
            ("name", "invalid_type"),
            ("subject", "invalid_type"),
            ("body", "required"),
            ("fromName", "invalid_string"),
            ("type", "invalid_enum_value"),
        ])
    );
    // A syntax error is reported before the sender domain is checked.
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"subject": "{{ x | nope }}"}))),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("subject", "template_syntax")]));
}

#[tokio::test]
async fn lengths_and_sizes_follow_the_spec() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    // Limits are characters, except the body's, which is bytes.
    let t = create(
        &app,
        with(
            welcome(),
            json!({"name": "é".repeat(100), "subject": "ß".repeat(998),
                "description": "d".repeat(500), "fromName": "n".repeat(100), "body": "b"}),
        ),
    )
    .await;
    assert_eq!(t["body"], json!("b"));
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(
                welcome(),
                json!({"name": "n".repeat(101), "subject": "s".repeat(999),
                    "body": "é".repeat(262_145)}),
            )),
        )
        .await;
    assert_eq!(
        field_errors(&res),
        pairs(&[
            ("name", "too_big"),
            ("subject", "too_big"),
            ("body", "too_big")
        ])
    );
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"body": ""}))),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("body", "too_small")]));
    // Bodies within the spec's limit but too large to store inline yet are refused clearly.
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"body": "x".repeat(400_000)}))),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("body", "too_big")]));
    assert!(res.body["error"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("blob storage"));
    // Content that grows when encoded (quotes are escaped in the stored JSON) is measured as
    // stored.
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"body": "\"".repeat(300_000)}))),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("body", "too_big")]));
}

#[tokio::test]
async fn the_sender_domain_must_be_verified_in_the_project() {
    let app = TestApp::new().await;
    let res = app.call(Method::POST, "/templates", Some(welcome())).await;
    assert_error(&res, 403, "DOMAIN_NOT_VERIFIED");
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "acme.io", "reason": "NOT_REGISTERED"})
    );
    claim_domain(&app, "acme.io", false).await;
    let res = app.call(Method::POST, "/templates", Some(welcome())).await;
    assert_error(&res, 403, "DOMAIN_NOT_VERIFIED");
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "acme.io", "reason": "NOT_VERIFIED"})
    );
    // A subdomain is a different domain.
    claim_domain(&app, "acme.io", true).await;
    let res = app
        .call(
            Method::POST,
            "/templates",
            Some(with(welcome(), json!({"from": "a@mail.acme.io"}))),
        )
        .await;
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "mail.acme.io", "reason": "NOT_REGISTERED"})
    );
    create(&app, welcome()).await;
}

#[tokio::test]
async fn patch_checks_fields_syntax_and_a_changed_sender() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    let t = create(&app, welcome()).await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/templates/{id}");

    // The spec examples.
    let res = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"fromName": null, "from": "news@unverified.dev"})),
        )
        .await;
    assert_error(&res, 403, "DOMAIN_NOT_VERIFIED");
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "unverified.dev", "reason": "NOT_REGISTERED"})
    );
    let res = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"subject": "Hi {{ name | nosuchfilter }}"})),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("subject", "template_syntax")]));
    assert_eq!(
        app.call(Method::GET, &path, None).await.data(),
        &t,
        "refused changes change nothing"
    );

    // `null` only where nullable.
    let res = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": null, "subject": null, "body": null, "from": null, "type": null})),
        )
        .await;
    assert_eq!(
        field_errors(&res),
        pairs(&[
            ("name", "invalid_type"),
            ("subject", "invalid_type"),
            ("body", "invalid_type"),
            ("from", "invalid_type"),
            ("type", "invalid_type"),
        ])
    );
    let res = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"body": "{% for x in xs %}", "subject": "ok"})),
        )
        .await;
    assert_eq!(field_errors(&res), pairs(&[("body", "template_syntax")]));

    // An unchanged sender is not checked again, even if its domain lost verification.
    claim_domain(&app, "acme.io", false).await;
    let res = app
        .call(
            Method::PATCH,
            &path,
            Some(json!({"from": "HELLO@acme.io", "name": "Still fine"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.data()["name"], json!("Still fine"));
    let res = app
        .call(Method::PATCH, &path, Some(json!({"from": "other@acme.io"})))
        .await;
    assert_error(&res, 403, "DOMAIN_NOT_VERIFIED");
    assert_eq!(
        res.body["error"]["details"],
        json!({"domain": "acme.io", "reason": "NOT_VERIFIED"})
    );
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_404_template_not_found() {
    let app = TestApp::new().await;
    for path in [
        format!("/templates/{MISSING_ID}"),
        "/templates/not-a-uuid".to_owned(),
        "/templates/%FF".to_owned(),
        format!("/templates/{MISSING_ID}/usage"),
        "/templates/nope/usage".to_owned(),
    ] {
        assert_error(
            &app.call(Method::GET, &path, None).await,
            404,
            "TEMPLATE_NOT_FOUND",
        );
    }
    for (method, path) in [
        (Method::DELETE, format!("/templates/{MISSING_ID}")),
        (Method::DELETE, "/templates/nope".to_owned()),
        (Method::POST, format!("/templates/{MISSING_ID}/duplicate")),
        (Method::POST, "/templates/nope/duplicate".to_owned()),
        (Method::PATCH, format!("/templates/{MISSING_ID}")),
        (Method::PATCH, "/templates/nope".to_owned()),
    ] {
        let res = app.call(method, &path, Some(json!({"name": "x"}))).await;
        assert_error(&res, 404, "TEMPLATE_NOT_FOUND");
    }
    // The body is validated before the id is looked at.
    let res = app
        .call(Method::PATCH, "/templates/nope", Some(json!({"name": 1})))
        .await;
    assert_error(&res, 422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn list_query_values_are_validated() {
    let app = TestApp::new().await;
    for (query, field, code) in [
        ("limit=0", "limit", "too_small"),
        ("limit=x", "limit", "invalid_type"),
        ("type=marketing", "type", "invalid_enum_value"),
        ("type=", "type", "invalid_enum_value"),
        ("search=", "search", "too_small"),
    ] {
        let res = app
            .call(Method::GET, &format!("/templates?{query}"), None)
            .await;
        assert_eq!(field_errors(&res), pairs(&[(field, code)]), "{query}");
    }
    let long = "s".repeat(256);
    let res = app
        .call(Method::GET, &format!("/templates?search={long}"), None)
        .await;
    assert_eq!(field_errors(&res), pairs(&[("search", "too_big")]));
    let res = app.call(Method::GET, "/templates?limit=1000", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.data(),
        &json!({"items": [], "nextCursor": null, "hasMore": false})
    );
}

on_both_backends! {
    async fn pages_of_large_templates_stay_under_the_response_budget(app: TestApp) {
        claim_domain(&app, "acme.io", true).await;
        // Near the inline limit: each item is about 340 KB, which also fits a DynamoDB item.
        for i in 0..10 {
            create(&app, with(welcome(), json!({"name": format!("big{i}"), "body": "x".repeat(340_000)}))).await;
        }
        let res = app.call(Method::GET, "/templates?limit=100", None).await;
        let first = res.data()["items"].as_array().unwrap().len();
        assert!(first < 10, "a page of 3.4 MB of bodies is cut short");
        assert_eq!(res.data()["hasMore"], json!(true));
        let (all, pages) = list_all(&app, "limit=100").await;
        assert_eq!(all.len(), 10);
        assert_eq!(pages, 2);
        let expected: Vec<String> = (0..10).rev().map(|i| format!("big{i}")).collect();
        assert_eq!(names(&all), expected);
    }
}

#[tokio::test]
async fn keys_and_disabled_projects_are_checked_like_every_endpoint() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    let t = create(&app, welcome()).await;
    let id = t["id"].as_str().unwrap();
    let res = app
        .raw(Method::GET, "/templates", Some(&app.public), None, &[])
        .await;
    assert_error(&res, 403, "INVALID_KEY_TYPE");
    let res = app.raw(Method::GET, "/templates", None, None, &[]).await;
    assert_error(&res, 401, "MISSING_AUTH");
    let res = app.raw(Method::PUT, "/templates", None, None, &[]).await;
    assert_error(&res, 405, "METHOD_NOT_ALLOWED");
    let res = app
        .raw(
            Method::GET,
            &format!("/templates/{id}/duplicate"),
            None,
            None,
            &[],
        )
        .await;
    assert_error(&res, 405, "METHOD_NOT_ALLOWED");
    app.store
        .projects()
        .update(app.project.id, |p| {
            p.disabled = true;
            p.disabled_reason = Some("MANUAL".into());
            Ok(())
        })
        .await
        .unwrap();
    for (method, path) in [
        (Method::POST, "/templates".to_owned()),
        (Method::PATCH, format!("/templates/{id}")),
        (Method::DELETE, format!("/templates/{id}")),
        (Method::POST, format!("/templates/{id}/duplicate")),
    ] {
        let res = app.call(method, &path, Some(welcome())).await;
        assert_error(&res, 403, "PROJECT_DISABLED");
    }
    for path in [
        "/templates".to_owned(),
        format!("/templates/{id}"),
        format!("/templates/{id}/usage"),
    ] {
        assert_eq!(
            app.call(Method::GET, &path, None).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_templates_operation() {
    let app = TestApp::new().await;
    let res = app.raw(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let paths = &res.body["paths"];
    for (path, method) in [
        ("/templates", "get"),
        ("/templates", "post"),
        ("/templates/{id}", "get"),
        ("/templates/{id}", "patch"),
        ("/templates/{id}", "delete"),
        ("/templates/{id}/duplicate", "post"),
        ("/templates/{id}/usage", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert!(paths["/templates"]["post"]["responses"]["201"].is_object());
    assert!(paths["/templates/{id}"]["delete"]["responses"]["409"].is_object());
    let schemas = &res.body["components"]["schemas"];
    assert!(schemas["Template"].is_object(), "{}", schemas);
    assert_eq!(
        schemas["TemplateType"]["enum"],
        json!(["TRANSACTIONAL", "MARKETING", "HEADLESS"])
    );
}

#[tokio::test]
async fn preview_renders_as_the_worker_would_with_escaping_and_the_footer() {
    let app = TestApp::new().await;
    let res = app
        .call(
            Method::POST,
            "/templates/preview",
            Some(json!({
                "subject": "Hi {{ name }}",
                "body": "<p>Hello {{ name }}</p>{{ banner | raw }}",
                "data": {"name": "<script>x</script>", "banner": "<b>sale</b>"}
            })),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let data = res.data();
    assert_eq!(data["subject"], json!("Hi <script>x</script>"));
    let html = data["html"].as_str().unwrap();
    assert!(
        html.starts_with("<p>Hello &lt;script&gt;x&lt;/script&gt;</p><b>sale</b>"),
        "{html}"
    );
    // MARKETING by default: the localised footer with placeholder links.
    assert!(
        html.contains("https://preview.invalid/unsubscribe/preview"),
        "{html}"
    );
    assert!(data["text"]
        .as_str()
        .unwrap()
        .contains("Hello <script>x</script>"));

    // TRANSACTIONAL: no footer; a contact's own data and address.
    let contact = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": "kim@example.org", "data": {"plan": "pro"}})),
        )
        .await;
    let id = contact.data()["id"].as_str().unwrap();
    let res = app
        .call(
            Method::POST,
            "/templates/preview",
            Some(json!({"subject": "x", "body": "{{ email }} {{ plan }}", "type": "TRANSACTIONAL", "contactId": id})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.data()["html"], json!("kim@example.org pro"));
}

#[tokio::test]
async fn preview_reports_render_bounds_syntax_and_unknown_contacts() {
    let app = TestApp::new().await;
    let preview = |body: Value| async {
        app.call(Method::POST, "/templates/preview", Some(body))
            .await
    };
    let res = preview(json!({"subject": "s", "body": "{% for i in (1..n) %}x{% endfor %}", "data": {"n": 1_000_000_000}})).await;
    assert_error(&res, 422, "VALIDATION_ERROR");
    assert_eq!(
        field_errors(&res),
        [("body".to_owned(), "template_render".to_owned())]
    );
    assert!(res.body["error"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("loop iterations"));
    let res = preview(json!({"subject": "{{ 9223372036854775807 | plus: 1 }}", "body": "b"})).await;
    assert_eq!(
        field_errors(&res),
        [("subject".to_owned(), "template_render".to_owned())]
    );
    let res = preview(json!({"subject": "{{ 99999999999999999999 }}", "body": "{% for i in (1..100000000) %}{% endfor %}"})).await;
    assert_eq!(
        field_errors(&res),
        [
            ("subject".to_owned(), "template_syntax".to_owned()),
            ("body".to_owned(), "template_syntax".to_owned())
        ]
    );
    let res = preview(json!({"subject": "s", "body": "b", "contactId": MISSING_ID})).await;
    assert_error(&res, 404, "CONTACT_NOT_FOUND");
    let res =
        preview(json!({"subject": "s", "body": "b", "contactId": MISSING_ID, "data": {}})).await;
    assert_eq!(
        field_errors(&res),
        [("data".to_owned(), "custom".to_owned())]
    );
    let res = preview(json!({"subject": "s", "body": "b", "data": {"email": "nope"}})).await;
    assert_eq!(
        field_errors(&res),
        [("data.email".to_owned(), "invalid_string".to_owned())]
    );
}

#[tokio::test]
async fn templates_that_would_crash_or_stall_the_engine_are_refused_at_save() {
    let app = TestApp::new().await;
    claim_domain(&app, "acme.io", true).await;
    for (subject, body) in [
        ("{{ 99999999999999999999 }}", "ok"),
        ("ok", "{% for i in (1..100000000) %}x{% endfor %}"),
        ("ok", &"{% if a %}".repeat(100)),
    ] {
        let res = app
            .call(
                Method::POST,
                "/templates",
                Some(with(welcome(), json!({"subject": subject, "body": body}))),
            )
            .await;
        assert_error(&res, 422, "VALIDATION_ERROR");
        assert!(
            field_errors(&res)
                .iter()
                .all(|(_, code)| code == "template_syntax"),
            "{}",
            res.body
        );
    }
}

//! `/segments` (segments.md) in process on both backends: the create and update rules, STATIC
//! members, the contacts of DYNAMIC segments evaluated with nested groups, event conditions and
//! segment references, queued recounts worked by the scheduler, and tenant isolation.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn pro_condition() -> Value {
    json!({"logic": "AND", "groups": [{"filters": [
        {"field": "data.plan", "operator": "equals", "value": "pro"}]}]})
}

async fn create(app: &TestApp, body: Value) -> Value {
    let res = app.call(Method::POST, "/segments", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.data().clone()
}

async fn contact(app: &TestApp, email: &str, subscribed: bool, data: Value) -> String {
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": email, "subscribed": subscribed, "data": data})),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    res.data()["id"].as_str().unwrap().to_owned()
}

async fn emails_of(app: &TestApp, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let res = app.call(Method::GET, &url, None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        for item in res.data()["items"].as_array().unwrap() {
            out.push(item["email"].as_str().unwrap().to_owned());
        }
        match res.data()["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.sort();
    out
}

fn error_field(res: &common::TestResponse) -> (String, String) {
    let e = &res.body["error"]["errors"][0];
    (
        e["field"].as_str().unwrap_or_default().to_owned(),
        e["code"].as_str().unwrap_or_default().to_owned(),
    )
}

on_both_backends! {
    async fn segments_are_created_read_and_changed_by_the_rules(app: TestApp) {
        let created = create(&app, json!({"name": "Active Pro users", "condition": pro_condition(), "trackMembership": true})).await;
        assert_eq!(created["slug"], "active-pro-users");
        assert_eq!(created["type"], "DYNAMIC");
        assert_eq!(created["memberCount"], 0);
        assert_eq!(created["condition"], pro_condition());
        let id = created["id"].as_str().unwrap().to_owned();

        let res = app.call(Method::POST, "/segments", Some(json!({"name": "Active pro users!", "condition": pro_condition()}))).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
        assert_eq!(res.body["error"]["code"], "SEGMENT_SLUG_TAKEN");
        let res = app.call(Method::POST, "/segments", Some(json!({"name": "Beta", "type": "STATIC", "condition": pro_condition()}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_field(&res).0, "condition");
        let res = app.call(Method::POST, "/segments", Some(json!({"name": "Bad", "condition": {"logic":"AND","groups":[{"filters":[{"field":"subscribed","operator":"within","value":3}]}]}}))).await;
        assert_eq!(error_field(&res), ("condition.groups[0].filters[0].operator".into(), "invalid_operator".into()));
        let res = app.call(Method::POST, "/segments", Some(json!({"name": "No condition"}))).await;
        assert_eq!(error_field(&res), ("condition".into(), "required".into()));

        let res = app.call(Method::PATCH, &format!("/segments/{id}"), Some(json!({"slug": "x"}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_field(&res).0, "slug");
        let res = app.call(Method::PATCH, &format!("/segments/{id}"), Some(json!({"name": "Pro", "description": "paying"}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["name"], "Pro");
        assert_eq!(res.data()["slug"], "active-pro-users", "slugs never change");

        let beta = create(&app, json!({"name": "Beta testers", "type": "STATIC"})).await;
        assert_eq!(beta["condition"], Value::Null);
        let listed = app.call(Method::GET, "/segments?type=STATIC", None).await;
        assert_eq!(listed.data()["items"].as_array().unwrap().len(), 1);
        assert_eq!(listed.data()["items"][0]["id"], beta["id"]);
        let all = app.call(Method::GET, "/segments", None).await;
        assert_eq!(all.data()["items"][0]["id"], beta["id"], "newest first");
        let res = app.call(Method::GET, "/segments?type=nope", None).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Another project sees none of it.
        let (_, other_key) = app.other_project().await;
        let res = app.raw(Method::GET, &format!("/segments/{id}"), Some(&other_key), None, &[]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(res.body["error"]["code"], "SEGMENT_NOT_FOUND");
        let res = app.raw(Method::GET, "/segments", Some(&other_key), None, &[]).await;
        assert_eq!(res.data()["items"], json!([]));
        let res = app.raw(Method::DELETE, &format!("/segments/{id}"), Some(&other_key), None, &[]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }

    async fn static_members_are_added_listed_and_removed(app: TestApp) {
        contact(&app, "a@x.io", true, json!({})).await;
        contact(&app, "b@x.io", true, json!({})).await;
        let beta = create(&app, json!({"name": "Beta", "type": "STATIC"})).await;
        let id = beta["id"].as_str().unwrap();
        let members = format!("/segments/{id}/members");
        let res = app.call(Method::POST, &members, Some(json!({"emails": ["a@x.io"]}))).await;
        assert_eq!(res.data()["added"], json!(["a@x.io"]));
        let res = app.call(Method::POST, &members, Some(json!({"emails": ["a@x.io", "B@x.io", "new@x.io", "gone@x.io"], "createMissing": false}))).await;
        assert_eq!(res.data(), &json!({"added": ["b@x.io"], "alreadyMembers": ["a@x.io"], "created": [], "notFound": ["new@x.io", "gone@x.io"]}));
        let res = app.call(Method::POST, &members, Some(json!({"emails": ["new@x.io"], "createMissing": true, "subscribed": false}))).await;
        assert_eq!(res.data(), &json!({"added": ["new@x.io"], "alreadyMembers": [], "created": ["new@x.io"], "notFound": []}));
        let email = plunk_domain::EmailAddress::parse("new@x.io").unwrap();
        let created = app.store.contacts().get_by_email(app.project.id, &email).await.unwrap().unwrap();
        assert!(!created.subscribed, "created with the subscription asked for");
        let res = app.call(Method::POST, &members, Some(json!({"emails": ["sub@x.io"], "createMissing": true, "subscribed": true}))).await;
        assert_eq!(res.data()["created"], json!(["sub@x.io"]));
        let res = app.call(Method::DELETE, &members, Some(json!({"emails": ["sub@x.io"]}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);

        let res = app.call(Method::GET, &format!("/segments/{id}/contacts?limit=2"), None).await;
        assert_eq!(res.data()["total"], 3);
        assert_eq!(res.data()["items"][0]["email"], "new@x.io", "most recently added first");
        assert_eq!(emails_of(&app, &format!("/segments/{id}/contacts")).await, vec!["a@x.io", "b@x.io", "new@x.io"]);
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 3);

        let res = app.call(Method::DELETE, &members, Some(json!({"emails": ["a@x.io", "z@x.io"]}))).await;
        assert_eq!(res.data(), &json!({"removed": ["a@x.io"], "notMembers": ["z@x.io"]}));
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 2);

        for bad in [json!({"emails": []}), json!({"emails": ["nope"]}), json!({"emails": vec!["a@x.io"; 501]})] {
            let res = app.call(Method::POST, &members, Some(bad)).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        }
        let dynamic = create(&app, json!({"name": "Pro", "condition": pro_condition()})).await;
        let res = app.call(Method::POST, &format!("/segments/{}/members", dynamic["id"].as_str().unwrap()), Some(json!({"emails": ["a@x.io"]}))).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert_eq!(res.body["error"]["code"], "SEGMENT_TYPE_MISMATCH");
        assert_eq!(res.body["error"]["details"], json!({"type": "DYNAMIC", "required": "STATIC"}));
        let res = app.call(Method::POST, &format!("/segments/{id}/compute"), None).await;
        assert_eq!(res.status, StatusCode::CONFLICT);

        // A deleted contact leaves its segments.
        let email = plunk_domain::EmailAddress::parse("b@x.io").unwrap();
        let b = app.store.contacts().get_by_email(app.project.id, &email).await.unwrap().unwrap().id;
        app.call(Method::DELETE, &format!("/contacts/{b}"), None).await;
        app.as_function("scheduler").contact_erasure().work(plunk_domain::Timestamp::now().unix_millis(), 10_000).await.unwrap();
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 1);
        assert_eq!(emails_of(&app, &format!("/segments/{id}/contacts")).await, vec!["new@x.io"]);
    }

    async fn dynamic_segments_match_nested_groups_events_and_other_segments(app: TestApp) {
        for (email, subscribed, plan) in [
            ("pro1@x.io", true, "pro"), ("pro2@x.io", true, "pro"), ("pro3@x.io", false, "pro"),
            ("free1@x.io", true, "free"), ("free2@x.io", true, "free"),
        ] {
            contact(&app, email, subscribed, json!({"plan": plan})).await;
        }
        for email in ["pro1@x.io", "free1@x.io"] {
            let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "upgraded", "email": email}))).await;
            assert_eq!(res.status, StatusCode::OK);
        }
        app.dispatch_events().await;
        let vip = create(&app, json!({"name": "VIP", "type": "STATIC"})).await;
        let vip_id = vip["id"].as_str().unwrap().to_owned();
        app.call(Method::POST, &format!("/segments/{vip_id}/members"), Some(json!({"emails": ["pro2@x.io"]}))).await;

        // Subscribed, and (pro and not VIP) or upgraded in the last day.
        let condition = json!({"logic": "AND", "groups": [
            {"filters": [{"field": "subscribed", "operator": "equals", "value": true}]},
            {"filters": [], "conditions": {"logic": "OR", "groups": [
                {"filters": [
                    {"field": "data.plan", "operator": "equals", "value": "pro"},
                    {"field": "segment", "operator": "notMemberOfSegment", "value": vip_id}]},
                {"filters": [{"field": "event.upgraded", "operator": "triggeredWithin", "value": 1, "unit": "days"}]}
            ]}}
        ]});
        let segment = create(&app, json!({"name": "Targets", "condition": condition})).await;
        let id = segment["id"].as_str().unwrap().to_owned();
        assert_eq!(emails_of(&app, &format!("/segments/{id}/contacts")).await, vec!["free1@x.io", "pro1@x.io"]);

        // A segment naming that one: its members, then narrowed.
        let nested = create(&app, json!({"name": "Targets on pro", "condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "segment", "operator": "memberOfSegment", "value": id},
            {"field": "data.plan", "operator": "equals", "value": "pro"}]}]}})).await;
        let nested_id = nested["id"].as_str().unwrap().to_owned();
        assert_eq!(emails_of(&app, &format!("/segments/{nested_id}/contacts")).await, vec!["pro1@x.io"]);

        // Reference rules: unknown, cycle; and the referenced one cannot go.
        let unknown = uuid::Uuid::now_v7();
        let res = app.call(Method::POST, "/segments", Some(json!({"name": "x", "condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "segment", "operator": "memberOfSegment", "value": unknown}]}]}}))).await;
        assert_eq!(error_field(&res), ("condition.groups[0].filters[0].value".into(), "not_found".into()));
        let res = app.call(Method::PATCH, &format!("/segments/{id}"), Some(json!({"condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "segment", "operator": "memberOfSegment", "value": nested_id}]}]}}))).await;
        assert_eq!(error_field(&res), ("condition.groups[0].filters[0].value".into(), "segment_cycle".into()));
        let res = app.call(Method::DELETE, &format!("/segments/{id}"), None).await;
        assert_eq!(res.status, StatusCode::CONFLICT);
        assert_eq!(res.body["error"]["code"], "SEGMENT_IN_USE");
        assert_eq!(res.body["error"]["details"]["usedBy"], json!([{"type": "segment", "id": nested_id, "name": "Targets on pro"}]));

        // Counts: queued (coalesced), worked by the scheduler.
        let first = app.call(Method::POST, &format!("/segments/{id}/refresh"), None).await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
        assert_eq!(first.data()["status"], "QUEUED");
        let second = app.call(Method::POST, &format!("/segments/{id}/compute"), None).await;
        assert_eq!(second.data()["requestedAt"], first.data()["requestedAt"], "coalesced");
        let report = plunk_worker::segment_jobs::work(&app.as_function("scheduler"), plunk_domain::Timestamp::now().unix_millis(), 1_000).await.unwrap();
        assert!(report.finished >= 2, "{report:?}");
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 2);
        assert!(read.data()["memberCountUpdatedAt"].is_string());
        assert!(read.data()["lastComputedAt"].is_string());
        let read = app.call(Method::GET, &format!("/segments/{nested_id}"), None).await;
        assert_eq!(read.data()["memberCount"], 1, "a new segment is counted without being asked");

        // Deleting in the right order works; the deleted one is gone.
        let res = app.call(Method::DELETE, &format!("/segments/{nested_id}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let res = app.call(Method::DELETE, &format!("/segments/{id}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let res = app.call(Method::GET, &format!("/segments/{id}/contacts"), None).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }

    async fn a_count_larger_than_a_ticks_budget_spans_ticks(app: TestApp) {
        for i in 0..250 {
            contact(&app, &format!("c{i:03}@x.io"), true, json!({"plan": if i % 5 == 0 { "pro" } else { "free" }})).await;
        }
        let segment = create(&app, json!({"name": "Pro", "condition": pro_condition()})).await;
        let id = segment["id"].as_str().unwrap().to_owned();
        let scheduler = app.as_function("scheduler");
        let mut ticks = 0;
        loop {
            ticks += 1;
            let report = plunk_worker::segment_jobs::work(&scheduler, plunk_domain::Timestamp::now().unix_millis(), 100).await.unwrap();
            if report.finished > 0 || ticks > 10 {
                break;
            }
        }
        assert_eq!(ticks, 3, "100 contacts a tick");
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 50);
    }
}

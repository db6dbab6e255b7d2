//! `POST /v1/track`, `/events` and `/suppressions` in-process, on both backends.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use serde_json::{json, Value};

async fn track(app: &TestApp, key: &str, body: Value) -> common::TestResponse {
    app.raw(
        Method::POST,
        "/v1/track",
        Some(key),
        Some(body.to_string()),
        &[("content-type", "application/json")],
    )
    .await
}

fn field_codes(res: &common::TestResponse) -> Vec<(String, String)> {
    res.body["error"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends! {
    async fn track_with_the_public_key_creates_a_subscribed_contact_and_stores_all_data(app: TestApp) {
        let public = app.public.clone();
        let res = track(&app, &public, json!({"event": " signed_up ", "email": "Kim@Example.com",
            "data": {"plan": "free", "coupon": {"value": "X1", "persistent": false}, "nickname": null, "empty": ""}})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let contact_id = res.data()["contact"].as_str().unwrap().to_owned();
        let event_id = res.data()["event"].as_str().unwrap().to_owned();
        assert!(res.data()["timestamp"].as_str().unwrap().ends_with('Z'));

        let contact = app.call(Method::GET, &format!("/contacts/{contact_id}"), None).await;
        assert_eq!(contact.data()["email"], json!("kim@example.com"));
        assert_eq!(contact.data()["subscribed"], json!(true));
        assert_eq!(contact.data()["data"], json!({"plan": "free"}), "one-shot values are not stored");

        let event = app.call(Method::GET, &format!("/events/{event_id}"), None).await;
        assert_eq!(event.status, StatusCode::OK, "{}", event.body);
        assert_eq!(event.data()["name"], json!("signed_up"));
        assert_eq!(event.data()["source"], json!("API"));
        assert_eq!(event.data()["contactId"], json!(contact_id));
        assert_eq!(event.data()["contactEmail"], json!("kim@example.com"));
        assert_eq!(event.data()["emailId"], Value::Null);
        assert_eq!(event.data()["data"], json!({"plan": "free", "coupon": "X1", "nickname": null, "empty": ""}));
    }

    async fn track_with_subscribed_false_unsubscribes_an_existing_contact_with_an_event(app: TestApp) {
        let secret = app.secret.clone();
        let first = track(&app, &secret, json!({"event": "a", "email": "kim@example.com"})).await;
        let contact_id = first.data()["contact"].as_str().unwrap().to_owned();
        let res = track(&app, &secret, json!({"event": "order.shipped", "email": "kim@example.com",
            "subscribed": false, "data": {"lastOrder": "A-1001"}})).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["contact"], json!(contact_id), "same contact");
        let events = app.call(Method::GET, &format!("/contacts/{contact_id}/events"), None).await;
        let mut names: Vec<&str> = events.data()["items"].as_array().unwrap().iter()
            .map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names.pop(), Some("a"), "oldest last");
        // Both come from the one request; their relative order is not specified.
        names.sort();
        assert_eq!(names, ["contact.unsubscribed", "order.shipped"]);
        // An existing contact's subscription changes only when given.
        track(&app, &secret, json!({"event": "b", "email": "kim@example.com"})).await;
        let contact = app.call(Method::GET, &format!("/contacts/{contact_id}"), None).await;
        assert_eq!(contact.data()["subscribed"], json!(false));
    }

    async fn track_rejects_reserved_and_malformed_names_and_writes_nothing(app: TestApp) {
        let public = app.public.clone();
        for name in ["email.open", "Contact.Subscribed", " segment.vip.entry", "webhook.test"] {
            let res = track(&app, &public, json!({"event": name, "email": "kim@example.com"})).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
            assert_eq!(field_codes(&res), [("event".to_owned(), "reserved_event".to_owned())], "{name}");
            assert_eq!(res.body["error"]["errors"][0]["message"], json!("Cannot track reserved system event"));
        }
        let res = track(&app, &public, json!({"event": "a/b", "email": "nope", "subscribed": 1, "data": {"x.y": 1}})).await;
        let fields: Vec<String> = field_codes(&res).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["event", "email", "subscribed", "data.x.y"]);
        let contacts = app.call(Method::GET, "/contacts", None).await;
        assert_eq!(contacts.data()["items"], json!([]), "nothing written");
        let events = app.call(Method::GET, "/events", None).await;
        assert_eq!(events.data()["items"], json!([]));
    }

    async fn track_replays_with_the_same_idempotency_key(app: TestApp) {
        let public = app.public.clone();
        let body = json!({"event": "signed_up", "email": "kim@example.com"}).to_string();
        let send = |body: String| {
            let app = &app;
            let public = public.clone();
            async move {
                app.raw(Method::POST, "/v1/track", Some(&public), Some(body),
                    &[("content-type", "application/json"), ("idempotency-key", "evt-77")]).await
            }
        };
        let first = send(body.clone()).await;
        let again = send(body).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.data()["event"], first.data()["event"]);
        let other = send(json!({"event": "other", "email": "kim@example.com"}).to_string()).await;
        assert_eq!(other.status, StatusCode::CONFLICT);
        assert_eq!(other.code(), "IDEMPOTENCY_KEY_REUSED");
        let events = app.call(Method::GET, "/events?name=signed_up", None).await;
        assert_eq!(events.data()["items"].as_array().unwrap().len(), 1);

        // The same numbers in other spellings are the same request (README §8).
        let numbered = |n: &str| {
            let app = &app;
            let public = public.clone();
            let body = format!(r#"{{"event": "paid", "email": "kim@example.com", "data": {{"n": {n}, "m": 100}}}}"#);
            async move {
                app.raw(Method::POST, "/v1/track", Some(&public), Some(body),
                    &[("content-type", "application/json"), ("idempotency-key", "evt-78")]).await
            }
        };
        let first = numbered("1").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        for spelling in ["1.0", "1e0", "10e-1"] {
            let again = numbered(spelling).await;
            assert_eq!(again.status, StatusCode::OK, "{spelling}: {}", again.body);
            assert_eq!(again.header("idempotent-replayed"), Some("true"), "{spelling}");
        }
        assert_eq!(numbered("1.5").await.code(), "IDEMPOTENCY_KEY_REUSED");
    }

    async fn events_list_newest_first_with_filters_and_cursors(app: TestApp) {
        let secret = app.secret.clone();
        let mut ids = Vec::new();
        for i in 0..7 {
            let name = if i % 2 == 0 { "even" } else { "odd" };
            let email = format!("p{}@example.com", i % 3);
            let res = track(&app, &secret, json!({"event": name, "email": email})).await;
            ids.push(res.data()["event"].as_str().unwrap().to_owned());
        }
        let mut seen = Vec::new();
        let mut path = "/events?limit=3".to_owned();
        loop {
            let res = app.call(Method::GET, &path, None).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            for e in res.data()["items"].as_array().unwrap() {
                seen.push(e["id"].as_str().unwrap().to_owned());
            }
            match res.data()["nextCursor"].as_str() {
                Some(c) => path = format!("/events?limit=3&cursor={c}"),
                None => break,
            }
        }
        let mut expected = ids.clone();
        expected.reverse();
        assert_eq!(seen, expected);

        let odd = app.call(Method::GET, "/events?name=odd", None).await;
        assert_eq!(odd.data()["items"].as_array().unwrap().len(), 3);
        let contact = app.call(Method::GET, "/contacts?limit=100", None).await;
        let p0 = contact.data()["items"].as_array().unwrap().iter()
            .find(|c| c["email"] == json!("p0@example.com")).unwrap()["id"].as_str().unwrap().to_owned();
        let mine = app.call(Method::GET, &format!("/events?contactId={p0}&name=even"), None).await;
        assert_eq!(mine.data()["items"].as_array().unwrap().len(), 2, "events 0 and 6");

        let bad = app.call(Method::GET, "/events?contactId=nope&limit=0", None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let cursor = app.call(Method::GET, "/events?name=odd&limit=1", None).await;
        let c = cursor.data()["nextCursor"].as_str().unwrap();
        let foreign = app.call(Method::GET, &format!("/events?name=even&cursor={c}"), None).await;
        assert_eq!(foreign.code(), "INVALID_CURSOR", "cursors are bound to their filters");
        let missing = app.call(Method::GET, "/events/0193a1f2-0000-7000-8000-000000000000", None).await;
        assert_eq!(missing.code(), "EVENT_NOT_FOUND");
    }

    async fn names_stats_and_usage_come_from_the_dispatched_counters(app: TestApp) {
        let secret = app.secret.clone();
        for (name, email) in [("signed_up", "a@x.io"), ("signed_up", "b@x.io"), ("signed_up", "a@x.io"), ("paid", "a@x.io")] {
            let res = track(&app, &secret, json!({"event": name, "email": email, "subscribed": true})).await;
            assert_eq!(res.status, StatusCode::OK);
        }
        app.dispatch_events().await;
        let names = app.call(Method::GET, "/events/names", None).await;
        assert_eq!(names.status, StatusCode::OK, "{}", names.body);
        let list = names.data()["names"].as_array().unwrap();
        assert_eq!(list[0]["name"], json!("signed_up"));
        assert_eq!(list[0]["count"], json!(3));
        assert_eq!(list[0]["system"], json!(false));
        assert!(list[0]["lastSeenAt"].as_str().is_some());
        assert_eq!(list[1]["name"], json!("paid"));
        assert_eq!(list.len(), 2);

        let usage = app.call(Method::GET, "/events/signed_up/usage", None).await;
        assert_eq!(usage.data(), &json!({"name": "signed_up", "usedInSegments": [], "usedInWorkflows": [],
            "totalCount": 3, "uniqueContacts": 2, "canDelete": true}));
        // Dispatching again changes nothing: the feed only carries new events.
        app.dispatch_events().await;
        let usage = app.call(Method::GET, "/events/signed_up/usage", None).await;
        assert_eq!(usage.data()["totalCount"], json!(3));

        // A segment and a FILTERED campaign reading `event.paid`: in use, not deletable.
        let condition = json!({"logic": "AND", "groups": [{"filters": [
            {"field": "event.paid", "operator": "triggered"}]}]});
        let segment = app.call(Method::POST, "/segments", Some(json!({"name": "Payers", "condition": condition.clone()}))).await;
        assert_eq!(segment.status, StatusCode::CREATED, "{}", segment.body);
        let domain = app.call(Method::POST, "/domains", Some(json!({"domain": "acme.io"}))).await;
        let domain_id = domain.data()["id"].as_str().unwrap().to_owned();
        app.call(Method::POST, &format!("/domains/{domain_id}/verify"), None).await;
        let campaign = app.call(Method::POST, "/campaigns", Some(json!({"name": "Thanks", "subject": "Thanks",
            "body": "<p>Thanks</p>", "from": "hi@acme.io", "audienceType": "FILTERED", "audienceCondition": condition}))).await;
        assert_eq!(campaign.status, StatusCode::CREATED, "{}", campaign.body);
        let usage = app.call(Method::GET, "/events/paid/usage", None).await;
        assert_eq!(usage.data()["usedInSegments"], json!([
            {"id": segment.data()["id"], "name": "Payers", "type": "segment"},
            {"id": campaign.data()["id"], "name": "Thanks", "type": "campaign"}]));
        assert_eq!(usage.data()["canDelete"], json!(false));
        let res = app.call(Method::DELETE, "/events/paid", None).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "EVENT_IN_USE"));
        assert_eq!(res.body["error"]["details"]["usedInSegments"].as_array().unwrap().len(), 2);
        let usage = app.call(Method::GET, "/events/signed_up/usage", None).await;
        assert_eq!(usage.data()["usedInSegments"], json!([]));

        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let stats = app.call(Method::GET, &format!("/events/stats?startDate={today}"), None).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
        assert_eq!(stats.data()["stats"], json!([{"name": "signed_up", "count": 3}, {"name": "paid", "count": 1}]));
        assert_eq!(stats.data()["startDate"], json!(format!("{today}T00:00:00.000Z")));
        let old = app.call(Method::GET, "/events/stats?startDate=2020-01-01&endDate=2020-02-01", None).await;
        assert_eq!(old.data()["stats"], json!([]));
        let backwards = app.call(Method::GET, "/events/stats?startDate=2026-03-01&endDate=2026-02-01", None).await;
        assert_eq!(backwards.status, StatusCode::UNPROCESSABLE_ENTITY);
        let too_long = app.call(Method::GET, "/events/stats?startDate=2024-01-01&endDate=2026-01-01", None).await;
        assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn deleting_a_name_removes_its_events_in_the_background_and_resets_counters(app: TestApp) {
        let secret = app.secret.clone();
        for email in ["a@x.io", "b@x.io", "c@x.io"] {
            track(&app, &secret, json!({"event": "old_promo", "email": email})).await;
        }
        track(&app, &secret, json!({"event": "keep", "email": "a@x.io"})).await;
        app.dispatch_events().await;

        let reserved = app.call(Method::DELETE, "/events/email.open", None).await;
        assert_eq!(reserved.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field_codes(&reserved), [("name".to_owned(), "reserved_event".to_owned())]);
        let unknown = app.call(Method::DELETE, "/events/never", None).await;
        assert_eq!(unknown.code(), "EVENT_NOT_FOUND");

        let res = app.call(Method::DELETE, "/events/old_promo", None).await;
        assert_eq!(res.data(), &json!({"name": "old_promo", "deleted": true, "deletedCount": 3}));
        let names = app.call(Method::GET, "/events/names", None).await;
        assert_eq!(names.data()["names"].as_array().unwrap().len(), 1, "counters reset");

        let deleted = app.as_function("scheduler").events().work_deletions(10_000).await.unwrap();
        assert_eq!(deleted, 3);
        let left = app.call(Method::GET, "/events", None).await;
        let names: Vec<&str> = left.data()["items"].as_array().unwrap().iter()
            .map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["keep"]);
        // New events of the name count from zero, unique contacts included.
        track(&app, &secret, json!({"event": "old_promo", "email": "a@x.io"})).await;
        app.dispatch_events().await;
        let usage = app.call(Method::GET, "/events/old_promo/usage", None).await;
        assert_eq!(usage.data()["totalCount"], json!(1));
        assert_eq!(usage.data()["uniqueContacts"], json!(1));
    }

    async fn a_name_deleted_right_after_tracking_counts_every_stored_event(app: TestApp) {
        let secret = app.secret.clone();
        // Three events counted, two not yet (the change feed has not run since).
        for email in ["a@x.io", "b@x.io", "c@x.io"] {
            track(&app, &secret, json!({"event": "promo", "email": email})).await;
        }
        app.dispatch_events().await;
        for email in ["d@x.io", "a@x.io"] {
            track(&app, &secret, json!({"event": "promo", "email": email})).await;
        }
        track(&app, &secret, json!({"event": "other", "email": "a@x.io"})).await;
        let res = app.call(Method::DELETE, "/events/promo", None).await;
        assert_eq!(res.data(), &json!({"name": "promo", "deleted": true, "deletedCount": 5}), "{}", res.body);

        // The feed then brings the two older events: they are not counted again.
        app.dispatch_events().await;
        let names = app.call(Method::GET, "/events/names", None).await;
        let listed: Vec<&str> = names.data()["names"].as_array().unwrap().iter()
            .map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(listed, ["other"], "{}", names.body);
        assert_eq!(app.as_function("scheduler").events().work_deletions(10_000).await.unwrap(), 5);

        // Tracked after the deletion: counted from zero.
        track(&app, &secret, json!({"event": "promo", "email": "e@x.io"})).await;
        app.dispatch_events().await;
        let usage = app.call(Method::GET, "/events/promo/usage", None).await;
        assert_eq!(usage.data()["totalCount"], json!(1));

        // Nothing counted yet at all: every stored event is still found.
        for email in ["a@x.io", "b@x.io"] {
            track(&app, &secret, json!({"event": "fresh", "email": email})).await;
        }
        let res = app.call(Method::DELETE, "/events/fresh", None).await;
        assert_eq!(res.data()["deletedCount"], json!(2), "{}", res.body);
    }

    async fn names_that_look_like_fixed_paths_can_be_deleted_and_long_ranges_are_measured_as_asked(app: TestApp) {
        let secret = app.secret.clone();
        track(&app, &secret, json!({"event": "names", "email": "a@x.io"})).await;
        track(&app, &secret, json!({"event": "stats", "email": "a@x.io"})).await;
        app.dispatch_events().await;
        for name in ["names", "stats"] {
            let res = app.call(Method::DELETE, &format!("/events/{name}"), None).await;
            assert_eq!(res.data(), &json!({"name": name, "deleted": true, "deletedCount": 1}), "{}", res.body);
        }
        // 366 days exactly, not at midnight: allowed (the limit is on the range asked for).
        let res = app.call(Method::GET, "/events/stats?startDate=2025-03-01T12:00:00Z&endDate=2026-03-02T12:00:00Z", None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["endDate"], json!("2026-03-03T00:00:00.000Z"));
    }

    async fn events_of_another_project_are_invisible(app: TestApp) {
        let secret = app.secret.clone();
        let res = track(&app, &secret, json!({"event": "mine", "email": "a@x.io"})).await;
        let id = res.data()["event"].as_str().unwrap().to_owned();
        let (_, other) = app.other_project().await;
        let res = app.raw(Method::GET, &format!("/events/{id}"), Some(&other), None, &[]).await;
        assert_eq!(res.code(), "EVENT_NOT_FOUND");
        let res = app.raw(Method::GET, "/events", Some(&other), None, &[]).await;
        assert_eq!(res.data()["items"], json!([]));
    }

    async fn suppressions_are_created_listed_filtered_and_deleted(app: TestApp) {
        let res = app.call(Method::POST, "/suppressions", Some(json!({"email": "Old@Example.com", "note": "asked by phone"}))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let id = res.data()["id"].as_str().unwrap().to_owned();
        assert_eq!(res.data()["email"], json!("old@example.com"));
        assert_eq!(res.data()["reason"], json!("MANUAL"));
        assert_eq!(res.data()["emailId"], Value::Null);
        assert_eq!(res.data()["campaignId"], Value::Null);
        assert_eq!(res.data()["note"], json!("asked by phone"));
        let again = app.call(Method::POST, "/suppressions", Some(json!({"email": "old@example.com"}))).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.data(), res.data(), "the existing entry, unchanged");

        app.call(Method::POST, "/suppressions", Some(json!({"email": "b@example.com"}))).await;
        let list = app.call(Method::GET, "/suppressions?limit=1", None).await;
        assert_eq!(list.data()["items"][0]["email"], json!("b@example.com"), "newest first");
        assert_eq!(list.data()["hasMore"], json!(true));
        let one = app.call(Method::GET, "/suppressions?email=OLD@example.com", None).await;
        assert_eq!(one.data()["items"].as_array().unwrap().len(), 1);
        let bounces = app.call(Method::GET, "/suppressions?reason=HARD_BOUNCE", None).await;
        assert_eq!(bounces.data()["items"], json!([]));
        let bad = app.call(Method::GET, "/suppressions?reason=NOPE", None).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let bad = app.call(Method::POST, "/suppressions", Some(json!({"email": "x", "note": "n".repeat(501)}))).await;
        let fields: Vec<String> = field_codes(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["email", "note"]);

        let gone = app.call(Method::DELETE, &format!("/suppressions/{id}"), None).await;
        assert_eq!(gone.data(), &json!({"id": id, "deleted": true}));
        let again = app.call(Method::DELETE, &format!("/suppressions/{id}"), None).await;
        assert_eq!(again.code(), "SUPPRESSION_NOT_FOUND");
        let one = app.call(Method::GET, "/suppressions?email=old@example.com", None).await;
        assert_eq!(one.data()["items"], json!([]));
    }
}

#[tokio::test]
async fn a_public_key_is_refused_everywhere_but_track() {
    let app = TestApp::new().await;
    let public = app.public.clone();
    for (method, path) in [
        (Method::GET, "/events"),
        (Method::GET, "/suppressions"),
        (Method::POST, "/v1/send"),
    ] {
        let res = app
            .raw(
                method,
                path,
                Some(&public),
                Some("{}".into()),
                &[("content-type", "application/json")],
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(res.code(), "INVALID_KEY_TYPE");
    }
}

#[tokio::test]
async fn track_preflight_allows_any_origin() {
    let app = TestApp::new().await;
    let res = app
        .raw(
            Method::OPTIONS,
            "/v1/track",
            None,
            None,
            &[
                ("origin", "https://shop.example"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn a_project_holds_at_most_ten_thousand_event_names() {
    let app = TestApp::new().await;
    let secret = app.secret.clone();
    // 9,998 names registered before (seeded), one tracked now: 9,999.
    track(&app, &secret, json!({"event": "known", "email": "a@x.io"})).await;
    app.store
        .table()
        .add(
            &plunk_store::keys::event_name_count(app.project.id),
            9_998,
            None,
            None,
        )
        .await
        .unwrap();
    let last = track(
        &app,
        &secret,
        json!({"event": "ten_thousandth", "email": "a@x.io"}),
    )
    .await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    let refused = track(
        &app,
        &secret,
        json!({"event": "one_too_many", "email": "a@x.io"}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_codes(&refused),
        [("event".to_owned(), "too_big".to_owned())]
    );
    // Known names keep working, with either key.
    let public = app.public.clone();
    assert_eq!(
        track(&app, &public, json!({"event": "known", "email": "b@x.io"}))
            .await
            .status,
        StatusCode::OK
    );
    // Deleting a name frees its place.
    app.call(Method::DELETE, "/events/known", None).await;
    let admitted = track(
        &app,
        &secret,
        json!({"event": "one_too_many", "email": "a@x.io"}),
    )
    .await;
    assert_eq!(admitted.status, StatusCode::OK, "{}", admitted.body);
}

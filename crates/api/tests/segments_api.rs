//! `/segments` (segments.md) in process on both backends: the create and update rules, STATIC
//! members, the contacts of DYNAMIC segments evaluated with nested groups, event conditions and
//! segment references, queued recounts worked by the scheduler, and tenant isolation; and
//! materialised membership: counts that follow every contact change through the change feed,
//! entry and exit events of tracked segments (to `GET /events` and a webhook receiver), STATIC
//! memberships moving the DYNAMIC segments that name them, and timers for time-relative
//! conditions.

mod common;

use common::webhook_receiver::{deliver, receiver};
use common::{test_settings, TestApp};
use http::{Method, StatusCode};
use plunk_domain::Timestamp;
use plunk_store::table::{
    Condition as TableCondition, Item, Key, Page, Query, StoreError, Table, WriteOp,
};
use plunk_worker::segments::membership::{update, Batch};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One pass of the scheduler's segment jobs at `now_ms`.
async fn work_jobs(app: &TestApp, now_ms: i64) {
    plunk_worker::segments::jobs::work(&app.as_function("scheduler"), now_ms, 10_000)
        .await
        .unwrap();
}

/// `(contact id, data)` of the stored events named `name`.
async fn events_named(app: &TestApp, name: &str) -> Vec<(String, Value)> {
    let res = app
        .call(Method::GET, &format!("/events?name={name}&limit=100"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["contactId"].as_str().unwrap_or_default().to_owned(),
                e["data"].clone(),
            )
        })
        .collect()
}

async fn member_count(app: &TestApp, id: &str) -> Value {
    let res = app
        .call(Method::GET, &format!("/segments/{id}"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["memberCount"].clone()
}

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

/// A table that interferes with segment upkeep: while `fail` is set it refuses writes of the
/// project's DYNAMIC segment counts (a batch dying between the contacts' writes and its count);
/// while `race` is set, every summary write is followed by a change of its contact's `plan`
/// (an API client changing the contact under every evaluation).
struct Interfering {
    inner: Arc<dyn Table>,
    fail: AtomicBool,
    race: AtomicBool,
}

impl Interfering {
    fn over(inner: Arc<dyn Table>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail: AtomicBool::new(false),
            race: AtomicBool::new(false),
        })
    }
}

#[async_trait::async_trait]
impl Table for Interfering {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, condition: TableCondition) -> Result<(), StoreError> {
        if item.key.sk == "dynamic" && self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("throttled".into()));
        }
        // The summary's contact: same project, same sort key, in the contacts partition.
        let contact = item
            .key
            .pk
            .strip_suffix("#ACTIVITY")
            .map(|project| Key::new(format!("{project}#CONTACTS"), item.key.sk.clone()));
        self.inner.put(item, condition).await?;
        if let (Some(key), true) = (contact, self.race.load(Ordering::SeqCst)) {
            if let Some(mut c) = self.inner.get(&key).await? {
                let version = c.version;
                let plan = if c.body["data"]["plan"] == "pro" {
                    "free"
                } else {
                    "pro"
                };
                c.body["data"]["plan"] = json!(plan);
                self.inner
                    .put(
                        Item {
                            version: version + 1,
                            ..c
                        },
                        TableCondition::VersionEquals(version),
                    )
                    .await?;
            }
        }
        Ok(())
    }
    async fn delete(&self, key: &Key, condition: TableCondition) -> Result<(), StoreError> {
        self.inner.delete(key, condition).await
    }
    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.inner.add(key, delta, max, ttl).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.inner.transact(ops).await
    }
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
        let report = plunk_worker::segments::jobs::work(&app.as_function("scheduler"), plunk_domain::Timestamp::now().unix_millis(), 1_000).await.unwrap();
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
            let report = plunk_worker::segments::jobs::work(&scheduler, plunk_domain::Timestamp::now().unix_millis(), 100).await.unwrap();
            if report.finished > 0 || ticks > 10 {
                break;
            }
        }
        assert_eq!(ticks, 3, "100 contacts a tick");
        let read = app.call(Method::GET, &format!("/segments/{id}"), None).await;
        assert_eq!(read.data()["memberCount"], 50);
    }

    async fn counts_follow_every_change_and_tracked_segments_announce_it(app: TestApp) {
        let mut app = app;
        app.state.settings = Arc::new(plunk_http_kit::Settings { allow_private_webhooks: true, ..test_settings() });
        let rx = receiver().await;
        let res = app.call(Method::POST, "/webhooks", Some(json!({"url": rx.url, "events": ["segment.*"]}))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let a = contact(&app, "a@x.io", true, json!({"plan": "pro"})).await;
        let b = contact(&app, "b@x.io", true, json!({"plan": "free"})).await;
        let tracked = create(&app, json!({"name": "Pro users", "condition": pro_condition(), "trackMembership": true})).await;
        let tracked = tracked["id"].as_str().unwrap().to_owned();
        let quiet = create(&app, json!({"name": "Pro quiet", "condition": pro_condition()})).await;
        let quiet = quiet["id"].as_str().unwrap().to_owned();

        // The first computation sets the baseline: counted, no entry events.
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &tracked).await, 1);
        assert!(events_named(&app, "segment.pro-users.entry").await.is_empty(), "the baseline fires nothing");

        // A contact change reaches the counts through the feed alone (no job runs).
        let res = app.call(Method::PATCH, &format!("/contacts/{b}"), Some(json!({"data": {"plan": "pro"}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &tracked).await, 2);
        assert_eq!(member_count(&app, &quiet).await, 2);
        let entries = events_named(&app, "segment.pro-users.entry").await;
        assert_eq!(entries, vec![(b.clone(), json!({"segmentId": tracked, "segmentName": "Pro users"}))]);
        assert!(events_named(&app, "segment.pro-quiet.entry").await.is_empty(), "untracked segments emit nothing");

        // An event's data changing a contact: it leaves.
        let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "downgraded", "email": "a@x.io", "data": {"plan": "free"}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &tracked).await, 1);
        assert_eq!(events_named(&app, "segment.pro-users.exit").await, vec![(a.clone(), json!({"segmentId": tracked, "segmentName": "Pro users"}))]);
        // A redelivered batch changes nothing.
        app.dispatch_events().await;
        assert_eq!(events_named(&app, "segment.pro-users.exit").await.len(), 1);

        // Both reached the webhook receiver.
        deliver(&app).await;
        let mut types: Vec<String> = rx.seen.lock().unwrap().iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_owned())
            .collect();
        types.sort();
        assert_eq!(types, ["segment.pro-users.entry", "segment.pro-users.exit"]);

        // A STATIC segment named by a tracked DYNAMIC one: joining and leaving it moves that one.
        let vip = create(&app, json!({"name": "VIP", "type": "STATIC"})).await;
        let vip = vip["id"].as_str().unwrap().to_owned();
        let vip_watch = create(&app, json!({"name": "VIP watch", "trackMembership": true, "condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "segment", "operator": "memberOfSegment", "value": vip}]}]}})).await;
        let vip_watch = vip_watch["id"].as_str().unwrap().to_owned();
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        assert_eq!(member_count(&app, &vip_watch).await, 0);
        app.call(Method::POST, &format!("/segments/{vip}/members"), Some(json!({"emails": ["b@x.io"]}))).await;
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &vip_watch).await, 1);
        assert_eq!(events_named(&app, "segment.vip-watch.entry").await.len(), 1);
        app.call(Method::DELETE, &format!("/segments/{vip}/members"), Some(json!({"emails": ["b@x.io"]}))).await;
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &vip_watch).await, 0);
        assert_eq!(events_named(&app, "segment.vip-watch.exit").await, vec![(b.clone(), json!({"segmentId": vip_watch, "segmentName": "VIP watch"}))]);

        // A changed condition: the computation diffs against the members it had.
        let res = app.call(Method::PATCH, &format!("/segments/{tracked}"), Some(json!({"condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "data.plan", "operator": "equals", "value": "free"}]}]}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        assert_eq!(member_count(&app, &tracked).await, 1);
        assert_eq!(events_named(&app, "segment.pro-users.entry").await.len(), 2, "a entered");
        assert_eq!(events_named(&app, "segment.pro-users.exit").await.len(), 2, "b left");

        // An erased contact leaves the counts without an exit event.
        app.call(Method::DELETE, &format!("/contacts/{a}"), None).await;
        app.as_function("scheduler").contact_erasure().work(Timestamp::now().unix_millis(), 10_000).await.unwrap();
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &tracked).await, 0);
        let exits: Vec<String> = events_named(&app, "segment.pro-users.exit").await.into_iter().map(|(c, _)| c).collect();
        assert_eq!(exits, vec![b.clone()], "no exit for the erased contact, whose history went with it");
    }

    async fn time_relative_members_leave_when_their_timer_fires(app: TestApp) {
        let scheduler = app.as_function("scheduler");
        let start = Timestamp::now().unix_millis();
        plunk_worker::segments::timers::work(&scheduler, start, 1_000).await.unwrap();
        let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "login", "email": "c@x.io"}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        app.dispatch_events().await;
        let recent = create(&app, json!({"name": "Recent login", "trackMembership": true, "condition": {"logic": "AND", "groups": [{"filters": [
            {"field": "event.login", "operator": "triggeredWithin", "value": 5, "unit": "minutes"}]}]}})).await;
        let recent = recent["id"].as_str().unwrap().to_owned();
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        assert_eq!(member_count(&app, &recent).await, 1);
        // A login after the baseline: the dispatcher moves the contact in and sets its timer.
        let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "login", "email": "d@x.io"}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &recent).await, 2);
        assert_eq!(events_named(&app, "segment.recent-login.entry").await.len(), 1, "only the one after the baseline");

        // Nothing is due before the boundary; the tick of its minute moves the contacts out.
        let early = plunk_worker::segments::timers::work(&scheduler, start + 4 * 60_000, 1_000).await.unwrap();
        assert_eq!(early.fired, 0, "{early:?}");
        assert_eq!(member_count(&app, &recent).await, 2);
        let due = plunk_worker::segments::timers::work(&scheduler, start + 7 * 60_000, 1_000).await.unwrap();
        assert_eq!((due.fired, due.events), (2, 2), "{due:?}");
        assert_eq!(member_count(&app, &recent).await, 0);
        assert_eq!(events_named(&app, "segment.recent-login.exit").await.len(), 2);
        let read = app.call(Method::GET, &format!("/segments/{recent}"), None).await;
        let kept_to = Timestamp::parse_rfc3339(read.data()["memberCountUpdatedAt"].as_str().unwrap()).unwrap();
        assert!(kept_to.unix_millis() >= start + 6 * 60_000, "the count is kept through the worked timers: {kept_to}");
    }

    async fn a_projects_dynamic_segments_hold_a_bounded_number_of_filters(app: TestApp) {
        // 100 filters: five groups of twenty.
        let hundred = json!({"logic": "OR", "groups": (0..5).map(|g| json!({"filters": (0..20).map(|f|
            json!({"field": format!("data.f{g}_{f}"), "operator": "exists"})).collect::<Vec<_>>()})).collect::<Vec<_>>()});
        let mut first = String::new();
        for i in 0..50 {
            let created = create(&app, json!({"name": format!("Wide {i}"), "condition": hundred})).await;
            if i == 0 {
                first = created["id"].as_str().unwrap().to_owned();
            }
        }
        let res = app.call(Method::POST, "/segments", Some(json!({"name": "One more", "condition": pro_condition()}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        assert_eq!(error_field(&res), ("condition".into(), "too_big".into()));
        assert_eq!(app.call(Method::GET, "/segments?limit=100", None).await.data()["items"].as_array().unwrap().len(), 50, "nothing written");
        // Replacing a segment's own condition counts it once; STATIC segments hold none.
        let res = app.call(Method::PATCH, &format!("/segments/{first}"), Some(json!({"condition": pro_condition()}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        create(&app, json!({"name": "Now it fits", "condition": pro_condition()})).await;
        create(&app, json!({"name": "A list", "type": "STATIC"})).await;
    }

    async fn counts_stay_exact_when_a_batch_fails_before_its_count(app: TestApp) {
        let b = contact(&app, "b@x.io", true, json!({"plan": "free"})).await;
        contact(&app, "a@x.io", true, json!({"plan": "pro"})).await;
        let pro = create(&app, json!({"name": "Pro", "condition": pro_condition()})).await;
        let pro = pro["id"].as_str().unwrap().to_owned();
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        assert_eq!(member_count(&app, &pro).await, 1);
        let project = app.project.id;
        let b: uuid::Uuid = b.parse().unwrap();
        let refusing = Interfering::over(app.store.table().clone());
        refusing.fail.store(true, Ordering::SeqCst);
        let store = plunk_store::Store::new(refusing.clone());

        // b turns pro; the batch writes b's summary, then its count is refused.
        let res = app.call(Method::PATCH, &format!("/contacts/{b}"), Some(json!({"data": {"plan": "pro"}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let batch = Batch::new(&[b"one batch"], Timestamp::now().unix_millis());
        assert!(update(&store, project, &[], &[b], &batch).await.is_err(), "the count was refused");
        assert_eq!(member_count(&app, &pro).await, 1, "not counted yet");

        // The batch comes back under the same key: it finds its move on b and counts it, once.
        refusing.fail.store(false, Ordering::SeqCst);
        let outcome = update(&store, project, &[], &[b], &batch).await.unwrap();
        assert_eq!(outcome.moved, 0, "b's summary already holds the move");
        assert_eq!(member_count(&app, &pro).await, 2);
        update(&store, project, &[], &[b], &batch).await.unwrap();
        assert_eq!(member_count(&app, &pro).await, 2, "a batch is counted once");

        // A counted batch that comes back and finds something new counts that under a key of its
        // own.
        let res = app.call(Method::PATCH, &format!("/contacts/{b}"), Some(json!({"data": {"plan": "free"}}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let outcome = update(&store, project, &[], &[b], &batch).await.unwrap();
        assert_eq!(outcome.moved, 1);
        assert_eq!(member_count(&app, &pro).await, 1);

        // Whatever the feed brings after, the counts are the members.
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &pro).await, 1);
        let res = app.call(Method::POST, &format!("/segments/{pro}/refresh"), None).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        assert_eq!(member_count(&app, &pro).await, 1);
    }


    async fn a_contact_changed_under_every_evaluation_does_not_hold_up_the_batch(app: TestApp) {
        let pro = create(&app, json!({"name": "Pro", "condition": pro_condition()})).await;
        let pro = pro["id"].as_str().unwrap().to_owned();
        work_jobs(&app, Timestamp::now().unix_millis()).await;
        // After the baseline, and not dispatched: evaluated below first.
        let c = contact(&app, "c@x.io", true, json!({"plan": "pro"})).await;
        let project = app.project.id;
        let c: uuid::Uuid = c.parse().unwrap();
        let racing = Interfering::over(app.store.table().clone());
        racing.race.store(true, Ordering::SeqCst);
        let store = plunk_store::Store::new(racing.clone());
        let visit = plunk_domain::event::Event {
            id: uuid::Uuid::now_v7(),
            name: "visit".into(),
            contact_id: Some(c),
            contact_email: Some("c@x.io".into()),
            email_id: None,
            data: serde_json::Map::new(),
            source: plunk_domain::event::EventSource::Api,
            created_at: Timestamp::now(),
        };
        // Every write of c's summary is followed by a change of c that reverses the move: it is
        // decided again and again and finally left to c's next change (which the feed brings),
        // but the batch succeeds, since its event is in the summary from the first write, and
        // the moves it wrote are counted (in, out, in, out, in).
        let batch = Batch::new(&[b"racing"], Timestamp::now().unix_millis());
        let outcome = update(&store, project, std::slice::from_ref(&visit), &[], &batch).await.unwrap();
        assert_eq!((outcome.abandoned, outcome.moved), (1, 5), "{outcome:?}");
        let activity = app.store.activities().get(project, c).await.unwrap();
        assert!(activity.events.contains_key("visit"), "the event is folded in");
        assert_eq!(member_count(&app, &pro).await, 1);
        // c's last change reaches the dispatcher: it leaves, and the count follows.
        app.dispatch_events().await;
        assert_eq!(member_count(&app, &pro).await, 0);
    }

}

//! `/campaigns` (campaigns.md) in process on both backends: the body and audience rules, the
//! state machine, scheduling through the scheduler's due index, the fan-out worked by the
//! scheduler (as the `scheduler` function) and the sends by the real send worker (as the
//! `send-consumer` function), stats that add up, cancellation, test sends and tenant isolation.

mod common;

use async_trait::async_trait;
use common::TestApp;
use http::{Method, StatusCode};
use plunk_domain::email_record::SendClass;
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_store::repo::campaigns::MAX_DUE_PER_MINUTE;
use plunk_worker::campaigns::fanout::FanoutSettings;
use plunk_worker::clock::SystemClock;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::scheduler::Scheduler;
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A provider that records who it sent to.
#[derive(Default)]
struct Provider {
    sent: Mutex<Vec<OutgoingEmail>>,
}

#[async_trait]
impl Mailer for Provider {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        self.sent.lock().unwrap().push(email.clone());
        Ok(format!("msg-{}", email.email_id))
    }
}

async fn verified_domain(app: &TestApp) {
    let created = app
        .call(Method::POST, "/domains", Some(json!({"domain": "acme.io"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    app.call(Method::POST, &format!("/domains/{id}/verify"), None)
        .await;
}

async fn contact(app: &TestApp, email: &str, subscribed: bool, data: Value) {
    let res = app
        .call(
            Method::POST,
            "/contacts",
            Some(json!({"email": email, "subscribed": subscribed, "data": data})),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
}

fn draft(extra: Value) -> Value {
    let mut body = json!({
        "name": "March news",
        "subject": "Hi {{ data.firstName ?? \"there\" }}",
        "body": "<p>Hello {{ data.firstName ?? \"there\" }}</p>",
        "from": "news@acme.io",
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

async fn create(app: &TestApp, body: Value) -> String {
    let res = app.call(Method::POST, "/campaigns", Some(body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.data()["status"], "DRAFT");
    res.data()["id"].as_str().unwrap().to_owned()
}

fn scheduler(app: &TestApp, page: usize) -> Scheduler {
    Scheduler {
        store: app.as_function("scheduler"),
        queues: app.state.send_queues.clone(),
        fanout: FanoutSettings {
            page,
            ..FanoutSettings::for_rate(14.0)
        },
    }
}

fn sender(app: &TestApp, provider: Arc<Provider>) -> SendWorker {
    SendWorker::new(
        app.as_function("send-consumer"),
        provider,
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    )
}

/// Hands every queued email of `class` to the send worker.
async fn drain(app: &TestApp, worker: &SendWorker, class: SendClass) -> usize {
    let queue = app.state.send_queues.of(class).clone();
    let mut handled = 0;
    loop {
        let messages = queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if messages.is_empty() {
            return handled;
        }
        for message in messages {
            let outcome = plunk_worker::consumer::handle(worker, &message.body).await;
            assert_eq!(outcome, Outcome::Done);
            queue.delete(&message.receipt).await.unwrap();
            handled += 1;
        }
    }
}

fn now_ms() -> i64 {
    plunk_domain::Timestamp::now().unix_millis()
}

async fn stats(app: &TestApp, id: &str) -> Value {
    let res = app
        .call(Method::GET, &format!("/campaigns/{id}/stats"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data().clone()
}

fn error_field(res: &common::TestResponse) -> (String, String) {
    let e = &res.body["error"]["errors"][0];
    (
        e["field"].as_str().unwrap_or_default().to_owned(),
        e["code"].as_str().unwrap_or_default().to_owned(),
    )
}

on_both_backends! {
    async fn campaigns_follow_their_body_rules_and_state_machine(app: TestApp) {
        verified_domain(&app).await;
        // Audience cross-rules, segment and sender checks.
        let res = app.call(Method::POST, "/campaigns", Some(draft(json!({"audienceType": "FILTERED"})))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_field(&res), ("audienceCondition".into(), "required".into()));
        let missing = uuid::Uuid::now_v7().to_string();
        let res = app.call(Method::POST, "/campaigns", Some(draft(json!({"audienceType": "SEGMENT", "segmentId": missing})))).await;
        assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "SEGMENT_NOT_FOUND"));
        let res = app.call(Method::POST, "/campaigns", Some(draft(json!({"from": "news@elsewhere.io"})))).await;
        assert_eq!((res.status, res.code()), (StatusCode::FORBIDDEN, "DOMAIN_NOT_VERIFIED"));
        let res = app.call(Method::POST, "/campaigns", Some(draft(json!({"body": "{% if %}"})))).await;
        assert_eq!(error_field(&res), ("body".into(), "template_syntax".into()));
        let res = app.call(Method::GET, "/campaigns", None).await;
        assert_eq!(res.data()["items"], json!([]), "nothing partial was written");

        let id = create(&app, draft(json!({"description": "Monthly"}))).await;
        let res = app.call(Method::PUT, &format!("/campaigns/{id}"), Some(json!({"subject": "New subject", "description": null}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["subject"], "New subject");
        assert_eq!(res.data()["description"], Value::Null);
        assert_eq!(res.data()["stats"]["totalRecipients"], 0);
        let other = create(&app, draft(json!({"name": "Spring sale", "type": "TRANSACTIONAL"}))).await;
        let res = app.call(Method::GET, "/campaigns?search=spring", None).await;
        let names: Vec<&str> = res.data()["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["Spring sale"]);
        // Pages of one, by cursor: newest first.
        let res = app.call(Method::GET, "/campaigns?limit=1", None).await;
        assert_eq!(res.data()["items"][0]["name"], "Spring sale");
        let cursor = res.data()["nextCursor"].as_str().unwrap().to_owned();
        let res = app.call(Method::GET, &format!("/campaigns?limit=1&cursor={cursor}"), None).await;
        assert_eq!(res.data()["items"][0]["id"], id.as_str());
        let res = app.call(Method::GET, "/campaigns?status=SENT", None).await;
        assert_eq!(res.data()["items"], json!([]));
        let res = app.call(Method::GET, "/campaigns?status=sent", None).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Sending now: SENDING (a retry with the same Idempotency-Key replays the answer); then
        // no edits, no delete, no second send.
        let path = format!("/campaigns/{id}/send");
        let headers = [("content-type", "application/json"), ("idempotency-key", "launch-1")];
        let res = app.raw(Method::POST, &path, Some(&app.secret), Some("{}".into()), &headers).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let replay = app.raw(Method::POST, &path, Some(&app.secret), Some("{}".into()), &headers).await;
        assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
        assert_eq!(replay.data()["campaign"]["sentAt"], res.data()["campaign"]["sentAt"]);
        assert_eq!(res.data()["campaign"]["status"], "SENDING");
        assert_eq!(res.data()["message"], "Campaign is being sent");
        let res = app.call(Method::PATCH, &format!("/campaigns/{id}"), Some(json!({"subject": "x"}))).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "CAMPAIGN_INVALID_STATE"));
        assert_eq!(res.body["error"]["details"], json!({"status": "SENDING", "allowed": ["DRAFT", "SCHEDULED"]}));
        let res = app.call(Method::DELETE, &format!("/campaigns/{id}"), None).await;
        assert_eq!(res.code(), "CAMPAIGN_INVALID_STATE");
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({}))).await;
        assert_eq!(res.code(), "CAMPAIGN_INVALID_STATE");
        let res = app.call(Method::POST, &format!("/campaigns/{id}/cancel"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!((res.data()["status"].as_str(), res.data()["cancelReason"].as_str()), (Some("CANCELLED"), Some("USER")));
        let res = app.call(Method::POST, &format!("/campaigns/{id}/cancel"), None).await;
        assert_eq!(res.code(), "CAMPAIGN_INVALID_STATE");

        // Duplicate: a new draft, everything reset.
        let res = app.call(Method::POST, &format!("/campaigns/{id}/duplicate"), None).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        assert_eq!((res.data()["name"].as_str(), res.data()["status"].as_str()), (Some("March news (copy)"), Some("DRAFT")));
        assert_eq!(res.data()["sentAt"], Value::Null);
        assert_eq!(res.data()["subject"], "New subject");
        let res = app.call(Method::DELETE, &format!("/campaigns/{id}"), None).await;
        assert_eq!(res.data(), &json!({"id": id, "deleted": true}));

        // Another project sees none of it.
        let (_, key) = app.other_project().await;
        let res = app.raw(Method::GET, &format!("/campaigns/{other}"), Some(&key), None, &[]).await;
        assert_eq!((res.status, res.code()), (StatusCode::NOT_FOUND, "CAMPAIGN_NOT_FOUND"));
        let res = app.raw(Method::POST, &format!("/campaigns/{other}/send"), Some(&key), Some("{}".into()), &[("content-type", "application/json")]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    }

    async fn scheduled_campaigns_start_in_their_minute_and_can_be_cancelled(app: TestApp) {
        verified_domain(&app).await;
        contact(&app, "ada@x.io", true, json!({})).await;
        let id = create(&app, draft(json!({}))).await;
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({"scheduledFor": "2020-01-01T00:00:00Z"}))).await;
        assert_eq!(error_field(&res), ("scheduledFor".into(), "invalid_date".into()));
        let at = plunk_domain::Timestamp::from_millis(now_ms() + 120_000).unwrap();
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({"scheduledFor": at.to_string()}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.data()["campaign"]["status"], "SCHEDULED");
        assert_eq!(res.data()["message"], format!("Campaign scheduled for {at}"));
        // Rescheduled a minute later: the first minute's tick leaves it alone.
        let later = plunk_domain::Timestamp::from_millis(at.unix_millis() + 60_000).unwrap();
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({"scheduledFor": later.to_string()}))).await;
        assert_eq!(res.data()["campaign"]["scheduledFor"], later.to_string());
        let minute = |t: plunk_domain::Timestamp| t.unix_seconds().div_euclid(60);
        let store = app.as_function("scheduler");
        let started = plunk_worker::campaigns::schedule::start_due(&store, minute(at)).await.unwrap();
        assert_eq!(started.started, 0);
        let started = plunk_worker::campaigns::schedule::start_due(&store, minute(later)).await.unwrap();
        assert_eq!(started.started, 1);
        let res = app.call(Method::GET, &format!("/campaigns/{id}"), None).await;
        assert_eq!(res.data()["status"], "SENDING");

        // A scheduled one cancelled never starts.
        let second = create(&app, draft(json!({"name": "Later"}))).await;
        app.call(Method::POST, &format!("/campaigns/{second}/send"), Some(json!({"scheduledFor": at.to_string()}))).await;
        let res = app.call(Method::POST, &format!("/campaigns/{second}/cancel"), None).await;
        assert_eq!(res.data()["status"], "CANCELLED");
        assert_eq!(res.data()["scheduledFor"], Value::Null);
        let started = plunk_worker::campaigns::schedule::start_due(&store, minute(at)).await.unwrap();
        assert_eq!(started.started, 0);

        // A schedule that fires after its domain went: cancelled with the reason.
        let third = create(&app, draft(json!({"name": "Orphan"}))).await;
        app.call(Method::POST, &format!("/campaigns/{third}/send"), Some(json!({"scheduledFor": at.to_string()}))).await;
        let domains = app.call(Method::GET, "/domains", None).await;
        let domain = domains.data()["items"][0]["id"].as_str().unwrap().to_owned();
        let res = app.call(Method::DELETE, &format!("/domains/{domain}"), None).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "DOMAIN_IN_USE"), "campaigns hold their domain");
        let used: Vec<&str> = res.body["error"]["details"]["usedBy"].as_array().unwrap().iter().map(|u| u["type"].as_str().unwrap()).collect();
        assert!(used.iter().all(|t| *t == "campaign") && !used.is_empty(), "{used:?}");
    }

    async fn a_project_schedules_a_bounded_number_of_campaigns_for_one_minute(app: TestApp) {
        verified_domain(&app).await;
        let at = plunk_domain::Timestamp::from_millis(now_ms() + 3_600_000).unwrap();
        let schedule = |id: String, at: plunk_domain::Timestamp| {
            let app = &app;
            async move {
                app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({"scheduledFor": at.to_string()}))).await
            }
        };
        let mut ids = Vec::new();
        for i in 0..MAX_DUE_PER_MINUTE {
            let id = create(&app, draft(json!({"name": format!("c{i}")}))).await;
            let res = schedule(id.clone(), at).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            ids.push(id);
        }
        // Rescheduling one within its minute is no new entry.
        let same_minute = plunk_domain::Timestamp::from_millis(at.unix_millis() / 60_000 * 60_000 + 59_000).unwrap();
        assert_eq!(schedule(ids[0].clone(), same_minute).await.status, StatusCode::OK);
        let extra = create(&app, draft(json!({"name": "one too many"}))).await;
        let res = schedule(extra.clone(), at).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.body);
        assert_eq!(error_field(&res), ("scheduledFor".into(), "custom".into()));
        let res = app.call(Method::GET, &format!("/campaigns/{extra}"), None).await;
        assert_eq!((res.data()["status"].as_str(), &res.data()["scheduledFor"]), (Some("DRAFT"), &Value::Null), "nothing written");
        // The next minute has room; a cancelled one frees its place.
        let next = plunk_domain::Timestamp::from_millis(at.unix_millis() + 60_000).unwrap();
        assert_eq!(schedule(extra.clone(), next).await.status, StatusCode::OK);
        app.call(Method::POST, &format!("/campaigns/{}/cancel", ids[1]), None).await;
        let another = create(&app, draft(json!({"name": "after a cancel"}))).await;
        assert_eq!(schedule(another, at).await.status, StatusCode::OK);
    }

    async fn a_schedule_missed_while_no_tick_ran_starts_at_the_next_tick(app: TestApp) {
        verified_domain(&app).await;
        contact(&app, "ada@x.io", true, json!({})).await;
        let scheduler = scheduler(&app, 100);
        let start = now_ms();
        scheduler.tick(start).await.unwrap();
        let id = create(&app, draft(json!({}))).await;
        let at = plunk_domain::Timestamp::from_millis(start + 120_000).unwrap();
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({"scheduledFor": at.to_string()}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // The scheduler was down for three hours, far past the sweeps' look-back.
        let report = scheduler.tick(start + 3 * 3_600_000).await.unwrap();
        assert_eq!(report.campaigns_started, 1, "{report:?}");
        let res = app.call(Method::GET, &format!("/campaigns/{id}"), None).await;
        assert_ne!(res.data()["status"], "SCHEDULED", "{}", res.body);
        // Each minute is worked once.
        let report = scheduler.tick(start + 3 * 3_600_000 + 60_000).await.unwrap();
        assert_eq!(report.campaigns_started, 0);
    }

    async fn a_campaign_reaches_each_subscribed_contact_once_and_ends_sent_with_stats_that_add_up(app: TestApp) {
        verified_domain(&app).await;
        for i in 0..7 {
            contact(&app, &format!("sub{i}@x.io"), true, json!({"firstName": format!("S{i}")})).await;
        }
        contact(&app, "unsub@x.io", false, json!({})).await;
        let res = app.call(Method::POST, "/suppressions", Some(json!({"email": "sub6@x.io"}))).await;
        assert!(res.status.is_success(), "{}", res.body);
        let id = create(&app, draft(json!({}))).await;
        // A test send first, through the same sender that then sends the campaign: its read of
        // the DRAFT must not make the campaign's own emails look cancelled.
        let provider = Arc::new(Provider::default());
        let worker = sender(&app, provider.clone());
        let res = app.call(Method::POST, &format!("/campaigns/{id}/test"), Some(json!({"email": "me@acme.io"}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(drain(&app, &worker, SendClass::Transactional).await, 1);
        provider.sent.lock().unwrap().clear();
        let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({}))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // Created after sending started: not in the audience.
        contact(&app, "late@x.io", true, json!({})).await;

        // Pages of 3, the fan-out bounded by nothing here; then a second pass finds nothing new.
        let scheduler = scheduler(&app, 3);
        let report = scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!(report.recipients, 7, "{report:?}");
        assert_eq!(report.completed, 0, "emails are still pending");
        let report = scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!(report.recipients, 0);

        assert_eq!(drain(&app, &worker, SendClass::Campaign).await, 6);
        let mut to: Vec<String> = provider.sent.lock().unwrap().iter().map(|e| e.to.email.clone()).collect();
        to.sort();
        assert_eq!(to, (0..6).map(|i| format!("sub{i}@x.io")).collect::<Vec<_>>());
        let first = provider.sent.lock().unwrap().iter().find(|e| e.to.email == "sub0@x.io").cloned().unwrap();
        assert_eq!(first.subject, "Hi S0");

        // Done: SENT, with a campaign.sent event carrying the final counts.
        let report = scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!(report.completed, 1);
        let res = app.call(Method::GET, &format!("/campaigns/{id}"), None).await;
        assert_eq!(res.data()["status"], "SENT");
        assert!(res.data()["completedAt"].is_string());
        let s = stats(&app, &id).await;
        assert_eq!((s["totalRecipients"].as_i64(), s["sentCount"].as_i64(), s["suppressedCount"].as_i64(), s["pendingCount"].as_i64(), s["failedCount"].as_i64()), (Some(7), Some(6), Some(1), Some(0), Some(0)));
        assert_eq!(s["rates"]["deliveryRate"], 0.0);
        let events = app.call(Method::GET, "/events?name=campaign.sent", None).await;
        let event = &events.data()["items"][0];
        assert_eq!(event["data"]["campaignId"], id.as_str());
        assert_eq!(event["data"]["totalRecipients"], 7);
        assert_eq!(event["contactId"], Value::Null);
        let emails = app.call(Method::GET, &format!("/emails?campaignId={id}&limit=100"), None).await;
        // The 7 of the fan-out and the test send.
        assert_eq!(emails.data()["items"].as_array().unwrap().len(), 8);
        // Nothing more is sent however often the passes run.
        scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!(drain(&app, &worker, SendClass::Campaign).await, 0);
    }

    async fn a_cancelled_campaign_stops_and_its_queued_emails_fail_visibly(app: TestApp) {
        verified_domain(&app).await;
        for i in 0..5 {
            contact(&app, &format!("c{i}@x.io"), true, json!({})).await;
        }
        let id = create(&app, draft(json!({"type": "HEADLESS"}))).await;
        app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({}))).await;
        let scheduler = scheduler(&app, 2);
        // Two pages at most ahead of the sends, as if the send rate allowed only that.
        let mut bounded = scheduler.clone();
        bounded.fanout.ahead = 2;
        assert_eq!(bounded.fan_out(now_ms()).await.unwrap().recipients, 2);
        assert_eq!(bounded.fan_out(now_ms()).await.unwrap().recipients, 0, "waits for the sends");
        let res = app.call(Method::POST, &format!("/campaigns/{id}/cancel"), None).await;
        assert_eq!(res.data()["status"], "CANCELLED");
        // The sender sees the cancellation within its 2 s campaign cache.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let provider = Arc::new(Provider::default());
        assert_eq!(drain(&app, &sender(&app, provider.clone()), SendClass::Campaign).await, 2);
        assert!(provider.sent.lock().unwrap().is_empty());
        assert_eq!(scheduler.fan_out(now_ms()).await.unwrap().recipients, 0, "the fan-out stopped");
        let s = stats(&app, &id).await;
        assert_eq!((s["totalRecipients"].as_i64(), s["failedCount"].as_i64(), s["pendingCount"].as_i64()), (Some(2), Some(2), Some(0)));
        let emails = app.call(Method::GET, &format!("/emails?campaignId={id}"), None).await;
        for e in emails.data()["items"].as_array().unwrap() {
            assert_eq!((e["status"].as_str(), e["error"].as_str()), (Some("FAILED"), Some("CAMPAIGN_CANCELLED")));
        }
        let events = app.call(Method::GET, "/events?name=campaign.cancelled", None).await;
        assert_eq!(events.data()["items"][0]["data"]["cancelReason"], "USER");
    }

    async fn campaigns_sending_together_share_the_queue_equally(app: TestApp) {
        verified_domain(&app).await;
        for i in 0..6 {
            contact(&app, &format!("c{i}@x.io"), true, json!({})).await;
        }
        let total = |id: String| {
            let app = &app;
            async move { stats(app, &id).await["totalRecipients"].as_i64().unwrap() }
        };
        let first = create(&app, draft(json!({"type": "HEADLESS"}))).await;
        app.call(Method::POST, &format!("/campaigns/{first}/send"), Some(json!({}))).await;
        let mut scheduler = scheduler(&app, 1);
        scheduler.fanout.ahead = 4;
        // Alone, a campaign fills the whole lead.
        assert_eq!(scheduler.fan_out(now_ms()).await.unwrap().recipients, 4);
        let second = create(&app, draft(json!({"type": "HEADLESS", "name": "Second"}))).await;
        app.call(Method::POST, &format!("/campaigns/{second}/send"), Some(json!({}))).await;
        // The second campaign is queued at once, behind no more than the lead; the first holds
        // more than its half now and waits.
        let pass = scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!((pass.recipients, pass.fanning), (2, 2));
        assert_eq!((total(first.clone()).await, total(second.clone()).await), (4, 2));
        // As the sends drain the queue, each gets its half of the lead.
        let provider = Arc::new(Provider::default());
        assert_eq!(drain(&app, &sender(&app, provider.clone()), SendClass::Campaign).await, 6);
        assert_eq!(scheduler.fan_out(now_ms()).await.unwrap().recipients, 4);
        assert_eq!((total(first.clone()).await, total(second.clone()).await), (6, 4));
        assert_eq!(drain(&app, &sender(&app, provider.clone()), SendClass::Campaign).await, 4);
        // The first is read whole: the second alone takes the lead again.
        let pass = scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!((pass.recipients, pass.fanning), (2, 1));
        assert_eq!(total(second).await, 6);
        assert_eq!(provider.sent.lock().unwrap().len(), 10);
    }

    async fn an_every_minute_invocation_keeps_topping_up_while_a_campaign_reads_its_audience(app: TestApp) {
        verified_domain(&app).await;
        for i in 0..3 {
            contact(&app, &format!("c{i}@x.io"), true, json!({})).await;
        }
        let id = create(&app, draft(json!({"type": "HEADLESS"}))).await;
        app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({}))).await;
        let mut scheduler = scheduler(&app, 1);
        // One recipient a pass, passes 10 ms apart, for at most 5 s.
        scheduler.fanout.budget = 1;
        scheduler.fanout.top_up_every = Duration::from_millis(10);
        scheduler.fanout.top_up_for = Duration::from_secs(5);
        let started = std::time::Instant::now();
        let tick = scheduler.tick(now_ms()).await.unwrap();
        assert_eq!((tick.campaign_recipients, tick.campaigns_fanning), (1, 1));
        let topped = scheduler.top_up_fan_outs(started, &SystemClock).await.unwrap();
        assert_eq!((topped.recipients, topped.fanning), (2, 0), "stops once the audience is read");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        assert_eq!(stats(&app, &id).await["totalRecipients"], 3);
        // Nothing to read: an invocation past its window returns without a pass.
        scheduler.fanout.top_up_for = Duration::ZERO;
        let idle = scheduler.top_up_fan_outs(started, &SystemClock).await.unwrap();
        assert_eq!(idle.recipients, 0);
    }

    async fn filtered_and_segment_audiences_and_a_disabled_project(app: TestApp) {
        verified_domain(&app).await;
        for (email, plan) in [("p1@x.io", "pro"), ("p2@x.io", "pro"), ("f1@x.io", "free")] {
            contact(&app, email, true, json!({"plan": plan})).await;
        }
        let res = app.call(Method::POST, "/v1/track", Some(json!({"event": "upgraded", "email": "f1@x.io"}))).await;
        assert_eq!(res.status, StatusCode::OK);
        app.dispatch_events().await;
        let condition = json!({"logic": "OR", "groups": [
            {"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]},
            {"filters": [{"field": "event.upgraded", "operator": "triggeredWithin", "value": 1, "unit": "days"}]}]});
        let filtered = create(&app, draft(json!({"audienceType": "FILTERED", "audienceCondition": condition.clone(), "type": "TRANSACTIONAL"}))).await;
        let segment = app.call(Method::POST, "/segments", Some(json!({"name": "Pros", "condition": {"logic": "AND", "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}]}}))).await;
        let segment_id = segment.data()["id"].as_str().unwrap().to_owned();
        let by_segment = create(&app, draft(json!({"audienceType": "SEGMENT", "segmentId": segment_id}))).await;
        // The segment is in use while the campaign is a draft.
        let res = app.call(Method::DELETE, &format!("/segments/{segment_id}"), None).await;
        assert_eq!((res.status, res.code()), (StatusCode::CONFLICT, "SEGMENT_IN_USE"));
        assert_eq!(res.body["error"]["details"]["usedBy"][0]["id"], by_segment.as_str());

        for id in [&filtered, &by_segment] {
            let res = app.call(Method::POST, &format!("/campaigns/{id}/send"), Some(json!({}))).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        }
        let scheduler = scheduler(&app, 100);
        scheduler.fan_out(now_ms()).await.unwrap();
        assert_eq!(stats(&app, &filtered).await["totalRecipients"], 3);
        assert_eq!(stats(&app, &by_segment).await["totalRecipients"], 2);

        // A disabled project's sending campaign is cancelled by the fan-out.
        let third = create(&app, draft(json!({"name": "Third"}))).await;
        app.call(Method::POST, &format!("/campaigns/{third}/send"), Some(json!({}))).await;
        app.store.projects().update(app.project.id, |p| { p.disabled = true; Ok(()) }).await.unwrap();
        scheduler.fan_out(now_ms()).await.unwrap();
        let res = app.call(Method::GET, &format!("/campaigns/{third}"), None).await;
        assert_eq!((res.data()["status"].as_str(), res.data()["cancelReason"].as_str()), (Some("CANCELLED"), Some("PROJECT_DISABLED")));
    }

    async fn a_test_send_goes_to_one_address_outside_the_stats(app: TestApp) {
        verified_domain(&app).await;
        contact(&app, "known@x.io", false, json!({"firstName": "Kim"})).await;
        let id = create(&app, draft(json!({}))).await;
        let res = app.call(Method::POST, &format!("/campaigns/{id}/test"), Some(json!({"email": "nobody"}))).await;
        assert_eq!(error_field(&res), ("email".into(), "invalid_string".into()));
        for (address, name) in [("me@acme.io", "there"), ("known@x.io", "Kim")] {
            let res = app.call(Method::POST, &format!("/campaigns/{id}/test"), Some(json!({"email": address}))).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            assert_eq!(res.data()["message"], format!("Test email sent to {address}"));
            let provider = Arc::new(Provider::default());
            assert_eq!(drain(&app, &sender(&app, provider.clone()), SendClass::Transactional).await, 1);
            assert_eq!(provider.sent.lock().unwrap()[0].subject, format!("Hi {name}"));
            let email = app.call(Method::GET, &format!("/emails/{}", res.data()["email"].as_str().unwrap()), None).await;
            assert_eq!((email.data()["test"].as_bool(), email.data()["campaignId"].as_str()), (Some(true), Some(id.as_str())));
        }
        let res = app.call(Method::GET, "/contacts?search=acme", None).await;
        assert_eq!(res.data()["items"], json!([]), "no contact is created");
        assert_eq!(stats(&app, &id).await["sentCount"], 0);
    }
}

//! Contact activity summaries (what segment, audience and workflow conditions read about events
//! and emails): the event dispatcher keeps them from the change feed, one write per contact per
//! batch at most and none for a redelivered batch, and the filter engine evaluates event
//! conditions from them. On SQLite and DynamoDB Local.

mod common;

use common::TestApp;
use http::{Method, StatusCode};
use plunk_domain::event::{Event, EventSource};
use plunk_domain::filter::{parse, EmailStep, Subject};
use plunk_domain::Timestamp;
use serde_json::json;
use uuid::Uuid;

async fn track(app: &TestApp, email: &str, event: &str) -> Uuid {
    let res = app
        .call(
            Method::POST,
            "/v1/track",
            Some(json!({"event": event, "email": email})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.data()["contact"].as_str().unwrap().parse().unwrap()
}

fn delivery(contact: Uuid, email: &str, delivered_at: Timestamp) -> Event {
    Event {
        id: plunk_domain::id::new_id(),
        name: "email.delivery".into(),
        contact_id: Some(contact),
        contact_email: Some(email.into()),
        email_id: Some(Uuid::now_v7()),
        data: json!({ "deliveredAt": delivered_at })
            .as_object()
            .cloned()
            .unwrap(),
        source: EventSource::System,
        created_at: Timestamp::now(),
    }
}

on_both_backends! {
    async fn the_dispatcher_keeps_each_contacts_activity_and_conditions_read_it(app: TestApp) {
        let ada = track(&app, "ada@example.org", "signed-up").await;
        track(&app, "ada@example.org", "signed-up").await;
        track(&app, "ada@example.org", "chose-plan").await;
        let bob = track(&app, "bob@example.org", "chose-plan").await;
        let delivered_at = Timestamp::from_millis(Timestamp::now().unix_millis() - 3 * 86_400_000).unwrap();
        app.store
            .events()
            .record(app.project.id, &delivery(ada, "ada@example.org", delivered_at))
            .await
            .unwrap();
        app.dispatch_events().await;

        let activities = app.store.activities();
        let summary = activities.get(app.project.id, ada).await.unwrap();
        assert_eq!(
            summary.events.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["chose-plan", "email.delivery", "signed-up"]
        );
        assert_eq!(summary.emails.get(&EmailStep::Delivered), Some(&delivered_at.unix_millis()));
        let listed = app.call(Method::GET, &format!("/events?contactId={ada}&name=signed-up"), None).await;
        let latest: Timestamp = serde_json::from_value(listed.data()["items"][0]["createdAt"].clone()).unwrap();
        assert_eq!(summary.events["signed-up"], latest.unix_millis(), "the latest occurrence");

        // A redelivered batch changes nothing, so writes nothing.
        let events: Vec<Event> = app
            .store
            .events()
            .list(app.project.id, None, 100, None)
            .await
            .unwrap()
            .items;
        let again = app.as_function("event-dispatch").activities().record(app.project.id, &events).await.unwrap();
        assert_eq!((again.contacts, again.written), (2, 0), "{again:?}");

        // The filter engine reads the summaries.
        let condition = parse(
            &json!({"logic": "AND", "groups": [{"filters": [
                {"field": "event.signed-up", "operator": "triggeredWithin", "value": 1, "unit": "hours"},
                {"field": "email.delivered", "operator": "triggeredOlderThan", "value": 2}
            ]}]}),
            "condition",
        )
        .unwrap();
        for (contact, expected) in [(ada, true), (bob, false)] {
            let record = app.store.contacts().get(app.project.id, contact).await.unwrap().unwrap();
            let activity = app.store.activities().get(app.project.id, contact).await.unwrap();
            let subject = Subject { contact: &record, activity: &activity, context: None };
            assert_eq!(
                condition.matches(&subject, &|_| false, Timestamp::now().unix_millis()),
                expected
            );
        }

        // Deleting the contact erases its summary with the rest of its history.
        let res = app.call(Method::DELETE, &format!("/contacts/{ada}"), None).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        app.as_function("scheduler")
            .contact_erasure()
            .work(Timestamp::now().unix_millis(), 10_000)
            .await
            .unwrap();
        assert_eq!(activities.get(app.project.id, ada).await.unwrap(), Default::default());
        assert_ne!(activities.get(app.project.id, bob).await.unwrap(), Default::default());
    }
}

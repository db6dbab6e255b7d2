//! The provider's Send feedback can be applied before the sender records the send (SES publishes
//! Send as it accepts the message). The sender then merges its send into the record instead of
//! losing it: the rendered subject, the attempt count and the message id stay, the status is
//! `SENT`, and `email.sent` is emitted once (by the feedback, which set `sentAt` first).

use async_trait::async_trait;
use plunk_domain::email_record::{EmailContent, EmailRecord, EmailStatus, SendClass, SourceType};
use plunk_domain::feedback::{FeedbackKind, ProviderEvent};
use plunk_domain::project::Tracking;
use plunk_domain::sending_domain::{Domain, DomainStatus, MailFromStatus};
use plunk_domain::Timestamp;
use plunk_messaging::mailer::{MailError, Mailer, OutgoingEmail};
use plunk_messaging::memory::MemoryBlobs;
use plunk_messaging::send_queues::SendJob;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::Store;
use plunk_worker::clock::SystemClock;
use plunk_worker::feedback::FeedbackWorker;
use plunk_worker::pacing::{MemoryPace, Pacer};
use plunk_worker::send::{Outcome, SendWorker, SenderConfig};
use std::sync::Arc;
use uuid::Uuid;

/// A provider whose Send notification is processed before `send` returns.
struct FeedbackFirst {
    feedback: FeedbackWorker,
    project: Uuid,
}

#[async_trait]
impl Mailer for FeedbackFirst {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message_id = format!("ses-{}", email.email_id);
        let event = ProviderEvent {
            message_id: message_id.clone(),
            email_id: Some(email.email_id),
            project_id: Some(self.project),
            timestamp: Timestamp::now(),
            recipients: vec![email.to.email.clone()],
            kind: FeedbackKind::Send,
        };
        self.feedback.apply(&event).await.expect("feedback applies");
        Ok(message_id)
    }
}

fn record(id: Uuid, now: Timestamp) -> EmailRecord {
    EmailRecord {
        id,
        contact_id: None,
        to: "ada@example.org".into(),
        to_name: None,
        from: "hi@acme.io".into(),
        from_name: "Acme".into(),
        reply_to: None,
        subject: "Hi {{ name ?? \"there\" }}".into(),
        source_type: SourceType::Transactional,
        template_id: None,
        campaign_id: None,
        workflow_id: None,
        workflow_execution_id: None,
        marketing: false,
        tracking: true,
        test: false,
        status: EmailStatus::Pending,
        error: None,
        attempts: 0,
        message_id: None,
        opens: 0,
        clicks: 0,
        bounce_type: None,
        bounce_sub_type: None,
        queued_at: Some(now),
        sending_at: None,
        sent_at: None,
        delivered_at: None,
        opened_at: None,
        clicked_at: None,
        bounced_at: None,
        complained_at: None,
        delayed_at: None,
        failed_at: None,
        suppressed_at: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn send_feedback_applied_before_the_sender_saves_loses_nothing() {
    let store = Store::new(Arc::new(SqliteTable::in_memory().unwrap()));
    let (project, _, _) = store
        .projects()
        .create("Acme", 1000, Tracking::Enabled, "en")
        .await
        .unwrap();
    let now = Timestamp::now();
    let mut domain = Domain::new(
        Uuid::now_v7(),
        "acme.io".into(),
        "mail.acme.io".into(),
        vec!["a".into(), "b".into(), "c".into()],
        "us-east-1".into(),
        now,
    );
    domain.record_check(DomainStatus::Verified, MailFromStatus::Success, now);
    store.domains().create(project.id, &domain).await.unwrap();
    let id = Uuid::now_v7();
    let content = EmailContent {
        subject: "Hi {{ name ?? \"there\" }}".into(),
        body: "<p>Hello</p>".into(),
        body_blob: None,
        headers: vec![],
        attachments: vec![],
        one_shot: serde_json::Map::new(),
        template_type: None,
        event: Default::default(),
        campaign_content: None,
    };
    store
        .emails()
        .accept(project.id, &record(id, now), Some(&content))
        .await
        .unwrap();
    let worker = SendWorker::new(
        store.clone(),
        Arc::new(FeedbackFirst {
            feedback: FeedbackWorker {
                store: store.clone(),
            },
            project: project.id,
        }),
        Arc::new(MemoryBlobs::default()),
        Pacer::new(
            Arc::new(MemoryPace::default()),
            Arc::new(SystemClock),
            1000.0,
        ),
        SenderConfig::default(),
    );

    let outcome = worker
        .process(SendJob {
            project_id: project.id,
            email_id: id,
            class: SendClass::Transactional,
        })
        .await
        .expect("the send is recorded despite the concurrent feedback");

    assert_eq!(outcome, Outcome::Done);
    let stored = store.emails().get(project.id, id).await.unwrap().unwrap();
    assert_eq!(stored.status, EmailStatus::Sent);
    assert_eq!(stored.subject, "Hi there", "the rendered subject is kept");
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        stored.message_id.as_deref(),
        Some(format!("ses-{id}").as_str())
    );
    assert!(stored.sent_at.is_some());
    let mut query = plunk_store::table::Query::new(
        plunk_store::table::Index::Primary,
        plunk_store::keys::events_partition(project.id),
    );
    query.limit = 100;
    let events = store.table().query(query).await.unwrap().items;
    let sent_events = events
        .iter()
        .filter(|i| i.body["name"] == "email.sent")
        .count();
    assert_eq!(sent_events, 1, "email.sent once");
}

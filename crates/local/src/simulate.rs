//! `plunk simulate <delivery|bounce|complaint|open|click> <emailId>`: builds the notification SES
//! would publish for a sent email (the same body EventBridge delivers, so the same parser and
//! worker run) and puts it on the local feedback queue (`queues.db` in the data directory), where
//! a running `plunk serve` applies it within a moment.
//!
//! Exit codes (admin-cli.md §1): 2 when no project has the email, 3 when it was not sent yet (it
//! has no provider message id to report on), 4 on a store or queue failure.

use crate::cli::{Cli, SimulateArgs, SimulateKind};
use crate::output::{emit, Failure};
use plunk_domain::email_record::EmailRecord;
use plunk_domain::feedback::notification::{eventbridge_body, Notification};
use plunk_domain::feedback::{BounceType, FeedbackKind};
use plunk_domain::Timestamp;
use plunk_store::Store;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// Runs `plunk simulate`.
pub async fn run(cli: &Cli, args: &SimulateArgs) -> Result<(), Failure> {
    let store = cli.store.config()?.open().await?;
    let email_id = plunk_domain::id::parse_id(&args.email_id)
        .ok_or_else(|| Failure::not_found(format!("no email {}", args.email_id)))?;
    let (project, record) = find(&store, args.project.as_deref(), email_id).await?;
    let Some(message_id) = record.message_id.clone() else {
        return Err(Failure::conflict(format!(
            "email {email_id} has not been sent yet (status {})",
            record.status.as_str()
        )));
    };
    let kind = match args.kind {
        SimulateKind::Delivery => FeedbackKind::Delivery,
        SimulateKind::Bounce => FeedbackKind::Bounce {
            bounce_type: BounceType::Permanent,
            sub_type: "General".into(),
        },
        SimulateKind::Complaint => FeedbackKind::Complaint {
            feedback_type: Some("abuse".into()),
        },
        SimulateKind::Open => FeedbackKind::Open,
        SimulateKind::Click => FeedbackKind::Click {
            link: args.link.clone(),
        },
    };
    let now = Timestamp::now();
    let body = eventbridge_body(&Notification {
        kind: &kind,
        message_id: &message_id,
        email_id,
        project_id: project,
        from: &record.from,
        to: &record.to,
        subject: &record.subject,
        sent_at: record.sent_at.unwrap_or(now),
        at: now,
    });
    let data_dir = &cli.store.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Failure::store(format!("cannot create {}: {e}", data_dir.display())))?;
    let queue = plunk_messaging::feedback_queue::embedded(&data_dir.join("queues.db"))
        .map_err(|e| Failure::store(format!("cannot open the feedback queue: {e}")))?;
    queue
        .send(&body, Duration::ZERO)
        .await
        .map_err(|e| Failure::store(format!("cannot queue the notification: {e}")))?;
    let event = kind.provider_name();
    emit(
        cli.json,
        &json!({
            "emailId": email_id,
            "projectId": project,
            "event": event,
            "messageId": message_id,
            "queued": true,
        }),
        || {
            format!(
                "Queued a {event} notification for email {email_id} (to {}); a running 'plunk serve' applies it.",
                record.to
            )
        },
    );
    Ok(())
}

/// The email and its project: the one `--project` names, else the project that has it.
async fn find(
    store: &Store,
    project: Option<&str>,
    email_id: Uuid,
) -> Result<(Uuid, EmailRecord), Failure> {
    let candidates = match project {
        Some(raw) => vec![plunk_domain::id::parse_id(raw)
            .ok_or_else(|| Failure::not_found(format!("no project {raw}")))?],
        None => store
            .projects()
            .list()
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect(),
    };
    for project in candidates {
        if let Some(record) = store.emails().get(project, email_id).await? {
            return Ok((project, record));
        }
    }
    Err(Failure::not_found(format!("no email {email_id}")))
}

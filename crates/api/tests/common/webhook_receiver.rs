//! A local webhook receiver and the webhook worker run to completion, for tests that follow
//! events out to a real HTTP endpoint.

use super::TestApp;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use plunk_webhooks::AttemptPolicy;
use plunk_worker::webhooks::WebhookWorker;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver saw.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The receiver's shared state: what it saw, and the status it answers with.
type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<u16>>);

/// A local receiver answering every request with `status`.
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<Mutex<u16>>,
}

pub async fn receiver() -> Receiver {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let status = Arc::new(Mutex::new(200u16));
    let app =
        axum::Router::new()
            .route(
                "/hook",
                post(
                    |State((seen, status)): State<ReceiverState>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        seen.lock().unwrap().push(Received { headers, body });
                        AxumStatus::from_u16(*status.lock().unwrap()).unwrap()
                    },
                ),
            )
            .with_state((seen.clone(), status.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, seen, status }
}

/// Runs the webhook worker over every visible message of the app's webhook queue.
pub async fn deliver(app: &TestApp) {
    let worker = WebhookWorker {
        store: app.as_function("webhook-delivery"),
        queue: app.state.webhook_queue.clone(),
        policy: AttemptPolicy {
            allow_private: true,
            timeout: Duration::from_secs(5),
        },
        secrets: app.state.webhook_secrets.clone(),
    };
    loop {
        let messages = worker
            .queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        if messages.is_empty() {
            return;
        }
        for m in messages {
            worker.process(&m.body).await.unwrap();
            worker.queue.delete(&m.receipt).await.unwrap();
        }
    }
}

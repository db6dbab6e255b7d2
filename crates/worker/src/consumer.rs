//! The local receive loop: the embedded send queues polled in priority order (transactional,
//! then workflow, then campaign), each message processed by the send worker and then deleted or
//! left to return after its back-off. In AWS the SQS event source plays this role.

use crate::send::{Outcome, SendWorker};
use futures_util::FutureExt;
use plunk_domain::email_record::SendClass;
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::{SendJob, SendQueues};
use std::sync::Arc;
use std::time::Duration;

/// How long a received message stays hidden while it is processed.
pub const VISIBILITY: Duration = Duration::from_secs(60);

/// Handles one received message body: parses the job and processes it. A panic while
/// processing (a bug, or a third-party crate failing on odd input) stays with this one email: it
/// ends `FAILED` at once with the panic's message, and the caller goes on with the next one.
pub async fn handle(worker: &SendWorker, body: &str) -> Outcome {
    let job: SendJob = match serde_json::from_str(body) {
        Ok(job) => job,
        Err(e) => {
            // A message no sender can read would only come back: drop it loudly.
            tracing::error!(error = %e, "unreadable send job dropped");
            return Outcome::Done;
        }
    };
    match std::panic::AssertUnwindSafe(worker.process(job))
        .catch_unwind()
        .await
    {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::warn!(email_id = %job.email_id, error = %e, "store failed while sending; retrying");
            Outcome::RetryAfter(Duration::from_secs(5))
        }
        Err(panic) => {
            let reason = plunk_domain::panic::message(panic.as_ref());
            tracing::error!(email_id = %job.email_id, %reason, "sending panicked; the email fails");
            match worker.fail_after_panic(job, &reason).await {
                Ok(()) => Outcome::Done,
                Err(e) => {
                    tracing::warn!(email_id = %job.email_id, error = %e, "cannot record the failure; retrying");
                    Outcome::RetryAfter(Duration::from_secs(5))
                }
            }
        }
    }
}

/// Announces a batch about to be handled at once (an SQS event) to the pace, by class (see
/// [`crate::pacing::Pacer::expect`]), so its first send reserves slots for the whole batch.
pub async fn announce(worker: &SendWorker, classes: impl IntoIterator<Item = SendClass>) {
    let mut counts = [0usize; 3];
    for class in classes {
        counts[class.rank()] += 1;
    }
    for (class, n) in SendClass::ALL.into_iter().zip(counts) {
        if n > 0 {
            worker.pacer.expect(class, n).await;
        }
    }
}

/// How many messages of a class one receive takes. Lower classes take one at a time, so a loop
/// busy with campaign mail looks at the transactional queue again after every send.
pub fn batch_size(class: SendClass) -> usize {
    match class {
        SendClass::Transactional => 10,
        SendClass::Workflow | SendClass::Campaign => 1,
    }
}

async fn drain_one(worker: &SendWorker, queue: &Arc<dyn Queue>, class: SendClass) -> bool {
    let messages = match queue
        .receive(batch_size(class), VISIBILITY, Duration::ZERO)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "queue receive failed");
            return false;
        }
    };
    if messages.is_empty() {
        return false;
    }
    // Handled one after another, so not announced to the pace: a batch's spare slots would
    // pass while the sends before them run.
    for m in messages {
        let outcome = handle(worker, &m.body).await;
        let result = match outcome {
            Outcome::Done => queue.delete(&m.receipt).await,
            Outcome::RetryAfter(delay) => queue.change_visibility(&m.receipt, delay).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "queue acknowledgement failed");
        }
    }
    true
}

/// Runs until the process ends: always serves the highest-priority queue that has work.
pub async fn run(worker: SendWorker, queues: SendQueues) {
    loop {
        let mut worked = false;
        for class in SendClass::ALL {
            if drain_one(&worker, queues.of(class), class).await {
                worked = true;
                break;
            }
        }
        if !worked {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

//! Workflow timers (`make bench`): `BENCH_WORKFLOW_EXECUTIONS` (10,000) executions wait on a
//! DELAY that ends in the same minute, on the embedded store; the tick of that minute queues them
//! all and the engine advances each past its DELAY to its EXIT. Prints how long the tick and the
//! advance took, and the table units and queue requests per advanced step.

use plunk_bench::metered::MeteredTable;
use plunk_bench::seed::{cpu_seconds, env_usize, seed_contacts, SeedContact};
use plunk_domain::project::{Tracking, DEFAULT_RATE_LIMIT};
use plunk_domain::workflow::execution::{Execution, ExecutionStatus};
use plunk_domain::workflow::{
    Position, Step, StepType, Transition, TriggerConfig, TriggerType, Workflow,
};
use plunk_domain::Timestamp;
use plunk_messaging::memory::{MemoryBlobs, MemoryQueue};
use plunk_messaging::queue::Queue;
use plunk_messaging::send_queues::SendQueues;
use plunk_store::backend::sqlite::SqliteTable;
use plunk_store::repo::workflows::{GraphChange, WorkflowRecord};
use plunk_store::Store;
use plunk_worker::accept::Acceptor;
use plunk_worker::clock::Clock;
use plunk_worker::workflows::engine::{Engine, Job};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A clock the benchmark sets.
struct SetClock(AtomicI64);

#[async_trait::async_trait]
impl Clock for SetClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    async fn sleep_until_ms(&self, _at_ms: i64) {}
}

fn step(workflow: Uuid, step_type: StepType, config: Value, at: Timestamp) -> Step {
    Step {
        id: Uuid::now_v7(),
        workflow_id: workflow,
        step_type,
        name: step_type.as_str().into(),
        position: Position::default(),
        config,
        template_id: None,
        created_at: at,
        updated_at: at,
    }
}

/// Works every visible message of the queue with the engine; returns how many.
async fn drain(engine: &Engine, queue: &dyn Queue) -> usize {
    let mut handled = 0;
    loop {
        let messages = queue
            .receive(10, Duration::from_secs(600), Duration::ZERO)
            .await
            .expect("receive");
        if messages.is_empty() {
            return handled;
        }
        for m in messages {
            assert!(engine.handle(&m.body, &m.receipt).await, "a job failed");
            handled += 1;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = env_usize("BENCH_WORKFLOW_EXECUTIONS", 10_000);
    println!("## Workflow timers: {n} executions waiting on a DELAY that ends in one minute");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteTable::open(&dir.path().join("plunk.db")).expect("sqlite");
    let table = Arc::new(MeteredTable::new(Arc::new(sqlite)));
    let store = Store::new(table.clone());
    let (project, _, _) = store
        .projects()
        .create("Bench", DEFAULT_RATE_LIMIT, Tracking::Enabled, "en")
        .await
        .expect("project");
    let start_ms = Timestamp::now().unix_millis().div_euclid(60_000) * 60_000 + 1_000;
    let now = Timestamp::from_millis(start_ms).expect("time");
    let contacts = seed_contacts(&store, project.id, n, |_| SeedContact {
        subscribed: true,
        data: Map::new(),
        created_at: now,
    })
    .await;

    let id = Uuid::now_v7();
    let trigger = step(id, StepType::Trigger, json!({}), now);
    let delay = step(
        id,
        StepType::Delay,
        json!({"amount": 1, "unit": "minutes"}),
        now,
    );
    let exit = step(id, StepType::Exit, json!({"reason": "done"}), now);
    let record = WorkflowRecord {
        workflow: Workflow {
            id,
            name: "Timers".into(),
            description: None,
            enabled: true,
            trigger_type: TriggerType::Event,
            trigger_config: Some(TriggerConfig {
                event_name: "bench".into(),
            }),
            allow_reentry: false,
            created_at: now,
            updated_at: now,
        },
        step_count: 3,
        active_executions: 0,
        wait_event_names: Vec::new(),
    };
    let link = |from: &Step, to: &Step| Transition {
        id: Uuid::now_v7(),
        workflow_id: id,
        from_step_id: from.id,
        to_step_id: to.id,
        condition: None,
        wait_outcome: None,
        priority: 0,
        created_at: now,
    };
    let workflows = store.workflows();
    workflows
        .create(
            project.id,
            &record,
            &[trigger.clone(), delay.clone(), exit.clone()],
        )
        .await
        .expect("workflow");
    let (stored, version) = workflows
        .get(project.id, id)
        .await
        .expect("read")
        .expect("it");
    workflows
        .save(
            project.id,
            &stored,
            &stored,
            version,
            None,
            &GraphChange {
                put_transitions: vec![link(&trigger, &delay), link(&delay, &exit)],
                ..GraphChange::default()
            },
        )
        .await
        .expect("transitions");

    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let clock = Arc::new(SetClock(AtomicI64::new(start_ms)));
    let engine = Engine {
        acceptor: Acceptor {
            store: store.clone(),
            blobs: Arc::new(MemoryBlobs::default()),
            queues: SendQueues::in_memory(),
        },
        store: store.clone(),
        queue: queue.clone(),
        allow_private_webhooks: false,
        clock: clock.clone(),
    };
    // Every execution starts in the same second and waits on its DELAY (not measured).
    for contact in &contacts {
        let execution = Execution::start(Uuid::now_v7(), id, *contact, trigger.id, Map::new(), now);
        store
            .executions()
            .start(project.id, &execution, false)
            .await
            .expect("start")
            .expect("started");
        engine
            .advance(&Job {
                project: project.id,
                workflow: id,
                execution: execution.id,
                event: None,
            })
            .await
            .expect("advance");
    }
    let due_ms = (start_ms + 60_000 + 59_999).div_euclid(60_000) * 60_000;
    println!(
        "setup: {n} executions WAITING, all due at minute {}",
        due_ms / 60_000
    );

    // The tick of the due minute, then the engine on what it queued.
    clock.0.store(due_ms + 500, Ordering::Relaxed);
    let before = table.usage();
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let queued =
        plunk_worker::workflows::timers::work(&store, queue.as_ref(), due_ms + 500, usize::MAX)
            .await
            .expect("timers");
    let tick = wall.elapsed();
    let advanced = drain(&engine, queue.as_ref()).await;
    let (wall, cpu) = (wall.elapsed(), cpu_seconds() - cpu);
    let used = table.usage().since(&before);

    let mut ended = 0;
    let mut page = None;
    loop {
        let list = store
            .executions()
            .list(
                project.id,
                id,
                Some(ExecutionStatus::Exited),
                None,
                100,
                page,
            )
            .await
            .expect("list");
        ended += list.items.len();
        match list.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let steps = (advanced * 2) as f64; // the DELAY finished and the EXIT run, per execution
    println!(
        "tick of minute {}: {queued} timers queued in {:.2} s; {advanced} executions advanced in {:.2} s wall, {:.2} CPU s ({:.0} executions/s)",
        due_ms / 60_000,
        tick.as_secs_f64(),
        wall.as_secs_f64(),
        cpu,
        advanced as f64 / wall.as_secs_f64()
    );
    println!(
        "all advanced in that minute's tick: {} ({ended} of {n} EXITED)",
        if ended == n { "yes" } else { "NO" }
    );
    println!(
        "per advanced step: {:.2} write units, {:.2} read units, {:.2} table requests",
        used.all_wru() / steps,
        used.rru / steps,
        used.calls as f64 / steps
    );
    assert_eq!(
        ended, n,
        "every execution due in the minute must advance in its tick"
    );
}

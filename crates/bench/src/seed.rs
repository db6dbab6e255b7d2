//! Shared set-up of the in-process benchmarks: settings from the environment, the process's CPU
//! time, and contacts written straight into a table (the work measured is what follows, not the
//! set-up).

use plunk_domain::contact::Contact;
use plunk_domain::{EmailAddress, Timestamp};
use plunk_store::keys;
use plunk_store::table::{Condition, Item, WriteOp};
use plunk_store::Store;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The number in environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU seconds of this process so far (Linux `/proc/self/stat`).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

/// What a seeded contact looks like: subscribed, its data, when it was created.
pub struct SeedContact {
    pub subscribed: bool,
    pub data: Map<String, Value>,
    pub created_at: Timestamp,
}

/// Writes `count` contacts of `project` (`r<i>@rcpt.example`) in transactions of 100, each as
/// `make(i)` says; returns their ids in order.
pub async fn seed_contacts(
    store: &Store,
    project: Uuid,
    count: usize,
    make: impl Fn(usize) -> SeedContact,
) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    let mut ops = Vec::with_capacity(100);
    for i in 0..count {
        let seed = make(i);
        let contact = Contact {
            id: Uuid::now_v7(),
            email: EmailAddress::parse(&format!("r{i}@rcpt.example")).expect("address"),
            subscribed: seed.subscribed,
            data: seed.data,
            created_at: seed.created_at,
            updated_at: seed.created_at,
        };
        ids.push(contact.id);
        ops.push(WriteOp::Put {
            item: Item::new(
                keys::contact(project, contact.id),
                serde_json::to_value(&contact).expect("contact"),
            )
            .with_version(1),
            condition: Condition::None,
        });
        if ops.len() == 100 {
            store
                .table()
                .transact(std::mem::take(&mut ops))
                .await
                .expect("seed");
        }
    }
    if !ops.is_empty() {
        store.table().transact(ops).await.expect("seed");
    }
    ids
}

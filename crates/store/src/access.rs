//! Least privilege over the table: which partitions each function may touch.
//!
//! Each deployed function has an [`AccessProfile`]: the partition-key patterns its code reads and
//! writes, in the syntax of IAM's `StringLike` (`*` any run of characters, `?` one character).
//! The SAM template grants each function exactly these patterns as `dynamodb:LeadingKeys`
//! conditions (a test holds the two equal), and [`GuardedTable`] enforces the same patterns in
//! every mode: the Lambda binaries and each endpoint group of the local server work through a
//! guarded table, so a path that touches a partition outside its profile fails in the tests and
//! on a laptop exactly as IAM would refuse it on AWS.
//!
//! Secrets sit under partitions of their own (`SECRET#…`), so a profile reaches a secret only by
//! naming it: the hosted-pages function reads the page-token keys and nothing else secret.

use crate::table::{Item, Key, Page, Query, StoreError, Table, WriteOp};
use async_trait::async_trait;
use std::sync::Arc;

/// A project or other UUID in a pattern: 36 single-character wildcards in the UUID's shape, so
/// `PROJECT#<id>` cannot match a longer key such as `PROJECT#<id>#WEBHOOKS`.
pub const ID: &str = "????????-????-????-????-????????????";

/// Patterns shared by every function that authenticates API keys and counts requests.
const AUTH: &[&str] = &[
    "APIKEY#*",
    "PROJECT#{id}",
    "PROJECT#{id}#RATE#*",
    "AUTHFAIL#*",
];

/// What one function may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessProfile {
    /// The function (binary) name.
    pub name: &'static str,
    /// Partition-key patterns, with `{id}` standing for [`ID`].
    patterns: Vec<String>,
}

impl AccessProfile {
    fn new(name: &'static str, groups: &[&[&str]]) -> Self {
        let mut patterns: Vec<String> = groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|p| p.replace("{id}", ID))
            .collect();
        patterns.sort();
        patterns.dedup();
        Self { name, patterns }
    }

    /// The patterns, expanded, sorted: what the template's `dynamodb:LeadingKeys` lists.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether a partition key is inside the profile.
    pub fn allows(&self, partition: &str) -> bool {
        self.matching(partition).is_some()
    }

    /// The first pattern that lets `partition` in.
    fn matching(&self, partition: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| glob(p, partition))
            .map(String::as_str)
    }

    /// The profile of the function `name` (a binary in `crates/functions/src/bin`), if it has one.
    pub fn of(name: &str) -> Option<Self> {
        PROFILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, groups)| Self::new(n, groups))
    }

    /// Every function's profile.
    pub fn all() -> Vec<Self> {
        PROFILES
            .iter()
            .map(|(n, groups)| Self::new(n, groups))
            .collect()
    }
}

/// Each function's partitions. Keep in step with `template.yaml` (checked by a test) and with
/// the key formats in [`crate::keys`].
const PROFILES: &[(&str, &[&[&str]])] = &[
    ("system", &[]),
    (
        "contacts",
        &[
            AUTH,
            &[
                "PROJECT#{id}#CONTACTS",
                "PROJECT#{id}#CONTACTS#SUBSCRIBED#*",
                "PROJECT#{id}#CONTACT_EMAIL#*",
                "PROJECT#{id}#COUNTERS",
                "CONTACT#{id}",
                "PROJECT#{id}#EVENTS",
                "PROJECT#{id}#CONTACT#{id}#EVENTS",
                "CONTACT_ERASURES",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "segments",
        &[
            AUTH,
            &[
                "PROJECT#{id}#SEGMENTS",
                "PROJECT#{id}#SEGMENTS#TYPE#*",
                "PROJECT#{id}#SEGMENT_SLUG#*",
                "PROJECT#{id}#SEGMENT#{id}#MEMBERS",
                "PROJECT#{id}#SEGMENT#{id}#MEMBER#{id}",
                "SEGMENT_JOBS",
                "PROJECT#{id}#ACTIVITY",
                "PROJECT#{id}#CONTACTS",
                "PROJECT#{id}#CONTACT_EMAIL#*",
                "PROJECT#{id}#COUNTERS",
                "CONTACT#{id}",
                "PROJECT#{id}#SEGMENT#{id}#USES",
                "PROJECT#{id}#SEGMENT#{id}#DEPARTURES",
                "SYSTEM#SEGMENT_TIMERS",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "workflows",
        &[
            AUTH,
            &[
                "PROJECT#{id}#WORKFLOWS",
                "PROJECT#{id}#WORKFLOWS#ENABLED#*",
                "PROJECT#{id}#WORKFLOW#{id}#GRAPH",
                "PROJECT#{id}#WORKFLOW_TRIGGERS",
                // Active executions (the locks, `activeExecutions`).
                "PROJECT#{id}#COUNTERS",
                // Executions: manual starts (the contact, its entry), lists, cancels (their
                // timers and waits).
                "PROJECT#{id}#WORKFLOW#{id}#EXECUTIONS",
                "PROJECT#{id}#WORKFLOW#{id}#EXECUTIONS#STATUS#*",
                "PROJECT#{id}#WORKFLOW#{id}#ENTRIES",
                "PROJECT#{id}#EXECUTION#{id}#STEPS",
                "PROJECT#{id}#CONTACTS",
                "PROJECT#{id}#CONTACT#{id}#WAITS",
                "WORKFLOW_TIMERS#*",
                // SEND_EMAIL steps: the template exists, and its uses.
                "PROJECT#{id}#TEMPLATES",
                "PROJECT#{id}#TEMPLATE#{id}#WORKFLOW_USES",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "campaigns",
        &[
            AUTH,
            &[
                "PROJECT#{id}#CAMPAIGNS",
                "PROJECT#{id}#CAMPAIGNS#STATUS#*",
                "PROJECT#{id}#CAMPAIGN#{id}#COUNTERS",
                "PROJECT#{id}#SENDER#*",
                "PROJECT#{id}#SEGMENT#{id}#USES",
                "PROJECT#{id}#SEGMENTS",
                "CAMPAIGN_DUE#*",
                "CAMPAIGN_FANOUTS",
                "DOMAIN_NAME#*",
                "PROJECT#{id}#EVENTS",
                "PROJECT#{id}#IDEMPOTENCY#*",
                // The test send: the contact of the address, the suppression list, the record
                // and its queued content.
                "PROJECT#{id}#CONTACT_EMAIL#*",
                "PROJECT#{id}#CONTACTS",
                "PROJECT#{id}#SUPPRESSION#*",
                "PROJECT#{id}#EMAILS",
                "SWEEP#*",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "public-api",
        &[
            AUTH,
            &[
                "PROJECT#{id}#IDEMPOTENCY#*",
                "PROJECT#{id}#PUBRATE#*",
                "PROJECT#{id}#CONTACTS",
                "PROJECT#{id}#CONTACT_EMAIL#*",
                "PROJECT#{id}#COUNTERS",
                "CONTACT#{id}",
                "PROJECT#{id}#EVENTS",
                "PROJECT#{id}#EVENT_NAME_REGISTRY",
                "PROJECT#{id}#EMAILS",
                "DOMAIN_NAME#*",
                "PROJECT#{id}#TEMPLATES",
                "PROJECT#{id}#SUPPRESSION#*",
                "SWEEP#*",
            ],
        ],
    ),
    (
        "domains",
        &[
            AUTH,
            &[
                "PROJECT#{id}#DOMAINS",
                "PROJECT#{id}#DOMAINS#VERIFIED#*",
                "DOMAIN_NAME#*",
                "PROJECT#{id}#SENDER#*",
                "SECRET#CURSOR",
            ],
        ],
    ),
    ("emails", &[AUTH, &["PROJECT#{id}#EMAILS", "SECRET#CURSOR"]]),
    (
        "templates",
        &[
            AUTH,
            &[
                "PROJECT#{id}#TEMPLATES",
                "PROJECT#{id}#TEMPLATES#TYPE#*",
                // TEMPLATE_IN_USE and the usage report.
                "PROJECT#{id}#TEMPLATE#{id}#WORKFLOW_USES",
                "PROJECT#{id}#SENDER#*",
                "DOMAIN_NAME#*",
                // The preview renders for a contact.
                "PROJECT#{id}#CONTACTS",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "events",
        &[
            AUTH,
            &[
                "PROJECT#{id}#EVENTS",
                "PROJECT#{id}#CONTACT#{id}#EVENTS",
                "PROJECT#{id}#EVENT_NAMES",
                "PROJECT#{id}#EVENT_UNIQUE",
                "PROJECT#{id}#EVENT_RESETS",
                "PROJECT#{id}#EVENT_LAST_SEEN",
                "PROJECT#{id}#EVENT_DAILY",
                "PROJECT#{id}#EVENT_NAME_REGISTRY",
                "PROJECT#{id}#COUNTERS",
                "EVENT_DELETIONS",
                "SECRET#CURSOR",
                // Usage: the segments and campaigns whose conditions read a name, and the
                // workflows that trigger on it or wait for it.
                "PROJECT#{id}#SEGMENTS",
                "PROJECT#{id}#CAMPAIGNS#STATUS#*",
                "PROJECT#{id}#WORKFLOWS",
            ],
        ],
    ),
    (
        "suppressions",
        &[
            AUTH,
            &[
                "PROJECT#{id}#SUPPRESSION#*",
                "PROJECT#{id}#SUPPRESSIONS",
                "SECRET#CURSOR",
            ],
        ],
    ),
    (
        "webhooks",
        &[
            AUTH,
            &[
                "PROJECT#{id}#WEBHOOKS",
                "PROJECT#{id}#WEBHOOK#{id}#DELIVERIES",
                "PROJECT#{id}#WEBHOOK_CALLS#*",
                "PROJECT#{id}#COUNTERS",
                "SECRET#CURSOR",
                "SECRET#WEBHOOK_DATA_KEY",
            ],
        ],
    ),
    (
        "pages",
        &[&[
            "PAGES_RATE#*",
            "SECRET#PAGE_TOKENS",
            "CONTACT#{id}",
            "PROJECT#{id}",
            "PROJECT#{id}#CONTACTS",
            "PROJECT#{id}#COUNTERS",
            "PROJECT#{id}#EVENTS",
            "PROJECT#{id}#EMAILS",
            "PROJECT#{id}#CAMPAIGN#{id}#COUNTERS",
            "PROJECT#{id}#CAMPAIGN#{id}#COUNTED#*",
        ]],
    ),
    (
        "send-consumer",
        &[&[
            "PROJECT#{id}",
            "PROJECT#{id}#EMAILS",
            "SWEEP#*",
            "SYSTEM#PACING",
            "PROJECT#{id}#CONTACTS",
            "PROJECT#{id}#SUPPRESSION#*",
            "DOMAIN_NAME#*",
            "PROJECT#{id}#EVENTS",
            "SECRET#PAGE_TOKENS",
            "PROJECT#{id}#CAMPAIGNS",
            "PROJECT#{id}#CAMPAIGN#{id}#COUNTERS",
        ]],
    ),
    (
        "event-dispatch",
        &[&[
            "PROJECT#{id}#EVENT_NAMES",
            "PROJECT#{id}#EVENT_UNIQUE",
            "PROJECT#{id}#EVENT_RESETS",
            "PROJECT#{id}#EVENT_LAST_SEEN",
            "PROJECT#{id}#EVENT_SEEN#*",
            "PROJECT#{id}#EVENT_DAILY",
            "PROJECT#{id}#WEBHOOKS",
            "PROJECT#{id}#WEBHOOK#{id}#DELIVERIES",
            "PROJECT#{id}#ACTIVITY",
            // Segment membership: evaluation of the touched contacts, its writes and timers.
            "PROJECT#{id}#SEGMENTS",
            "PROJECT#{id}#CONTACTS",
            "PROJECT#{id}#SEGMENT#{id}#MEMBER#{id}",
            "PROJECT#{id}#COUNTERS",
            "PROJECT#{id}#EVENTS",
            "SEGMENT_TIMERS#*",
            // Workflows: the triggers an event starts, the executions it starts (with the
            // contact's entry and the active counter) and the waits it ends.
            "PROJECT#{id}#WORKFLOW_TRIGGERS",
            "PROJECT#{id}#WORKFLOWS",
            "PROJECT#{id}#WORKFLOW#{id}#GRAPH",
            "PROJECT#{id}#WORKFLOW#{id}#EXECUTIONS",
            "PROJECT#{id}#WORKFLOW#{id}#ENTRIES",
            "PROJECT#{id}#CONTACT#{id}#WAITS",
            // A started execution's watchdog timer.
            "WORKFLOW_TIMERS#*",
        ]],
    ),
    (
        "workflow-worker",
        &[&[
            "PROJECT#{id}",
            "PROJECT#{id}#WORKFLOWS",
            "PROJECT#{id}#WORKFLOW#{id}#GRAPH",
            "PROJECT#{id}#WORKFLOW#{id}#EXECUTIONS",
            "PROJECT#{id}#EXECUTION#{id}#STEPS",
            "PROJECT#{id}#COUNTERS",
            "PROJECT#{id}#CONTACT#{id}#WAITS",
            "WORKFLOW_TIMERS#*",
            // An event that starts many workflows, handed on by the dispatcher: the workflows
            // its name triggers and the contacts' entries; a deleted workflow's purge.
            "PROJECT#{id}#WORKFLOW_TRIGGERS",
            "PROJECT#{id}#WORKFLOW#{id}#ENTRIES",
            // UPDATE_CONTACT: the contact and the subscription event.
            "PROJECT#{id}#CONTACTS",
            "PROJECT#{id}#EVENTS",
            // SEND_EMAIL: the template, the sender domain, suppressions, the record and its
            // queued content.
            "PROJECT#{id}#TEMPLATES",
            "DOMAIN_NAME#*",
            "PROJECT#{id}#SUPPRESSION#*",
            "PROJECT#{id}#EMAILS",
            "SWEEP#*",
        ]],
    ),
    (
        "webhook-delivery",
        &[&[
            "PROJECT#{id}#WEBHOOKS",
            "PROJECT#{id}#WEBHOOK#{id}#DELIVERIES",
            "PROJECT#{id}#WEBHOOK#{id}#SLOT#*",
            "SECRET#WEBHOOK_DATA_KEY",
        ]],
    ),
    (
        "scheduler",
        &[&[
            "SYSTEM#SCHEDULER",
            "SYSTEM#EVENT_DELETION_TURN",
            "SWEEP#*",
            "PROJECT#{id}#EMAILS",
            "EVENT_DELETIONS",
            "PROJECT#{id}#EVENTS",
            "PROJECT#{id}#EVENT_SEEN#*",
            "CONTACT_ERASURES",
            "SYSTEM#CONTACT_ERASURE_TURN",
            "PROJECT#{id}#CONTACT#{id}#EVENTS",
            "PROJECT#{id}#ACTIVITY",
            "PROJECT#{id}#CONTACT#{id}#SEGMENTS",
            "PROJECT#{id}#SEGMENT#{id}#MEMBERS",
            "PROJECT#{id}#SEGMENT#{id}#MEMBER#{id}",
            "PROJECT#{id}#COUNTERS",
            "SEGMENT_JOBS",
            "SYSTEM#SEGMENT_JOB_TURN",
            "PROJECT#{id}#SEGMENTS",
            "PROJECT#{id}#CONTACTS",
            "SEGMENT_TIMERS#*",
            "SYSTEM#SEGMENT_TIMERS",
            // Workflow timers: the due minutes and how far they were worked; a deleted
            // contact's waiting executions are cancelled with its erasure.
            "WORKFLOW_TIMERS#*",
            "SYSTEM#WORKFLOW_TIMERS",
            "PROJECT#{id}#CONTACT#{id}#WAITS",
            "PROJECT#{id}#WORKFLOW#{id}#EXECUTIONS",
            // Campaigns: scheduled starts, the fan-out and its checkpoints, completion.
            "PROJECT#{id}",
            "PROJECT#{id}#CAMPAIGNS",
            "PROJECT#{id}#CAMPAIGN#{id}#COUNTERS",
            "PROJECT#{id}#SENDER#*",
            "PROJECT#{id}#SEGMENT#{id}#USES",
            "CAMPAIGN_DUE#*",
            "SYSTEM#CAMPAIGN_DUE",
            "CAMPAIGN_FANOUTS",
            "SYSTEM#CAMPAIGN_FANOUT_TURN",
            "DOMAIN_NAME#*",
            "PROJECT#{id}#SUPPRESSION#*",
        ]],
    ),
    (
        "feedback-consumer",
        &[&[
            "PROJECT#{id}#EMAILS",
            "PROJECT#{id}#FEEDBACK#*",
            "PROJECT#{id}#CONTACTS",
            "PROJECT#{id}#CONTACT_EMAIL#*",
            "PROJECT#{id}#COUNTERS",
            "PROJECT#{id}#SUPPRESSION#*",
            "PROJECT#{id}#EVENTS",
            "PROJECT#{id}#CAMPAIGN#{id}#COUNTERS",
        ]],
    ),
];

/// IAM `StringLike` matching: `*` matches any run of characters (none included), `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        // A `*` in the pattern is always a wildcard, even against a `*` in the text.
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// With `PLUNK_ACCESS_RECORD=<file>` (set by `make test`), each process appends every
/// `function pattern` pair it used, once, so the run can check that no granted pattern goes
/// unused (a grant no code needs).
fn record_use(function: &str, pattern: &str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Option<(String, Mutex<HashSet<String>>)>> = OnceLock::new();
    let Some((path, seen)) = SEEN.get_or_init(|| {
        std::env::var("PLUNK_ACCESS_RECORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(|p| (p, Mutex::new(HashSet::new())))
    }) else {
        return;
    };
    let line = format!("{function} {pattern}\n");
    let Ok(mut seen) = seen.lock() else { return };
    if seen.insert(line.clone()) {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // One short write with O_APPEND: lines from concurrent processes never interleave.
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// A table that refuses any partition outside its profile, as IAM does on AWS.
pub struct GuardedTable {
    inner: Arc<dyn Table>,
    profile: AccessProfile,
}

impl GuardedTable {
    /// Guards `inner` with `profile`.
    pub fn new(inner: Arc<dyn Table>, profile: AccessProfile) -> Self {
        Self { inner, profile }
    }

    fn check(&self, partition: &str) -> Result<(), StoreError> {
        if let Some(pattern) = self.profile.matching(partition) {
            record_use(self.profile.name, pattern);
            return Ok(());
        }
        tracing::error!(
            function = self.profile.name,
            partition,
            "table access outside the function's profile refused"
        );
        Err(StoreError::Other(format!(
            "access denied: {} may not touch partition {partition}",
            self.profile.name
        )))
    }

    fn check_key(&self, key: &Key) -> Result<(), StoreError> {
        self.check(&key.pk)
    }
}

#[async_trait]
impl Table for GuardedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.check_key(key)?;
        self.inner.get(key).await
    }

    async fn get_eventually(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.check_key(key)?;
        self.inner.get_eventually(key).await
    }

    async fn put(&self, item: Item, condition: crate::table::Condition) -> Result<(), StoreError> {
        self.check_key(&item.key)?;
        self.inner.put(item, condition).await
    }

    async fn delete(
        &self,
        key: &Key,
        condition: crate::table::Condition,
    ) -> Result<(), StoreError> {
        self.check_key(key)?;
        self.inner.delete(key, condition).await
    }

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        max: Option<i64>,
        ttl: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.check_key(key)?;
        self.inner.add(key, delta, max, ttl).await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.inner.batch_get(keys).await
    }

    async fn batch_get_eventually(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.inner.batch_get_eventually(keys).await
    }

    async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        items.iter().try_for_each(|i| self.check_key(&i.key))?;
        self.inner.batch_put(items).await
    }

    async fn query(&self, query: Query) -> Result<Page, StoreError> {
        // On an index, IAM's LeadingKeys is the index's partition key: the same check.
        self.check(&query.partition)?;
        self.inner.query(query).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        for op in &ops {
            let key = match op {
                WriteOp::Put { item, .. } => &item.key,
                WriteOp::Delete { key, .. }
                | WriteOp::Check { key, .. }
                | WriteOp::Add { key, .. } => key,
            };
            self.check_key(key)?;
        }
        self.inner.transact(ops).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Index;

    #[test]
    fn glob_follows_iam_string_like() {
        assert!(glob("APIKEY#*", "APIKEY#abc"));
        assert!(glob("APIKEY#*", "APIKEY#"));
        assert!(!glob("APIKEY#*", "APIKEYS"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*#EVENTS", "PROJECT#x#EVENTS"));
        assert!(!glob("*#EVENTS", "PROJECT#x#EVENTS#y"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        // Wildcard characters in the text are plain characters.
        assert!(glob("S#*", "S#*!@x.test"));
        assert!(glob("S#*", "S#?*"));
        assert!(!glob("S#?", "S#*!"));
        assert!(glob("*", ""));
    }

    /// The plain recursive definition, to check the iterative one against.
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    #[test]
    fn glob_agrees_with_the_recursive_definition_on_random_inputs() {
        let alphabet = ['a', 'b', '#', '*', '?'];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let p: String = (0..next(7)).map(|_| alphabet[next(5)]).collect();
            let t: String = (0..next(9)).map(|_| alphabet[next(5)]).collect();
            let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
            assert_eq!(glob(&p, &t), reference(&pc, &tc), "{p:?} against {t:?}");
        }
    }

    #[test]
    fn a_project_pattern_matches_the_project_item_only() {
        let p = AccessProfile::of("pages").unwrap();
        let id = uuid::Uuid::now_v7();
        assert!(p.allows(&format!("PROJECT#{id}")));
        assert!(p.allows(&format!("PROJECT#{id}#CONTACTS")));
        assert!(!p.allows(&format!("PROJECT#{id}#WEBHOOKS")));
        assert!(!p.allows(&format!("PROJECT#{id}#KEYS")));
        assert!(!p.allows("APIKEY#00"));
        assert!(!p.allows("SECRET#CURSOR"));
        assert!(!p.allows("SECRET#WEBHOOK_DATA_KEY"));
        assert!(p.allows("SECRET#PAGE_TOKENS"));
    }

    #[test]
    fn only_the_webhook_api_and_worker_reach_the_webhook_data_key() {
        let reach: Vec<&str> = AccessProfile::all()
            .iter()
            .filter(|p| p.allows("SECRET#WEBHOOK_DATA_KEY"))
            .map(|p| p.name)
            .collect();
        assert_eq!(reach, ["webhooks", "webhook-delivery"]);
    }

    #[tokio::test]
    async fn a_guarded_table_refuses_every_operation_outside_the_profile() {
        use crate::backend::sqlite::SqliteTable;
        use crate::table::Condition;
        let inner: Arc<dyn Table> = Arc::new(SqliteTable::in_memory().unwrap());
        let t = GuardedTable::new(inner, AccessProfile::of("pages").unwrap());
        let secret = Key::new("SECRET#CURSOR", "S");
        let is_denied = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Other(m)) if m.contains("access denied"));
        assert!(is_denied(t.get(&secret).await.map(|_| ())));
        assert!(is_denied(
            t.put(
                Item::new(secret.clone(), serde_json::json!({})),
                Condition::None
            )
            .await
        ));
        assert!(is_denied(t.delete(&secret, Condition::None).await));
        assert!(is_denied(t.add(&secret, 1, None, None).await.map(|_| ())));
        assert!(is_denied(
            t.batch_get(&[Key::new("PAGES_RATE#x", "RATE"), secret.clone()])
                .await
                .map(|_| ())
        ));
        assert!(is_denied(
            t.query(Query::new(Index::Gsi1, "PROJECTS"))
                .await
                .map(|_| ())
        ));
        let ops = vec![
            WriteOp::Add {
                key: Key::new("PAGES_RATE#x", "RATE"),
                delta: 1,
            },
            WriteOp::Check {
                key: secret.clone(),
                condition: Condition::Exists,
            },
        ];
        assert!(is_denied(t.transact(ops).await));
        // Inside the profile: passes through.
        assert!(t
            .add(&Key::new("PAGES_RATE#x", "RATE"), 1, None, None)
            .await
            .is_ok());
    }
}

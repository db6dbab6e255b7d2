//! Background work that projects take turns at: a global partition of pending jobs whose sort
//! keys start with `<projectId>#`, and a turn item naming the project a pass served last. Each
//! pass reads the jobs starting with the project after that one (wrapping around), so however
//! much one project has queued, every other project's jobs are reached in the next pass. Used by
//! event-name deletions and contact erasures, both worked by the scheduler's tick.

use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table};
use serde_json::json;
use uuid::Uuid;

/// The pending jobs of `partition`, at most `max_jobs`, grouped by project in turn order: the
/// projects after the one `turn` names, then from the start.
pub(crate) async fn pending_by_project(
    table: &dyn Table,
    partition: &str,
    turn: &Key,
    max_jobs: usize,
) -> Result<Vec<(Uuid, Vec<Item>)>, StoreError> {
    let last_served: Option<Uuid> = table
        .get(turn)
        .await?
        .and_then(|i| i.body["lastProject"].as_str().and_then(|s| s.parse().ok()));
    let mut jobs: Vec<Item> = Vec::new();
    // Sort keys are `<project>#…`; '$' sorts after '#', so this starts at the next project.
    let after = last_served.map(|p| Position {
        key: Key::new(partition, format!("{p}$")),
        gsi1: None,
    });
    'passes: for start in [after.clone(), None] {
        let mut query = Query::new(Index::Primary, partition);
        query.start_after = start.clone();
        loop {
            let page = table.query(query.clone()).await?;
            for item in page.items {
                // The wrap-around pass stops where the first pass began.
                if start.is_none() && after.as_ref().is_some_and(|a| item.key.sk >= a.key.sk) {
                    break 'passes;
                }
                jobs.push(item);
                if jobs.len() >= max_jobs {
                    break 'passes;
                }
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => break,
            }
        }
        if after.is_none() {
            break;
        }
    }
    let mut grouped: Vec<(Uuid, Vec<Item>)> = Vec::new();
    for item in jobs {
        let Some(project) = item
            .key
            .sk
            .split_once('#')
            .and_then(|(p, _)| p.parse::<Uuid>().ok())
        else {
            tracing::warn!(sk = %item.key.sk, "a background job whose key names no project; skipped");
            continue;
        };
        match grouped.last_mut() {
            Some((last, list)) if *last == project => list.push(item),
            _ => grouped.push((project, vec![item])),
        }
    }
    Ok(grouped)
}

/// Records that a pass served `project` last: the next pass starts after it.
pub(crate) async fn record_turn(
    table: &dyn Table,
    turn: Key,
    project: Uuid,
) -> Result<(), StoreError> {
    table
        .put(
            Item::new(turn, json!({ "lastProject": project })),
            Condition::None,
        )
        .await
}

/// Each project's share of a pass's `budget`: equal, and at least `min`.
pub(crate) fn share(budget: usize, projects: usize, min: usize) -> usize {
    (budget / projects.max(1)).max(min)
}

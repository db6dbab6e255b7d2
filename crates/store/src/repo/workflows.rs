//! Workflows: one item per workflow in the project's workflows partition (newest first, ids are
//! UUIDv7) with a `Gsi1` entry for its enabled state (the `enabled` filter), and the workflow's
//! graph in a partition of its own, one item per step and per transition, so reading a whole
//! graph is one query and an edit writes only what it changes.
//!
//! Every change is a transaction conditional on the workflow item's version: the workflow item
//! is rewritten (new version, new `updatedAt`, the graph summary) together with the steps and
//! transitions that change, so two concurrent edits of one graph cannot both pass the graph
//! rules against the same old graph. A SEND_EMAIL step with a template keeps a use item under
//! the template (`TEMPLATE_IN_USE`, the template's usage report) in the same transaction.

use crate::keys;
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Key, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::workflow::{Step, StepType, Transition, TriggerType, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Most workflows a usage question examines (`GET /events/:name/usage`): far more than a
/// project keeps, and a bounded read whatever it keeps.
pub const USAGE_SCAN_LIMIT: usize = 5_000;

/// A workflow as stored: its settings and what the list, the locks and the usage reports need
/// without reading the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRecord {
    #[serde(flatten)]
    pub workflow: Workflow,
    /// Steps in the graph, the TRIGGER included.
    pub step_count: usize,
    /// Executions RUNNING or WAITING (not stored here: read from the workflow's active
    /// counter when the workflow is read).
    #[serde(skip)]
    pub active_executions: u64,
    /// The event names WAIT_FOR_EVENT steps wait for (the trigger's is in `workflow`).
    #[serde(default)]
    pub wait_event_names: Vec<String>,
}

impl WorkflowRecord {
    /// Whether the workflow names `event` as its trigger or in a WAIT_FOR_EVENT step.
    pub fn uses_event(&self, event: &str) -> bool {
        self.workflow
            .trigger_config
            .as_ref()
            .is_some_and(|t| t.event_name == event)
            || self.wait_event_names.iter().any(|n| n == event)
    }
}

/// A workflow's steps (creation order) and transitions (creation order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub steps: Vec<Step>,
    pub transitions: Vec<Transition>,
}

impl Graph {
    /// The step with this id.
    pub fn step(&self, id: Uuid) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The transition with this id.
    pub fn transition(&self, id: Uuid) -> Option<&Transition> {
        self.transitions.iter().find(|t| t.id == id)
    }

    /// The event names of the WAIT_FOR_EVENT steps, sorted, without repeats.
    pub fn wait_event_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.step_type == StepType::WaitForEvent)
            .filter_map(|s| s.config["eventName"].as_str().map(|n| n.trim().to_owned()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// What one edit does to a graph.
#[derive(Debug, Clone, Default)]
pub struct GraphChange {
    /// Steps written whole (new or changed).
    pub put_steps: Vec<Step>,
    /// Steps removed, as they were (their template uses go with them).
    pub delete_steps: Vec<Step>,
    /// Transitions written whole (new or changed).
    pub put_transitions: Vec<Transition>,
    /// Transitions removed.
    pub delete_transitions: Vec<Uuid>,
}

/// Failures of workflow writes.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("workflow not found")]
    NotFound,
    /// Someone else changed the workflow since it was read.
    #[error("workflow changed concurrently")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WorkflowError {
    fn from_write(e: StoreError) -> Self {
        if e.is_condition_failed() {
            WorkflowError::Conflict
        } else {
            WorkflowError::Store(e)
        }
    }
}

/// One page of workflows.
#[derive(Debug, Clone)]
pub struct WorkflowPage {
    pub items: Vec<WorkflowRecord>,
    pub next: Option<Position>,
}

/// A workflow whose SEND_EMAIL steps send a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateUser {
    pub workflow_id: Uuid,
    pub workflow_name: String,
    pub step_ids: Vec<Uuid>,
}

/// Workflow operations of one table.
pub struct Workflows<'a> {
    table: &'a dyn Table,
}

fn workflow_item(project: Uuid, record: &WorkflowRecord, version: u64) -> Item {
    Item::new(
        keys::workflow(project, record.workflow.id),
        crate::encode(record),
    )
    .with_gsi1(
        keys::workflows_by_enabled_index(project, record.workflow.enabled),
        record.workflow.id.to_string(),
    )
    .with_version(version)
}

fn step_item(project: Uuid, step: &Step) -> Item {
    Item::new(
        keys::workflow_step(project, step.workflow_id, step.id),
        crate::encode(step),
    )
}

fn transition_item(project: Uuid, transition: &Transition) -> Item {
    Item::new(
        keys::workflow_transition(project, transition.workflow_id, transition.id),
        crate::encode(transition),
    )
}

/// The template use a step keeps, if it sends one.
fn template_use(project: Uuid, step: &Step, workflow_name: &str) -> Option<Item> {
    let template = step
        .template_id
        .filter(|_| step.step_type == StepType::SendEmail)?;
    Some(Item::new(
        keys::template_workflow_use(project, template, step.workflow_id, step.id),
        json!({"workflowId": step.workflow_id, "workflowName": workflow_name, "stepId": step.id}),
    ))
}

/// The template-use writes of a graph change: uses the old graph kept and the new one does not
/// are deleted; uses that are new, or whose step or workflow name changed, are written.
fn use_changes(
    project: Uuid,
    old_name: &str,
    before: &Graph,
    new_name: &str,
    change: &GraphChange,
) -> Vec<WriteOp> {
    let deleted: Vec<Uuid> = change.delete_steps.iter().map(|s| s.id).collect();
    let old: BTreeMap<(String, String), Key> = before
        .steps
        .iter()
        .filter_map(|s| template_use(project, s, old_name))
        .map(|i| ((i.key.pk.clone(), i.key.sk.clone()), i.key))
        .collect();
    let after = before
        .steps
        .iter()
        .filter(|s| !deleted.contains(&s.id))
        .filter(|s| !change.put_steps.iter().any(|p| p.id == s.id))
        .map(|s| (s, old_name != new_name))
        .chain(change.put_steps.iter().map(|s| (s, true)));
    let mut ops = Vec::new();
    let mut kept = std::collections::BTreeSet::new();
    for (step, rewrite) in after {
        let Some(item) = template_use(project, step, new_name) else {
            continue;
        };
        let id = (item.key.pk.clone(), item.key.sk.clone());
        if rewrite || !old.contains_key(&id) {
            ops.push(put(item));
        }
        kept.insert(id);
    }
    for (id, key) in old {
        if !kept.contains(&id) {
            ops.push(WriteOp::Delete {
                key,
                condition: Condition::None,
            });
        }
    }
    ops
}

/// The trigger entry a workflow keeps: only while it is enabled and started by an event.
fn trigger_key(project: Uuid, record: &WorkflowRecord) -> Option<Key> {
    let w = &record.workflow;
    let config = w.trigger_config.as_ref()?;
    (w.enabled && w.trigger_type == TriggerType::Event)
        .then(|| keys::workflow_trigger(project, &config.event_name, w.id))
}

fn put(item: Item) -> WriteOp {
    WriteOp::Put {
        item,
        condition: Condition::None,
    }
}

impl<'a> Workflows<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    /// One workflow with its version and its count of active executions.
    pub async fn get(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(WorkflowRecord, u64)>, StoreError> {
        match self.table.get(&keys::workflow(project, id)).await? {
            Some(item) => {
                let mut record: WorkflowRecord = crate::decode(&item)?;
                record.active_executions = self.active_counts(project, &[id]).await?[0];
                Ok(Some((record, item.version)))
            }
            None => Ok(None),
        }
    }

    /// The counts of active executions of `workflows`, in order.
    async fn active_counts(
        &self,
        project: Uuid,
        workflows: &[Uuid],
    ) -> Result<Vec<u64>, StoreError> {
        let keys: Vec<Key> = workflows
            .iter()
            .map(|w| keys::workflow_active_counter(project, *w))
            .collect();
        let mut counts = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            for item in self.table.batch_get(chunk).await? {
                counts.push(
                    item.and_then(|i| i.counter)
                        .map_or(0, |c| u64::try_from(c).unwrap_or(0)),
                );
            }
        }
        Ok(counts)
    }

    /// The whole graph of a workflow (at most 100 steps and their transitions).
    pub async fn graph(&self, project: Uuid, id: Uuid) -> Result<Graph, StoreError> {
        let mut query = Query::new(Index::Primary, keys::workflow_graph_partition(project, id));
        query.limit = 1000;
        let mut graph = Graph::default();
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                if item.key.sk.starts_with("STEP#") {
                    graph.steps.push(crate::decode(item)?);
                } else if item.key.sk.starts_with("TRANSITION#") {
                    graph.transitions.push(crate::decode(item)?);
                }
            }
            match page.last {
                Some(last) => query.start_after = Some(last),
                None => break,
            }
        }
        graph.steps.sort_by_key(|s| (s.created_at, s.id));
        graph.transitions.sort_by_key(|t| (t.created_at, t.id));
        Ok(graph)
    }

    /// Stores a new workflow (its id must be fresh) with its first steps.
    pub async fn create(
        &self,
        project: Uuid,
        record: &WorkflowRecord,
        steps: &[Step],
    ) -> Result<(), WorkflowError> {
        let mut ops = vec![WriteOp::Put {
            item: workflow_item(project, record, 1),
            condition: Condition::NotExists,
        }];
        for step in steps {
            ops.push(put(step_item(project, step)));
            ops.extend(template_use(project, step, &record.workflow.name).map(put));
        }
        if let Some(key) = trigger_key(project, record) {
            ops.push(put(Item::new(key, json!({}))));
        }
        self.table
            .transact(ops)
            .await
            .map_err(WorkflowError::from_write)
    }

    /// Writes `record` (`old` read at `version`) and the graph `change` in one transaction, with
    /// the trigger entry following the enabled state and trigger. `before` is the graph the
    /// change applies to; the template uses follow the steps (and a renamed workflow rewrites
    /// them, so usage reports show the new name). `None` when the change touches no step and
    /// keeps the name.
    /// `Conflict` when the workflow changed since it was read. Returns the new version.
    pub async fn save(
        &self,
        project: Uuid,
        old: &WorkflowRecord,
        record: &WorkflowRecord,
        version: u64,
        before: Option<&Graph>,
        change: &GraphChange,
    ) -> Result<u64, WorkflowError> {
        let mut ops = vec![WriteOp::Put {
            item: workflow_item(project, record, version + 1),
            condition: Condition::VersionEquals(version),
        }];
        if let Some(graph) = before {
            let old_name = old.workflow.name.as_str();
            ops.extend(use_changes(
                project,
                old_name,
                graph,
                &record.workflow.name,
                change,
            ));
        }
        let (old_trigger, new_trigger) = (trigger_key(project, old), trigger_key(project, record));
        if old_trigger != new_trigger {
            if let Some(key) = old_trigger {
                ops.push(WriteOp::Delete {
                    key,
                    condition: Condition::None,
                });
            }
            if let Some(key) = new_trigger {
                ops.push(put(Item::new(key, json!({}))));
            }
        }
        for step in &change.delete_steps {
            ops.push(WriteOp::Delete {
                key: keys::workflow_step(project, step.workflow_id, step.id),
                condition: Condition::None,
            });
        }
        for step in &change.put_steps {
            ops.push(put(step_item(project, step)));
        }
        for id in &change.delete_transitions {
            ops.push(WriteOp::Delete {
                key: keys::workflow_transition(project, record.workflow.id, *id),
                condition: Condition::None,
            });
        }
        for transition in &change.put_transitions {
            ops.push(put(transition_item(project, transition)));
        }
        self.table
            .transact(ops)
            .await
            .map_err(WorkflowError::from_write)?;
        Ok(version + 1)
    }

    /// Deletes a workflow read at `version`, then its graph and template uses (a crash in
    /// between leaves graph items no one can reach: their partition is the workflow's).
    pub async fn delete(
        &self,
        project: Uuid,
        record: &WorkflowRecord,
        version: u64,
        graph: &Graph,
    ) -> Result<(), WorkflowError> {
        self.table
            .delete(
                &keys::workflow(project, record.workflow.id),
                Condition::VersionEquals(version),
            )
            .await
            .map_err(WorkflowError::from_write)?;
        if let Some(key) = trigger_key(project, record) {
            self.table.delete(&key, Condition::None).await?;
        }
        for step in &graph.steps {
            if let Some(item) = template_use(project, step, &record.workflow.name) {
                self.table.delete(&item.key, Condition::None).await?;
            }
            self.table
                .delete(
                    &keys::workflow_step(project, record.workflow.id, step.id),
                    Condition::None,
                )
                .await?;
        }
        for transition in &graph.transitions {
            self.table
                .delete(
                    &keys::workflow_transition(project, record.workflow.id, transition.id),
                    Condition::None,
                )
                .await?;
        }
        Ok(())
    }

    /// One page of workflows, newest first, optionally only the enabled or disabled ones.
    pub async fn list(
        &self,
        project: Uuid,
        enabled: Option<bool>,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<WorkflowPage, StoreError> {
        let mut query = match enabled {
            Some(e) => Query::new(Index::Gsi1, keys::workflows_by_enabled_index(project, e)),
            None => Query::new(Index::Primary, keys::workflows_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        let index = query.index;
        let page = scan::page(self.table, query, limit, false, |item| {
            let record: WorkflowRecord = crate::decode(item)?;
            Ok(Some((record, item.position(index))))
        })
        .await?;
        let mut items: Vec<WorkflowRecord> = page.items.into_iter().map(|(r, _)| r).collect();
        let ids: Vec<Uuid> = items.iter().map(|r| r.workflow.id).collect();
        for (record, count) in items
            .iter_mut()
            .zip(self.active_counts(project, &ids).await?)
        {
            record.active_executions = count;
        }
        Ok(WorkflowPage {
            items,
            next: page.next,
        })
    }

    /// The workflows whose SEND_EMAIL steps send `template`, with those steps (at most 1,000
    /// steps are read).
    pub async fn template_users(
        &self,
        project: Uuid,
        template: Uuid,
    ) -> Result<Vec<TemplateUser>, StoreError> {
        let mut query = Query::new(
            Index::Primary,
            keys::template_workflow_uses_partition(project, template),
        );
        query.limit = 1000;
        let page = self.table.query(query).await?;
        let mut users: Vec<TemplateUser> = Vec::new();
        for item in &page.items {
            let (Some(workflow), Some(step)) = (
                item.body["workflowId"]
                    .as_str()
                    .and_then(|s| s.parse::<Uuid>().ok()),
                item.body["stepId"]
                    .as_str()
                    .and_then(|s| s.parse::<Uuid>().ok()),
            ) else {
                continue;
            };
            let name = item.body["workflowName"].as_str().unwrap_or_default();
            match users.iter_mut().find(|u| u.workflow_id == workflow) {
                Some(user) => user.step_ids.push(step),
                None => users.push(TemplateUser {
                    workflow_id: workflow,
                    workflow_name: name.to_owned(),
                    step_ids: vec![step],
                }),
            }
        }
        Ok(users)
    }

    /// The workflows (at most [`USAGE_SCAN_LIMIT`] examined) that name `event` as trigger or
    /// in a WAIT_FOR_EVENT step: `(id, name)`.
    pub async fn event_users(
        &self,
        project: Uuid,
        event: &str,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::workflows_partition(project));
        query.limit = 1000;
        let mut users = Vec::new();
        let mut examined = 0;
        loop {
            let page = self.table.query(query.clone()).await?;
            for item in &page.items {
                let record: WorkflowRecord = crate::decode(item)?;
                if record.uses_event(event) {
                    users.push((record.workflow.id, record.workflow.name));
                }
            }
            examined += page.items.len();
            match page.last {
                Some(last) if examined < USAGE_SCAN_LIMIT => query.start_after = Some(last),
                _ => return Ok(users),
            }
        }
    }

    /// The enabled EVENT workflows an event named `event_name` starts.
    pub async fn triggered_by(
        &self,
        project: Uuid,
        event_name: &str,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut query = Query::new(Index::Primary, keys::workflow_triggers_partition(project));
        query.sort_prefix = Some(format!("{event_name}#"));
        query.limit = 1000;
        let page = self.table.query(query).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|item| item.key.sk.rsplit('#').next()?.parse().ok())
            .collect())
    }
}

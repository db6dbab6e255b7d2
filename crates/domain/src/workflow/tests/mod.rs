//! Tests of the workflow rules: each step type's config (paths and codes), condition routing,
//! the graph rules and, by property, that no accepted transition ever closes a cycle.

mod condition;
mod config;
mod cycles;
mod graph;
mod records;

use super::{parse_config, BranchCondition, Step, StepConfig, StepType, Transition, WaitOutcome};
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError};
use serde_json::{json, Value};
use std::cell::Cell;
use uuid::Uuid;

/// A fixed instant the tests read as "now".
const NOW: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

/// A URL check that lets everything through.
fn any_url(_: &str) -> Result<(), FieldError> {
    Ok(())
}

/// `config` parsed for `step_type` at `config`, every URL allowed.
fn parse(step_type: StepType, config: Value) -> Result<StepConfig, Vec<FieldError>> {
    parse_config(step_type, &config, "config", &any_url)
}

/// `config` parsed for `step_type`, which must be valid.
fn valid(step_type: StepType, config: Value) -> StepConfig {
    parse(step_type, config.clone())
        .unwrap_or_else(|e| panic!("{step_type} config {config} is valid: {e:?}"))
}

/// The (path, code) of every error of an invalid config.
fn errors(step_type: StepType, config: Value) -> Vec<(String, FieldCode)> {
    pairs(parse(step_type, config.clone()).expect_err(&format!("{step_type} {config} is invalid")))
}

fn pairs(errors: Vec<FieldError>) -> Vec<(String, FieldCode)> {
    errors.into_iter().map(|e| (e.field, e.code)).collect()
}

/// `(path, code)` as the assertions write them.
fn e(field: &str, code: FieldCode) -> (String, FieldCode) {
    (field.to_owned(), code)
}

thread_local! {
    /// Creation times of test steps and transitions: one millisecond apart, in creation order.
    static CLOCK: Cell<i64> = const { Cell::new(NOW) };
}

fn tick() -> Timestamp {
    let at = CLOCK.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    Timestamp::from_millis(at).unwrap()
}

/// A workflow under construction: its steps and transitions, built as the API would.
#[derive(Default)]
struct Graph {
    workflow: Uuid,
    steps: Vec<Step>,
    transitions: Vec<Transition>,
}

impl Graph {
    /// A workflow with its TRIGGER step.
    fn new() -> (Graph, Uuid) {
        let mut graph = Graph {
            workflow: Uuid::now_v7(),
            ..Graph::default()
        };
        let trigger = graph.step(StepType::Trigger, json!({}));
        (graph, trigger)
    }

    /// Adds a step of `step_type` with `config` (a template on SEND_EMAIL steps).
    fn step(&mut self, step_type: StepType, config: Value) -> Uuid {
        let at = tick();
        let id = Uuid::now_v7();
        self.steps.push(Step {
            id,
            workflow_id: self.workflow,
            step_type,
            name: step_type.as_str().to_lowercase(),
            position: super::Position::default(),
            config,
            template_id: (step_type == StepType::SendEmail).then(Uuid::now_v7),
            created_at: at,
            updated_at: at,
        });
        id
    }

    /// Stores a transition without checking it (as data written before a rule, or by a bug).
    fn link(
        &mut self,
        from: Uuid,
        to: Uuid,
        branch: Option<&str>,
        outcome: Option<WaitOutcome>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        self.transitions.push(Transition {
            id,
            workflow_id: self.workflow,
            from_step_id: from,
            to_step_id: to,
            condition: branch.map(|b| BranchCondition { branch: b.into() }),
            wait_outcome: outcome,
            priority: 0,
            created_at: tick(),
        });
        id
    }

    /// Checks a transition as `POST …/transitions` would.
    fn check(
        &self,
        from: Uuid,
        to: Uuid,
        branch: Option<&str>,
        outcome: Option<WaitOutcome>,
    ) -> Result<(), Vec<(String, FieldCode)>> {
        let condition = branch.map(|b| BranchCondition { branch: b.into() });
        super::check_transition(
            &self.steps,
            &self.transitions,
            from,
            to,
            condition.as_ref(),
            outcome,
        )
        .map_err(pairs)
    }

    /// Checks and, when valid, adds a transition.
    fn connect(
        &mut self,
        from: Uuid,
        to: Uuid,
        branch: Option<&str>,
        outcome: Option<WaitOutcome>,
    ) -> Result<Uuid, Vec<(String, FieldCode)>> {
        self.check(from, to, branch, outcome)?;
        Ok(self.link(from, to, branch, outcome))
    }

    fn get(&self, id: Uuid) -> &Step {
        self.steps.iter().find(|s| s.id == id).unwrap()
    }
}

/// A multi condition on `data.x` with the given branch ids (each tests `exists`).
fn multi(ids: &[&str]) -> Value {
    let branches: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "name": id.to_uppercase(), "operator": "exists"}))
        .collect();
    json!({"mode": "multi", "field": "data.x", "branches": branches})
}

/// A valid config of each type, for graph tests that do not care which.
fn sample_config(step_type: StepType) -> Value {
    match step_type {
        StepType::Trigger | StepType::SendEmail | StepType::Exit => json!({}),
        StepType::Delay => json!({"amount": 1, "unit": "hours"}),
        StepType::WaitForEvent => json!({"eventName": "paid", "timeout": 3600}),
        StepType::Condition => {
            json!({"field": "contact.subscribed", "operator": "equals", "value": true})
        }
        StepType::Webhook => json!({"url": "https://hooks.example.com/x"}),
        StepType::UpdateContact => json!({"subscriptionAction": "subscribe"}),
    }
}

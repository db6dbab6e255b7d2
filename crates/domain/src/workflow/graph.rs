//! The rules of a workflow's graph (workflows.md §2), over slices of its steps and transitions:
//! what a new transition may be, which config edits would orphan a transition, the full check
//! run when a workflow is enabled, and the small plans of the editor's shortcuts (auto-connect,
//! splice on delete, insert a step).
//!
//! Every transition takes one *slot* of its from-step: the single plain slot of a `TRIGGER`,
//! `SEND_EMAIL`, `DELAY`, `WEBHOOK` or `UPDATE_CONTACT` step, a branch of a `CONDITION`, or an
//! outcome of a `WAIT_FOR_EVENT`; a slot holds at most one transition, and `EXIT` has none. No
//! transition may target the `TRIGGER`, and the graph stays acyclic.

use super::config::{parse_config, StepConfig};
use super::{BranchCondition, Step, StepType, Transition, WaitOutcome, MAX_STEPS};
use crate::validation::{FieldCode, FieldError};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What splicing a step out of the graph reconnects: its predecessor, its successor, and the
/// condition and wait outcome of the incoming transition, kept on the new `pred → succ` one.
pub type SplicePlan = (Uuid, Uuid, Option<BranchCondition>, Option<WaitOutcome>);

/// The slot of its from-step a transition takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Plain,
    Branch(String),
    Outcome(WaitOutcome),
}

impl Slot {
    /// The slot a stored transition names.
    fn of_transition(t: &Transition) -> Slot {
        match (&t.condition, t.wait_outcome) {
            (Some(c), _) => Slot::Branch(c.branch.clone()),
            (None, Some(o)) => Slot::Outcome(o),
            (None, None) => Slot::Plain,
        }
    }

    /// The field of a transition body that names the slot.
    fn field(&self) -> &'static str {
        match self {
            Slot::Plain => "fromStepId",
            Slot::Branch(_) => "condition",
            Slot::Outcome(_) => "waitOutcome",
        }
    }
}

/// Why a transition cannot leave its from-step the way it says.
#[derive(Debug, Clone, PartialEq)]
enum SlotProblem {
    /// The from-step is an `EXIT`.
    FromExit,
    /// A condition on a transition whose from-step has no branches.
    ConditionNotAllowed(StepType),
    /// A wait outcome on a transition whose from-step does not wait.
    OutcomeNotAllowed(StepType),
    /// No branch on a transition leaving a `CONDITION`.
    BranchMissing,
    /// No outcome on a transition leaving a `WAIT_FOR_EVENT`.
    OutcomeMissing,
    /// A branch the `CONDITION` does not offer, with those it does.
    UnknownBranch(String, Vec<String>),
    /// `TIMEOUT` from a `WAIT_FOR_EVENT` without a timeout.
    NoTimeout,
    /// The from-step's config does not parse, so its branches or timeout are unknown.
    ConfigInvalid,
}

impl SlotProblem {
    /// The problem as an error on a transition body's field.
    fn error(&self) -> FieldError {
        let (field, code) = match self {
            SlotProblem::FromExit | SlotProblem::ConfigInvalid => ("fromStepId", FieldCode::Custom),
            SlotProblem::ConditionNotAllowed(_) => ("condition", FieldCode::Custom),
            SlotProblem::BranchMissing => ("condition", FieldCode::Required),
            SlotProblem::UnknownBranch(..) => ("condition", FieldCode::InvalidEnumValue),
            SlotProblem::OutcomeNotAllowed(_) | SlotProblem::NoTimeout => {
                ("waitOutcome", FieldCode::Custom)
            }
            SlotProblem::OutcomeMissing => ("waitOutcome", FieldCode::Required),
        };
        FieldError::new(field, code, self.message())
    }

    fn message(&self) -> String {
        match self {
            SlotProblem::FromExit => "An EXIT step has no outgoing transitions".into(),
            SlotProblem::ConditionNotAllowed(t) => {
                format!("Must be null: only CONDITION steps have branches, not {t}")
            }
            SlotProblem::OutcomeNotAllowed(t) => {
                format!("Must be null: only WAIT_FOR_EVENT steps have wait outcomes, not {t}")
            }
            SlotProblem::BranchMissing => {
                "A transition from a CONDITION step names its branch: {branch}".into()
            }
            SlotProblem::OutcomeMissing => {
                "A transition from a WAIT_FOR_EVENT step names its outcome: EVENT or TIMEOUT".into()
            }
            SlotProblem::UnknownBranch(branch, offered) => format!(
                "The condition has no branch \"{branch}\"; expected one of {}",
                offered.join(", ")
            ),
            SlotProblem::NoTimeout => {
                "TIMEOUT needs the WAIT_FOR_EVENT step to have a timeout".into()
            }
            SlotProblem::ConfigInvalid => {
                "The step's config is not valid; fix it before connecting it".into()
            }
        }
    }
}

/// The slot a transition with `condition` and `wait_outcome` takes on a `from_type` step whose
/// parsed config is `config` (`None` when it does not parse).
fn slot(
    from_type: StepType,
    config: Option<&StepConfig>,
    condition: Option<&BranchCondition>,
    wait_outcome: Option<WaitOutcome>,
) -> Result<Slot, Vec<SlotProblem>> {
    let mut problems = Vec::new();
    let slot = match from_type {
        StepType::Exit => {
            problems.push(SlotProblem::FromExit);
            None
        }
        t if t.allows_plain_outgoing() => {
            if condition.is_some() {
                problems.push(SlotProblem::ConditionNotAllowed(t));
            }
            if wait_outcome.is_some() {
                problems.push(SlotProblem::OutcomeNotAllowed(t));
            }
            Some(Slot::Plain)
        }
        StepType::Condition => {
            if wait_outcome.is_some() {
                problems.push(SlotProblem::OutcomeNotAllowed(from_type));
            }
            match (condition, config.and_then(StepConfig::branches)) {
                (None, _) => {
                    problems.push(SlotProblem::BranchMissing);
                    None
                }
                (Some(_), None) => {
                    problems.push(SlotProblem::ConfigInvalid);
                    None
                }
                (Some(c), Some(offered)) if offered.contains(&c.branch) => {
                    Some(Slot::Branch(c.branch.clone()))
                }
                (Some(c), Some(offered)) => {
                    problems.push(SlotProblem::UnknownBranch(c.branch.clone(), offered));
                    None
                }
            }
        }
        _ => {
            // WAIT_FOR_EVENT, the only type left.
            if condition.is_some() {
                problems.push(SlotProblem::ConditionNotAllowed(from_type));
            }
            match (wait_outcome, config) {
                (None, _) => {
                    problems.push(SlotProblem::OutcomeMissing);
                    None
                }
                (Some(WaitOutcome::Timeout), None) => {
                    problems.push(SlotProblem::ConfigInvalid);
                    None
                }
                (Some(WaitOutcome::Timeout), Some(c)) if !c.has_timeout() => {
                    problems.push(SlotProblem::NoTimeout);
                    None
                }
                (Some(outcome), _) => Some(Slot::Outcome(outcome)),
            }
        }
    };
    match slot {
        Some(slot) if problems.is_empty() => Ok(slot),
        _ => Err(problems),
    }
}

/// The config of `step`, when it parses. The graph rules read only branches and timeouts, which
/// never depend on the URL rules, so URLs pass here.
fn parsed(step: &Step) -> Option<StepConfig> {
    parse_config(step.step_type, &step.config, "config", &|_| Ok(())).ok()
}

/// The steps each step leads to.
fn successors(transitions: &[Transition]) -> HashMap<Uuid, Vec<Uuid>> {
    let mut next: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for t in transitions {
        next.entry(t.from_step_id).or_default().push(t.to_step_id);
    }
    next
}

/// Whether following transitions from `from` arrives at `to` (`from` itself counts).
fn reaches(next: &HashMap<Uuid, Vec<Uuid>>, from: Uuid, to: Uuid) -> bool {
    let mut stack = vec![from];
    let mut seen = HashSet::new();
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if seen.insert(node) {
            stack.extend(next.get(&node).into_iter().flatten().copied());
        }
    }
    false
}

/// The problems of a transition `from → to` on its target: not the `TRIGGER`, not a self-loop,
/// closing no cycle through `next`.
fn target_errors(
    steps: &[Step],
    next: &HashMap<Uuid, Vec<Uuid>>,
    from: Uuid,
    to: Uuid,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match steps.iter().find(|s| s.id == to) {
        None => errors.push(FieldError::new(
            "toStepId",
            FieldCode::NotFound,
            "No such step in this workflow",
        )),
        Some(target) if target.step_type == StepType::Trigger => errors.push(FieldError::new(
            "toStepId",
            FieldCode::Custom,
            "The TRIGGER step cannot be the target of a transition",
        )),
        Some(_) if from == to => errors.push(FieldError::new(
            "toStepId",
            FieldCode::GraphCycle,
            "A step cannot lead to itself",
        )),
        Some(_) if reaches(next, to, from) => errors.push(FieldError::new(
            "toStepId",
            FieldCode::GraphCycle,
            "This transition would close a cycle: the target already leads back to the source",
        )),
        Some(_) => {}
    }
    errors
}

/// Checks adding the transition `from → to` (with `condition` and `wait_outcome`) to the graph
/// of `steps` and `transitions`; errors name the fields of a transition body: `fromStepId`,
/// `toStepId`, `condition`, `waitOutcome`. Unknown step ids are `not_found` on their field.
pub fn check_transition(
    steps: &[Step],
    transitions: &[Transition],
    from: Uuid,
    to: Uuid,
    condition: Option<&BranchCondition>,
    wait_outcome: Option<WaitOutcome>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    match steps.iter().find(|s| s.id == from) {
        None => errors.push(FieldError::new(
            "fromStepId",
            FieldCode::NotFound,
            "No such step in this workflow",
        )),
        Some(source) => {
            let config = parsed(source);
            match slot(source.step_type, config.as_ref(), condition, wait_outcome) {
                Ok(slot) => {
                    let mut outgoing = transitions.iter().filter(|t| t.from_step_id == from);
                    let key = slot_key(source.step_type, &slot);
                    if outgoing.any(|t| slot_key(source.step_type, &Slot::of_transition(t)) == key)
                    {
                        errors.push(duplicate(source.step_type, &slot));
                    }
                }
                Err(problems) => errors.extend(problems.iter().map(SlotProblem::error)),
            }
        }
    }
    errors.extend(target_errors(steps, &successors(transitions), from, to));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The slot that two transitions of a `from_type` step compete for: a plain step has one
/// slot, whatever its transitions claim (stored data may be older than the rules).
fn slot_key(from_type: StepType, slot: &Slot) -> Slot {
    if from_type.allows_plain_outgoing() {
        Slot::Plain
    } else {
        slot.clone()
    }
}

/// The `duplicate` error for `slot` of a `from_type` step, taken already.
fn duplicate(from_type: StepType, slot: &Slot) -> FieldError {
    let message = match slot {
        Slot::Plain => format!("A {from_type} step has at most one outgoing transition"),
        Slot::Branch(b) => format!("Branch \"{b}\" already has a transition"),
        Slot::Outcome(o) => format!("{} already has a transition", o.as_str()),
    };
    FieldError::new(slot.field(), FieldCode::Duplicate, message)
}

/// Checks that `new_config` for `step` keeps every outgoing transition of `step` valid (a
/// `CONDITION` branch in use stays, a `TIMEOUT` transition keeps its timeout); errors are on
/// `config`, one per orphaned transition.
pub fn check_config_change(
    step: &Step,
    new_config: &StepConfig,
    transitions: &[Transition],
) -> Result<(), Vec<FieldError>> {
    let errors: Vec<FieldError> = transitions
        .iter()
        .filter(|t| t.from_step_id == step.id)
        .filter_map(|t| {
            let problems = slot(
                step.step_type,
                Some(new_config),
                t.condition.as_ref(),
                t.wait_outcome,
            )
            .err()?;
            let reasons: Vec<String> = problems.iter().map(SlotProblem::message).collect();
            Some(FieldError::new(
                "config",
                FieldCode::Custom,
                format!(
                    "Transition {} would be orphaned ({}); delete or change it first",
                    t.id,
                    reasons.join("; ")
                ),
            ))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The full check run when a workflow is enabled: exactly one `TRIGGER`, at most
/// [`MAX_STEPS`] steps, every config valid (errors at `steps[i].config…`, `i` the step's index
/// in `steps`), a template on every `SEND_EMAIL` (`steps[i].templateId`), every transition
/// valid (`transitions[j].<field>`) and no cycle (`graph_cycle` on each transition of one).
pub fn check_enable(
    steps: &[Step],
    transitions: &[Transition],
    url_check: &dyn Fn(&str) -> Result<(), FieldError>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    match steps
        .iter()
        .filter(|s| s.step_type == StepType::Trigger)
        .count()
    {
        1 => {}
        0 => errors.push(FieldError::new(
            "steps",
            FieldCode::Required,
            "A workflow needs its TRIGGER step",
        )),
        _ => errors.push(FieldError::new(
            "steps",
            FieldCode::Custom,
            "A workflow has exactly one TRIGGER step",
        )),
    }
    if steps.len() > MAX_STEPS {
        errors.push(FieldError::new(
            "steps",
            FieldCode::TooBig,
            format!("A workflow may have at most {MAX_STEPS} steps"),
        ));
    }
    let mut configs: HashMap<Uuid, Option<StepConfig>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let path = format!("steps[{i}].config");
        let config = match parse_config(step.step_type, &step.config, &path, url_check) {
            Ok(config) => Some(config),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        configs.insert(step.id, config);
        if step.step_type == StepType::SendEmail && step.template_id.is_none() {
            errors.push(FieldError::new(
                format!("steps[{i}].templateId"),
                FieldCode::Required,
                "A SEND_EMAIL step needs a template",
            ));
        }
    }
    let next = successors(transitions);
    let mut taken: HashSet<(Uuid, Slot)> = HashSet::new();
    for (j, t) in transitions.iter().enumerate() {
        let mut own = Vec::new();
        match steps.iter().find(|s| s.id == t.from_step_id) {
            None => own.push(FieldError::new(
                "fromStepId",
                FieldCode::NotFound,
                "No such step in this workflow",
            )),
            Some(source) => {
                let config = configs.get(&source.id).and_then(Option::as_ref);
                match slot(
                    source.step_type,
                    config,
                    t.condition.as_ref(),
                    t.wait_outcome,
                ) {
                    Ok(slot) => {
                        // The first transition in a slot holds it; later ones are duplicates.
                        if !taken.insert((source.id, slot_key(source.step_type, &slot))) {
                            own.push(duplicate(source.step_type, &slot));
                        }
                    }
                    // An invalid config is reported on the step already.
                    Err(problems) => own.extend(
                        problems
                            .iter()
                            .filter(|p| **p != SlotProblem::ConfigInvalid)
                            .map(SlotProblem::error),
                    ),
                }
            }
        }
        // Every transition is in `next`, so one that "would close a cycle" lies on one.
        own.extend(target_errors(steps, &next, t.from_step_id, t.to_step_id));
        errors.extend(
            own.into_iter().map(|e| {
                FieldError::new(format!("transitions[{j}].{}", e.field), e.code, e.message)
            }),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The step a new step is connected after when none is named: the most recently created step
/// (by `created_at`, then id) that allows a plain outgoing transition and has no outgoing
/// transition yet.
pub fn auto_connect_source(steps: &[Step], transitions: &[Transition]) -> Option<Uuid> {
    let has_outgoing: HashSet<Uuid> = transitions.iter().map(|t| t.from_step_id).collect();
    steps
        .iter()
        .filter(|s| s.step_type.allows_plain_outgoing() && !has_outgoing.contains(&s.id))
        .max_by_key(|s| (s.created_at, s.id))
        .map(|s| s.id)
}

/// The step an execution goes to after `step`: by the branch `route` a `CONDITION` took, by the
/// `outcome` a `WAIT_FOR_EVENT` had, else by the plain transition. `None` ends the execution
/// (COMPLETED). Should stored data hold several candidates, the lowest `priority` wins, then
/// the oldest.
pub fn next_step(
    step: &Step,
    transitions: &[Transition],
    route: Option<&str>,
    outcome: Option<WaitOutcome>,
) -> Option<Uuid> {
    transitions
        .iter()
        .filter(|t| t.from_step_id == step.id)
        .filter(|t| match (route, outcome) {
            (Some(route), _) => t.condition.as_ref().is_some_and(|c| c.branch == route),
            (None, Some(outcome)) => t.wait_outcome == Some(outcome),
            (None, None) => t.condition.is_none() && t.wait_outcome.is_none(),
        })
        .min_by_key(|t| (t.priority, t.created_at, t.id))
        .map(|t| t.to_step_id)
}

/// Checks creating a step of `step_type` in a workflow holding `steps`: not a `TRIGGER` (the
/// workflow has its own) and at most [`MAX_STEPS`] steps in all.
pub fn check_add_step(steps: &[Step], step_type: StepType) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if step_type == StepType::Trigger {
        errors.push(FieldError::new(
            "type",
            FieldCode::Custom,
            "The TRIGGER step is created with the workflow; a workflow has exactly one",
        ));
    }
    if steps.len() >= MAX_STEPS {
        errors.push(FieldError::new(
            "",
            FieldCode::TooBig,
            format!("A workflow may have at most {MAX_STEPS} steps"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks inserting a new step of `step_type` into an existing transition: what
/// [`check_add_step`] checks, and the step must continue by a plain transition to the old
/// target (so not `CONDITION`, `WAIT_FOR_EVENT` or `EXIT`).
pub fn check_insert_step(steps: &[Step], step_type: StepType) -> Result<(), Vec<FieldError>> {
    let mut errors = check_add_step(steps, step_type).err().unwrap_or_default();
    if step_type != StepType::Trigger && !step_type.allows_plain_outgoing() {
        errors.push(FieldError::new(
            "type",
            FieldCode::Custom,
            format!("A {step_type} step cannot be inserted: it does not continue by one plain transition"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks deleting `step`: the `TRIGGER` cannot be deleted.
pub fn check_delete_step(step: &Step) -> Result<(), Vec<FieldError>> {
    if step.step_type == StepType::Trigger {
        return Err(vec![FieldError::new(
            "",
            FieldCode::Custom,
            "The TRIGGER step cannot be deleted",
        )]);
    }
    Ok(())
}

/// What deleting step `step_id` with `splice=true` reconnects: `Some` (predecessor, successor,
/// and the incoming transition's condition and wait outcome) when the step has one incoming and
/// one outgoing transition, `None` when there is nothing to reconnect. Refused (422 on
/// `splice`) for `TRIGGER`, `CONDITION` and `WAIT_FOR_EVENT` steps and for steps with more than
/// one incoming or outgoing transition; an unknown step is `not_found`. The reconnection never
/// needs checking: it replaces a path that existed, so it takes the freed slot and closes no
/// cycle.
pub fn splice_plan(
    steps: &[Step],
    transitions: &[Transition],
    step_id: Uuid,
) -> Result<Option<SplicePlan>, Vec<FieldError>> {
    let Some(step) = steps.iter().find(|s| s.id == step_id) else {
        return Err(vec![FieldError::new(
            "",
            FieldCode::NotFound,
            "No such step in this workflow",
        )]);
    };
    let refuse = |message: String| Err(vec![FieldError::new("splice", FieldCode::Custom, message)]);
    if matches!(
        step.step_type,
        StepType::Trigger | StepType::Condition | StepType::WaitForEvent
    ) {
        return refuse(format!(
            "A {} step cannot be spliced out: it has no single path through it",
            step.step_type
        ));
    }
    let incoming: Vec<&Transition> = transitions
        .iter()
        .filter(|t| t.to_step_id == step_id)
        .collect();
    let outgoing: Vec<&Transition> = transitions
        .iter()
        .filter(|t| t.from_step_id == step_id)
        .collect();
    if incoming.len() > 1 {
        return refuse(format!(
            "The step has {} incoming transitions; splicing needs at most one",
            incoming.len()
        ));
    }
    if outgoing.len() > 1
        || outgoing
            .iter()
            .any(|t| t.condition.is_some() || t.wait_outcome.is_some())
    {
        return refuse("Splicing needs at most one plain outgoing transition".into());
    }
    Ok(match (incoming.first(), outgoing.first()) {
        (Some(into), Some(out)) => Some((
            into.from_step_id,
            out.to_step_id,
            into.condition.clone(),
            into.wait_outcome,
        )),
        _ => None,
    })
}

//! The graph rules: the outgoing table row by row, targets and cycles, config edits that would
//! orphan a transition, the enable check, and the editor's shortcuts.

use super::{e, multi, sample_config, Graph};
use crate::validation::{FieldCode, FieldError};
use crate::workflow::graph::{
    auto_connect_source, check_add_step, check_config_change, check_delete_step, check_enable,
    check_insert_step, next_step, splice_plan,
};
use crate::workflow::{BranchCondition, StepType, WaitOutcome, MAX_STEPS};
use serde_json::json;
use uuid::Uuid;
use FieldCode::*;
use StepType::*;
use WaitOutcome::{Event as EVENT, Timeout as TIMEOUT};

const PLAIN: [StepType; 5] = [Trigger, SendEmail, Delay, Webhook, UpdateContact];

#[test]
fn plain_steps_have_one_outgoing_transition_without_condition_or_outcome() {
    for step_type in PLAIN {
        let (mut g, trigger) = Graph::new();
        let from = if step_type == Trigger {
            trigger
        } else {
            g.step(step_type, sample_config(step_type))
        };
        let a = g.step(Delay, sample_config(Delay));
        let b = g.step(Exit, json!({}));
        assert_eq!(
            g.check(from, a, Some("yes"), None),
            Err(vec![e("condition", Custom)]),
            "{step_type}"
        );
        assert_eq!(
            g.check(from, a, None, Some(EVENT)),
            Err(vec![e("waitOutcome", Custom)]),
            "{step_type}"
        );
        assert!(g.connect(from, a, None, None).is_ok(), "{step_type}");
        assert_eq!(
            g.check(from, b, None, None),
            Err(vec![e("fromStepId", Duplicate)]),
            "{step_type}: at most one"
        );
    }
}

#[test]
fn a_binary_condition_has_one_yes_and_one_no() {
    let (mut g, _) = Graph::new();
    let c = g.step(Condition, sample_config(Condition));
    let (a, b, x) = (
        g.step(Exit, json!({})),
        g.step(Exit, json!({})),
        g.step(Exit, json!({})),
    );
    assert!(g.connect(c, a, Some("yes"), None).is_ok());
    assert_eq!(
        g.check(c, x, Some("yes"), None),
        Err(vec![e("condition", Duplicate)])
    );
    assert_eq!(
        g.check(c, x, Some("else"), None),
        Err(vec![e("condition", InvalidEnumValue)])
    );
    assert_eq!(
        g.check(c, x, None, None),
        Err(vec![e("condition", Required)])
    );
    assert_eq!(
        g.check(c, x, Some("no"), Some(TIMEOUT)),
        Err(vec![e("waitOutcome", Custom)])
    );
    assert!(
        g.connect(c, a, Some("no"), None).is_ok(),
        "both branches may lead to one step"
    );
    assert_eq!(
        g.check(c, b, Some("no"), None),
        Err(vec![e("condition", Duplicate)])
    );
}

#[test]
fn a_multi_condition_has_one_transition_per_branch_and_one_else() {
    let (mut g, _) = Graph::new();
    let c = g.step(Condition, multi(&["gold", "silver"]));
    let targets: Vec<Uuid> = (0..5).map(|_| g.step(Exit, json!({}))).collect();
    assert!(g.connect(c, targets[0], Some("gold"), None).is_ok());
    assert!(g.connect(c, targets[1], Some("silver"), None).is_ok());
    assert!(g.connect(c, targets[2], Some("else"), None).is_ok());
    for branch in ["gold", "silver", "else"] {
        assert_eq!(
            g.check(c, targets[3], Some(branch), None),
            Err(vec![e("condition", Duplicate)]),
            "{branch}"
        );
    }
    for branch in ["yes", "no", "bronze"] {
        assert_eq!(
            g.check(c, targets[3], Some(branch), None),
            Err(vec![e("condition", InvalidEnumValue)]),
            "{branch}"
        );
    }
}

#[test]
fn wait_for_event_has_one_event_and_one_timeout_only_with_a_timeout() {
    let (mut g, _) = Graph::new();
    let timed = g.step(WaitForEvent, json!({"eventName": "paid", "timeout": 60}));
    let untimed = g.step(WaitForEvent, json!({"eventName": "paid"}));
    let (a, b) = (g.step(Exit, json!({})), g.step(Exit, json!({})));
    assert!(g.connect(timed, a, None, Some(EVENT)).is_ok());
    assert!(g.connect(timed, b, None, Some(TIMEOUT)).is_ok());
    assert_eq!(
        g.check(timed, b, None, Some(EVENT)),
        Err(vec![e("waitOutcome", Duplicate)])
    );
    assert_eq!(
        g.check(timed, b, None, Some(TIMEOUT)),
        Err(vec![e("waitOutcome", Duplicate)])
    );
    assert_eq!(
        g.check(untimed, b, None, Some(TIMEOUT)),
        Err(vec![e("waitOutcome", Custom)])
    );
    assert_eq!(
        g.check(untimed, b, None, None),
        Err(vec![e("waitOutcome", Required)])
    );
    assert_eq!(
        g.check(untimed, b, Some("yes"), Some(EVENT)),
        Err(vec![e("condition", Custom)])
    );
    assert!(g.connect(untimed, b, None, Some(EVENT)).is_ok());
}

#[test]
fn exit_has_no_outgoing_transition_and_the_trigger_is_never_a_target() {
    let (mut g, trigger) = Graph::new();
    let exit = g.step(Exit, json!({}));
    let delay = g.step(Delay, sample_config(Delay));
    assert_eq!(
        g.check(exit, delay, None, None),
        Err(vec![e("fromStepId", Custom)])
    );
    assert_eq!(
        g.check(delay, trigger, None, None),
        Err(vec![e("toStepId", Custom)])
    );
    assert_eq!(
        g.check(exit, trigger, None, None),
        Err(vec![e("fromStepId", Custom), e("toStepId", Custom)]),
        "every problem is reported"
    );
}

#[test]
fn self_loops_and_cycles_are_refused_even_through_long_chains() {
    let (mut g, trigger) = Graph::new();
    let first = g.step(Delay, sample_config(Delay));
    assert_eq!(
        g.check(first, first, None, None),
        Err(vec![e("toStepId", GraphCycle)])
    );
    g.connect(trigger, first, None, None).unwrap();
    let mut last = first;
    for _ in 0..(MAX_STEPS - 3) {
        let next = g.step(Delay, sample_config(Delay));
        g.connect(last, next, None, None).unwrap();
        last = next;
    }
    assert_eq!(g.steps.len(), MAX_STEPS - 1);
    assert_eq!(
        g.check(last, first, None, None),
        Err(vec![e("toStepId", GraphCycle)]),
        "a chain of {} steps back to its start",
        MAX_STEPS - 2
    );
    let middle = g.steps[MAX_STEPS / 2].id;
    assert_eq!(
        g.check(last, middle, None, None),
        Err(vec![e("toStepId", GraphCycle)])
    );
    // A branch back into its own chain is a cycle; a branch forward is not.
    let c = g.step(Condition, sample_config(Condition));
    g.connect(last, c, None, None).unwrap();
    assert_eq!(
        g.check(c, first, Some("yes"), None),
        Err(vec![e("toStepId", GraphCycle)])
    );
    let end = g.step(Exit, json!({}));
    assert!(g.check(c, end, Some("yes"), None).is_ok());
}

#[test]
fn unknown_steps_are_reported_not_panicked_on() {
    let (mut g, trigger) = Graph::new();
    let delay = g.step(Delay, sample_config(Delay));
    let ghost = Uuid::now_v7();
    assert_eq!(
        g.check(ghost, delay, None, None),
        Err(vec![e("fromStepId", NotFound)])
    );
    assert_eq!(
        g.check(trigger, ghost, None, None),
        Err(vec![e("toStepId", NotFound)])
    );
    // A stored transition to a step that no longer exists does not break the cycle search.
    g.link(delay, ghost, None, None);
    assert!(g.check(trigger, delay, None, None).is_ok());
}

#[test]
fn a_config_edit_must_not_orphan_a_transition() {
    let (mut g, _) = Graph::new();
    let c = g.step(Condition, multi(&["a", "b"]));
    let (x, y) = (g.step(Exit, json!({})), g.step(Exit, json!({})));
    let uses_b = g.connect(c, x, Some("b"), None).unwrap();
    g.connect(c, y, Some("else"), None).unwrap();
    let step = g.get(c).clone();
    let edit = |config| super::valid(Condition, config);
    assert!(check_config_change(&step, &edit(multi(&["b", "c"])), &g.transitions).is_ok());
    let errors = check_config_change(&step, &edit(multi(&["a"])), &g.transitions).unwrap_err();
    assert_eq!(super::pairs(errors.clone()), vec![e("config", Custom)]);
    assert!(
        errors[0].message.contains(&uses_b.to_string()),
        "{}",
        errors[0].message
    );
    assert_eq!(
        check_config_change(&step, &edit(sample_config(Condition)), &g.transitions)
            .unwrap_err()
            .len(),
        2,
        "to binary: \"b\" goes, \"else\" too"
    );
    // Binary to multi: yes/no transitions would be orphaned.
    let binary = g.step(Condition, sample_config(Condition));
    g.connect(binary, x, Some("yes"), None).unwrap();
    let step = g.get(binary).clone();
    assert!(check_config_change(&step, &edit(multi(&["yes"])), &g.transitions).is_ok());
    assert_eq!(
        super::pairs(
            check_config_change(&step, &edit(multi(&["no"])), &g.transitions).unwrap_err()
        ),
        vec![e("config", Custom)]
    );
}

#[test]
fn removing_a_timeout_in_use_is_refused() {
    let (mut g, _) = Graph::new();
    let wait = g.step(WaitForEvent, json!({"eventName": "paid", "timeout": 60}));
    let (a, b) = (g.step(Exit, json!({})), g.step(Exit, json!({})));
    g.connect(wait, a, None, Some(EVENT)).unwrap();
    let step = g.get(wait).clone();
    let untimed = super::valid(WaitForEvent, json!({"eventName": "paid"}));
    assert!(
        check_config_change(&step, &untimed, &g.transitions).is_ok(),
        "no TIMEOUT transition yet"
    );
    g.connect(wait, b, None, Some(TIMEOUT)).unwrap();
    assert_eq!(
        super::pairs(check_config_change(&step, &untimed, &g.transitions).unwrap_err()),
        vec![e("config", Custom)]
    );
    let renamed = super::valid(WaitForEvent, json!({"eventName": "refunded", "timeout": 5}));
    assert!(check_config_change(&step, &renamed, &g.transitions).is_ok());
}

/// A complete, valid workflow: trigger → send → wait (timed) → condition → update | exit.
fn complete() -> Graph {
    let (mut g, trigger) = Graph::new();
    let send = g.step(SendEmail, json!({}));
    let wait = g.step(WaitForEvent, json!({"eventName": "paid", "timeout": 3600}));
    let check = g.step(Condition, sample_config(Condition));
    let update = g.step(UpdateContact, json!({"updates": {"paid": true}}));
    let exit = g.step(Exit, json!({"reason": "never paid"}));
    g.connect(trigger, send, None, None).unwrap();
    g.connect(send, wait, None, None).unwrap();
    g.connect(wait, check, None, Some(EVENT)).unwrap();
    g.connect(wait, exit, None, Some(TIMEOUT)).unwrap();
    g.connect(check, update, Some("yes"), None).unwrap();
    g.connect(check, exit, Some("no"), None).unwrap();
    g
}

fn enable_errors(g: &Graph) -> Vec<(String, FieldCode)> {
    check_enable(&g.steps, &g.transitions, &|_| Ok(()))
        .map_err(super::pairs)
        .err()
        .unwrap_or_default()
}

#[test]
fn enabling_checks_templates_configs_and_the_trigger() {
    let mut g = complete();
    assert_eq!(enable_errors(&g), vec![]);
    g.steps[1].template_id = None;
    g.steps[2].config = json!({"eventName": "paid", "timeout": 0});
    g.steps[5].config = json!({"reason": 12});
    assert_eq!(
        enable_errors(&g),
        vec![
            e("steps[1].templateId", Required),
            e("steps[2].config.timeout", TooSmall),
            e("steps[5].config.reason", InvalidType),
        ],
        "the TIMEOUT transition of the broken wait is not blamed twice"
    );

    let mut g = complete();
    g.steps[0].step_type = Delay;
    g.steps[0].config = json!({"amount": 1, "unit": "days"});
    assert_eq!(enable_errors(&g), vec![e("steps", Required)]);
    let mut g = complete();
    g.step(Trigger, json!({}));
    assert_eq!(enable_errors(&g), vec![e("steps", Custom)]);
    let mut g = complete();
    while g.steps.len() <= MAX_STEPS {
        g.step(Exit, json!({}));
    }
    assert_eq!(enable_errors(&g), vec![e("steps", TooBig)]);
}

#[test]
fn enabling_runs_the_url_check_on_webhook_steps() {
    let mut g = complete();
    let hook = g.step(Webhook, json!({"url": "http://169.254.169.254/latest"}));
    let index = g.steps.iter().position(|s| s.id == hook).unwrap();
    let forbid = |url: &str| {
        if url.contains("169.254") {
            Err(FieldError::new("url", ForbiddenAddress, "forbidden"))
        } else {
            Ok(())
        }
    };
    let errors = check_enable(&g.steps, &g.transitions, &forbid).unwrap_err();
    assert_eq!(
        super::pairs(errors),
        vec![e(&format!("steps[{index}].config.url"), ForbiddenAddress)]
    );
}

#[test]
fn enabling_finds_stored_transitions_that_break_the_rules() {
    let mut g = complete();
    let [trigger, _, wait, check, update, exit] = ids(&g);
    let (z, y) = (
        g.step(Delay, sample_config(Delay)),
        g.step(Delay, sample_config(Delay)),
    );
    // Written unchecked, as by data older than a rule.
    g.link(trigger, exit, None, None); // 6: the trigger's one slot is held by 0
    g.link(exit, z, None, None); // 7: from EXIT
    g.link(check, update, Some("maybe"), None); // 8: no such branch
    g.link(y, trigger, None, None); // 9: targets the trigger
    g.link(wait, wait, None, Some(TIMEOUT)); // 10: TIMEOUT held by 3, and a self-loop
    assert_eq!(
        enable_errors(&g),
        vec![
            e("transitions[6].fromStepId", Duplicate),
            e("transitions[7].fromStepId", Custom),
            e("transitions[8].condition", InvalidEnumValue),
            e("transitions[9].toStepId", Custom),
            e("transitions[10].waitOutcome", Duplicate),
            e("transitions[10].toStepId", GraphCycle),
        ]
    );
}

#[test]
fn enabling_reports_every_transition_of_a_stored_cycle() {
    let mut g = complete();
    let [_, send, _, _, update, _] = ids(&g);
    g.link(update, send, None, None); // 6: send → wait → check → update → send
    assert_eq!(
        enable_errors(&g),
        vec![
            e("transitions[1].toStepId", GraphCycle),
            e("transitions[2].toStepId", GraphCycle),
            e("transitions[4].toStepId", GraphCycle),
            e("transitions[6].toStepId", GraphCycle),
        ]
    );
}

/// The ids of [`complete`]'s steps, in order.
fn ids(g: &Graph) -> [Uuid; 6] {
    std::array::from_fn(|i| g.steps[i].id)
}

#[test]
fn auto_connect_picks_the_newest_open_plain_step() {
    let (mut g, trigger) = Graph::new();
    assert_eq!(auto_connect_source(&g.steps, &g.transitions), Some(trigger));
    let send = g.step(SendEmail, json!({}));
    g.connect(trigger, send, None, None).unwrap();
    assert_eq!(auto_connect_source(&g.steps, &g.transitions), Some(send));
    let delay = g.step(Delay, sample_config(Delay));
    let _condition = g.step(Condition, sample_config(Condition));
    let _wait = g.step(WaitForEvent, sample_config(WaitForEvent));
    let _exit = g.step(Exit, json!({}));
    assert_eq!(
        auto_connect_source(&g.steps, &g.transitions),
        Some(delay),
        "newer steps that cannot leave plainly are passed over"
    );
    let hook = g.step(Webhook, sample_config(Webhook));
    assert_eq!(auto_connect_source(&g.steps, &g.transitions), Some(hook));
    // Same instant: the larger id is the newer.
    let mut twin = g.get(hook).clone();
    twin.id = Uuid::from_u128(u128::MAX);
    g.steps.push(twin);
    assert_eq!(
        auto_connect_source(&g.steps, &g.transitions),
        Some(Uuid::from_u128(u128::MAX))
    );
    g.steps.pop();
    g.connect(send, delay, None, None).unwrap();
    g.connect(delay, hook, None, None).unwrap();
    let exit = g.steps.iter().find(|s| s.step_type == Exit).unwrap().id;
    g.connect(hook, exit, None, None).unwrap();
    assert_eq!(auto_connect_source(&g.steps, &g.transitions), None);
}

#[test]
fn next_step_follows_the_plain_branch_or_outcome_transition() {
    let g = complete();
    let step = |i: usize| &g.steps[i];
    let id = |i: usize| g.steps[i].id;
    assert_eq!(next_step(step(0), &g.transitions, None, None), Some(id(1)));
    assert_eq!(
        next_step(step(2), &g.transitions, None, Some(EVENT)),
        Some(id(3))
    );
    assert_eq!(
        next_step(step(2), &g.transitions, None, Some(TIMEOUT)),
        Some(id(5))
    );
    assert_eq!(
        next_step(step(3), &g.transitions, Some("yes"), None),
        Some(id(4))
    );
    assert_eq!(
        next_step(step(3), &g.transitions, Some("no"), None),
        Some(id(5))
    );
    assert_eq!(
        next_step(step(4), &g.transitions, None, None),
        None,
        "no transition: COMPLETED"
    );
    assert_eq!(next_step(step(5), &g.transitions, None, None), None);
    assert_eq!(
        next_step(step(2), &g.transitions, None, None),
        None,
        "a wait has no plain way"
    );
}

#[test]
fn among_stored_duplicates_the_lowest_priority_then_the_oldest_wins() {
    let (mut g, trigger) = Graph::new();
    let (a, b, c) = (
        g.step(Exit, json!({})),
        g.step(Exit, json!({})),
        g.step(Exit, json!({})),
    );
    g.link(trigger, a, None, None);
    g.link(trigger, b, None, None);
    g.link(trigger, c, None, None);
    let trigger_step = g.get(trigger).clone();
    assert_eq!(
        next_step(&trigger_step, &g.transitions, None, None),
        Some(a)
    );
    g.transitions[0].priority = 5;
    g.transitions[1].priority = 1;
    g.transitions[2].priority = 1;
    assert_eq!(
        next_step(&trigger_step, &g.transitions, None, None),
        Some(b)
    );
}

#[test]
fn splicing_reconnects_a_single_path_and_keeps_the_incoming_branch() {
    let (mut g, trigger) = Graph::new();
    let c = g.step(Condition, sample_config(Condition));
    let delay = g.step(Delay, sample_config(Delay));
    let exit = g.step(Exit, json!({}));
    let lonely = g.step(Webhook, sample_config(Webhook));
    g.connect(trigger, c, None, None).unwrap();
    g.connect(c, delay, Some("no"), None).unwrap();
    g.connect(delay, exit, None, None).unwrap();
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, delay),
        Ok(Some((
            c,
            exit,
            Some(BranchCondition {
                branch: "no".into()
            }),
            None
        )))
    );
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, exit),
        Ok(None),
        "no outgoing"
    );
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, lonely),
        Ok(None),
        "no incoming"
    );
    for refused in [trigger, c] {
        assert_eq!(
            splice_plan(&g.steps, &g.transitions, refused).map_err(super::pairs),
            Err(vec![e("splice", Custom)])
        );
    }
    g.connect(c, exit, Some("yes"), None).unwrap();
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, exit).map_err(super::pairs),
        Err(vec![e("splice", Custom)]),
        "two incoming"
    );
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, Uuid::now_v7()).map_err(super::pairs),
        Err(vec![e("", NotFound)])
    );
    // The wait outcome of the incoming transition is kept too.
    let (mut g, _) = Graph::new();
    let wait = g.step(WaitForEvent, sample_config(WaitForEvent));
    let send = g.step(SendEmail, json!({}));
    let end = g.step(Exit, json!({}));
    g.connect(wait, send, None, Some(TIMEOUT)).unwrap();
    g.connect(send, end, None, None).unwrap();
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, send),
        Ok(Some((wait, end, None, Some(TIMEOUT))))
    );
    assert_eq!(
        splice_plan(&g.steps, &g.transitions, wait).map_err(super::pairs),
        Err(vec![e("splice", Custom)])
    );
}

#[test]
fn steps_are_added_inserted_and_deleted_within_the_rules() {
    let (mut g, trigger) = Graph::new();
    assert!(check_add_step(&g.steps, Delay).is_ok());
    assert_eq!(
        check_add_step(&g.steps, Trigger).map_err(super::pairs),
        Err(vec![e("type", Custom)])
    );
    for step_type in [SendEmail, Delay, Webhook, UpdateContact] {
        assert!(
            check_insert_step(&g.steps, step_type).is_ok(),
            "{step_type}"
        );
    }
    for step_type in [Trigger, Condition, WaitForEvent, Exit] {
        assert_eq!(
            check_insert_step(&g.steps, step_type).map_err(super::pairs),
            Err(vec![e("type", Custom)]),
            "{step_type}"
        );
    }
    assert_eq!(
        check_delete_step(g.get(trigger)).map_err(super::pairs),
        Err(vec![e("", Custom)])
    );
    while g.steps.len() < MAX_STEPS {
        g.step(Delay, sample_config(Delay));
    }
    assert_eq!(
        check_add_step(&g.steps, Delay).map_err(super::pairs),
        Err(vec![e("", TooBig)])
    );
    let last = g.steps.last().unwrap().clone();
    assert!(check_delete_step(&last).is_ok());
}

//! The records as the API shows them, the wire forms of the enums, positions and triggers.

use super::{e, Graph};
use crate::validation::FieldCode::*;
use crate::workflow::{
    parse_position, parse_trigger_config, parse_trigger_type, Position, StepType, TriggerConfig,
    TriggerType, WaitOutcome, Workflow,
};
use serde_json::{json, Value};
use uuid::Uuid;

#[test]
fn step_types_round_trip_and_know_their_plain_exit() {
    for step_type in StepType::ALL {
        assert_eq!(StepType::parse(step_type.as_str()), Some(step_type));
        assert_eq!(
            serde_json::to_value(step_type).unwrap(),
            json!(step_type.as_str())
        );
    }
    assert_eq!(StepType::parse("send_email"), None);
    let plain: Vec<StepType> = StepType::ALL
        .into_iter()
        .filter(|t| t.allows_plain_outgoing())
        .collect();
    assert_eq!(
        plain,
        vec![
            StepType::Trigger,
            StepType::SendEmail,
            StepType::Delay,
            StepType::Webhook,
            StepType::UpdateContact
        ]
    );
    assert_eq!(WaitOutcome::parse("TIMEOUT"), Some(WaitOutcome::Timeout));
    assert_eq!(WaitOutcome::parse("timeout"), None);
}

#[test]
fn steps_and_transitions_serialise_as_the_api_shows_them() {
    let (mut g, trigger) = Graph::new();
    let wait = g.step(
        StepType::WaitForEvent,
        json!({"eventName": "paid", "timeout": 5}),
    );
    let send = g.step(StepType::SendEmail, json!({}));
    g.link(trigger, wait, None, None);
    g.link(wait, send, None, Some(WaitOutcome::Timeout));
    let step = serde_json::to_value(g.get(trigger)).unwrap();
    let keys: Vec<&str> = step
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "workflowId",
            "type",
            "name",
            "position",
            "config",
            "templateId",
            "createdAt",
            "updatedAt"
        ]
    );
    assert_eq!(step["type"], json!("TRIGGER"));
    assert_eq!(step["templateId"], Value::Null);
    assert_eq!(step["position"], json!({"x": 0.0, "y": 0.0}));
    let plain = serde_json::to_value(&g.transitions[0]).unwrap();
    assert_eq!(plain["condition"], Value::Null);
    assert_eq!(plain["waitOutcome"], Value::Null);
    assert_eq!(plain["priority"], json!(0));
    let timeout = serde_json::to_value(&g.transitions[1]).unwrap();
    assert_eq!(timeout["waitOutcome"], json!("TIMEOUT"));
    assert_eq!(timeout["fromStepId"], json!(wait.to_string()));
    for t in &g.transitions {
        let back = serde_json::from_value(serde_json::to_value(t).unwrap()).unwrap();
        assert_eq!(*t, back);
    }
    let back = serde_json::from_value(serde_json::to_value(g.get(send)).unwrap()).unwrap();
    assert_eq!(*g.get(send), back);
}

#[test]
fn workflows_serialise_with_their_trigger() {
    let at = crate::time::Timestamp::from_millis(super::NOW).unwrap();
    let workflow = Workflow {
        id: Uuid::now_v7(),
        name: "Onboarding".into(),
        description: None,
        enabled: false,
        trigger_type: TriggerType::Event,
        trigger_config: Some(TriggerConfig {
            event_name: "signed-up".into(),
        }),
        allow_reentry: false,
        created_at: at,
        updated_at: at,
    };
    let value = serde_json::to_value(&workflow).unwrap();
    assert_eq!(value["triggerType"], json!("EVENT"));
    assert_eq!(value["triggerConfig"], json!({"eventName": "signed-up"}));
    assert_eq!(value["allowReentry"], json!(false));
    assert_eq!(value["description"], Value::Null);
    assert_eq!(serde_json::from_value::<Workflow>(value).unwrap(), workflow);
}

#[test]
fn positions_are_two_finite_numbers() {
    assert_eq!(
        parse_position(&json!({"x": 10, "y": -2.5}), "position"),
        Ok(Position { x: 10.0, y: -2.5 })
    );
    let errors =
        |value: Value| super::pairs(parse_position(&value, "position").expect_err("invalid"));
    assert_eq!(errors(json!({"x": 1})), vec![e("position.y", Required)]);
    assert_eq!(
        errors(json!({"x": "1", "y": null})),
        vec![e("position.x", InvalidType), e("position.y", Required)]
    );
    assert_eq!(errors(json!([1, 2])), vec![e("position", InvalidType)]);
    assert_eq!(errors(Value::Null), vec![e("position", Required)]);
}

#[test]
fn triggers_are_event_by_default_manual_or_refused() {
    assert_eq!(
        parse_trigger_type(None, "triggerType"),
        Ok(TriggerType::Event)
    );
    assert_eq!(
        parse_trigger_type(Some(&json!("MANUAL")), "triggerType"),
        Ok(TriggerType::Manual)
    );
    for (raw, code) in [
        (json!("SCHEDULE"), InvalidEnumValue),
        (json!("event"), InvalidEnumValue),
        (json!(1), InvalidType),
    ] {
        let error = parse_trigger_type(Some(&raw), "triggerType").unwrap_err();
        assert_eq!((error.field.as_str(), error.code), ("triggerType", code));
    }
    assert_eq!(
        parse_trigger_config(
            TriggerType::Event,
            Some(&json!({"eventName": " signed-up "})),
            "triggerConfig"
        ),
        Ok(Some(TriggerConfig {
            event_name: "signed-up".into()
        }))
    );
    assert_eq!(
        parse_trigger_config(
            TriggerType::Manual,
            Some(&json!({"eventName": "x"})),
            "triggerConfig"
        ),
        Ok(None)
    );
    for (raw, expected) in [
        (None, e("triggerConfig", Required)),
        (Some(json!("signed-up")), e("triggerConfig", InvalidType)),
        (Some(json!({})), e("triggerConfig.eventName", Required)),
        (
            Some(json!({"eventName": ""})),
            e("triggerConfig.eventName", TooSmall),
        ),
    ] {
        let errors = parse_trigger_config(TriggerType::Event, raw.as_ref(), "triggerConfig");
        assert_eq!(super::pairs(errors.unwrap_err()), vec![expected]);
    }
}

//! Each step type's config: what parses to what, and the path and code of each refusal.

use super::{e, errors, parse, valid};
use crate::validation::{FieldCode, FieldError};
use crate::workflow::config::{parse_config, WebhookConfig, MAX_EXIT_REASON_CHARS};
use crate::workflow::{
    DelayUnit, EmailRecipient, StepConfig, StepType, SubscriptionAction, WebhookMethod,
    MAX_CONFIG_BYTES,
};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use FieldCode::*;
use StepType::*;

#[test]
fn a_config_is_an_object_null_is_empty_and_size_is_bounded() {
    assert_eq!(valid(Trigger, json!({})), StepConfig::Trigger);
    assert_eq!(valid(Trigger, Value::Null), StepConfig::Trigger);
    assert_eq!(
        valid(Exit, Value::Null),
        StepConfig::Exit { reason: None },
        "null is {{}}"
    );
    assert_eq!(errors(Delay, json!([1])), vec![e("config", InvalidType)]);
    assert_eq!(errors(Trigger, json!("x")), vec![e("config", InvalidType)]);
    let big = "x".repeat(MAX_CONFIG_BYTES);
    assert_eq!(
        errors(Exit, json!({"reason": "r", "editorNotes": big})),
        vec![e("config", TooBig)]
    );
    // Paths follow the caller's base.
    let at_step = parse_config(Delay, &json!({}), "steps[3].config", &|_| Ok(())).unwrap_err();
    assert_eq!(at_step[0].field, "steps[3].config.amount");
}

#[test]
fn members_a_type_does_not_know_are_ignored() {
    assert_eq!(
        valid(
            Delay,
            json!({"amount": 2, "unit": "days", "ui": {"collapsed": true}})
        ),
        StepConfig::Delay {
            amount: 2,
            unit: DelayUnit::Days
        }
    );
}

#[test]
fn send_email_goes_to_the_contact_or_a_checked_custom_address() {
    let to = |config: Value| match valid(SendEmail, config) {
        StepConfig::SendEmail { recipient } => recipient,
        other => panic!("{other:?}"),
    };
    assert_eq!(to(json!({})), EmailRecipient::Contact);
    assert_eq!(to(json!({"recipient": null})), EmailRecipient::Contact);
    assert_eq!(
        to(json!({"recipient": {"type": "CONTACT", "customEmail": "ignored"}})),
        EmailRecipient::Contact
    );
    assert_eq!(
        to(json!({"recipient": {"type": "CUSTOM", "customEmail": " Sales@Example.COM "}})),
        EmailRecipient::Custom("sales@example.com".into()),
        "a literal is normalised"
    );
    assert_eq!(
        to(json!({"recipient": {"type": "CUSTOM", "customEmail": "{{ data.manager }}"}})),
        EmailRecipient::Custom("{{ data.manager }}".into()),
        "Liquid is kept to render per execution"
    );
    for (config, expected) in [
        (
            json!({"recipient": "CONTACT"}),
            e("config.recipient", InvalidType),
        ),
        (
            json!({"recipient": {}}),
            e("config.recipient.type", Required),
        ),
        (
            json!({"recipient": {"type": "contact"}}),
            e("config.recipient.type", InvalidEnumValue),
        ),
        (
            json!({"recipient": {"type": "CUSTOM"}}),
            e("config.recipient.customEmail", Required),
        ),
        (
            json!({"recipient": {"type": "CUSTOM", "customEmail": "not-an-address"}}),
            e("config.recipient.customEmail", InvalidString),
        ),
        (
            json!({"recipient": {"type": "CUSTOM", "customEmail": "{{ data.manager"}}),
            e("config.recipient.customEmail", TemplateSyntax),
        ),
        (
            json!({"recipient": {"type": "CUSTOM", "customEmail": 7}}),
            e("config.recipient.customEmail", InvalidType),
        ),
    ] {
        assert_eq!(
            errors(SendEmail, config.clone()),
            vec![expected],
            "{config}"
        );
    }
}

#[test]
fn a_delay_is_whole_units_up_to_365_days() {
    for (amount, unit, ms) in [
        (1, "minutes", 60_000),
        (525_600, "minutes", 365 * super::DAY),
        (8_760, "hours", 365 * super::DAY),
        (365, "days", 365 * super::DAY),
        (3, "hours", 3 * 3_600_000),
    ] {
        let config = valid(Delay, json!({"amount": amount, "unit": unit}));
        assert_eq!(config.delay_ms(), Some(ms), "{amount} {unit}");
    }
    for (config, expected) in [
        (
            json!({"amount": 366, "unit": "days"}),
            vec![e("config.amount", TooBig)],
        ),
        (
            json!({"amount": 8_761, "unit": "hours"}),
            vec![e("config.amount", TooBig)],
        ),
        (
            json!({"amount": 525_601, "unit": "minutes"}),
            vec![e("config.amount", TooBig)],
        ),
        (
            json!({"amount": u64::MAX, "unit": "minutes"}),
            vec![e("config.amount", TooBig)],
        ),
        (
            json!({"amount": 0, "unit": "days"}),
            vec![e("config.amount", TooSmall)],
        ),
        (
            json!({"amount": -2, "unit": "days"}),
            vec![e("config.amount", TooSmall)],
        ),
        (
            json!({"amount": 1.5, "unit": "days"}),
            vec![e("config.amount", InvalidType)],
        ),
        (
            json!({"amount": "3", "unit": "days"}),
            vec![e("config.amount", InvalidType)],
        ),
        (
            json!({"amount": 3, "unit": "weeks"}),
            vec![e("config.unit", InvalidEnumValue)],
        ),
        (
            json!({}),
            vec![e("config.amount", Required), e("config.unit", Required)],
        ),
        (
            json!({"amount": 0, "unit": "weeks"}),
            vec![
                e("config.amount", TooSmall),
                e("config.unit", InvalidEnumValue),
            ],
        ),
    ] {
        assert_eq!(errors(Delay, config.clone()), expected, "{config}");
    }
    assert_eq!(valid(Exit, json!({})).delay_ms(), None);
}

#[test]
fn wait_for_event_names_an_event_and_maybe_a_timeout() {
    let config = valid(
        WaitForEvent,
        json!({"eventName": "  order.paid ", "timeout": 86_400}),
    );
    assert_eq!(
        config,
        StepConfig::WaitForEvent {
            event_name: "order.paid".into(),
            timeout_seconds: Some(86_400)
        }
    );
    assert!(config.has_timeout());
    assert_eq!(config.timeout_ms(), Some(86_400_000));
    let untimed = valid(WaitForEvent, json!({"eventName": "paid", "timeout": null}));
    assert!(!untimed.has_timeout());
    assert_eq!(untimed.timeout_ms(), None);
    assert!(valid(
        WaitForEvent,
        json!({"eventName": "x", "timeout": 31_536_000})
    )
    .has_timeout());
    assert!(matches!(
        valid(WaitForEvent, json!({"eventName": "x".repeat(255)})),
        StepConfig::WaitForEvent { event_name, .. } if event_name.len() == 255
    ));
    for (config, expected) in [
        (json!({}), e("config.eventName", Required)),
        (json!({"eventName": "   "}), e("config.eventName", TooSmall)),
        (
            json!({"eventName": "x".repeat(256)}),
            e("config.eventName", TooBig),
        ),
        (
            json!({"eventName": "a/b"}),
            e("config.eventName", InvalidString),
        ),
        (json!({"eventName": 3}), e("config.eventName", InvalidType)),
        (
            json!({"eventName": "paid", "timeout": 0}),
            e("config.timeout", TooSmall),
        ),
        (
            json!({"eventName": "paid", "timeout": 31_536_001}),
            e("config.timeout", TooBig),
        ),
        (
            json!({"eventName": "paid", "timeout": "1h"}),
            e("config.timeout", InvalidType),
        ),
    ] {
        assert_eq!(
            errors(WaitForEvent, config.clone()),
            vec![expected],
            "{config}"
        );
    }
}

#[test]
fn a_binary_condition_is_one_workflow_filter() {
    let config = valid(
        Condition,
        json!({"field": "data.plan", "operator": "equals", "value": "pro"}),
    );
    assert_eq!(config.branches(), Some(vec!["yes".into(), "no".into()]));
    assert_eq!(
        valid(
            Condition,
            json!({"mode": "binary", "field": "contact.createdAt", "operator": "within", "value": 7, "unit": "days"})
        )
        .branches()
        .unwrap()
        .len(),
        2
    );
    for (config, expected) in [
        (
            json!({"field": "plan", "operator": "exists"}),
            vec![e("config.field", InvalidString)],
        ),
        (
            json!({"field": "contact.updatedAt", "operator": "exists"}),
            vec![e("config.field", InvalidString)],
        ),
        (
            json!({"field": "email", "operator": "exists"}),
            vec![e("config.field", InvalidString)],
        ),
        (
            json!({"field": "data.", "operator": "exists"}),
            vec![e("config.field", InvalidString)],
        ),
        (
            json!({"field": "event.plan", "operator": "triggered"}),
            vec![e("config.operator", InvalidOperator)],
        ),
        (
            json!({"field": "data.plan", "operator": "memberOfSegment", "value": uuid::Uuid::now_v7().to_string()}),
            vec![e("config.operator", InvalidOperator)],
        ),
        (
            json!({"field": "data.plan", "operator": "like", "value": "x"}),
            vec![e("config.operator", InvalidOperator)],
        ),
        (
            json!({"field": "contact.email", "operator": "within", "value": 3}),
            vec![e("config.operator", InvalidOperator)],
        ),
        (
            json!({"field": "contact.subscribed", "operator": "exists"}),
            vec![e("config.operator", InvalidOperator)],
        ),
        (
            json!({"field": "contact.subscribed", "operator": "equals", "value": "yes"}),
            vec![e("config.value", InvalidType)],
        ),
        (
            json!({"field": "data.plan", "operator": "equals"}),
            vec![e("config.value", Required)],
        ),
        (
            json!({"field": "contact.createdAt", "operator": "olderThan", "value": 3, "unit": "weeks"}),
            vec![e("config.unit", InvalidEnumValue)],
        ),
        (
            json!({"field": "data.plan", "operator": "exists", "value": 1}),
            vec![e("config.value", InvalidType)],
        ),
        (
            json!({}),
            vec![e("config.field", Required), e("config.operator", Required)],
        ),
        (
            json!({"mode": "tree", "field": "data.plan", "operator": "exists"}),
            vec![e("config.mode", InvalidEnumValue)],
        ),
    ] {
        assert_eq!(errors(Condition, config.clone()), expected, "{config}");
    }
}

#[test]
fn a_multi_condition_offers_its_branch_ids_then_else() {
    let config = valid(
        Condition,
        json!({"mode": "multi", "field": "data.tier", "branches": [
            {"id": "gold", "name": "Gold", "operator": "equals", "value": "gold"},
            {"id": "yes", "name": "Any", "operator": "exists"}
        ]}),
    );
    assert_eq!(
        config.branches(),
        Some(vec!["gold".into(), "yes".into(), "else".into()])
    );
    let branch = |i: usize| json!({"id": format!("b{i}"), "name": format!("Branch {i}"), "operator": "exists"});
    let twenty: Vec<Value> = (0..20).map(branch).collect();
    let twenty_one: Vec<Value> = (0..21).map(branch).collect();
    assert!(parse(
        Condition,
        json!({"mode": "multi", "field": "data.x", "branches": twenty})
    )
    .is_ok());
    for (config, expected) in [
        (
            json!({"mode": "multi", "field": "data.x", "branches": twenty_one}),
            vec![e("config.branches", TooBig)],
        ),
        (
            json!({"mode": "multi", "field": "data.x", "branches": []}),
            vec![e("config.branches", TooSmall)],
        ),
        (
            json!({"mode": "multi", "field": "data.x"}),
            vec![e("config.branches", Required)],
        ),
        (
            json!({"mode": "multi", "field": "data.x", "branches": {}}),
            vec![e("config.branches", InvalidType)],
        ),
        (
            json!({"mode": "multi", "field": "data.x", "branches": [
                {"id": "a", "name": "A", "operator": "exists"},
                {"id": "a", "name": "A again", "operator": "exists"},
                {"id": "else", "name": "Else", "operator": "exists"},
                {"id": "x".repeat(65), "name": "Long", "operator": "exists"},
                {"id": "", "name": "", "operator": "exists"},
                {"id": "ok", "name": "OK", "operator": "triggered"},
                {"id": "v", "name": "V", "operator": "equals"},
                "not a branch"
            ]}),
            vec![
                e("config.branches[1].id", Duplicate),
                e("config.branches[2].id", InvalidString),
                e("config.branches[3].id", TooBig),
                e("config.branches[4].id", TooSmall),
                e("config.branches[4].name", TooSmall),
                e("config.branches[5].operator", InvalidOperator),
                e("config.branches[6].value", Required),
                e("config.branches[7]", InvalidType),
            ],
        ),
        (
            // A refused field is reported once; the branches still report their own members.
            json!({"mode": "multi", "field": "contact.phone", "branches": [
                {"id": "a", "name": "A"},
                {"id": "b", "name": "B", "operator": "exists"}
            ]}),
            vec![
                e("config.field", InvalidString),
                e("config.branches[0].operator", Required),
            ],
        ),
    ] {
        assert_eq!(errors(Condition, config.clone()), expected, "{config}");
    }
}

/// The URLs a test's URL check was given, and its answer: forbidden for `10.` addresses.
fn with_recorded_urls(config: Value) -> (Result<StepConfig, Vec<FieldError>>, Vec<String>) {
    let seen = RefCell::new(Vec::new());
    let check = |url: &str| {
        seen.borrow_mut().push(url.to_owned());
        if url.contains("//10.") {
            Err(FieldError::new(
                "url",
                FieldCode::ForbiddenAddress,
                "URL points to a forbidden address",
            ))
        } else {
            Ok(())
        }
    };
    let result = parse_config(Webhook, &config, "config", &check);
    (result, seen.into_inner())
}

#[test]
fn a_webhook_has_defaults_and_keeps_headers_and_body() {
    let (result, seen) = with_recorded_urls(json!({"url": " https://hooks.example.com/a "}));
    assert_eq!(
        result.unwrap(),
        StepConfig::Webhook(WebhookConfig {
            url: "https://hooks.example.com/a".into(),
            method: WebhookMethod::Post,
            headers: vec![],
            body: None,
        })
    );
    assert_eq!(seen, vec!["https://hooks.example.com/a"]);
    let full = valid(
        Webhook,
        json!({"url": "https://x.example.com", "method": "PATCH",
               "headers": {"X-Plan": "{{ data.plan }}", "Authorization": "Bearer abc"},
               "body": {"email": "{{ contact.email }}", "n": 1}}),
    );
    let StepConfig::Webhook(webhook) = full else {
        panic!("{full:?}")
    };
    assert_eq!(webhook.method, WebhookMethod::Patch);
    assert_eq!(
        webhook.headers,
        vec![
            ("X-Plan".to_owned(), "{{ data.plan }}".to_owned()),
            ("Authorization".to_owned(), "Bearer abc".to_owned())
        ]
    );
    assert_eq!(
        webhook.body,
        Some(json!({"email": "{{ contact.email }}", "n": 1}))
    );
}

#[test]
fn a_literal_url_goes_to_the_url_check_and_a_liquid_one_is_checked_for_scheme_and_syntax() {
    let (result, _) = with_recorded_urls(json!({"url": "http://10.0.0.1/hook"}));
    assert_eq!(
        super::pairs(result.unwrap_err()),
        vec![e("config.url", ForbiddenAddress)],
        "the check's error is reported on the URL's path"
    );
    let (result, seen) = with_recorded_urls(json!({"url": "HTTPS://{{ data.host }}/hook"}));
    assert!(result.is_ok());
    assert!(seen.is_empty(), "a Liquid URL is vetted once rendered");
    for (url, code) in [
        ("ftp://{{ data.host }}/x".to_owned(), InvalidString),
        ("{{ data.url }}".to_owned(), InvalidString),
        ("https://{{ data.host /x".to_owned(), TemplateSyntax),
        (format!("https://example.com/{}", "a".repeat(2048)), TooBig),
        (String::new(), TooSmall),
    ] {
        let (result, seen) = with_recorded_urls(json!({ "url": url }));
        assert_eq!(
            super::pairs(result.unwrap_err()),
            vec![e("config.url", code)],
            "{url}"
        );
        assert!(seen.is_empty(), "{url}");
    }
    assert_eq!(errors(Webhook, json!({})), vec![e("config.url", Required)]);
}

#[test]
fn webhook_method_headers_and_body_are_checked_member_by_member() {
    let url = "https://x.example.com";
    let many: Map<String, Value> = (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    for (config, expected) in [
        (
            json!({"url": url, "method": "get"}),
            vec![e("config.method", InvalidEnumValue)],
        ),
        (
            json!({"url": url, "headers": many}),
            vec![e("config.headers", TooBig)],
        ),
        (
            json!({"url": url, "headers": ["X-A"]}),
            vec![e("config.headers", InvalidType)],
        ),
        (
            json!({"url": url, "headers": {
                "Bad Name": "v", "": "v", "X-Num": 5, "X-Split": "a\r\nInjected: 1",
                "Host": "evil.example", "X-Dup": "1", "x-dup": "2", "X-Liquid": "{% if %}",
                "X-Fine": "ok"
            }}),
            vec![
                e("config.headers.Bad Name", InvalidString),
                e("config.headers.", InvalidString),
                e("config.headers.X-Num", InvalidType),
                e("config.headers.X-Split", InvalidString),
                e("config.headers.Host", ReservedHeader),
                e("config.headers.x-dup", Duplicate),
                e("config.headers.X-Liquid", TemplateSyntax),
            ],
        ),
        (
            json!({"url": url, "body": {"user": {"name": "{{ contact.email"}, "items": ["ok", "{% for %}"], "n": "{{ 1 }}"}}),
            vec![
                e("config.body.user.name", TemplateSyntax),
                e("config.body.items[1]", TemplateSyntax),
            ],
        ),
        (
            json!({"url": url, "body": "{{ broken"}),
            vec![e("config.body", TemplateSyntax)],
        ),
        (
            json!({"method": "PUT", "headers": {"X A": "v"}}),
            vec![
                e("config.url", Required),
                e("config.headers.X A", InvalidString),
            ],
        ),
    ] {
        assert_eq!(errors(Webhook, config.clone()), expected, "{config}");
    }
    let twenty: Map<String, Value> = (0..20).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    assert!(parse(
        Webhook,
        json!({"url": url, "headers": twenty, "body": [1, null, "s"]})
    )
    .is_ok());
}

#[test]
fn update_contact_needs_updates_or_a_subscription_action() {
    assert_eq!(
        valid(UpdateContact, json!({"updates": {"plan": "pro"}})),
        StepConfig::UpdateContact {
            updates: json!({"plan": "pro"}).as_object().unwrap().clone(),
            subscription: SubscriptionAction::None
        }
    );
    assert_eq!(
        valid(UpdateContact, json!({"data": {"plan": "{{ event.plan }}"}})),
        StepConfig::UpdateContact {
            updates: json!({"plan": "{{ event.plan }}"})
                .as_object()
                .unwrap()
                .clone(),
            subscription: SubscriptionAction::None
        },
        "data is an alias of updates"
    );
    let StepConfig::UpdateContact { updates, .. } = valid(
        UpdateContact,
        json!({"updates": {"a": 1}, "data": {"b": 2}}),
    ) else {
        panic!()
    };
    assert_eq!(Value::Object(updates), json!({"a": 1}), "updates wins");
    assert_eq!(
        valid(UpdateContact, json!({"subscriptionAction": "unsubscribe"})),
        StepConfig::UpdateContact {
            updates: Map::new(),
            subscription: SubscriptionAction::Unsubscribe
        }
    );
    for (config, expected) in [
        (json!({}), vec![e("config", Custom)]),
        (
            json!({"updates": {}, "subscriptionAction": "none"}),
            vec![e("config", Custom)],
        ),
        (
            json!({"subscriptionAction": "resubscribe"}),
            vec![e("config.subscriptionAction", InvalidEnumValue)],
        ),
        (
            json!({"updates": [1]}),
            vec![e("config.updates", InvalidType)],
        ),
        (json!({"data": "x"}), vec![e("config.data", InvalidType)]),
        (
            json!({"updates": {"a.b": 1, "deep": [[[[[[1]]]]]]}}),
            vec![
                e("config.updates.a.b", InvalidString),
                e("config.updates.deep", TooBig),
            ],
        ),
        (
            json!({"data": {"locale": 5}}),
            vec![e("config.data.locale", InvalidType)],
        ),
    ] {
        assert_eq!(errors(UpdateContact, config.clone()), expected, "{config}");
    }
}

#[test]
fn exit_takes_an_optional_short_reason() {
    assert_eq!(valid(Exit, json!({})), StepConfig::Exit { reason: None });
    assert_eq!(
        valid(Exit, json!({"reason": "Bought already"})),
        StepConfig::Exit {
            reason: Some("Bought already".into())
        }
    );
    let longest = "r".repeat(MAX_EXIT_REASON_CHARS);
    assert!(parse(Exit, json!({ "reason": longest })).is_ok());
    assert_eq!(
        errors(
            Exit,
            json!({"reason": "r".repeat(MAX_EXIT_REASON_CHARS + 1)})
        ),
        vec![e("config.reason", TooBig)]
    );
    assert_eq!(
        errors(Exit, json!({"reason": 5})),
        vec![e("config.reason", InvalidType)]
    );
}

#[test]
fn typed_configs_answer_for_their_type() {
    for step_type in StepType::ALL {
        let config = valid(step_type, super::sample_config(step_type));
        assert_eq!(config.step_type(), step_type);
        assert_eq!(
            config.branches().is_some(),
            step_type == Condition,
            "{step_type}"
        );
        assert_eq!(
            config.delay_ms().is_some(),
            step_type == Delay,
            "{step_type}"
        );
        assert_eq!(
            config.has_timeout(),
            step_type == WaitForEvent,
            "{step_type}"
        );
    }
}

//! Condition routing: contact fields, data paths, the execution's context (`event.<path>`),
//! multi branches in order and `else`; and the workflow field names against the segment ones.

use super::{valid, DAY, NOW};
use crate::contact::Contact;
use crate::filter::{self, parse_workflow_filter, Field};
use crate::time::Timestamp;
use crate::workflow::{ConditionConfig, StepConfig, StepType};
use crate::EmailAddress;
use serde_json::{json, Map, Value};
use uuid::Uuid;

fn contact(email: &str, subscribed: bool, data: Value) -> Contact {
    Contact {
        id: Uuid::now_v7(),
        email: EmailAddress::parse(email).unwrap(),
        subscribed,
        data: data.as_object().cloned().unwrap_or_default(),
        created_at: Timestamp::from_millis(NOW - 3 * DAY).unwrap(),
        updated_at: Timestamp::from_millis(NOW - DAY).unwrap(),
    }
}

fn condition(config: Value) -> ConditionConfig {
    match valid(StepType::Condition, config) {
        StepConfig::Condition(condition) => condition,
        other => panic!("{other:?}"),
    }
}

fn context(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// The branch a binary filter takes for `who` with `ctx`.
fn route(filter: Value, who: &Contact, ctx: Value) -> String {
    condition(filter).route(who, &context(ctx), NOW)
}

#[test]
fn binary_conditions_read_the_contact() {
    let ada = contact("Ada@Example.org", true, json!({}));
    let bob = contact("bob@example.org", false, json!({}));
    let email = json!({"field": "contact.email", "operator": "equals", "value": "ADA@example.ORG"});
    assert_eq!(route(email.clone(), &ada, json!({})), "yes");
    assert_eq!(route(email, &bob, json!({})), "no");
    let subscribed = json!({"field": "contact.subscribed", "operator": "equals", "value": true});
    assert_eq!(route(subscribed.clone(), &ada, json!({})), "yes");
    assert_eq!(route(subscribed, &bob, json!({})), "no");
    let domain = json!({"field": "contact.email", "operator": "contains", "value": "@example."});
    assert_eq!(route(domain, &bob, json!({})), "yes");
    // Created three days before NOW.
    let recent =
        json!({"field": "contact.createdAt", "operator": "within", "value": 7, "unit": "days"});
    assert_eq!(route(recent, &ada, json!({})), "yes");
    let old =
        json!({"field": "contact.createdAt", "operator": "olderThan", "value": 2, "unit": "days"});
    assert_eq!(route(old.clone(), &ada, json!({})), "yes");
    assert_eq!(
        condition(old).route(&ada, &Map::new(), NOW - 2 * DAY),
        "no",
        "the instant of evaluation counts"
    );
}

#[test]
fn data_paths_read_the_contact_data_under_both_names() {
    let ada = contact(
        "ada@example.org",
        true,
        json!({"plan": "pro", "profile": {"tier": 3}, "tags": ["beta", "vip"]}),
    );
    let nobody = contact("nobody@example.org", true, json!({}));
    for (filter, expected) in [
        (
            json!({"field": "data.plan", "operator": "equals", "value": "pro"}),
            "yes",
        ),
        (
            json!({"field": "data.plan", "operator": "notEquals", "value": "pro"}),
            "no",
        ),
        (
            json!({"field": "contact.data.plan", "operator": "equals", "value": "pro"}),
            "yes",
        ),
        (
            json!({"field": "data.profile.tier", "operator": "greaterThanOrEqual", "value": 3}),
            "yes",
        ),
        (
            json!({"field": "contact.data.profile.tier", "operator": "lessThan", "value": 3}),
            "no",
        ),
        (
            json!({"field": "data.tags", "operator": "contains", "value": "vip"}),
            "yes",
        ),
        (
            json!({"field": "data.missing", "operator": "notExists"}),
            "yes",
        ),
    ] {
        assert_eq!(route(filter.clone(), &ada, json!({})), expected, "{filter}");
    }
    let plan = json!({"field": "data.plan", "operator": "exists"});
    assert_eq!(
        route(plan, &nobody, json!({"plan": "pro"})),
        "no",
        "data is not the context"
    );
}

#[test]
fn event_paths_read_the_execution_context_not_the_contact() {
    let ada = contact("ada@example.org", true, json!({"order": {"total": 500}}));
    let ctx = json!({"order": {"total": 120, "currency": "EUR", "placedAt": "2026-09-20T10:00:00Z"}, "coupon": null});
    for (filter, expected) in [
        (
            json!({"field": "event.order.total", "operator": "greaterThan", "value": 100}),
            "yes",
        ),
        (
            json!({"field": "event.order.total", "operator": "greaterThan", "value": 200}),
            "no",
        ),
        (
            json!({"field": "event.order.currency", "operator": "equals", "value": "EUR"}),
            "yes",
        ),
        (
            json!({"field": "event.order.placedAt", "operator": "greaterThan", "value": "2026-09-01"}),
            "yes",
        ),
        (json!({"field": "event.coupon", "operator": "exists"}), "no"),
        (
            json!({"field": "event.coupon", "operator": "notExists"}),
            "yes",
        ),
        (
            json!({"field": "event.order.total.cents", "operator": "exists"}),
            "no",
        ),
    ] {
        assert_eq!(
            route(filter.clone(), &ada, ctx.clone()),
            expected,
            "{filter}"
        );
    }
    let total = json!({"field": "event.order.total", "operator": "equals", "value": 500});
    assert_eq!(
        route(total, &ada, json!({})),
        "no",
        "the contact's data is not read"
    );
}

#[test]
fn multi_conditions_take_the_first_matching_branch_in_order_else_else() {
    let tiers = condition(json!({"mode": "multi", "field": "data.spend", "branches": [
        {"id": "whale", "name": "Whale", "operator": "greaterThan", "value": 1000},
        {"id": "regular", "name": "Regular", "operator": "greaterThan", "value": 100},
        {"id": "any", "name": "Any spend", "operator": "exists"}
    ]}));
    let spending = |spend: Value| contact("ada@example.org", true, json!({ "spend": spend }));
    let none = Map::new();
    assert_eq!(
        tiers.route(&spending(json!(5000)), &none, NOW),
        "whale",
        "all three match: the first wins"
    );
    assert_eq!(tiers.route(&spending(json!(500)), &none, NOW), "regular");
    assert_eq!(tiers.route(&spending(json!(5)), &none, NOW), "any");
    let nothing = contact("bob@example.org", true, json!({}));
    assert_eq!(tiers.route(&nothing, &none, NOW), "else");

    let by_event = condition(json!({"mode": "multi", "field": "event.plan", "branches": [
        {"id": "p", "name": "Pro", "operator": "equals", "value": "pro"}
    ]}));
    assert_eq!(
        by_event.route(&nothing, &context(json!({"plan": "pro"})), NOW),
        "p"
    );
    assert_eq!(
        by_event.route(&nothing, &context(json!({"plan": "free"})), NOW),
        "else"
    );
}

#[test]
fn workflow_fields_map_to_the_filter_fields_and_segments_keep_their_own() {
    let field = |name: &str| {
        let object = json!({"field": name, "operator": "exists"});
        parse_workflow_filter(object.as_object().unwrap(), "config").map(|f| f.field)
    };
    assert_eq!(field("contact.email"), Ok(Field::Email));
    assert_eq!(field("contact.createdAt"), Ok(Field::CreatedAt));
    assert_eq!(
        field("data.a.b"),
        Ok(Field::Data(vec!["a".into(), "b".into()]))
    );
    assert_eq!(field("contact.data.a"), Ok(Field::Data(vec!["a".into()])));
    assert_eq!(
        field("event.a.b"),
        Ok(Field::Context(vec!["a".into(), "b".into()]))
    );
    assert!(field("event.").is_err());
    assert!(field("segment").is_err());
    // In a segment, `event.<name>` is still the contact's event history.
    let segment = filter::parse(
        &json!({"logic": "AND", "groups": [{"filters": [{"field": "event.a.b", "operator": "triggered"}]}]}),
        "condition",
    )
    .unwrap();
    assert_eq!(
        segment.groups[0].filters[0].field,
        Field::Event("a.b".into())
    );
    assert!(filter::parse(
        &json!({"logic": "AND", "groups": [{"filters": [{"field": "contact.email", "operator": "exists"}]}]}),
        "condition",
    )
    .is_err());
}

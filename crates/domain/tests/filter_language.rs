//! The filter language of segments.md §2, case by case: parsing with the spec's paths and codes,
//! every operator's meaning and null rule, and the segment reference rules.

use plunk_domain::contact::Contact;
use plunk_domain::filter::references::{self, Problem};
use plunk_domain::filter::{parse, Activity, Condition, EmailStep, Subject};
use plunk_domain::{EmailAddress, FieldCode, Timestamp};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

const NOW: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

fn contact(email: &str, subscribed: bool, data: Value) -> Contact {
    Contact {
        id: Uuid::now_v7(),
        email: EmailAddress::parse(email).unwrap(),
        subscribed,
        data: data.as_object().cloned().unwrap_or_default(),
        created_at: Timestamp::from_millis(NOW - 30 * DAY).unwrap(),
        updated_at: Timestamp::from_millis(NOW - DAY).unwrap(),
    }
}

fn condition(document: Value) -> Condition {
    parse(&document, "condition").unwrap_or_else(|e| panic!("{document} is valid: {e:?}"))
}

/// One filter in one group.
fn one(filter: Value) -> Condition {
    condition(json!({"logic": "AND", "groups": [{"filters": [filter]}]}))
}

fn errors(document: Value) -> Vec<(String, FieldCode)> {
    parse(&document, "condition")
        .expect_err("invalid")
        .into_iter()
        .map(|e| (e.field, e.code))
        .collect()
}

fn first_error(filter: Value) -> (String, FieldCode) {
    errors(json!({"logic": "AND", "groups": [{"filters": [filter]}]}))[0].clone()
}

fn holds(condition: &Condition, contact: &Contact, activity: &Activity) -> bool {
    let subject = Subject {
        contact,
        activity,
        context: None,
    };
    condition.matches(&subject, &|_| false, NOW)
}

fn holds_for(filter: Value, data: Value) -> bool {
    holds(
        &one(filter),
        &contact("ada@example.org", true, data),
        &Activity::default(),
    )
}

#[test]
fn the_spec_example_parses_and_matches_as_written() {
    let vip = Uuid::now_v7();
    let document = json!({"logic":"AND","groups":[
      {"filters":[{"field":"subscribed","operator":"equals","value":true},
                  {"field":"data.plan","operator":"equals","value":"pro"},
                  {"field":"segment","operator":"notMemberOfSegment","value":vip.to_string()}]},
      {"filters":[],"conditions":{"logic":"OR","groups":[
         {"filters":[{"field":"email.opened","operator":"triggeredWithin","value":14,"unit":"days"}]},
         {"filters":[{"field":"email.clicked","operator":"triggeredWithin","value":14,"unit":"days"}]}]}}]});
    let condition = condition(document);
    assert_eq!(condition.segment_refs(), vec![vip]);
    assert!(condition.is_time_relative());
    let pro = contact("ada@example.org", true, json!({"plan": "pro"}));
    let mut opened = Activity::default();
    opened.record_email(EmailStep::Opened, NOW - 3 * DAY);
    let subject = Subject {
        contact: &pro,
        activity: &opened,
        context: None,
    };
    assert!(condition.matches(&subject, &|_| false, NOW));
    assert!(
        !condition.matches(&subject, &|s| s == vip, NOW),
        "a VIP is left out"
    );
    let mut stale = Activity::default();
    stale.record_email(EmailStep::Opened, NOW - 20 * DAY);
    assert!(!holds(&condition, &pro, &stale), "opened too long ago");
    stale.record_email(EmailStep::Clicked, NOW - DAY);
    assert!(holds(&condition, &pro, &stale), "clicked recently instead");
    let free = contact("bob@example.org", true, json!({"plan": "free"}));
    assert!(!holds(&condition, &free, &opened));
    let unsubscribed = contact("cy@example.org", false, json!({"plan": "pro"}));
    assert!(!holds(&condition, &unsubscribed, &opened));
}

#[test]
fn errors_carry_the_spec_paths_and_codes() {
    assert_eq!(
        first_error(json!({"field":"subscribed","operator":"within","value":3})),
        (
            "condition.groups[0].filters[0].operator".into(),
            FieldCode::InvalidOperator
        )
    );
    let nested = json!({"logic":"AND","groups":[
        {"filters":[{"field":"email","operator":"exists"}]},
        {"filters":[],"conditions":{"logic":"OR","groups":[{"filters":[
            {"field":"email","operator":"exists"},
            {"field":"email","operator":"exists"},
            {"field":"createdAt","operator":"equals","value":"yesterday"}]}]}}]});
    assert_eq!(
        errors(nested),
        vec![(
            "condition.groups[1].conditions.groups[0].filters[2].value".into(),
            FieldCode::InvalidDate
        )]
    );
    assert_eq!(
        first_error(json!({"field":"plan","operator":"equals","value":1})),
        (
            "condition.groups[0].filters[0].field".into(),
            FieldCode::InvalidString
        )
    );
    assert_eq!(
        first_error(json!({"field":"email.read","operator":"triggered"})).1,
        FieldCode::InvalidString
    );
    assert_eq!(
        first_error(json!({"field":"data.plan","operator":"startsWith","value":"p"})).1,
        FieldCode::InvalidOperator
    );
    assert_eq!(
        first_error(json!({"field":"subscribed","operator":"contains","value":"t"})).1,
        FieldCode::InvalidOperator
    );
    assert_eq!(
        first_error(json!({"field":"subscribed","operator":"equals","value":"true"})),
        (
            "condition.groups[0].filters[0].value".into(),
            FieldCode::InvalidType
        )
    );
    assert_eq!(
        first_error(json!({"field":"event.signed-up","operator":"equals","value":1})).1,
        FieldCode::InvalidOperator
    );
    assert_eq!(
        first_error(json!({"field":"data.plan","operator":"equals"})).1,
        FieldCode::Required
    );
    assert_eq!(
        first_error(json!({"field":"data.plan","operator":"equals","value":[1]})).1,
        FieldCode::InvalidType
    );
    assert_eq!(
        first_error(json!({"field":"data.plan","operator":"exists","value":1})).1,
        FieldCode::InvalidType
    );
    assert_eq!(
        first_error(json!({"field":"segment","operator":"memberOfSegment","value":"vip"})).1,
        FieldCode::InvalidString
    );
    assert_eq!(
        errors(
            json!({"logic":"XOR","groups":[{"filters":[{"field":"email","operator":"exists"}]}]})
        ),
        vec![("condition.logic".into(), FieldCode::InvalidEnumValue)]
    );
    assert_eq!(
        errors(json!({"logic":"AND","groups":[{"filters":[]}]})),
        vec![("condition.groups[0].filters".into(), FieldCode::TooSmall)]
    );
    assert_eq!(
        errors(json!({"logic":"AND","groups":[]})),
        vec![("condition.groups".into(), FieldCode::TooSmall)]
    );
    // Every problem is reported, not only the first.
    let many = errors(json!({"logic":"AND","groups":[{"filters":[
        {"field":"nope","operator":"equals","value":1},
        {"field":"data.x","operator":"nope"}]}]}));
    assert_eq!(many.len(), 2, "{many:?}");
}

#[test]
fn spans_have_units_and_limits() {
    let span = |value: Value, unit: Option<&str>| {
        let mut filter = json!({"field":"createdAt","operator":"within","value":value});
        if let Some(unit) = unit {
            filter["unit"] = json!(unit);
        }
        parse(
            &json!({"logic":"AND","groups":[{"filters":[filter]}]}),
            "condition",
        )
        .map(|_| ())
        .map_err(|e| (e[0].field.clone(), e[0].code))
    };
    assert_eq!(span(json!(3650), None), Ok(()));
    assert_eq!(span(json!(87_600), Some("hours")), Ok(()));
    assert_eq!(span(json!(5_256_000), Some("minutes")), Ok(()));
    let too_big = Err((
        "condition.groups[0].filters[0].value".into(),
        FieldCode::TooBig,
    ));
    assert_eq!(span(json!(3651), None), too_big);
    assert_eq!(span(json!(87_601), Some("hours")), too_big);
    assert_eq!(span(json!(5_256_001), Some("minutes")), too_big);
    assert_eq!(span(json!(u64::MAX), Some("minutes")), too_big);
    assert_eq!(span(json!(0), None).unwrap_err().1, FieldCode::TooSmall);
    assert_eq!(
        span(json!(1.5), None).unwrap_err().1,
        FieldCode::InvalidType
    );
    assert_eq!(
        span(json!("3"), None).unwrap_err().1,
        FieldCode::InvalidType
    );
    assert_eq!(
        span(json!(3), Some("weeks")),
        Err((
            "condition.groups[0].filters[0].unit".into(),
            FieldCode::InvalidEnumValue
        ))
    );
}

#[test]
fn documents_past_the_limits_are_too_big() {
    let filter = json!({"field":"email","operator":"exists"});
    let groups = |n: usize, per: usize| -> Value {
        json!({"logic":"OR","groups": vec![json!({"filters": vec![filter.clone(); per]}); n]})
    };
    assert!(parse(&groups(20, 5), "c").is_ok());
    assert_eq!(
        errors(groups(21, 1)),
        vec![("condition.groups".into(), FieldCode::TooBig)]
    );
    assert_eq!(
        errors(groups(1, 21)),
        vec![("condition.groups[0].filters".into(), FieldCode::TooBig)]
    );
    assert_eq!(
        errors(groups(6, 17)),
        vec![("condition".into(), FieldCode::TooBig)]
    );
    let nest = |levels: usize| -> Value {
        let mut document = json!({"logic":"AND","groups":[{"filters":[filter.clone()]}]});
        for _ in 0..levels {
            document = json!({"logic":"AND","groups":[{"filters":[],"conditions": document}]});
        }
        document
    };
    assert!(parse(&nest(4), "c").is_ok());
    let deep = errors(nest(5));
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].1, FieldCode::TooBig);
    assert!(deep[0].0.ends_with(".conditions"), "{deep:?}");
    let huge = json!({"logic":"AND","groups":[{"filters":[
        {"field":"data.x","operator":"equals","value":"x".repeat(33 * 1024)}]}]});
    assert_eq!(errors(huge), vec![("condition".into(), FieldCode::TooBig)]);
}

#[test]
fn values_follow_the_operator_table() {
    let data = json!({"plan":"Pro","seats":3,"score":"42","tags":["a","b",7],
                      "renews":"2026-10-01","profile":{"tier":"gold"},"gone":null});
    let check = |filter: Value| holds_for(filter, data.clone());
    // equals: types must match, strings case-sensitive except the address.
    assert!(check(
        json!({"field":"data.plan","operator":"equals","value":"Pro"})
    ));
    assert!(!check(
        json!({"field":"data.plan","operator":"equals","value":"pro"})
    ));
    assert!(check(
        json!({"field":"email","operator":"equals","value":"ADA@example.org"})
    ));
    assert!(!check(
        json!({"field":"data.seats","operator":"equals","value":"3"})
    ));
    assert!(check(
        json!({"field":"data.seats","operator":"equals","value":3.0})
    ));
    assert!(check(
        json!({"field":"data.profile.tier","operator":"equals","value":"gold"})
    ));
    assert!(check(
        json!({"field":"data.renews","operator":"equals","value":"2026-10-01T00:00:00Z"})
    ));
    // contains: substring case-insensitively, or an array element.
    assert!(check(
        json!({"field":"data.plan","operator":"contains","value":"PR"})
    ));
    assert!(check(
        json!({"field":"data.tags","operator":"contains","value":7})
    ));
    assert!(!check(
        json!({"field":"data.tags","operator":"contains","value":"A"})
    ));
    assert!(check(
        json!({"field":"data.tags","operator":"notContains","value":"c"})
    ));
    assert!(check(
        json!({"field":"email","operator":"contains","value":"EXAMPLE"})
    ));
    // Order: numbers with numbers, dates with dates; a number in a string is a string.
    assert!(check(
        json!({"field":"data.seats","operator":"greaterThan","value":2})
    ));
    assert!(check(
        json!({"field":"data.seats","operator":"lessThanOrEqual","value":3})
    ));
    assert!(!check(
        json!({"field":"data.score","operator":"greaterThan","value":7})
    ));
    assert!(!check(
        json!({"field":"data.score","operator":"lessThan","value":7})
    ));
    assert!(check(
        json!({"field":"data.renews","operator":"greaterThan","value":"2026-09-30"})
    ));
    assert!(check(
        json!({"field":"createdAt","operator":"lessThan","value":"2026-09-01T00:00:00Z"})
    ));
    // Missing or null: the negative operators hold, every other one fails.
    for missing in ["data.nothing", "data.gone", "data.profile.none"] {
        assert!(check(
            json!({"field":missing,"operator":"notEquals","value":1})
        ));
        assert!(check(
            json!({"field":missing,"operator":"notContains","value":"x"})
        ));
        assert!(check(json!({"field":missing,"operator":"notExists"})));
        assert!(!check(
            json!({"field":missing,"operator":"equals","value":1})
        ));
        assert!(!check(json!({"field":missing,"operator":"exists"})));
        assert!(!check(
            json!({"field":missing,"operator":"greaterThan","value":0})
        ));
        assert!(!check(
            json!({"field":missing,"operator":"within","value":1})
        ));
    }
    assert!(check(json!({"field":"data.plan","operator":"exists"})));
    // Time: within and olderThan against the time of evaluation.
    assert!(check(
        json!({"field":"updatedAt","operator":"within","value":2})
    ));
    assert!(!check(
        json!({"field":"updatedAt","operator":"within","value":23,"unit":"hours"})
    ));
    assert!(check(
        json!({"field":"createdAt","operator":"olderThan","value":29})
    ));
    assert!(!check(
        json!({"field":"data.plan","operator":"within","value":1})
    ));
    assert!(check(
        json!({"field":"subscribed","operator":"notEquals","value":false})
    ));
}

#[test]
fn event_operators_read_the_latest_occurrence() {
    let ada = contact("ada@example.org", true, json!({}));
    let mut activity = Activity::default();
    activity.record_event("signed-up", NOW - 10 * DAY);
    activity.record_event("signed-up", NOW - 12 * DAY);
    activity.record_event("contact.subscribed", NOW - 2 * 3_600_000);
    let check = |filter: Value| holds(&one(filter), &ada, &activity);
    assert!(check(
        json!({"field":"event.signed-up","operator":"triggered"})
    ));
    assert!(check(
        json!({"field":"event.paid","operator":"notTriggered"})
    ));
    assert!(check(
        json!({"field":"event.signed-up","operator":"triggeredWithin","value":11})
    ));
    assert!(!check(
        json!({"field":"event.signed-up","operator":"triggeredWithin","value":9})
    ));
    assert!(check(
        json!({"field":"event.signed-up","operator":"triggeredOlderThan","value":9})
    ));
    assert!(!check(
        json!({"field":"event.paid","operator":"triggeredOlderThan","value":1})
    ));
    assert!(check(
        json!({"field":"event.paid","operator":"notTriggeredWithin","value":1})
    ));
    assert!(check(
        json!({"field":"event.signed-up","operator":"notTriggeredWithin","value":9})
    ));
    assert!(check(
        json!({"field":"event.contact.subscribed","operator":"triggeredWithin","value":3,"unit":"hours"})
    ));
    assert!(!check(
        json!({"field":"event.contact.subscribed","operator":"triggeredWithin","value":90,"unit":"minutes"})
    ));
    assert!(!check(
        json!({"field":"email.bounced","operator":"triggered"})
    ));
    assert_eq!(
        one(json!({"field":"event.contact.subscribed","operator":"triggered"})).event_names(),
        vec!["contact.subscribed"]
    );
}

#[test]
fn segment_references_exist_do_not_cycle_and_stay_shallow() {
    let [a, b, c, d, e] = [(); 5].map(|()| Uuid::now_v7());
    let naming = |segments: &[Uuid]| -> Condition {
        let filters: Vec<Value> = segments
            .iter()
            .map(|s| json!({"field":"segment","operator":"memberOfSegment","value":s.to_string()}))
            .collect();
        condition(json!({"logic":"AND","groups":[{"filters": filters}]}))
    };
    // d -> c -> b -> a (a names nothing): three deep, the limit.
    let graph: HashMap<Uuid, Vec<Uuid>> =
        HashMap::from([(a, vec![]), (b, vec![a]), (c, vec![b]), (d, vec![c])]);
    assert_eq!(references::check(Some(d), &naming(&[c]), &graph), Ok(()));
    assert_eq!(
        references::check(Some(e), &naming(&[d]), &graph),
        Err(Problem::TooDeep(d))
    );
    assert_eq!(
        references::check(None, &naming(&[d]), &graph),
        Err(Problem::TooDeep(d)),
        "a new segment or an audience naming d is four deep"
    );
    let unknown = Uuid::now_v7();
    assert_eq!(
        references::check(None, &naming(&[a, unknown]), &graph),
        Err(Problem::NotFound(unknown))
    );
    assert_eq!(
        references::check(Some(a), &naming(&[a]), &graph),
        Err(Problem::Cycle(a))
    );
    assert_eq!(
        references::check(Some(a), &naming(&[c]), &graph),
        Err(Problem::Cycle(c)),
        "a naming c, which reaches a through b"
    );
    // a naming a fresh segment e makes d's chain four deep.
    let mut with_e = graph.clone();
    with_e.insert(e, vec![]);
    assert_eq!(
        references::check(Some(a), &naming(&[e]), &with_e),
        Err(Problem::TooDeep(e))
    );
    let document = json!({"logic":"OR","groups":[
        {"filters":[{"field":"email","operator":"exists"}]},
        {"filters":[],"conditions":{"logic":"AND","groups":[{"filters":[
            {"field":"email","operator":"exists"},
            {"field":"segment","operator":"memberOfSegment","value":a.to_string()}]}]}}]});
    assert_eq!(
        condition(document).segment_ref_paths("condition"),
        vec![(
            a,
            "condition.groups[1].conditions.groups[0].filters[1].value".to_owned()
        )]
    );
}

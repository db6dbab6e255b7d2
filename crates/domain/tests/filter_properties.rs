//! Property test of the filter engine: random valid conditions over random contacts agree with
//! a naive evaluator written straight from segments.md §2 over the raw JSON (no parsing into
//! types, no shared helpers), and everything generated parses.

use chrono::{DateTime, NaiveDate};
use plunk_domain::contact::Contact;
use plunk_domain::filter::{parse, Activity, EmailStep, Subject};
use plunk_domain::{EmailAddress, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

const NOW: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;
const SEGMENTS: [u128; 3] = [1, 2, 3];

fn date(days_ago: i64) -> String {
    Timestamp::from_millis(NOW - days_ago * DAY)
        .unwrap()
        .to_string()
}

// ---- generation ----

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("pro")),
        Just(json!("Pro")),
        Just(json!("free")),
        Just(json!("42")),
        Just(json!(3)),
        Just(json!(3.0)),
        Just(json!(7)),
        Just(json!(true)),
        Just(json!(false)),
        // Few distinct days, so equal dates in different forms meet often.
        (0i64..6).prop_map(|d| json!(date(d))),
        (0i64..6).prop_map(|d| json!(date(d)[..10].to_owned())),
        // The same midnight as the short form, written as an instant.
        (0i64..6).prop_map(|d| json!(format!("{}T00:00:00+00:00", &date(d)[..10]))),
    ]
}

fn data_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        scalar().prop_map(Some),
        prop::collection::vec(scalar(), 0..3).prop_map(|v| Some(Value::Array(v))),
    ]
}

const DATA_FIELDS: [&str; 3] = ["data.a", "data.b", "data.nested.c"];
const EVENT_FIELDS: [&str; 4] = ["event.x", "event.y", "email.opened", "email.sent"];

fn filter() -> impl Strategy<Value = Value> {
    let span = (
        1i64..40,
        prop_oneof![Just("days"), Just("hours"), Just("minutes")],
    );
    let value_field = prop_oneof![
        Just("email"),
        Just("createdAt"),
        Just("updatedAt"),
        prop::sample::select(DATA_FIELDS.to_vec()),
    ];
    prop_oneof![
        (value_field.clone(), prop::sample::select(vec!["equals", "notEquals"]), scalar())
            .prop_filter_map("value fits the field", |(f, op, v)| {
                let ok = match f {
                    "email" => v.is_string(),
                    "createdAt" | "updatedAt" => v.as_str().is_some_and(|s| s.starts_with("20")),
                    _ => true,
                };
                ok.then(|| json!({"field": f, "operator": op, "value": v}))
            }),
        (prop::sample::select(vec!["equals", "notEquals"]), any::<bool>())
            .prop_map(|(op, v)| json!({"field":"subscribed","operator":op,"value":v})),
        (
            prop::sample::select([&["email"][..], &DATA_FIELDS[..]].concat()),
            prop::sample::select(vec!["contains", "notContains"]),
            scalar()
        )
            .prop_map(|(f, op, v)| json!({"field": f, "operator": op, "value": v})),
        (
            value_field.clone().prop_filter("not email", |f| *f != "email"),
            prop::sample::select(vec!["greaterThan", "lessThan", "greaterThanOrEqual", "lessThanOrEqual"]),
            scalar()
        )
            .prop_filter_map("a number or a date", |(f, op, v)| {
                let date = v.as_str().is_some_and(|s| s.starts_with("20"));
                let ok = date || (v.is_number() && f.starts_with("data."));
                ok.then(|| json!({"field": f, "operator": op, "value": v}))
            }),
        (value_field.clone(), prop::sample::select(vec!["exists", "notExists"]))
            .prop_map(|(f, op)| json!({"field": f, "operator": op})),
        (
            value_field.prop_filter("not email", |f| *f != "email"),
            prop::sample::select(vec!["within", "olderThan"]),
            span.clone()
        )
            .prop_map(|(f, op, (n, u))| json!({"field": f, "operator": op, "value": n, "unit": u})),
        (prop::sample::select(EVENT_FIELDS.to_vec()), prop::sample::select(vec!["triggered", "notTriggered"]))
            .prop_map(|(f, op)| json!({"field": f, "operator": op})),
        (
            prop::sample::select(EVENT_FIELDS.to_vec()),
            prop::sample::select(vec!["triggeredWithin", "notTriggeredWithin", "triggeredOlderThan"]),
            span
        )
            .prop_map(|(f, op, (n, u))| json!({"field": f, "operator": op, "value": n, "unit": u})),
        (prop::sample::select(vec!["memberOfSegment", "notMemberOfSegment"]), prop::sample::select(SEGMENTS.to_vec()))
            .prop_map(|(op, s)| json!({"field":"segment","operator":op,"value":Uuid::from_u128(s).to_string()})),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    let leaf = (
        prop::sample::select(vec!["AND", "OR"]),
        prop::collection::vec(prop::collection::vec(filter(), 1..4), 1..4),
    )
        .prop_map(|(logic, groups)| {
            json!({"logic": logic, "groups": groups.into_iter().map(|f| json!({"filters": f})).collect::<Vec<_>>()})
        });
    leaf.prop_recursive(3, 40, 3, |inner| {
        (
            prop::sample::select(vec!["AND", "OR"]),
            prop::collection::vec((prop::collection::vec(filter(), 0..3), inner), 1..3),
        )
            .prop_map(|(logic, groups)| {
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(filters, nested)| json!({"filters": filters, "conditions": nested}))
                    .collect();
                json!({"logic": logic, "groups": groups})
            })
    })
}

#[derive(Debug, Clone)]
struct World {
    email: String,
    subscribed: bool,
    created_days_ago: i64,
    updated_days_ago: i64,
    data: Map<String, Value>,
    events: Vec<(String, i64)>,
    members: BTreeSet<u128>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::sample::select(vec!["ada@example.org", "pro@example.org", "bob@free.io"]),
        any::<bool>(),
        0i64..40,
        0i64..40,
        (data_value(), data_value(), data_value()),
        prop::collection::vec(
            (
                prop::sample::select(vec!["x", "y", "email.opened", "email.sent"]),
                0i64..40 * 24,
            ),
            0..4,
        ),
        prop::collection::btree_set(prop::sample::select(SEGMENTS.to_vec()), 0..3),
    )
        .prop_map(
            |(email, subscribed, c, u, (a, b, nested), events, members)| {
                let mut data = Map::new();
                if let Some(a) = a {
                    data.insert("a".into(), a);
                }
                if let Some(b) = b {
                    data.insert("b".into(), b);
                }
                if let Some(c) = nested {
                    data.insert("nested".into(), json!({"c": c}));
                }
                World {
                    email: email.to_owned(),
                    subscribed,
                    created_days_ago: c,
                    updated_days_ago: u,
                    data,
                    events: events
                        .into_iter()
                        .map(|(n, h)| (n.to_owned(), NOW - h * 3_600_000))
                        .collect(),
                    members,
                }
            },
        )
}

// ---- the naive evaluator: segments.md §2.2 read literally ----

fn naive_date(s: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
}

fn naive_field(world: &World, field: &str) -> Value {
    match field {
        "email" => json!(world.email),
        "subscribed" => json!(world.subscribed),
        "createdAt" => json!(date(world.created_days_ago)),
        "updatedAt" => json!(date(world.updated_days_ago)),
        _ => {
            let mut at = Value::Object(world.data.clone());
            for key in field.trim_start_matches("data.").split('.') {
                at = at.get(key).cloned().unwrap_or(Value::Null);
            }
            at
        }
    }
}

fn naive_equal(a: &Value, b: &Value, field: &str) -> bool {
    if field == "email" {
        return a.as_str().map(str::to_lowercase) == b.as_str().map(str::to_lowercase);
    }
    if let (Some(x), Some(y)) = (
        a.as_str().and_then(naive_date),
        b.as_str().and_then(naive_date),
    ) {
        return x == y;
    }
    if a.is_number() && b.is_number() {
        return a.as_f64() == b.as_f64();
    }
    a == b
}

fn naive_span(filter: &Value) -> i64 {
    let n = filter["value"].as_i64().unwrap();
    n * match filter["unit"].as_str() {
        Some("minutes") => 60_000,
        Some("hours") => 3_600_000,
        _ => DAY,
    }
}

fn naive_latest(world: &World, field: &str) -> Option<i64> {
    let name = field.strip_prefix("event.").unwrap_or(field);
    world
        .events
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, t)| *t)
        .max()
}

fn naive_filter(world: &World, filter: &Value) -> bool {
    let field = filter["field"].as_str().unwrap();
    let op = filter["operator"].as_str().unwrap();
    let wanted = &filter["value"];
    if field == "segment" {
        let member = world
            .members
            .iter()
            .any(|s| Uuid::from_u128(*s).to_string() == wanted.as_str().unwrap());
        return if op == "memberOfSegment" {
            member
        } else {
            !member
        };
    }
    if field.starts_with("event.") || field.starts_with("email.") {
        let latest = naive_latest(world, field);
        return match op {
            "triggered" => latest.is_some(),
            "notTriggered" => latest.is_none(),
            "triggeredWithin" => latest.is_some_and(|t| t >= NOW - naive_span(filter)),
            "notTriggeredWithin" => latest.is_none_or(|t| t < NOW - naive_span(filter)),
            "triggeredOlderThan" => latest.is_some_and(|t| t < NOW - naive_span(filter)),
            _ => unreachable!(),
        };
    }
    let value = naive_field(world, field);
    if value.is_null() {
        return matches!(op, "notEquals" | "notContains" | "notExists");
    }
    match op {
        "equals" => naive_equal(&value, wanted, field),
        "notEquals" => !naive_equal(&value, wanted, field),
        "contains" | "notContains" => {
            let found = match &value {
                Value::String(s) => {
                    let needle = wanted
                        .as_str()
                        .map_or_else(|| wanted.to_string(), str::to_owned);
                    s.to_lowercase().contains(&needle.to_lowercase())
                }
                Value::Array(items) => items.iter().any(|i| naive_equal(i, wanted, field)),
                _ => false,
            };
            found == (op == "contains")
        }
        "greaterThan" | "lessThan" | "greaterThanOrEqual" | "lessThanOrEqual" => {
            let pair = if wanted.is_number() {
                value.as_f64().zip(wanted.as_f64())
            } else {
                value
                    .as_str()
                    .and_then(naive_date)
                    .zip(wanted.as_str().and_then(naive_date))
                    .map(|(a, b)| (a as f64, b as f64))
            };
            pair.is_some_and(|(a, b)| match op {
                "greaterThan" => a > b,
                "lessThan" => a < b,
                "greaterThanOrEqual" => a >= b,
                _ => a <= b,
            })
        }
        "exists" => true,
        "notExists" => false,
        "within" => value
            .as_str()
            .and_then(naive_date)
            .is_some_and(|t| t >= NOW - naive_span(filter) && t <= NOW),
        "olderThan" => value
            .as_str()
            .and_then(naive_date)
            .is_some_and(|t| t < NOW - naive_span(filter)),
        _ => unreachable!("{op}"),
    }
}

fn naive(world: &World, condition: &Value) -> bool {
    let groups = condition["groups"].as_array().unwrap();
    let group_matches = |g: &Value| {
        let filters_hold = g["filters"]
            .as_array()
            .is_none_or(|fs| fs.iter().all(|f| naive_filter(world, f)));
        let nested_holds = g.get("conditions").is_none_or(|c| naive(world, c));
        filters_hold && nested_holds
    };
    if condition["logic"] == "AND" {
        groups.iter().all(group_matches)
    } else {
        groups.iter().any(group_matches)
    }
}

// ---- the property ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_naive_reading(document in condition(), world in world()) {
        agree(&document, &world)?;
    }

    /// One filter at a time: each operator's edge cases meet far more often than inside deep
    /// documents.
    #[test]
    fn single_filters_agree_with_the_naive_reading(filter in filter(), world in world()) {
        agree(&json!({"logic": "AND", "groups": [{"filters": [filter]}]}), &world)?;
    }

    #[test]
    fn answers_hold_until_the_next_change(
        document in condition(),
        world in world(),
        offsets in prop::collection::vec(1i64..60 * DAY, 1..8),
    ) {
        stable_until_next_change(&document, &world, &offsets)?;
    }

    #[test]
    fn single_filters_hold_until_the_next_change(
        filter in filter(),
        world in world(),
        offsets in prop::collection::vec(1i64..60 * DAY, 1..8),
    ) {
        stable_until_next_change(
            &json!({"logic": "AND", "groups": [{"filters": [filter]}]}),
            &world,
            &offsets,
        )?;
    }
}

/// Every value operator with every pair of pool values (and absent, null, arrays), on a data
/// field and on the date fields: exhaustive where random documents would meet an edge rarely.
#[test]
fn every_value_operator_on_every_pair_of_values_agrees() {
    let mut pool: Vec<Value> = vec![
        json!("pro"),
        json!("Pro"),
        json!("42"),
        json!(3),
        json!(3.0),
        json!(7),
        json!(true),
        json!(false),
    ];
    for d in [0, 1, 40] {
        pool.push(json!(date(d)));
        pool.push(json!(date(d)[..10].to_owned()));
        pool.push(json!(format!("{}T00:00:00+00:00", &date(d)[..10])));
    }
    let mut stored: Vec<Option<Value>> = vec![None, Some(Value::Null)];
    stored.extend(pool.iter().cloned().map(Some));
    stored.push(Some(Value::Array(pool[..4].to_vec())));
    stored.push(Some(Value::Array(pool[8..].to_vec())));
    let operators = [
        "equals",
        "notEquals",
        "contains",
        "notContains",
        "greaterThan",
        "lessThan",
        "greaterThanOrEqual",
        "lessThanOrEqual",
    ];
    let mut compared = 0;
    for value in &stored {
        let mut data = Map::new();
        if let Some(value) = value {
            data.insert("a".into(), value.clone());
        }
        let world = World {
            email: "ada@example.org".into(),
            subscribed: true,
            created_days_ago: 1,
            updated_days_ago: 40,
            data,
            events: Vec::new(),
            members: BTreeSet::new(),
        };
        for field in ["data.a", "createdAt", "updatedAt"] {
            for operator in operators {
                for wanted in &pool {
                    let document = json!({"logic": "AND", "groups": [{"filters": [
                        {"field": field, "operator": operator, "value": wanted}]}]});
                    if parse(&document, "condition").is_err() {
                        continue;
                    }
                    agree(&document, &world).unwrap_or_else(|e| panic!("{e}"));
                    compared += 1;
                }
            }
            for (operator, span) in [
                ("within", 2),
                ("olderThan", 2),
                ("exists", 0),
                ("notExists", 0),
            ] {
                let mut filter = json!({"field": field, "operator": operator});
                if span > 0 {
                    filter["value"] = json!(span);
                }
                let document = json!({"logic": "AND", "groups": [{"filters": [filter]}]});
                agree(&document, &world).unwrap_or_else(|e| panic!("{e}"));
                compared += 1;
            }
        }
    }
    assert!(compared > 2000, "only {compared} cases compared");
}

/// The contact and activity of a generated world.
fn parts(world: &World) -> (Contact, Activity) {
    let contact = Contact {
        id: Uuid::nil(),
        email: EmailAddress::parse(&world.email).unwrap(),
        subscribed: world.subscribed,
        data: world.data.clone(),
        created_at: Timestamp::from_millis(NOW - world.created_days_ago * DAY).unwrap(),
        updated_at: Timestamp::from_millis(NOW - world.updated_days_ago * DAY).unwrap(),
    };
    let mut activity = Activity::default();
    for (name, at) in &world.events {
        match name.as_str() {
            "email.opened" => activity.record_email(EmailStep::Opened, *at),
            "email.sent" => activity.record_email(EmailStep::Sent, *at),
            other => activity.record_event(other, *at),
        };
    }
    (contact, activity)
}

fn agree(document: &Value, world: &World) -> Result<(), TestCaseError> {
    let condition = parse(document, "condition")
        .unwrap_or_else(|e| panic!("generated document {document} is valid: {e:?}"));
    let (contact, activity) = parts(world);
    let members = world.members.clone();
    let is_member = move |s: Uuid| members.contains(&s.as_u128());
    let subject = Subject {
        contact: &contact,
        activity: &activity,
        context: None,
    };
    prop_assert_eq!(
        condition.matches(&subject, &is_member, NOW),
        naive(world, document),
        "document {} world {:?}",
        document,
        world
    );
    Ok(())
}

/// `next_change` never misses a change: at every instant before it the answer is the one at
/// `NOW` (checked at random instants, and right before it), so a timer set for it is enough
/// to keep a materialised membership exact.
fn stable_until_next_change(
    document: &Value,
    world: &World,
    offsets: &[i64],
) -> Result<(), TestCaseError> {
    let condition = parse(document, "condition").unwrap();
    let (contact, activity) = parts(world);
    let members = world.members.clone();
    let is_member = move |s: Uuid| members.contains(&s.as_u128());
    let subject = Subject {
        contact: &contact,
        activity: &activity,
        context: None,
    };
    let now = condition.matches(&subject, &is_member, NOW);
    let next = condition.next_change(&subject, NOW);
    if let Some(next) = next {
        prop_assert!(next > NOW);
    }
    let horizon = next.unwrap_or(i64::MAX);
    let mut instants: Vec<i64> = offsets.iter().map(|o| NOW + o).collect();
    if let Some(next) = next {
        instants.push(next - 1);
    }
    for at in instants.into_iter().filter(|at| *at < horizon) {
        prop_assert_eq!(
            condition.matches(&subject, &is_member, at),
            now,
            "document {} world {:?}: changed at {} before next_change {:?}",
            document,
            world,
            at - NOW,
            next.map(|n| n - NOW)
        );
    }
    Ok(())
}

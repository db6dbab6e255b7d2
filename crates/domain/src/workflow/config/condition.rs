//! `CONDITION` steps (workflows.md §3, §3.1): one filter of the segment language with the
//! workflow's field names, answered `yes`/`no` (binary), or one field tested by several branches
//! in order, the first that matches taken and `else` when none does (multi).

use super::Members;
use crate::contact::Contact;
use crate::filter::{self, parse_workflow_field, parse_workflow_test, Activity, Filter, Subject};
use crate::validation::FieldCode;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The branch a binary condition takes when its filter matches.
pub const BRANCH_YES: &str = "yes";
/// The branch a binary condition takes when its filter does not match.
pub const BRANCH_NO: &str = "no";
/// The branch a multi condition takes when none of its branches matches.
pub const BRANCH_ELSE: &str = "else";
/// Most branches of a multi condition (`else` not counted).
pub const MAX_BRANCHES: usize = 20;
/// Longest branch id, in characters.
pub const MAX_BRANCH_ID_CHARS: usize = 64;
/// Longest branch name, in characters.
pub const MAX_BRANCH_NAME_CHARS: usize = 100;

/// A parsed `CONDITION` config.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionConfig {
    /// `{field, operator, value?, unit?}`: `yes` when the filter matches, else `no`.
    Binary(Filter),
    /// `{mode: "multi", field, branches}`: the first matching branch, else `else`.
    Multi { branches: Vec<ConditionBranch> },
}

/// One branch of a multi condition; its filter tests the condition's field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionBranch {
    pub id: String,
    pub name: String,
    pub filter: Filter,
}

impl ConditionConfig {
    /// The branch names the condition can take: `yes`/`no`, or the branch ids then `else`.
    pub fn branches(&self) -> Vec<String> {
        match self {
            ConditionConfig::Binary(_) => vec![BRANCH_YES.to_owned(), BRANCH_NO.to_owned()],
            ConditionConfig::Multi { branches } => branches
                .iter()
                .map(|b| b.id.clone())
                .chain([BRANCH_ELSE.to_owned()])
                .collect(),
        }
    }

    /// The branch an execution takes for `contact` at `now_ms`, with `context` the execution's
    /// context (what `event.<path>` reads): `yes`/`no`, or the id of the first branch in array
    /// order whose filter matches, else `else`.
    pub fn route(&self, contact: &Contact, context: &Map<String, Value>, now_ms: i64) -> String {
        // Workflow filters have no event-history or segment operators: the activity stays
        // empty and no segment is a member.
        let activity = Activity::default();
        let subject = Subject {
            contact,
            activity: &activity,
            context: Some(context),
        };
        let holds = |filter: &Filter| filter.matches(&subject, &|_| false, now_ms);
        match self {
            ConditionConfig::Binary(filter) if holds(filter) => BRANCH_YES.to_owned(),
            ConditionConfig::Binary(_) => BRANCH_NO.to_owned(),
            ConditionConfig::Multi { branches } => branches
                .iter()
                .find(|b| holds(&b.filter))
                .map_or_else(|| BRANCH_ELSE.to_owned(), |b| b.id.clone()),
        }
    }
}

/// Parses a `CONDITION` config; `mode` absent, `null` or `"binary"` is binary.
pub(super) fn parse(m: &mut Members<'_, '_>) -> Option<ConditionConfig> {
    let modes = [("binary", false), ("multi", true)];
    let multi = if m.get("mode").is_some() {
        m.choice("mode", &modes, false)
    } else {
        Some(false)
    };
    match multi {
        Some(false) => match filter::parse_workflow_filter(m.object, &m.path) {
            Ok(filter) => Some(ConditionConfig::Binary(filter)),
            Err(errors) => {
                m.errors.extend(errors);
                None
            }
        },
        Some(true) => multi_branches(m),
        // The mode decides which members count; with an unknown one, nothing more is checked.
        None => None,
    }
}

fn multi_branches(m: &mut Members<'_, '_>) -> Option<ConditionConfig> {
    let field = match parse_workflow_field(m.object.get("field"), &m.at("field")) {
        Ok(field) => Some(field),
        Err(errors) => {
            m.errors.extend(errors);
            None
        }
    };
    let items = match m.present("branches", true)? {
        Value::Array(items) if items.is_empty() => {
            m.error(
                "branches",
                FieldCode::TooSmall,
                "A multi condition needs at least one branch",
            );
            return None;
        }
        Value::Array(items) if items.len() > MAX_BRANCHES => {
            m.error(
                "branches",
                FieldCode::TooBig,
                format!("A multi condition may have at most {MAX_BRANCHES} branches"),
            );
            return None;
        }
        Value::Array(items) => items,
        _ => {
            m.error("branches", FieldCode::InvalidType, "Expected an array");
            return None;
        }
    };
    let mut seen = HashSet::new();
    let mut branches = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = format!("branches[{i}]");
        let Value::Object(object) = item else {
            m.error(&name, FieldCode::InvalidType, "Expected an object");
            continue;
        };
        let mut b = m.nested(object, &name);
        let id = b.string("id", 1, MAX_BRANCH_ID_CHARS, true);
        let id = match id {
            Some(BRANCH_ELSE) => {
                b.error(
                    "id",
                    FieldCode::InvalidString,
                    "\"else\" is the branch taken when none matches; choose another id",
                );
                None
            }
            Some(id) if !seen.insert(id) => {
                b.error("id", FieldCode::Duplicate, "Branch ids must be unique");
                None
            }
            other => other,
        };
        let branch_name = b.string("name", 1, MAX_BRANCH_NAME_CHARS, true);
        let test = match parse_workflow_test(field.as_ref(), object, &b.path) {
            Ok(test) => Some(test),
            Err(errors) => {
                b.errors.extend(errors);
                None
            }
        };
        if let (Some(id), Some(branch_name), Some(field), Some(test)) =
            (id, branch_name, &field, test)
        {
            branches.push(ConditionBranch {
                id: id.to_owned(),
                name: branch_name.to_owned(),
                filter: Filter {
                    field: field.clone(),
                    test,
                },
            });
        }
    }
    (branches.len() == items.len()).then_some(ConditionConfig::Multi { branches })
}

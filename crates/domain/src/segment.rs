//! Segments (segments.md §1): named audiences of a project's contacts, either DYNAMIC (a
//! condition of the filter language, evaluated live) or STATIC (a member list), and the rules of
//! their create and update bodies.

use crate::filter::{self, Condition};
use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError, Fields, Patch};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest `slug`, in characters.
pub const MAX_SLUG_CHARS: usize = 64;
/// Longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How a segment's members are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentType {
    /// The contacts its condition matches, evaluated live.
    #[default]
    Dynamic,
    /// The contacts added to it.
    Static,
}

impl SegmentType {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentType::Dynamic => "DYNAMIC",
            SegmentType::Static => "STATIC",
        }
    }

    /// The type of an API spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "DYNAMIC" => Some(SegmentType::Dynamic),
            "STATIC" => Some(SegmentType::Static),
            _ => None,
        }
    }
}

/// A segment as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub segment_type: SegmentType,
    /// The condition document as the client sent it (DYNAMIC only).
    pub condition: Option<Value>,
    pub track_membership: bool,
    pub member_count: u64,
    pub member_count_updated_at: Option<Timestamp>,
    pub last_computed_at: Option<Timestamp>,
    /// When the first full computation of a DYNAMIC segment's members ended: from then on its
    /// materialised membership is complete, its count is the member counter, and (if tracked)
    /// changes emit entry and exit events. Internal; not shown.
    #[serde(default)]
    pub membership_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Segment {
    /// The parsed condition of a DYNAMIC segment (`None` for STATIC, or for a stored document
    /// that no longer parses, which then matches nobody).
    pub fn parsed_condition(&self) -> Option<Condition> {
        let document = self.condition.as_ref()?;
        filter::parse(document, "condition").ok()
    }
}

/// The default slug of a name: lowercased, every run of characters outside `[a-z0-9]` replaced
/// by `-`, trimmed of `-`, cut to 64 characters; `segment` when nothing is left.
pub fn slug_from_name(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug
        .trim_matches('-')
        .chars()
        .take(MAX_SLUG_CHARS)
        .collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "segment".to_owned()
    } else {
        slug
    }
}

/// True for a valid slug: 1–64 characters of `[a-z0-9-]`, no leading, trailing or double `-`.
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_CHARS
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

/// A valid `POST /segments` body.
#[derive(Debug, Clone)]
pub struct NewSegment {
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub segment_type: SegmentType,
    /// The document and its parse (DYNAMIC only).
    pub condition: Option<(Value, Condition)>,
    pub track_membership: bool,
}

impl NewSegment {
    /// The stored segment with `id`, created at `now`.
    pub fn into_segment(self, id: Uuid, now: Timestamp) -> Segment {
        Segment {
            id,
            name: self.name,
            slug: self.slug,
            description: self.description,
            segment_type: self.segment_type,
            condition: self.condition.map(|(document, _)| document),
            track_membership: self.track_membership,
            member_count: 0,
            member_count_updated_at: None,
            last_computed_at: None,
            membership_since: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A valid `PATCH /segments/:id` body.
#[derive(Debug, Clone, Default)]
pub struct SegmentChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    /// A new condition (DYNAMIC only; ignored on STATIC segments).
    pub condition: Option<(Value, Condition)>,
    pub track_membership: Option<bool>,
}

impl SegmentChanges {
    /// Applies the changes; true when the segment changed, and whether its condition did.
    pub fn apply(&self, segment: &mut Segment) -> (bool, bool) {
        let before = segment.clone();
        if let Some(name) = &self.name {
            segment.name = name.clone();
        }
        if let Some(description) = &self.description {
            segment.description = description.clone();
        }
        if segment.segment_type == SegmentType::Dynamic {
            if let Some((document, _)) = &self.condition {
                segment.condition = Some(document.clone());
            }
        }
        if let Some(track) = self.track_membership {
            segment.track_membership = track;
        }
        (*segment != before, segment.condition != before.condition)
    }
}

fn description(fields: &mut Fields, body: &Map<String, Value>) -> Patch<String> {
    match body.get("description") {
        None => Patch::Absent,
        Some(Value::Null) => Patch::Null,
        Some(_) => fields
            .optional_string("description", 0, MAX_DESCRIPTION_CHARS)
            .map_or(Patch::Absent, |d| Patch::Set(d.to_owned())),
    }
}

fn condition(fields: &mut Fields, body: &Map<String, Value>) -> Option<(Value, Condition)> {
    let document = body.get("condition").filter(|v| !v.is_null())?;
    match filter::parse(document, "condition") {
        Ok(parsed) => Some((document.clone(), parsed)),
        Err(errors) => {
            for e in errors {
                fields.push(e);
            }
            None
        }
    }
}

/// Checks a `POST /segments` body.
pub fn parse_create(body: &Map<String, Value>) -> Result<NewSegment, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    let name = fields
        .required_string("name", 1, MAX_NAME_CHARS)
        .map(|n| n.trim().to_owned());
    let slug = match body.get("slug") {
        None | Some(Value::Null) => None,
        Some(_) => match fields.optional_string("slug", 1, MAX_SLUG_CHARS) {
            Some(s) if is_valid_slug(s) => Some(s.to_owned()),
            Some(_) => {
                fields.error(
                    "slug",
                    FieldCode::InvalidString,
                    "Use lowercase letters, digits and single hyphens, not at either end",
                );
                None
            }
            None => None,
        },
    };
    let segment_type = match body.get("type") {
        None | Some(Value::Null) => Some(SegmentType::Dynamic),
        Some(Value::String(raw)) => SegmentType::parse(raw).or_else(|| {
            fields.error(
                "type",
                FieldCode::InvalidEnumValue,
                "Expected \"DYNAMIC\" or \"STATIC\"",
            );
            None
        }),
        Some(_) => {
            fields.error("type", FieldCode::InvalidType, "Expected a string");
            None
        }
    };
    let description = description(&mut fields, body);
    let track_membership = fields.optional_bool("trackMembership");
    let has_condition = body.get("condition").is_some_and(|c| !c.is_null());
    let parsed = match segment_type {
        Some(SegmentType::Static) if has_condition => {
            fields.error(
                "condition",
                FieldCode::Custom,
                "Must be omitted for STATIC segments",
            );
            None
        }
        Some(SegmentType::Dynamic) if !has_condition => {
            fields.error(
                "condition",
                FieldCode::Required,
                "Required for DYNAMIC segments",
            );
            None
        }
        _ => condition(&mut fields, body),
    };
    fields.finish()?;
    let (Some(name), Some(segment_type)) = (name, segment_type) else {
        return Err(Vec::new());
    };
    Ok(NewSegment {
        slug: slug.unwrap_or_else(|| slug_from_name(&name)),
        name,
        description: match description {
            Patch::Set(d) => Some(d),
            _ => None,
        },
        segment_type,
        condition: parsed,
        track_membership: track_membership.unwrap_or(false),
    })
}

/// Checks a `PATCH /segments/:id` body.
pub fn parse_patch(body: &Map<String, Value>) -> Result<SegmentChanges, Vec<FieldError>> {
    let mut fields = Fields::new(body);
    for immutable in ["type", "slug"] {
        if body.contains_key(immutable) {
            fields.error(
                immutable,
                FieldCode::Custom,
                format!("{immutable} is immutable"),
            );
        }
    }
    let name = fields
        .optional_string("name", 1, MAX_NAME_CHARS)
        .map(|n| n.trim().to_owned());
    let description = description(&mut fields, body);
    let track_membership = fields.optional_bool("trackMembership");
    let condition = condition(&mut fields, body);
    fields.finish()?;
    Ok(SegmentChanges {
        name,
        description: match description {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Set(d) => Some(Some(d)),
        },
        condition,
        track_membership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type BodyCheck = fn(&Map<String, Value>) -> Result<(), Vec<FieldError>>;

    #[test]
    fn slugs_follow_the_rule() {
        assert_eq!(slug_from_name("Active Pro users"), "active-pro-users");
        assert_eq!(slug_from_name("  Ünïcode -- & co!  "), "n-code-co");
        assert_eq!(slug_from_name("!!!"), "segment");
        assert_eq!(slug_from_name(&"a".repeat(80)).len(), 64);
        assert_eq!(
            slug_from_name(&format!("{}-b", "a".repeat(63))),
            "a".repeat(63)
        );
        assert!(is_valid_slug("vip-2026"));
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", &"a".repeat(65)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    fn codes(body: Value, parse: BodyCheck) -> Vec<(String, FieldCode)> {
        parse(body.as_object().unwrap())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    fn create(body: &Map<String, Value>) -> Result<(), Vec<FieldError>> {
        parse_create(body).map(|_| ())
    }

    fn patch(body: &Map<String, Value>) -> Result<(), Vec<FieldError>> {
        parse_patch(body).map(|_| ())
    }

    #[test]
    fn bodies_are_checked_as_the_spec_says() {
        let condition = json!({"logic":"AND","groups":[{"filters":[{"field":"data.plan","operator":"equals","value":"pro"}]}]});
        let ok = parse_create(
            json!({"name": "Active Pro users", "condition": condition})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ok.slug, "active-pro-users");
        assert_eq!(ok.segment_type, SegmentType::Dynamic);
        assert_eq!(
            codes(
                json!({"name": "Beta", "type": "STATIC", "condition": condition}),
                create
            ),
            vec![("condition".into(), FieldCode::Custom)]
        );
        assert_eq!(
            codes(json!({"name": "No condition"}), create),
            vec![("condition".into(), FieldCode::Required)]
        );
        assert_eq!(
            codes(
                json!({"name": "Bad", "condition": {"logic":"AND","groups":[{"filters":[{"field":"subscribed","operator":"within","value":3}]}]}}),
                create
            ),
            vec![(
                "condition.groups[0].filters[0].operator".into(),
                FieldCode::InvalidOperator
            )]
        );
        assert_eq!(
            codes(
                json!({"name": "x", "type": "STATIC", "slug": "Bad Slug"}),
                create
            ),
            vec![("slug".into(), FieldCode::InvalidString)]
        );
        assert_eq!(
            codes(json!({"slug": "x"}), patch),
            vec![("slug".into(), FieldCode::Custom)]
        );
        assert_eq!(
            codes(json!({"type": "STATIC"}), patch),
            vec![("type".into(), FieldCode::Custom)]
        );
        let changes = parse_patch(
            json!({"description": null, "trackMembership": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(changes.description, Some(None));
        assert_eq!(changes.track_membership, Some(true));
    }
}

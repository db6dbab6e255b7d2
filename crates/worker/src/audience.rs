//! Audiences: evaluating a condition of the filter language over a project's contacts, page by
//! page. One evaluator serves DYNAMIC segments (`GET /segments/:id/contacts`, counts), campaign
//! `FILTERED` and `SEGMENT` audiences and workflow `CONDITION` steps.
//!
//! Per page of contacts it reads their activity summaries (one batched read per 100) and, for
//! each STATIC segment the condition names, which of them are members (one batched read per
//! 100); DYNAMIC segments it names are evaluated in place for the same contact. Nothing reads a
//! contact's event history.

use plunk_domain::contact::Contact;
use plunk_domain::filter::{references::MAX_CHAIN, Activity, Condition, Memberships, Subject};
use plunk_domain::segment::SegmentType;
use plunk_store::repo::contacts::ContactFilter;
use plunk_store::table::{Position, StoreError};
use plunk_store::{keys, Store};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Contacts examined for one page of matches before a short page is returned (with a cursor).
pub const SCAN_BUDGET: usize = 1_000;
/// Contacts read per store query.
const READ_PAGE: usize = 100;

/// A condition ready to evaluate: the segments it names, transitively, loaded once.
#[derive(Debug, Clone)]
pub struct Prepared {
    root: Condition,
    /// DYNAMIC segments named (directly or through others), parsed.
    dynamic: HashMap<Uuid, Condition>,
    /// STATIC segments named, whose member lists are read per page.
    statics: Vec<Uuid>,
}

impl Prepared {
    /// Loads the segments `condition` names, and those they name, up to the chain limit. A
    /// segment that no longer exists has no members.
    pub async fn new(
        store: &Store,
        project: Uuid,
        condition: Condition,
    ) -> Result<Self, StoreError> {
        let mut dynamic = HashMap::new();
        let mut statics = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut frontier = condition.segment_refs();
        for _ in 0..=MAX_CHAIN {
            let mut next = Vec::new();
            for id in frontier {
                if !seen.insert(id) {
                    continue;
                }
                let Some(segment) = store.segments().get(project, id).await? else {
                    continue;
                };
                match segment.segment_type {
                    SegmentType::Static => statics.push(id),
                    SegmentType::Dynamic => {
                        if let Some(parsed) = segment.parsed_condition() {
                            next.extend(parsed.segment_refs());
                            dynamic.insert(id, parsed);
                        }
                    }
                }
            }
            frontier = next;
        }
        Ok(Self {
            root: condition,
            dynamic,
            statics,
        })
    }

    /// Which of `contacts` match at `now_ms`, in their order.
    pub async fn matches(
        &self,
        store: &Store,
        project: Uuid,
        contacts: &[Contact],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
        let activities = store.activities().get_many(project, &ids).await?;
        let mut members: HashSet<(Uuid, Uuid)> = HashSet::new();
        for segment in &self.statics {
            let among = store
                .segments()
                .members_among(project, *segment, &ids)
                .await?;
            for (contact, member) in ids.iter().zip(among) {
                if member {
                    members.insert((*segment, *contact));
                }
            }
        }
        Ok(contacts
            .iter()
            .zip(&activities)
            .map(|(contact, activity)| {
                let resolver = Resolver {
                    contact,
                    activity,
                    members: &members,
                    dynamic: &self.dynamic,
                    depth: Cell::new(0),
                    now_ms,
                };
                let subject = Subject {
                    contact,
                    activity,
                    context: None,
                };
                self.root.matches(&subject, &resolver, now_ms)
            })
            .collect())
    }

    /// One page of matching contacts, newest first, after `start`: at most `limit`, fewer when
    /// [`SCAN_BUDGET`] contacts were examined first. `next` is where the following page starts.
    pub async fn page(
        &self,
        store: &Store,
        project: Uuid,
        limit: usize,
        start: Option<Position>,
        now_ms: i64,
    ) -> Result<(Vec<Contact>, Option<Position>), StoreError> {
        let mut found = Vec::with_capacity(limit);
        let mut examined = 0;
        let mut position = start;
        loop {
            let page = store
                .contacts()
                .list(
                    project,
                    &ContactFilter::default(),
                    READ_PAGE,
                    position.clone(),
                )
                .await?;
            let matched = self.matches(store, project, &page.items, now_ms).await?;
            for (contact, hit) in page.items.iter().zip(matched) {
                examined += 1;
                position = Some(Position {
                    key: keys::contact(project, contact.id),
                    gsi1: None,
                });
                if hit {
                    found.push(contact.clone());
                    if found.len() == limit {
                        return Ok((found, position));
                    }
                }
            }
            if page.next.is_none() {
                return Ok((found, None));
            }
            if examined >= SCAN_BUDGET {
                return Ok((found, position));
            }
            position = page.next;
        }
    }
}

/// Answers `memberOfSegment` for one contact: STATIC from the page's member reads, DYNAMIC by
/// evaluating that segment's condition for the same contact.
pub(crate) struct Resolver<'a> {
    contact: &'a Contact,
    activity: &'a Activity,
    members: &'a HashSet<(Uuid, Uuid)>,
    dynamic: &'a HashMap<Uuid, Condition>,
    /// Nesting of DYNAMIC evaluations: bounded even should stored data hold a cycle.
    depth: Cell<usize>,
    now_ms: i64,
}

impl<'a> Resolver<'a> {
    /// A resolver for one contact: STATIC memberships from `members` (`(segment, contact)`
    /// pairs), DYNAMIC ones by evaluating `dynamic`'s conditions.
    pub(crate) fn new(
        contact: &'a Contact,
        activity: &'a Activity,
        members: &'a HashSet<(Uuid, Uuid)>,
        dynamic: &'a HashMap<Uuid, Condition>,
        now_ms: i64,
    ) -> Self {
        Self {
            contact,
            activity,
            members,
            dynamic,
            depth: Cell::new(0),
            now_ms,
        }
    }
}

impl Memberships for Resolver<'_> {
    fn is_member(&self, segment: Uuid) -> bool {
        if let Some(condition) = self.dynamic.get(&segment) {
            if self.depth.get() > MAX_CHAIN {
                return false;
            }
            self.depth.set(self.depth.get() + 1);
            let subject = Subject {
                contact: self.contact,
                activity: self.activity,
                context: None,
            };
            let hit = condition.matches(&subject, self, self.now_ms);
            self.depth.set(self.depth.get() - 1);
            return hit;
        }
        self.members.contains(&(segment, self.contact.id))
    }
}

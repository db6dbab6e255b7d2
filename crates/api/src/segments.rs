//! `/segments` (segments.md §3): CRUD with immutable type and slug, the members of STATIC
//! segments, the contacts of any segment (DYNAMIC ones evaluated at request time by
//! `plunk_worker::audience`), and queued computations.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::contact::{Contact, DataChange};
use plunk_domain::event::SubscriptionSource;
use plunk_domain::filter::references::{self, Problem};
use plunk_domain::filter::Condition;
use plunk_domain::segment::{self, Segment, SegmentType};
use plunk_domain::validation::Fields;
use plunk_domain::{EmailAddress, FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::segment_jobs::JobKind;
use plunk_store::repo::segments::{SegmentError, MAX_PROJECT_FILTERS, MAX_SEGMENTS};
use plunk_worker::audience::Prepared;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most addresses in one members call.
const MAX_MEMBER_EMAILS: usize = 500;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/segments", secret(get(list).post(create)))
        .route(
            "/segments/{id}",
            secret(get(read).patch(update).delete(remove)),
        )
        .route("/segments/{id}/contacts", secret(get(contacts)))
        .route(
            "/segments/{id}/members",
            secret(post(add_members).delete(remove_members)),
        )
        .route("/segments/{id}/compute", secret(post(compute)))
        .route("/segments/{id}/refresh", secret(post(refresh)))
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SegmentNotFound, "No segment with this id")
}

async fn load(state: &AppState, project: Uuid, id: Uuid) -> Result<(Segment, u64), ApiError> {
    state
        .store
        .segments()
        .get_versioned(project, id)
        .await?
        .ok_or_else(not_found)
}

fn type_mismatch(segment: &Segment, required: SegmentType) -> ApiError {
    ApiError::new(
        ErrorCode::SegmentTypeMismatch,
        format!(
            "This needs a {} segment; this one is {}",
            required.as_str(),
            segment.segment_type.as_str()
        ),
    )
    .with_details(json!({ "type": segment.segment_type, "required": required }))
}

fn segment_error(e: SegmentError) -> ApiError {
    match e {
        SegmentError::NotFound => not_found(),
        SegmentError::SlugTaken => ApiError::new(
            ErrorCode::SegmentSlugTaken,
            "Another segment of this project has this slug",
        ),
        SegmentError::Conflict => ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The segment changed at the same time; retry",
        )
        .with_retry_after(1),
        SegmentError::Store(e) => e.into(),
    }
}

/// A segment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    slug: String,
    #[schema(nullable = true)]
    description: Option<String>,
    #[serde(rename = "type")]
    #[schema(pattern = "^(DYNAMIC|STATIC)$")]
    segment_type: &'static str,
    /// A FilterCondition (DYNAMIC), null for STATIC segments.
    #[schema(value_type = Option<Object>, nullable = true)]
    condition: Option<Value>,
    track_membership: bool,
    member_count: u64,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    member_count_updated_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, nullable = true)]
    last_computed_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl SegmentView {
    /// The view of `segment`. A STATIC segment shows its member counter; so does a DYNAMIC one
    /// once its membership is materialised, as of `kept_through` (how far the segment timers
    /// have been worked; contact changes reach the counter within seconds).
    fn of(segment: &Segment, live_count: Option<u64>, kept_through: Option<Timestamp>) -> Self {
        let (member_count, member_count_updated_at) = match (segment.segment_type, live_count) {
            (SegmentType::Static, Some(count)) => (count, Some(segment.updated_at)),
            (SegmentType::Dynamic, Some(count)) => {
                (count, segment.member_count_updated_at.max(kept_through))
            }
            (_, None) => (segment.member_count, segment.member_count_updated_at),
        };
        Self {
            id: segment.id.to_string(),
            name: segment.name.clone(),
            slug: segment.slug.clone(),
            description: segment.description.clone(),
            segment_type: segment.segment_type.as_str(),
            condition: segment.condition.clone(),
            track_membership: segment.track_membership,
            member_count,
            member_count_updated_at,
            last_computed_at: segment.last_computed_at,
            created_at: segment.created_at,
            updated_at: segment.updated_at,
        }
    }
}

/// Whether a segment's count is its live member counter.
fn counted_live(segment: &Segment) -> bool {
    segment.segment_type == SegmentType::Static || segment.membership_since.is_some()
}

/// Views of `segments`, live member counts read in one batch.
async fn views(
    state: &AppState,
    project: Uuid,
    segments: &[Segment],
) -> Result<Vec<SegmentView>, ApiError> {
    let live: Vec<Segment> = segments
        .iter()
        .filter(|s| counted_live(s))
        .cloned()
        .collect();
    let counts = state.store.segments().member_counts(project, &live).await?;
    let kept_through = if segments.iter().any(|s| s.membership_since.is_some()) {
        state.store.memberships().timers_through().await?
    } else {
        None
    };
    Ok(segments
        .iter()
        .map(|s| SegmentView::of(s, counts.get(&s.id).copied(), kept_through))
        .collect())
}

async fn view(state: &AppState, project: Uuid, segment: &Segment) -> Result<SegmentView, ApiError> {
    Ok(views(state, project, std::slice::from_ref(segment))
        .await?
        .remove(0))
}

/// The segments of the project with the segments each names, for the reference rules.
pub(crate) async fn reference_graph(
    state: &AppState,
    project: Uuid,
) -> Result<(Vec<Segment>, HashMap<Uuid, Vec<Uuid>>), ApiError> {
    let all = state.store.segments().all(project).await?;
    let graph = all
        .iter()
        .map(|s| {
            let refs = s
                .parsed_condition()
                .map(|c| c.segment_refs())
                .unwrap_or_default();
            (s.id, refs)
        })
        .collect();
    Ok((all, graph))
}

/// 422 `too_big` when the project's DYNAMIC segments would hold more than
/// [`MAX_PROJECT_FILTERS`] filters in all with `condition` as the condition of `me` (or of a new
/// segment). Every contact change is evaluated against all of them in the shared event
/// dispatcher, so this bounds what one project's change costs there.
fn check_project_filters(
    all: &[Segment],
    me: Option<Uuid>,
    condition: &Condition,
) -> Result<(), ApiError> {
    let others: usize = all
        .iter()
        .filter(|s| Some(s.id) != me)
        .filter_map(Segment::parsed_condition)
        .map(|c| c.filters().len())
        .sum();
    if others + condition.filters().len() > MAX_PROJECT_FILTERS {
        return Err(ApiError::field(FieldError::new(
            "condition",
            FieldCode::TooBig,
            format!(
                "A project's dynamic segments can hold at most {MAX_PROJECT_FILTERS} filters in all; {others} are in use"
            ),
        )));
    }
    Ok(())
}

/// 422 when `condition` (the member `base` of the body) names a missing segment, makes a cycle
/// or a chain too deep.
pub(crate) fn check_references(
    me: Option<Uuid>,
    condition: &Condition,
    base: &str,
    graph: &HashMap<Uuid, Vec<Uuid>>,
) -> Result<(), ApiError> {
    let Err(problem) = references::check(me, condition, graph) else {
        return Ok(());
    };
    let (target, code, message) = match problem {
        Problem::NotFound(id) => (
            id,
            FieldCode::NotFound,
            "No segment with this id in the project",
        ),
        Problem::Cycle(id) => (
            id,
            FieldCode::SegmentCycle,
            "This segment would contain itself",
        ),
        Problem::TooDeep(id) => (
            id,
            FieldCode::TooBig,
            "Segment references may be at most 3 deep",
        ),
    };
    let path = condition
        .segment_ref_paths(base)
        .into_iter()
        .find(|(id, _)| *id == target)
        .map_or_else(|| base.to_owned(), |(_, path)| path);
    Err(ApiError::field(FieldError::new(path, code, message)))
}

/// Body of `POST /segments`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct SegmentBody {
    /// 1–100 characters.
    name: String,
    /// 1–64 of `[a-z0-9-]`; derived from the name when omitted. Immutable.
    slug: Option<String>,
    #[schema(nullable = true)]
    description: Option<String>,
    /// `DYNAMIC` (default) or `STATIC`. Immutable.
    #[serde(rename = "type")]
    #[schema(pattern = "^(DYNAMIC|STATIC)$")]
    segment_type: Option<String>,
    /// FilterCondition: required for DYNAMIC, omitted for STATIC.
    #[schema(value_type = Option<Object>)]
    condition: Option<Value>,
    track_membership: Option<bool>,
}

/// Body of `PATCH /segments/:id`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct SegmentPatch {
    name: Option<String>,
    #[schema(nullable = true)]
    description: Option<String>,
    /// Ignored on STATIC segments.
    #[schema(value_type = Option<Object>)]
    condition: Option<Value>,
    track_membership: Option<bool>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SegmentEnvelope {
    success: bool,
    data: SegmentView,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct SegmentListData {
    items: Vec<SegmentView>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct SegmentListEnvelope {
    success: bool,
    data: SegmentListData,
}

/// Create a segment.
#[utoipa::path(post, path = "/segments", tag = "Segments", request_body = inline(SegmentBody),
    responses(
        (status = 201, description = "Created; memberCount is computed asynchronously", body = inline(SegmentEnvelope)),
        (status = 409, description = "SEGMENT_SLUG_TAKEN", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<SegmentView>, ApiError> {
    let project = auth.project.id;
    let new = segment::parse_create(&body).map_err(ApiError::validation)?;
    let (all, graph) = reference_graph(&state, project).await?;
    if let Some((_, condition)) = &new.condition {
        check_references(None, condition, "condition", &graph)?;
        check_project_filters(&all, None, condition)?;
    }
    if all.len() >= MAX_SEGMENTS {
        return Err(ApiError::field(FieldError::new(
            "",
            FieldCode::TooBig,
            format!("A project can have at most {MAX_SEGMENTS} segments"),
        )));
    }
    let segment = new.into_segment(plunk_domain::id::new_id(), Timestamp::now());
    state
        .store
        .segments()
        .create(project, &segment)
        .await
        .map_err(segment_error)?;
    if segment.segment_type == SegmentType::Dynamic {
        queue(&state, project, &segment, JobKind::Refresh).await?;
    }
    Ok(Envelope::created(view(&state, project, &segment).await?))
}

/// List segments, newest first.
#[utoipa::path(get, path = "/segments", tag = "Segments",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("type" = Option<String>, Query, description = "DYNAMIC or STATIC"),
    ),
    responses((status = 200, description = "One page of segments", body = inline(SegmentListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<SegmentView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let segment_type = query.parsed(
        "type",
        &mut errors,
        FieldCode::InvalidEnumValue,
        "Expected DYNAMIC or STATIC",
        SegmentType::parse,
    );
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let binding = CursorBinding::new(
        project,
        "GET /segments",
        &[("type", segment_type.map(SegmentType::as_str))],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state
        .store
        .segments()
        .list(project, segment_type, limit, start)
        .await?;
    let items = views(&state, project, &page.items).await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// One segment.
#[utoipa::path(get, path = "/segments/{id}", tag = "Segments",
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 200, description = "The segment", body = inline(SegmentEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<SegmentView>, ApiError> {
    let id = path_id(path, not_found)?;
    let (segment, _) = load(&state, auth.project.id, id).await?;
    Ok(Envelope::ok(view(&state, auth.project.id, &segment).await?))
}

/// Change a segment's name, description, condition or tracking.
#[utoipa::path(patch, path = "/segments/{id}", tag = "Segments", request_body = inline(SegmentPatch),
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 200, description = "The segment", body = inline(SegmentEnvelope))),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<SegmentView>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let changes = segment::parse_patch(&body).map_err(ApiError::validation)?;
    let (mut segment, version) = load(&state, project, id).await?;
    if segment.segment_type == SegmentType::Dynamic {
        if let Some((_, condition)) = &changes.condition {
            let (all, graph) = reference_graph(&state, project).await?;
            check_references(Some(id), condition, "condition", &graph)?;
            check_project_filters(&all, Some(id), condition)?;
        }
    }
    let (changed, condition_changed) = changes.apply(&mut segment);
    if changed {
        segment.updated_at = Timestamp::now().max(segment.updated_at);
        state
            .store
            .segments()
            .save(project, &segment, version)
            .await
            .map_err(segment_error)?;
        if condition_changed {
            // A full pass re-decides every contact: for this segment and for each DYNAMIC
            // segment whose condition names it, directly or through others.
            let (all, graph) = reference_graph(&state, project).await?;
            for dependent in dependents(id, &graph) {
                if let Some(other) = all.iter().find(|s| s.id == dependent) {
                    queue(&state, project, other, pass_kind(other)).await?;
                }
            }
            queue(&state, project, &segment, pass_kind(&segment)).await?;
        }
    }
    Ok(Envelope::ok(view(&state, project, &segment).await?))
}

/// The pass a changed condition needs: a computation (with entry and exit events) for a
/// tracked segment, a silent recount otherwise.
fn pass_kind(segment: &Segment) -> JobKind {
    if segment.track_membership {
        JobKind::Compute
    } else {
        JobKind::Refresh
    }
}

/// The segments whose conditions name `id`, directly or through others.
fn dependents(id: Uuid, graph: &HashMap<Uuid, Vec<Uuid>>) -> Vec<Uuid> {
    let mut found: Vec<Uuid> = Vec::new();
    let mut frontier = vec![id];
    while let Some(current) = frontier.pop() {
        for (segment, refs) in graph {
            if refs.contains(&current) && *segment != id && !found.contains(segment) {
                found.push(*segment);
                frontier.push(*segment);
            }
        }
    }
    found
}

/// `data` of a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct DeletedEnvelope {
    success: bool,
    data: Deleted,
}

/// Delete a segment and its memberships (no exit events).
#[utoipa::path(delete, path = "/segments/{id}", tag = "Segments",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "Deleted", body = inline(DeletedEnvelope)),
        (status = 409, description = "SEGMENT_IN_USE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (segment, _) = load(&state, project, id).await?;
    let (all, graph) = reference_graph(&state, project).await?;
    // Campaigns in DRAFT, SCHEDULED or SENDING whose audience names it, then other segments.
    let mut used_by: Vec<Value> = state
        .store
        .campaigns()
        .using_segment(project, id)
        .await?
        .into_iter()
        .map(|u| json!({ "type": "campaign", "id": u.id, "name": u.name }))
        .collect();
    used_by.extend(
        all.iter()
            .filter(|s| s.id != id && graph.get(&s.id).is_some_and(|refs| refs.contains(&id)))
            .map(|s| json!({ "type": "segment", "id": s.id, "name": s.name })),
    );
    if !used_by.is_empty() {
        return Err(ApiError::new(
            ErrorCode::SegmentInUse,
            "Campaigns or other segments' conditions name this segment",
        )
        .with_details(json!({ "usedBy": used_by })));
    }
    state.store.segments().delete(project, &segment).await?;
    state.store.segment_jobs().forget(project, id).await?;
    Ok(Envelope::ok(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct ContactListData {
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
    /// STATIC segments, first page only.
    total: Option<u64>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ContactListEnvelope {
    success: bool,
    data: ContactListData,
}

/// The contacts of a segment: DYNAMIC evaluated now (pages may be short), STATIC most recently
/// added first with `total` on the first page.
#[utoipa::path(get, path = "/segments/{id}/contacts", tag = "Segments",
    params(
        ("id" = String, Path, description = "Segment id"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
    ),
    responses((status = 200, description = "One page of contacts", body = inline(ContactListEnvelope))),
    security(("bearer" = [])))]
pub async fn contacts(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Envelope<ListPage<Contact>>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (segment, _) = load(&state, project, id).await?;
    let binding = CursorBinding::new(
        project,
        "GET /segments/:id/contacts",
        &[("id", Some(&id.to_string()))],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    match segment.segment_type {
        SegmentType::Static => {
            let first = start.is_none();
            let segments = state.store.segments();
            let page = segments.members(project, id, limit, start).await?;
            let mut items = Vec::with_capacity(page.items.len());
            for member in &page.items {
                // A member whose contact is gone (erasure pending) is not shown.
                if let Some(contact) = state
                    .store
                    .contacts()
                    .get(project, member.contact_id)
                    .await?
                {
                    items.push(contact);
                }
            }
            let total = if first {
                Some(segments.member_count(project, id).await?)
            } else {
                None
            };
            Ok(Envelope::ok(
                paging::page(&state, &binding, items, page.next, total).await?,
            ))
        }
        SegmentType::Dynamic => {
            let Some(condition) = segment.parsed_condition() else {
                return Ok(Envelope::ok(
                    paging::page(&state, &binding, Vec::new(), None, None).await?,
                ));
            };
            let prepared = Prepared::new(&state.store, project, condition).await?;
            let (items, next) = prepared
                .page(
                    &state.store,
                    project,
                    limit,
                    start,
                    Timestamp::now().unix_millis(),
                )
                .await?;
            Ok(Envelope::ok(
                paging::page(&state, &binding, items, next, None).await?,
            ))
        }
    }
}

/// The addresses of a members body: 1–500, each an email, normalised and deduplicated in order.
fn member_emails(body: &serde_json::Map<String, Value>) -> Result<Vec<EmailAddress>, ApiError> {
    let mut fields = Fields::new(body);
    let raw = fields.required_array("emails", 1, MAX_MEMBER_EMAILS);
    let mut emails: Vec<EmailAddress> = Vec::new();
    if let Some(raw) = raw {
        for (i, value) in raw.iter().enumerate() {
            match value.as_str().map(EmailAddress::parse) {
                Some(Ok(email)) => {
                    if !emails.contains(&email) {
                        emails.push(email);
                    }
                }
                _ => fields.error(
                    &format!("emails[{i}]"),
                    FieldCode::InvalidString,
                    "Expected an email address",
                ),
            }
        }
    }
    fields.finish().map_err(ApiError::validation)?;
    Ok(emails)
}

/// Result of adding members.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembersAdded {
    added: Vec<String>,
    already_members: Vec<String>,
    created: Vec<String>,
    not_found: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct MembersAddedEnvelope {
    success: bool,
    data: MembersAdded,
}

/// Body of the members calls.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
struct MembersBody {
    /// 1–500 addresses.
    emails: Vec<String>,
    /// Create contacts for unknown addresses (adds only; default false).
    create_missing: Option<bool>,
    /// Subscription of created contacts (adds only; default true).
    subscribed: Option<bool>,
}

/// Add contacts to a STATIC segment (no entry events).
#[utoipa::path(post, path = "/segments/{id}/members", tag = "Segments", request_body = inline(MembersBody),
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "What happened to each address", body = inline(MembersAddedEnvelope)),
        (status = 409, description = "SEGMENT_TYPE_MISMATCH", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn add_members(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<MembersAdded>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let emails = member_emails(&body)?;
    let mut fields = Fields::new(&body);
    let create_missing = fields.optional_bool("createMissing").unwrap_or(false);
    let subscribed = fields.optional_bool("subscribed").unwrap_or(true);
    fields.finish().map_err(ApiError::validation)?;
    let (segment, _) = load(&state, project, id).await?;
    if segment.segment_type != SegmentType::Static {
        return Err(type_mismatch(&segment, SegmentType::Static));
    }
    let contacts = state.store.contacts();
    let mut out = MembersAdded {
        added: Vec::new(),
        already_members: Vec::new(),
        created: Vec::new(),
        not_found: Vec::new(),
    };
    for email in emails {
        let contact = match contacts.get_by_email(project, &email).await? {
            Some(contact) => contact,
            None if create_missing => {
                let outcome = contacts
                    .upsert(
                        project,
                        &email,
                        Some(subscribed),
                        &DataChange::default(),
                        SubscriptionSource::Api,
                    )
                    .await
                    .map_err(crate::contacts::contact_error)?;
                if outcome.is_new {
                    out.created.push(email.to_string());
                }
                outcome.contact
            }
            None => {
                out.not_found.push(email.to_string());
                continue;
            }
        };
        if state
            .store
            .segments()
            .add_member(project, id, contact.id)
            .await?
        {
            out.added.push(email.to_string());
        } else {
            out.already_members.push(email.to_string());
        }
    }
    Ok(Envelope::ok(out))
}

/// Result of removing members.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembersRemoved {
    removed: Vec<String>,
    not_members: Vec<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct MembersRemovedEnvelope {
    success: bool,
    data: MembersRemoved,
}

/// Remove contacts from a STATIC segment (no exit events).
#[utoipa::path(delete, path = "/segments/{id}/members", tag = "Segments", request_body = inline(MembersBody),
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 200, description = "What happened to each address", body = inline(MembersRemovedEnvelope)),
        (status = 409, description = "SEGMENT_TYPE_MISMATCH", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove_members(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<MembersRemoved>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let emails = member_emails(&body)?;
    let (segment, _) = load(&state, project, id).await?;
    if segment.segment_type != SegmentType::Static {
        return Err(type_mismatch(&segment, SegmentType::Static));
    }
    let mut out = MembersRemoved {
        removed: Vec::new(),
        not_members: Vec::new(),
    };
    for email in emails {
        let removed = match state.store.contacts().get_by_email(project, &email).await? {
            Some(contact) => {
                state
                    .store
                    .segments()
                    .remove_member(project, id, contact.id)
                    .await?
            }
            None => false,
        };
        if removed {
            out.removed.push(email.to_string());
        } else {
            out.not_members.push(email.to_string());
        }
    }
    Ok(Envelope::ok(out))
}

/// `data` of a queued computation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    #[schema(format = Uuid)]
    segment_id: String,
    #[schema(pattern = "^QUEUED$")]
    status: &'static str,
    #[schema(value_type = String, format = DateTime)]
    requested_at: Timestamp,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct QueuedEnvelope {
    success: bool,
    data: Queued,
}

async fn queue(
    state: &AppState,
    project: Uuid,
    segment: &Segment,
    kind: JobKind,
) -> Result<Timestamp, ApiError> {
    Ok(state
        .store
        .segment_jobs()
        .request(project, segment.id, kind, Timestamp::now())
        .await?)
}

/// Queue a membership computation of a DYNAMIC segment (coalesced with one already queued).
#[utoipa::path(post, path = "/segments/{id}/compute", tag = "Segments",
    params(("id" = String, Path, description = "Segment id")),
    responses(
        (status = 202, description = "Queued", body = inline(QueuedEnvelope)),
        (status = 409, description = "SEGMENT_TYPE_MISMATCH", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn compute(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Queued>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (segment, _) = load(&state, project, id).await?;
    if segment.segment_type != SegmentType::Dynamic {
        return Err(type_mismatch(&segment, SegmentType::Dynamic));
    }
    let requested_at = queue(&state, project, &segment, JobKind::Compute).await?;
    Ok(Envelope::accepted(Queued {
        segment_id: id.to_string(),
        status: "QUEUED",
        requested_at,
    }))
}

/// Queue a recount of `memberCount` (no events; coalesced).
#[utoipa::path(post, path = "/segments/{id}/refresh", tag = "Segments",
    params(("id" = String, Path, description = "Segment id")),
    responses((status = 202, description = "Queued", body = inline(QueuedEnvelope))),
    security(("bearer" = [])))]
pub async fn refresh(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Queued>, ApiError> {
    let project = auth.project.id;
    let id = path_id(path, not_found)?;
    let (segment, _) = load(&state, project, id).await?;
    let requested_at = queue(&state, project, &segment, JobKind::Refresh).await?;
    Ok(Envelope::accepted(Queued {
        segment_id: id.to_string(),
        status: "QUEUED",
        requested_at,
    }))
}

//! `/events`: stored events, the names in use with their counts,
//! daily statistics, usage of a name and deleting every event of a name. Counts come from the
//! incremental counters the event dispatcher keeps (`plunk_store::repo::event_stats`).

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use chrono::{Duration, TimeZone, Utc};
use plunk_domain::campaign::CampaignStatus;
use plunk_domain::event::{is_reserved_event_name, Event};
use plunk_domain::{FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, QueryParams};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::campaigns::CampaignFilter;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The routes of this group.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/events", secret(get(list)))
        // The fixed paths also take DELETE: `names` and `stats` are valid event names.
        .route("/events/names", secret(get(names).delete(remove_fixed)))
        .route("/events/stats", secret(get(stats).delete(remove_fixed)))
        // One path pattern: an id for GET, a name for DELETE (both percent-decoded).
        .route("/events/{key}", secret(get(read).delete(remove)))
        .route("/events/{key}/usage", secret(get(usage)))
        .with_state(state)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::EventNotFound, "No event with this id or name")
}

/// List events, newest first.
#[utoipa::path(get, path = "/events", tag = "Events",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("name" = Option<String>, Query, description = "Exact name", min_length = 1, max_length = 255),
        ("contactId" = Option<String>, Query, format = Uuid),
    ),
    responses((status = 200, description = "One page of events", body = inline(crate::contacts::EventListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<Event>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let name = query
        .string("name", 1, 255, &mut errors)
        .map(|n| n.trim().to_owned());
    let contact = query.uuid("contactId", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let contact_text = contact.map(|c| c.to_string());
    let binding = CursorBinding::new(
        project,
        "GET /events",
        &[
            ("name", name.as_deref()),
            ("contactId", contact_text.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let events = state.store.events();
    let page = match contact {
        Some(contact) => {
            events
                .for_contact(project, contact, name.as_deref(), limit, start)
                .await?
        }
        None => events.list(project, name.as_deref(), limit, start).await?,
    };
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, None).await?,
    ))
}

/// One event.
#[utoipa::path(get, path = "/events/{id}", tag = "Events",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "The event", body = inline(EventEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Event>, ApiError> {
    let id = path_id(path, not_found)?;
    let event = state.store.events().get(auth.project.id, id).await?;
    event.map(Envelope::ok).ok_or_else(not_found)
}

/// One name of `GET /events/names`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameEntry {
    name: String,
    count: u64,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_seen_at: Option<Timestamp>,
    /// A reserved (platform) name.
    system: bool,
}

/// `data` of `GET /events/names`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamesResult {
    names: Vec<NameEntry>,
}

/// Event names with their counts, most frequent first (at most 1000).
#[utoipa::path(get, path = "/events/names", tag = "Events",
    responses((status = 200, description = "Names", body = inline(NamesEnvelope))),
    security(("bearer" = [])))]
pub async fn names(
    State(state): State<AppState>,
    auth: AuthContext,
) -> Result<Envelope<NamesResult>, ApiError> {
    let names = state.store.event_stats().names(auth.project.id).await?;
    Ok(Envelope::ok(NamesResult {
        names: names
            .into_iter()
            .map(|n| NameEntry {
                system: is_reserved_event_name(&n.name),
                name: n.name,
                count: n.count,
                last_seen_at: n.last_seen_at,
            })
            .collect(),
    }))
}

/// One name of `GET /events/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatEntry {
    name: String,
    count: u64,
}

/// `data` of `GET /events/stats`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsResult {
    #[schema(value_type = String, format = DateTime)]
    start_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    end_date: Timestamp,
    stats: Vec<StatEntry>,
}

/// Longest range of `GET /events/stats`.
const MAX_STATS_DAYS: i64 = 366;

/// Widens `[start, end)` to whole UTC days: start down to midnight, end up to the next midnight
/// unless already at one.
fn whole_days(start: Timestamp, end: Timestamp) -> (Timestamp, Timestamp) {
    let floor = |t: Timestamp| {
        let date = t.as_datetime().date_naive();
        Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
    };
    let start_day = floor(start);
    let end_floor = floor(end);
    let end_day = if end_floor == end.as_datetime() {
        end_floor
    } else {
        end_floor + Duration::days(1)
    };
    (
        Timestamp::from_datetime(start_day),
        Timestamp::from_datetime(end_day),
    )
}

/// Counts per name over a date range, widened to whole UTC days.
#[utoipa::path(get, path = "/events/stats", tag = "Events",
    params(
        ("startDate" = Option<String>, Query, description = "Timestamp or YYYY-MM-DD; default 30 days ago"),
        ("endDate" = Option<String>, Query, description = "Timestamp or YYYY-MM-DD; default now"),
    ),
    responses((status = 200, description = "Counts", body = inline(StatsEnvelope))),
    security(("bearer" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<StatsResult>, ApiError> {
    let mut errors = Vec::new();
    let mut date = |name: &str| {
        query.get(name).and_then(|raw| {
            let parsed = Timestamp::parse_query_date(raw);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    name,
                    FieldCode::InvalidDate,
                    "Expected a timestamp or YYYY-MM-DD",
                ));
            }
            parsed
        })
    };
    let (start, end) = (date("startDate"), date("endDate"));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let end = end.unwrap_or_else(Timestamp::now);
    let start =
        start.unwrap_or_else(|| Timestamp::from_datetime(end.as_datetime() - Duration::days(30)));
    if start >= end {
        return Err(ApiError::field(FieldError::new(
            "startDate",
            FieldCode::InvalidDate,
            "startDate must be before endDate",
        )));
    }
    // The limit applies to the range asked for; widening may add up to a day.
    if end.as_datetime() - start.as_datetime() > Duration::days(MAX_STATS_DAYS) {
        return Err(ApiError::field(FieldError::new(
            "endDate",
            FieldCode::InvalidDate,
            "The range may span at most 366 days",
        )));
    }
    let (start, end) = whole_days(start, end);
    let last_day = end.as_datetime() - Duration::days(1);
    let counts = state
        .store
        .event_stats()
        .between(
            auth.project.id,
            &start.as_datetime().format("%Y-%m-%d").to_string(),
            &last_day.format("%Y-%m-%d").to_string(),
        )
        .await?;
    Ok(Envelope::ok(StatsResult {
        start_date: start,
        end_date: end,
        stats: counts
            .into_iter()
            .map(|(name, count)| StatEntry { name, count })
            .collect(),
    }))
}

/// `data` of `GET /events/:name/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResult {
    name: String,
    /// `{id, name, type: segment|campaign}` of each user of the name.
    #[schema(value_type = Vec<Object>)]
    used_in_segments: Vec<Value>,
    /// `{id, name}` of each workflow using the name.
    #[schema(value_type = Vec<Object>)]
    used_in_workflows: Vec<Value>,
    total_count: u64,
    unique_contacts: u64,
    can_delete: bool,
}

fn name_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(raw)| raw.trim().to_owned())
        .map_err(|_| not_found())
}

async fn usage_of(
    state: &AppState,
    project: uuid::Uuid,
    name: String,
) -> Result<UsageResult, ApiError> {
    let (total_count, unique_contacts) = state.store.event_stats().totals(project, &name).await?;
    let used_in_segments = conditions_using(state, project, &name).await?;
    let used_in_workflows: Vec<Value> = state
        .store
        .workflows()
        .event_users(project, &name)
        .await?
        .into_iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    Ok(UsageResult {
        can_delete: !is_reserved_event_name(&name)
            && used_in_segments.is_empty()
            && used_in_workflows.is_empty(),
        name,
        used_in_segments,
        used_in_workflows,
        total_count,
        unique_contacts,
    })
}

/// The segments (at most 1,000 a project) and the campaigns still to send or sending (FILTERED
/// audiences) whose conditions read `event.<name>`: `{id, name, type}`.
async fn conditions_using(
    state: &AppState,
    project: uuid::Uuid,
    name: &str,
) -> Result<Vec<Value>, ApiError> {
    let reads = |condition: Option<plunk_domain::filter::Condition>| {
        condition.is_some_and(|c| c.event_names().contains(&name))
    };
    let mut out: Vec<Value> = state
        .store
        .segments()
        .all(project)
        .await?
        .iter()
        .filter(|s| reads(s.parsed_condition()))
        .map(|s| serde_json::json!({"id": s.id, "name": s.name, "type": "segment"}))
        .collect();
    for status in [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
    ] {
        let filter = CampaignFilter {
            status: Some(status),
            search: None,
        };
        let mut start = None;
        loop {
            let page = state
                .store
                .campaigns()
                .list(project, &filter, 100, start)
                .await?;
            out.extend(
                page.items
                    .iter()
                    .filter(|c| reads(c.parsed_condition()))
                    .map(|c| serde_json::json!({"id": c.id, "name": c.name, "type": "campaign"})),
            );
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
    }
    Ok(out)
}

/// Where a name is used, and its counts.
#[utoipa::path(get, path = "/events/{name}/usage", tag = "Events",
    params(("name" = String, Path, description = "Event name, percent-encoded")),
    responses((status = 200, description = "Usage", body = inline(UsageEnvelope))),
    security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<UsageResult>, ApiError> {
    let name = name_param(path)?;
    Ok(Envelope::ok(usage_of(&state, auth.project.id, name).await?))
}

/// `data` of `DELETE /events/:name`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedName {
    name: String,
    deleted: bool,
    deleted_count: u64,
}

/// Delete every event with this name (completes in the background within minutes).
#[utoipa::path(delete, path = "/events/{name}", tag = "Events",
    params(("name" = String, Path, description = "Event name, percent-encoded")),
    responses(
        (status = 200, description = "Deletion scheduled", body = inline(DeletedEnvelope)),
        (status = 409, description = "EVENT_IN_USE", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    state: State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<DeletedName>, ApiError> {
    let name = name_param(path)?;
    remove_name(state, auth, name).await
}

async fn remove_name(
    State(state): State<AppState>,
    auth: AuthContext,
    name: String,
) -> Result<Envelope<DeletedName>, ApiError> {
    let project = auth.project.id;
    if is_reserved_event_name(&name) {
        return Err(ApiError::field(FieldError::new(
            "name",
            FieldCode::ReservedEvent,
            "System events cannot be deleted",
        )));
    }
    let usage = usage_of(&state, project, name.clone()).await?;
    if !usage.used_in_segments.is_empty() || !usage.used_in_workflows.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EventInUse,
            format!("Event \"{name}\" is used by segments or workflows"),
        )
        .with_details(json!({
            "usedInSegments": usage.used_in_segments,
            "usedInWorkflows": usage.used_in_workflows,
        })));
    }
    // The counters may lag the newest events by seconds: a name they do not know yet is looked
    // for among the newest events.
    if usage.total_count == 0 && !state.store.events().recently_named(project, &name).await? {
        return Err(not_found());
    }
    // The deletion and the counters' reset share one cutoff. Marked first, so the dispatcher
    // stops counting older events at once; then what was counted is read, plus the events the
    // counters have not seen yet (the change feed lags by seconds), before the counters go.
    let events = state.store.events();
    let stats = state.store.event_stats();
    let cutoff = events.request_deletion(project, &name).await?;
    stats.mark_reset(project, &name, cutoff).await?;
    let (counted, _) = stats.totals(project, &name).await?;
    let last_counted = stats.last_counted(project, &name).await?;
    let uncounted = events
        .count_uncounted(project, &name, last_counted, cutoff)
        .await?;
    stats.reset(project, &name).await?;
    events.forget_name(project, &name).await?;
    Ok(Envelope::ok(DeletedName {
        name,
        deleted: true,
        deleted_count: counted + uncounted,
    }))
}

/// `DELETE /events/names` and `DELETE /events/stats`: the events named `names` or `stats`.
async fn remove_fixed(
    state: State<AppState>,
    auth: AuthContext,
    uri: axum::http::Uri,
) -> Result<Envelope<DeletedName>, ApiError> {
    let name = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    remove_name(state, auth, name.to_owned()).await
}

/// Success envelope of one event.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventEnvelope {
    success: bool,
    data: crate::contacts::EventDoc,
}

/// Success envelope of `GET /events/names`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NamesEnvelope {
    success: bool,
    data: NamesResult,
}

/// Success envelope of `GET /events/stats`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatsEnvelope {
    success: bool,
    data: StatsResult,
}

/// Success envelope of `GET /events/:name/usage`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UsageEnvelope {
    success: bool,
    data: UsageResult,
}

/// Success envelope of `DELETE /events/:name`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeletedEnvelope {
    success: bool,
    data: DeletedName,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> Timestamp {
        Timestamp::parse_rfc3339(raw).unwrap()
    }

    #[test]
    fn ranges_widen_to_whole_utc_days() {
        let (s, e) = whole_days(at("2026-02-01T10:00:00Z"), at("2026-03-01T00:00:00Z"));
        assert_eq!(s, at("2026-02-01T00:00:00Z"));
        assert_eq!(e, at("2026-03-01T00:00:00Z"));
        let (_, e) = whole_days(at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00.001Z"));
        assert_eq!(e, at("2026-03-02T00:00:00Z"));
    }
}

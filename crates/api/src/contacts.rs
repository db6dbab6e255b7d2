//! `/contacts`: create or update by email, read, change, delete, look up and
//! list with cursor paging.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::contact::{Contact, DataChange};
use plunk_domain::event::Event;
use plunk_domain::event::SubscriptionSource;
use plunk_domain::validation::{Fields, Patch};
use plunk_domain::{EmailAddress, FieldCode, FieldError};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_store::cursor::CursorBinding;
use plunk_store::{ContactError, ContactFilter};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The routes of this group, behind the body-size check and the auth layer.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/contacts", secret(get(list).post(upsert)))
        .route(
            "/contacts/{id}",
            secret(get(read).patch(update).delete(remove)),
        )
        .route("/contacts/{id}/events", secret(get(events)))
        .route(
            "/contacts/lookup",
            guarded(&state, Access::SecretReadOnly, post(lookup)),
        )
        .with_state(state)
}

/// A contact.
#[derive(ToSchema)]
#[schema(as = Contact)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ContactDoc {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Email)]
    email: String,
    subscribed: bool,
    /// Custom fields; `{}` when empty.
    data: serde_json::Map<String, Value>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Whether `POST /contacts` created or updated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpsertMeta {
    is_new: bool,
    is_update: bool,
}

/// A contact plus `_meta`.
#[derive(Debug, Serialize)]
struct ContactWithMeta {
    #[serde(flatten)]
    contact: Contact,
    #[serde(rename = "_meta")]
    meta: UpsertMeta,
}

/// Documentation shape of `ContactWithMeta`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ContactWithMetaDoc {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Email)]
    email: String,
    subscribed: bool,
    data: serde_json::Map<String, Value>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(rename = "_meta")]
    meta: UpsertMeta,
}

/// Body of `POST /contacts`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpsertContactBody {
    /// Trimmed and lowercased.
    #[schema(format = Email)]
    email: String,
    /// Default `true` for new contacts.
    #[schema(nullable = false)]
    subscribed: Option<bool>,
    /// Merged by the contact data rules.
    #[schema(nullable = false)]
    data: Option<serde_json::Map<String, Value>>,
}

/// Body of `PATCH /contacts/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdateContactBody {
    #[schema(nullable = false, format = Email)]
    email: Option<String>,
    #[schema(nullable = false)]
    subscribed: Option<bool>,
    /// `null` clears all data.
    #[schema(nullable = true)]
    data: Option<serde_json::Map<String, Value>>,
}

/// Body of `POST /contacts/lookup`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LookupBody {
    /// 1–500 strings.
    #[schema(min_items = 1, max_items = 500)]
    emails: Vec<String>,
}

/// Result of `POST /contacts/lookup`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupResult {
    found: Vec<String>,
    not_found: Vec<String>,
}

/// Result of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

/// 404 `CONTACT_NOT_FOUND`.
pub fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ContactNotFound, "No contact with this id")
}

/// Maps contact repository errors to API errors.
pub(crate) fn contact_error(e: ContactError) -> ApiError {
    match e {
        ContactError::NotFound => not_found(),
        ContactError::EmailTaken => ApiError::new(
            ErrorCode::ContactEmailTaken,
            "Another contact of this project has this email",
        ),
        ContactError::Invalid(errors) => ApiError::validation(errors),
        ContactError::Store(e) => e.into(),
    }
}

/// Reads the `data` member: an object validated by the data rules, `null` only where allowed.
fn read_data(fields: &mut Fields<'_>, nullable: bool) -> Patch<DataChange> {
    let raw = if nullable {
        fields.nullable_object("data")
    } else {
        match fields.optional_object("data") {
            Some(m) => Patch::Set(m),
            None => Patch::Absent,
        }
    };
    match raw {
        Patch::Absent => Patch::Absent,
        Patch::Null => Patch::Null,
        Patch::Set(map) => match DataChange::parse(map) {
            Ok(change) => Patch::Set(change),
            Err(errors) => {
                errors.into_iter().for_each(|e| fields.push(e));
                Patch::Absent
            }
        },
    }
}

/// List contacts, newest first.
#[utoipa::path(get, path = "/contacts", tag = "Contacts",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the email", min_length = 1, max_length = 255),
        ("subscribed" = Option<bool>, Query, description = "Only contacts with this subscription state"),
    ),
    responses((status = 200, description = "One page of contacts", body = inline(ContactListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<Contact>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let search = query
        .string("search", 1, 255, &mut errors)
        .map(|s| s.to_lowercase());
    let subscribed = query.bool("subscribed", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let subscribed_text = subscribed.map(|b| b.to_string());
    let binding = CursorBinding::new(
        project,
        "GET /contacts",
        &[
            ("search", search.as_deref()),
            ("subscribed", subscribed_text.as_deref()),
        ],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let total = if start.is_none() && search.is_none() {
        let (all, subscribed_count) = state.store.contacts().counts(project).await?;
        Some(match subscribed {
            None => all,
            Some(true) => subscribed_count,
            Some(false) => all.saturating_sub(subscribed_count),
        })
    } else {
        None
    };
    let filter = ContactFilter { search, subscribed };
    let page = state
        .store
        .contacts()
        .list(project, &filter, limit, start)
        .await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, total).await?,
    ))
}

/// Create a contact, or update the one with this email.
#[utoipa::path(post, path = "/contacts", tag = "Contacts", request_body = UpsertContactBody,
    responses(
        (status = 201, description = "Created", body = inline(ContactWithMetaEnvelope)),
        (status = 200, description = "Updated", body = inline(ContactWithMetaEnvelope)),
    ),
    security(("bearer" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Value>, ApiError> {
    let mut fields = Fields::new(&body);
    let email = fields.required_email("email");
    let subscribed = fields.optional_bool("subscribed");
    let data = read_data(&mut fields, false);
    fields.finish().map_err(ApiError::validation)?;
    let Some(email) = email else {
        return Err(ApiError::internal(&"validated body lost its email"));
    };
    let change = match data {
        Patch::Set(c) => c,
        Patch::Absent | Patch::Null => DataChange::default(),
    };
    let outcome = state
        .store
        .contacts()
        .upsert(
            auth.project.id,
            &email,
            subscribed,
            &change,
            SubscriptionSource::Api,
        )
        .await
        .map_err(contact_error)?;
    let body = serde_json::to_value(ContactWithMeta {
        contact: outcome.contact,
        meta: UpsertMeta {
            is_new: outcome.is_new,
            is_update: !outcome.is_new,
        },
    })
    .map_err(|e| ApiError::internal(&e))?;
    Ok(if outcome.is_new {
        Envelope::created(body)
    } else {
        Envelope::ok(body)
    })
}

/// One contact.
#[utoipa::path(get, path = "/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = inline(ContactEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Contact>, ApiError> {
    let id = path_id(path, not_found)?;
    let contact = state.store.contacts().get(auth.project.id, id).await?;
    contact.map(Envelope::ok).ok_or_else(not_found)
}

/// Change a contact's email, subscription or data.
#[utoipa::path(patch, path = "/contacts/{id}", tag = "Contacts", request_body = UpdateContactBody,
    params(("id" = String, Path, description = "Contact id")),
    responses(
        (status = 200, description = "The changed contact", body = inline(ContactEnvelope)),
        (status = 409, description = "CONTACT_EMAIL_TAKEN", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject,
) -> Result<Envelope<Contact>, ApiError> {
    let mut fields = Fields::new(&body);
    let email = fields.optional_email("email");
    let subscribed = fields.optional_bool("subscribed");
    let data = read_data(&mut fields, true);
    fields.finish().map_err(ApiError::validation)?;
    let id = path_id(path, not_found)?;
    let data_ref = match &data {
        Patch::Absent => Patch::Absent,
        Patch::Null => Patch::Null,
        Patch::Set(c) => Patch::Set(c),
    };
    let contact = state
        .store
        .contacts()
        .patch(
            auth.project.id,
            id,
            email.as_ref(),
            subscribed,
            data_ref,
            SubscriptionSource::Api,
        )
        .await
        .map_err(contact_error)?;
    Ok(Envelope::ok(contact))
}

/// Delete a contact.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "Contact id")),
    responses((status = 200, description = "Deleted", body = inline(DeletedEnvelope))),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<Deleted>, ApiError> {
    let id = path_id(path, not_found)?;
    state
        .store
        .contacts()
        .delete(auth.project.id, id)
        .await
        .map_err(contact_error)?;
    Ok(Envelope::ok(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

/// A contact's events, newest first.
#[utoipa::path(get, path = "/contacts/{id}/events", tag = "Contacts",
    params(
        ("id" = String, Path, description = "Contact id"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("name" = Option<String>, Query, description = "Only events with exactly this name", min_length = 1, max_length = 255),
    ),
    responses((status = 200, description = "One page of events", body = inline(EventListEnvelope))),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Envelope<ListPage<Event>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let name = query
        .string("name", 1, 255, &mut errors)
        .map(|n| n.trim().to_owned());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = path_id(path, not_found)?;
    let endpoint = format!("GET /contacts/{id}/events");
    let binding = CursorBinding::new(project, &endpoint, &[("name", name.as_deref())]);
    let start = paging::start_position(&state, &query, &binding).await?;
    if state.store.contacts().get(project, id).await?.is_none() {
        return Err(not_found());
    }
    let page = state
        .store
        .events()
        .for_contact(project, id, name.as_deref(), limit, start)
        .await?;
    Ok(Envelope::ok(
        paging::page(&state, &binding, page.items, page.next, None).await?,
    ))
}

/// Which addresses have contacts. Read-only: allowed on disabled projects.
#[utoipa::path(post, path = "/contacts/lookup", tag = "Contacts", request_body = LookupBody,
    responses((status = 200, description = "Found and not found, as given", body = inline(LookupEnvelope))),
    security(("bearer" = [])))]
pub async fn lookup(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<LookupResult>, ApiError> {
    let mut fields = Fields::new(&body);
    let items = fields.required_array("emails", 1, 500);
    let mut errors = fields.finish().err().unwrap_or_default();
    let items = items.cloned().unwrap_or_default();
    let mut inputs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => inputs.push(s.clone()),
            _ => errors.push(FieldError::new(
                format!("emails[{i}]"),
                FieldCode::InvalidType,
                "Expected a string",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Only well-formed addresses are looked up; the rest are not found by definition.
    let parsed: Vec<(usize, EmailAddress)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| EmailAddress::parse(s).ok().map(|e| (i, e)))
        .collect();
    let addresses: Vec<EmailAddress> = parsed.iter().map(|(_, e)| e.clone()).collect();
    let exists = state
        .store
        .contacts()
        .existing(auth.project.id, &addresses)
        .await?;
    let mut is_found = vec![false; inputs.len()];
    for ((i, _), found) in parsed.iter().zip(exists) {
        is_found[*i] = found;
    }
    let (found, not_found): (Vec<_>, Vec<_>) =
        inputs.into_iter().zip(is_found).partition(|(_, f)| *f);
    Ok(Envelope::ok(LookupResult {
        found: found.into_iter().map(|(s, _)| s).collect(),
        not_found: not_found.into_iter().map(|(s, _)| s).collect(),
    }))
}

/// Success envelope of a single contact.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactEnvelope {
    success: bool,
    data: ContactDoc,
}

/// Success envelope of `POST /contacts`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactWithMetaEnvelope {
    success: bool,
    data: ContactWithMetaDoc,
}

/// One page of contacts.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct ContactPageDoc {
    items: Vec<ContactDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
    /// First page only; omitted with `search`.
    #[schema(nullable = false)]
    total: Option<u64>,
}

/// Success envelope of `GET /contacts`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContactListEnvelope {
    success: bool,
    data: ContactPageDoc,
}

/// Success envelope of a delete.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeletedEnvelope {
    success: bool,
    data: Deleted,
}

/// Success envelope of `POST /contacts/lookup`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LookupEnvelope {
    success: bool,
    data: LookupResult,
}

/// An event.
#[derive(ToSchema)]
#[schema(as = Event)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct EventDoc {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    #[schema(format = Uuid, nullable = true)]
    contact_id: Option<String>,
    #[schema(nullable = true)]
    contact_email: Option<String>,
    #[schema(format = Uuid, nullable = true)]
    email_id: Option<String>,
    data: serde_json::Map<String, Value>,
    #[schema(pattern = "^(API|SYSTEM)$")]
    source: String,
    #[schema(format = DateTime)]
    created_at: String,
}

/// One page of events.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct EventPageDoc {
    items: Vec<EventDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of an event list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventListEnvelope {
    success: bool,
    data: EventPageDoc,
}

//! `/domains`: sending domains of a project over the sending-identity port.
//!
//! The name is claimed globally (one project per domain) before the provider is called, and the
//! claim is written with a not-exists condition, so a lost race still ends in 409. The Domain
//! record keeps the provider's DKIM tokens and region; the DNS records are built from them.

use crate::paging::{self, ListPage};
use crate::path_id::path_id;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use plunk_domain::sending_domain::{
    self, parse_domain_name, DnsRecord, Domain, DomainStatus, MailFromStatus,
};
use plunk_domain::validation::Fields;
use plunk_domain::{FieldCode, FieldError, Timestamp};
use plunk_http_kit::auth::guarded;
use plunk_http_kit::{
    Access, ApiError, AppState, AuthContext, Envelope, ErrorCode, JsonObject, QueryParams,
};
use plunk_messaging::identity::{self, IdentityError, IdentityState};
use plunk_store::cursor::CursorBinding;
use plunk_store::repo::domains::DomainError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this group, behind the body-size check and the auth layer.
pub fn router(state: AppState) -> Router {
    let secret = |methods| guarded(&state, Access::Secret, methods);
    Router::new()
        .route("/domains", secret(get(list).post(create)))
        .route("/domains/{id}", secret(get(read).delete(remove)))
        .route("/domains/{id}/verify", secret(post(verify)))
        .with_state(state)
}

/// A Domain as the API returns it: `records` only where the spec shows them; the provider's
/// tokens and region stay internal.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainView {
    id: Uuid,
    domain: String,
    status: DomainStatus,
    verified: bool,
    mail_from_domain: String,
    mail_from_status: MailFromStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<DnsRecord>>,
    last_checked_at: Option<Timestamp>,
    verified_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl DomainView {
    /// Without `records` (list items).
    fn summary(d: Domain) -> Self {
        Self::build(d, false)
    }

    /// With `records` (read, create, verify).
    fn detailed(d: Domain) -> Self {
        Self::build(d, true)
    }

    fn build(d: Domain, with_records: bool) -> Self {
        let records = with_records.then(|| d.records());
        Self {
            id: d.id,
            domain: d.domain,
            status: d.status,
            verified: d.verified,
            mail_from_domain: d.mail_from_domain,
            mail_from_status: d.mail_from_status,
            records,
            last_checked_at: d.last_checked_at,
            verified_at: d.verified_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// Result of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainDeleted {
    #[schema(format = Uuid)]
    id: String,
    deleted: bool,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::DomainNotFound, "No domain with this id")
}

fn already_exists() -> ApiError {
    ApiError::new(
        ErrorCode::DomainAlreadyExists,
        "This domain is already registered",
    )
}

/// 409: the provider has the identity, but this deployment did not make it.
fn owned_elsewhere() -> ApiError {
    ApiError::new(
        ErrorCode::DomainAlreadyExists,
        "This domain already exists at the email provider outside this service",
    )
}

/// 502: the provider failed; the cause is logged, not returned.
fn provider_error(e: IdentityError) -> ApiError {
    tracing::warn!(error = %e, "email provider failed");
    ApiError::new(
        ErrorCode::ExternalServiceError,
        "The email provider could not complete the request",
    )
}

fn domain_error(e: DomainError) -> ApiError {
    match e {
        DomainError::NotFound => not_found(),
        DomainError::AlreadyExists => already_exists(),
        DomainError::Store(e) => e.into(),
    }
}

fn domain_status(s: identity::DkimStatus) -> DomainStatus {
    match s {
        identity::DkimStatus::Pending => DomainStatus::Pending,
        identity::DkimStatus::Verified => DomainStatus::Verified,
        identity::DkimStatus::Failed => DomainStatus::Failed,
        identity::DkimStatus::TemporaryFailure => DomainStatus::TemporaryFailure,
    }
}

fn mail_from_status(s: identity::MailFromStatus) -> MailFromStatus {
    match s {
        identity::MailFromStatus::Pending => MailFromStatus::Pending,
        identity::MailFromStatus::Success => MailFromStatus::Success,
        identity::MailFromStatus::Failed => MailFromStatus::Failed,
        identity::MailFromStatus::TemporaryFailure => MailFromStatus::TemporaryFailure,
    }
}

/// Creates the provider identity; one this deployment made earlier (e.g. left by an earlier
/// attempt) is adopted by reading its state; one made by anyone else (the operator's own domain,
/// another stack in the account) is refused with 409 and never touched. Returns the state and
/// whether this call created it.
async fn create_identity(
    state: &AppState,
    domain: &str,
    mail_from_domain: &str,
) -> Result<(IdentityState, bool), ApiError> {
    match state.identities.create(domain, mail_from_domain).await {
        Ok(s) => Ok((s, true)),
        Err(IdentityError::AlreadyExists) => state
            .identities
            .state(domain)
            .await
            .map(|s| (s, false))
            .map_err(provider_error),
        Err(IdentityError::OwnedElsewhere) => Err(owned_elsewhere()),
        Err(e) => Err(provider_error(e)),
    }
}

/// After a create that could not be stored: deletes the identity this request created, unless
/// the name is claimed by now. A claimant has the same name and therefore the same provider
/// identity (it won a race), so deleting it would break the claimant's domain.
async fn release_identity(state: &AppState, domain: &str) {
    match state.store.domains().claim(domain).await {
        Ok(None) => {
            if let Err(e) = state.identities.delete(domain).await {
                tracing::warn!(error = %e, domain, "could not delete an unused provider identity");
            }
        }
        Ok(Some(_)) => {}
        // Left in place: a later create adopts it (AlreadyExists).
        Err(e) => tracing::warn!(error = %e, domain, "could not check the claim of an identity"),
    }
}

/// List domains, newest first.
#[utoipa::path(get, path = "/domains", tag = "Domains",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20", minimum = 1),
        ("cursor" = Option<String>, Query, description = "From a previous nextCursor"),
        ("verified" = Option<bool>, Query, description = "Only domains with this verification state"),
    ),
    responses((status = 200, description = "One page of domains (without records)", body = inline(DomainListEnvelope))),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    query: QueryParams,
) -> Result<Envelope<ListPage<DomainView>>, ApiError> {
    let project = auth.project.id;
    let mut errors = Vec::new();
    let limit = query.limit(&mut errors);
    let verified = query.bool("verified", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let verified_text = verified.map(|b| b.to_string());
    let binding = CursorBinding::new(
        project,
        "GET /domains",
        &[("verified", verified_text.as_deref())],
    );
    let start = paging::start_position(&state, &query, &binding).await?;
    let page = state
        .store
        .domains()
        .list(project, verified, limit, start)
        .await?;
    let items = page.items.into_iter().map(DomainView::summary).collect();
    Ok(Envelope::ok(
        paging::page(&state, &binding, items, page.next, None).await?,
    ))
}

/// Add a sending domain: creates the provider identity (Easy DKIM, MAIL FROM) and stores the
/// domain as PENDING.
#[utoipa::path(post, path = "/domains", tag = "Domains", request_body = CreateDomainBody,
    responses(
        (status = 201, description = "Created; publish the records, then verify", body = inline(DomainWithRecordsEnvelope)),
        (status = 409, description = "DOMAIN_ALREADY_EXISTS (in this or another project, or at the email provider outside this deployment)", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 502, description = "EXTERNAL_SERVICE_ERROR: the email provider failed; nothing was stored", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    JsonObject(body): JsonObject,
) -> Result<Envelope<DomainView>, ApiError> {
    // `projectId` is ignored (Plunk compatibility): the project is the key's.
    let mut fields = Fields::new(&body);
    let raw = fields.required_string("domain", 0, usize::MAX);
    fields.finish().map_err(ApiError::validation)?;
    let Some(raw) = raw else {
        return Err(ApiError::internal(&"validated body lost its domain"));
    };
    let name = parse_domain_name(raw).map_err(|e| ApiError::field(e.field_error("domain")))?;
    let mail_from_domain = format!("{}.{name}", state.settings.mail_from_label);
    if mail_from_domain.len() > sending_domain::MAX_DOMAIN_LEN {
        return Err(ApiError::field(FieldError::new(
            "domain",
            FieldCode::InvalidString,
            format!(
                "Domain is too long for its MAIL FROM subdomain {mail_from_domain:?} (at most {} characters)",
                sending_domain::MAX_DOMAIN_LEN
            ),
        )));
    }
    let project = auth.project.id;
    if state.store.domains().claim(&name).await?.is_some() {
        return Err(already_exists());
    }
    let (identity, created_here) = create_identity(&state, &name, &mail_from_domain).await?;
    let domain = Domain::new(
        plunk_domain::id::new_id(),
        name,
        mail_from_domain,
        identity.dkim_tokens,
        identity.region,
        Timestamp::now(),
    );
    match state.store.domains().create(project, &domain).await {
        Ok(()) => Ok(Envelope::created(DomainView::detailed(domain))),
        Err(e) => {
            if created_here {
                release_identity(&state, &domain.domain).await;
            }
            Err(domain_error(e))
        }
    }
}

/// One domain, with its DNS records.
#[utoipa::path(get, path = "/domains/{id}", tag = "Domains",
    params(("id" = String, Path, description = "Domain id")),
    responses((status = 200, description = "The domain", body = inline(DomainWithRecordsEnvelope))),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<DomainView>, ApiError> {
    let id = path_id(path, not_found)?;
    let domain = state.store.domains().get(auth.project.id, id).await?;
    domain
        .map(|d| Envelope::ok(DomainView::detailed(d)))
        .ok_or_else(not_found)
}

/// Check the domain at the provider now: updates its DKIM and MAIL FROM status. A FAILED
/// identity is re-initiated once (new DKIM tokens: publish the returned records again).
#[utoipa::path(post, path = "/domains/{id}/verify", tag = "Domains",
    params(("id" = String, Path, description = "Domain id")),
    responses(
        (status = 200, description = "The domain after the check", body = inline(DomainWithRecordsEnvelope)),
        (status = 502, description = "EXTERNAL_SERVICE_ERROR: the email provider failed", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<DomainView>, ApiError> {
    let id = path_id(path, not_found)?;
    let project = auth.project.id;
    let Some(current) = state.store.domains().get(project, id).await? else {
        return Err(not_found());
    };
    let mut identity = state
        .identities
        .state(&current.domain)
        .await
        .map_err(provider_error)?;
    let mut reinitiated = false;
    if identity.dkim == identity::DkimStatus::Failed && !current.reinitiated {
        state
            .identities
            .delete(&current.domain)
            .await
            .map_err(provider_error)?;
        identity = create_identity(&state, &current.domain, &current.mail_from_domain)
            .await?
            .0;
        reinitiated = true;
    }
    let now = Timestamp::now();
    let status = domain_status(identity.dkim);
    let mail_from = mail_from_status(identity.mail_from);
    let updated = state
        .store
        .domains()
        .update(project, id, |d| {
            if reinitiated {
                d.reinitiated = true;
            }
            if !identity.dkim_tokens.is_empty() {
                d.dkim_tokens = identity.dkim_tokens.clone();
            }
            if !identity.region.is_empty() {
                d.region = identity.region.clone();
            }
            d.record_check(status, mail_from, now);
        })
        .await
        .map_err(domain_error)?;
    Ok(Envelope::ok(DomainView::detailed(updated)))
}

/// Delete a domain: refused while templates or live campaigns send from it; otherwise deletes the
/// provider identity and the domain (queued emails from it then fail with DOMAIN_NOT_VERIFIED).
#[utoipa::path(delete, path = "/domains/{id}", tag = "Domains",
    params(("id" = String, Path, description = "Domain id")),
    responses(
        (status = 200, description = "Deleted", body = inline(DomainDeletedEnvelope)),
        (status = 409, description = "DOMAIN_IN_USE; details.usedBy lists the templates and campaigns", body = plunk_http_kit::openapi::ErrorEnvelope),
        (status = 502, description = "EXTERNAL_SERVICE_ERROR: the email provider failed; nothing was deleted", body = plunk_http_kit::openapi::ErrorEnvelope),
    ),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    path: Result<Path<String>, PathRejection>,
) -> Result<Envelope<DomainDeleted>, ApiError> {
    let id = path_id(path, not_found)?;
    let project = auth.project.id;
    let domains = state.store.domains();
    let Some(domain) = domains.get(project, id).await? else {
        return Err(not_found());
    };
    let used_by = domains.domain_usage(project, &domain.domain).await?;
    if !used_by.is_empty() {
        return Err(ApiError::new(
            ErrorCode::DomainInUse,
            "Templates or campaigns send from this domain",
        )
        .with_details(json!({ "usedBy": used_by })));
    }
    // Provider first: if it fails nothing changed and the call can be repeated; deleting an
    // identity that is already gone is not an error.
    state
        .identities
        .delete(&domain.domain)
        .await
        .map_err(provider_error)?;
    domains.delete(project, id).await.map_err(domain_error)?;
    Ok(Envelope::ok(DomainDeleted {
        id: id.to_string(),
        deleted: true,
    }))
}

// ---- OpenAPI documentation shapes ----

/// Body of `POST /domains`.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct CreateDomainBody {
    /// Host name; trimmed, lowercased, one trailing dot removed. Lowercase ASCII (punycode).
    #[schema(example = "acme.io")]
    domain: String,
    /// Ignored (Plunk compatibility): the project is the API key's.
    #[schema(nullable = false, format = Uuid)]
    project_id: Option<String>,
}

/// Domain verification status, from the provider's DKIM status.
#[derive(ToSchema)]
#[schema(as = DomainStatus, rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum DomainStatusDoc {
    Pending,
    Verified,
    Failed,
    TemporaryFailure,
}

/// MAIL FROM status (informational).
#[derive(ToSchema)]
#[schema(as = MailFromStatus, rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum MailFromStatusDoc {
    Pending,
    Success,
    Failed,
    TemporaryFailure,
}

/// DNS record type.
#[derive(ToSchema)]
#[schema(as = DnsRecordType, rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum DnsRecordTypeDoc {
    Cname,
    Mx,
    Txt,
}

/// What a DNS record is for.
#[derive(ToSchema)]
#[schema(as = DnsRecordPurpose, rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum DnsRecordPurposeDoc {
    Dkim,
    MailFromMx,
    MailFromSpf,
    Dmarc,
}

/// A DNS record to publish.
#[derive(ToSchema)]
#[schema(as = DnsRecord)]
#[allow(dead_code)]
pub struct DnsRecordDoc {
    #[schema(rename = "type")]
    record_type: DnsRecordTypeDoc,
    /// Fully qualified record name.
    name: String,
    value: String,
    /// MX only; `null` otherwise.
    #[schema(nullable = true)]
    priority: Option<u16>,
    purpose: DnsRecordPurposeDoc,
    /// False for suggestions (DMARC: skip if the domain already has one).
    required: bool,
}

/// A sending domain, as listed.
#[derive(ToSchema)]
#[schema(as = Domain, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DomainDoc {
    #[schema(format = Uuid)]
    id: String,
    /// Lowercase ASCII (punycode) host name.
    domain: String,
    status: DomainStatusDoc,
    /// `status == VERIFIED`; the only condition for sending.
    verified: bool,
    /// `<label>.<domain>`.
    mail_from_domain: String,
    mail_from_status: MailFromStatusDoc,
    #[schema(format = DateTime, nullable = true)]
    last_checked_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    verified_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A sending domain with the DNS records to publish (read, create, verify).
#[derive(ToSchema)]
#[schema(as = DomainWithRecords, rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DomainWithRecordsDoc {
    #[schema(format = Uuid)]
    id: String,
    domain: String,
    status: DomainStatusDoc,
    verified: bool,
    mail_from_domain: String,
    mail_from_status: MailFromStatusDoc,
    records: Vec<DnsRecordDoc>,
    #[schema(format = DateTime, nullable = true)]
    last_checked_at: Option<String>,
    #[schema(format = DateTime, nullable = true)]
    verified_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// One page of domains.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub struct DomainPageDoc {
    items: Vec<DomainDoc>,
    #[schema(nullable = true)]
    next_cursor: Option<String>,
    has_more: bool,
}

/// Success envelope of `GET /domains`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DomainListEnvelope {
    success: bool,
    data: DomainPageDoc,
}

/// Success envelope of a domain with its records.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DomainWithRecordsEnvelope {
    success: bool,
    data: DomainWithRecordsDoc,
}

/// Success envelope of `DELETE /domains/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DomainDeletedEnvelope {
    success: bool,
    data: DomainDeleted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_have_no_records_and_details_do() {
        let d = Domain::new(
            Uuid::nil(),
            "acme.io".into(),
            "mail.acme.io".into(),
            vec!["t".into()],
            "eu-west-1".into(),
            Timestamp::now(),
        );
        let summary = serde_json::to_value(DomainView::summary(d.clone())).unwrap();
        assert!(summary.get("records").is_none());
        assert!(summary.get("dkimTokens").is_none() && summary.get("region").is_none());
        assert_eq!(summary["lastCheckedAt"], serde_json::Value::Null);
        let detailed = serde_json::to_value(DomainView::detailed(d)).unwrap();
        assert_eq!(detailed["records"].as_array().unwrap().len(), 4);
        let keys: Vec<_> = detailed.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "domain",
                "status",
                "verified",
                "mailFromDomain",
                "mailFromStatus",
                "records",
                "lastCheckedAt",
                "verifiedAt",
                "createdAt",
                "updatedAt"
            ]
        );
    }
}

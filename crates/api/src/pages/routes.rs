//! The six routes of the hosted pages (spec feedback-and-unsubscribe.md §4). GET never changes
//! anything (link scanners fetch GET URLs); POST sets the subscription, records the event with
//! its attribution (source, `emailId`, `campaignId`) and counts campaign unsubscribes once per
//! email. Pages work on disabled projects and answer every outcome with HTML.

use super::form;
use super::html::{Form, Page};
use super::i18n::{self, fixed, Strings};
use super::mask::mask_address;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, StatusCode};
use plunk_domain::contact::Contact;
use plunk_domain::event::{SubscriptionChange, SubscriptionSource};
use plunk_domain::language::{contact_locale, Language};
use plunk_domain::project::Project;
use plunk_http_kit::AppState;
use plunk_store::repo::campaign_counters::UNSUBSCRIBED_COUNT;
use plunk_store::table::StoreError;
use plunk_store::ContactError;
use uuid::Uuid;

/// Largest form body read; the one-click body is 26 bytes. Longer bodies count as no body.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The routes of this group, behind the per-source limit.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/subscribe/{token}", get(subscribe_page).post(subscribe))
        .route("/manage/{token}", get(manage_page).post(manage))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::limit::per_source,
        ))
        .with_state(state)
}

/// Why a request gets no page of its own.
enum Failure {
    /// Unknown, malformed or forged token, or a deleted contact (or project).
    Invalid,
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Invalid => {
                let mut page = Page::new(StatusCode::NOT_FOUND, "en", fixed::NOT_FOUND_HEADING);
                page.paragraphs.push(fixed::NOT_FOUND_MESSAGE.to_owned());
                page.into_response()
            }
            Failure::Store(e) => {
                let unavailable = matches!(e, StoreError::Unavailable(_));
                tracing::error!(error = %e, "hosted page failed");
                let status = if unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                let mut page = Page::new(status, "en", fixed::FAILED_HEADING);
                page.paragraphs.push(fixed::FAILED_MESSAGE.to_owned());
                page.retry_after = unavailable.then_some(5);
                page.into_response()
            }
        }
    }
}

/// What a valid token leads to.
struct Target {
    token: String,
    project: Project,
    contact: Contact,
    email_id: Option<Uuid>,
    language: Language,
}

impl Target {
    fn strings(&self) -> &'static Strings {
        i18n::strings(self.language)
    }

    fn fill(&self, template: &str) -> String {
        i18n::fill(
            template,
            &mask_address(self.contact.email.as_str()),
            &self.project.name,
        )
    }

    fn page(&self, status: StatusCode, heading: &str) -> Page {
        let mut page = Page::new(status, self.language.code(), heading);
        page.brand = Some(self.project.name.clone());
        page
    }

    /// A link from any page of this token to its manage page, relative so it works under any
    /// base URL.
    fn manage_link(&self) -> (String, &'static str) {
        (
            format!("../manage/{}", self.token),
            self.strings().manage_link,
        )
    }
}

/// Verifies the token and finds its contact and project, whatever the project's state.
async fn resolve(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
) -> Result<Target, Failure> {
    let Ok(Path(token)) = path else {
        return Err(Failure::Invalid);
    };
    let claims = state
        .store
        .page_tokens()
        .await?
        .verify(&token)
        .ok_or(Failure::Invalid)?;
    let (project_id, contact) = state
        .store
        .contacts()
        .find(claims.contact_id)
        .await?
        // A link made for an address the contact no longer has does not act on it.
        .filter(|(_, contact)| claims.fits(contact.email.as_str()))
        .ok_or(Failure::Invalid)?;
    let project = state
        .store
        .projects()
        .get(project_id)
        .await?
        .ok_or(Failure::Invalid)?;
    let language = Language::pick(contact_locale(&contact.data), &project.language);
    Ok(Target {
        token,
        project,
        contact,
        email_id: claims.email_id,
        language,
    })
}

/// Sets the subscription to `subscribed`, attributed to `source` and the token's email. No write
/// (and no event) when the contact already is in that state.
async fn apply(
    state: &AppState,
    target: &Target,
    subscribed: bool,
    source: SubscriptionSource,
) -> Result<Contact, Failure> {
    if target.contact.subscribed == subscribed {
        return Ok(target.contact.clone());
    }
    let project = target.project.id;
    // The email names the campaign; only an email of this contact counts.
    let email = match target.email_id {
        Some(id) => state
            .store
            .emails()
            .get(project, id)
            .await?
            .filter(|e| e.contact_id == Some(target.contact.id)),
        None => None,
    };
    let change = SubscriptionChange {
        source,
        reason: None,
        email_id: target.email_id,
        campaign_id: email.as_ref().and_then(|e| e.campaign_id),
    };
    let outcome = state
        .store
        .contacts()
        .set_subscribed(project, target.contact.id, subscribed, &change)
        .await
        .map_err(|e| match e {
            ContactError::NotFound => Failure::Invalid,
            ContactError::Store(e) => Failure::Store(e),
            other => Failure::Store(StoreError::Other(other.to_string())),
        })?;
    if outcome.changed && !subscribed {
        if let Some((campaign, email)) = email
            .filter(|e| !e.test)
            .and_then(|e| e.campaign_id.map(|c| (c, e.id)))
        {
            // The unsubscribe stands either way; a lost count is logged rather than failing
            // a page whose retry would find nothing left to count.
            if let Err(e) = state
                .store
                .campaign_counters()
                .bump_once(project, campaign, UNSUBSCRIBED_COUNT, email)
                .await
            {
                tracing::warn!(campaign_id = %campaign, email_id = %email, error = %e, "unsubscribe not counted");
            }
        }
    }
    Ok(outcome.contact)
}

/// The body of a POST, when it is small enough to be a form.
async fn read_body(body: Body) -> Option<Bytes> {
    axum::body::to_bytes(body, MAX_FORM_BYTES).await.ok()
}

/// `GET /unsubscribe/:token`: the masked address and a button. Changes nothing.
async fn unsubscribe_page(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match resolve(&state, path).await {
        Ok(t) => {
            let s = t.strings();
            let mut page = t.page(StatusCode::OK, s.unsubscribe_heading);
            page.paragraphs.push(t.fill(s.unsubscribe_prompt));
            page.form = Some(Form::Button {
                label: s.unsubscribe_button,
            });
            page.into_response()
        }
        Err(f) => f.into_response(),
    }
}

/// `POST /unsubscribe/:token`: unsubscribes; RFC 8058 one-click when the body says so, any
/// other body (or none) counts as the page's button. Always 200 for a valid token.
async fn unsubscribe(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let target = match resolve(&state, path).await {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let one_click = read_body(body)
        .await
        .is_some_and(|b| form::is_one_click(content_type, &b));
    let source = if one_click {
        SubscriptionSource::OneClick
    } else {
        SubscriptionSource::UnsubscribePage
    };
    if let Err(f) = apply(&state, &target, false, source).await {
        return f.into_response();
    }
    let s = target.strings();
    let mut page = target.page(StatusCode::OK, s.unsubscribed_heading);
    page.paragraphs.push(target.fill(s.unsubscribed_message));
    page.link = Some(target.manage_link());
    page.into_response()
}

/// `GET /subscribe/:token`: a button. Changes nothing.
async fn subscribe_page(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match resolve(&state, path).await {
        Ok(t) => {
            let s = t.strings();
            let mut page = t.page(StatusCode::OK, s.subscribe_heading);
            page.paragraphs.push(t.fill(s.subscribe_prompt));
            page.form = Some(Form::Button {
                label: s.subscribe_button,
            });
            page.into_response()
        }
        Err(f) => f.into_response(),
    }
}

/// `POST /subscribe/:token`: resubscribes.
async fn subscribe(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let target = match resolve(&state, path).await {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    if let Err(f) = apply(&state, &target, true, SubscriptionSource::SubscribePage).await {
        return f.into_response();
    }
    let s = target.strings();
    let mut page = target.page(StatusCode::OK, s.subscribed_heading);
    page.paragraphs.push(target.fill(s.subscribed_message));
    page.link = Some(target.manage_link());
    page.into_response()
}

/// The manage page for a contact in state `subscribed`, with both buttons.
fn manage_view(target: &Target, status: StatusCode, subscribed: bool, saved: bool) -> Page {
    let s = target.strings();
    let mut page = target.page(status, s.manage_heading);
    if saved {
        page.paragraphs.push(i18n::fill(s.saved, "", ""));
    }
    page.paragraphs.push(target.fill(if subscribed {
        s.state_subscribed
    } else {
        s.state_unsubscribed
    }));
    page.form = Some(Form::Manage {
        unsubscribe: s.unsubscribe_button,
        subscribe: s.subscribe_button,
        subscribed,
    });
    page
}

/// `GET /manage/:token`: the current state and both buttons. Changes nothing.
async fn manage_page(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match resolve(&state, path).await {
        Ok(t) => manage_view(&t, StatusCode::OK, t.contact.subscribed, false).into_response(),
        Err(f) => f.into_response(),
    }
}

/// `POST /manage/:token`: applies `action=subscribe|unsubscribe`; anything else → 400 page.
async fn manage(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Response {
    let target = match resolve(&state, path).await {
        Ok(t) => t,
        Err(f) => return f.into_response(),
    };
    let action = read_body(body)
        .await
        .and_then(|b| form::field(&b, "action"));
    let subscribed = match action.as_deref() {
        Some("subscribe") => true,
        Some("unsubscribe") => false,
        _ => {
            let s = target.strings();
            let mut page = manage_view(
                &target,
                StatusCode::BAD_REQUEST,
                target.contact.subscribed,
                false,
            );
            page.heading = s.invalid_heading.to_owned();
            page.paragraphs
                .insert(0, i18n::fill(s.invalid_message, "", ""));
            return page.into_response();
        }
    };
    match apply(&state, &target, subscribed, SubscriptionSource::ManagePage).await {
        Ok(contact) => {
            manage_view(&target, StatusCode::OK, contact.subscribed, true).into_response()
        }
        Err(f) => f.into_response(),
    }
}

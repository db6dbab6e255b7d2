//! The HTTP API: one module and one `router()` per endpoint group, the system endpoints, and
//! [`service`], which wraps routers in the shared pipeline. A Lambda mounts one group; the local
//! server mounts them all.

pub mod campaigns;
pub mod contacts;
pub mod domains;
pub mod emails;
pub mod events;
pub mod openapi;
pub mod pages;
pub mod paging;
mod path_id;
pub mod segments;
pub mod send;
pub mod suppressions;
pub mod system;
pub mod template_preview;
pub mod templates;
pub mod track;
pub mod webhooks;
pub mod workflows;

use axum::Router;
use plunk_http_kit::{pipeline, AppState};
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

/// An endpoint group, deployable as its own function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `/health`, `/openapi.json`.
    System,
    /// `/contacts`.
    Contacts,
    /// `/domains`.
    Domains,
    /// `POST /v1/send` and `POST /v1/track`.
    PublicApi,
    /// `/emails`.
    Emails,
    /// `/templates`.
    Templates,
    /// `/events`.
    Events,
    /// `/suppressions`.
    Suppressions,
    /// `/webhooks`.
    Webhooks,
    /// `/segments`.
    Segments,
    /// `/campaigns`.
    Campaigns,
    /// `/workflows`: workflows, their steps and transitions.
    Workflows,
    /// The hosted pages: `/unsubscribe/:token`, `/subscribe/:token`, `/manage/:token`.
    Pages,
}

impl Group {
    /// Every group, for the local server.
    pub const ALL: &'static [Group] = &[
        Group::System,
        Group::Contacts,
        Group::Domains,
        Group::PublicApi,
        Group::Emails,
        Group::Templates,
        Group::Events,
        Group::Suppressions,
        Group::Webhooks,
        Group::Segments,
        Group::Campaigns,
        Group::Workflows,
        Group::Pages,
    ];

    /// The name of the function that serves this group (its binary, its access profile and its
    /// entry in the SAM template).
    pub fn function_name(self) -> &'static str {
        match self {
            Group::System => "system",
            Group::Contacts => "contacts",
            Group::Domains => "domains",
            Group::PublicApi => "public-api",
            Group::Emails => "emails",
            Group::Templates => "templates",
            Group::Events => "events",
            Group::Suppressions => "suppressions",
            Group::Webhooks => "webhooks",
            Group::Segments => "segments",
            Group::Campaigns => "campaigns",
            Group::Workflows => "workflows",
            Group::Pages => "pages",
        }
    }

    /// The group's router over a state whose table access is limited to the group's profile, so
    /// the local server and the tests hold every group to what its function may touch on AWS.
    fn router(self, state: &AppState) -> Router {
        let mut state = state.clone();
        if let Some(profile) = plunk_store::access::AccessProfile::of(self.function_name()) {
            state.store = state.store.with_access(profile);
        }
        let state = &state;
        match self {
            Group::System => system::router(),
            Group::Contacts => contacts::router(state.clone()),
            Group::Domains => domains::router(state.clone()),
            Group::PublicApi => send::router(state.clone()),
            Group::Emails => emails::router(state.clone()),
            Group::Templates => templates::router(state.clone()),
            Group::Events => events::router(state.clone()),
            Group::Suppressions => suppressions::router(state.clone()),
            Group::Webhooks => webhooks::router(state.clone()),
            Group::Segments => segments::router(state.clone()),
            Group::Campaigns => campaigns::router(state.clone()),
            Group::Workflows => workflows::router(state.clone()),
            Group::Pages => pages::router(state.clone()),
        }
    }
}

/// The routers of `groups` inside the shared pipeline: request ids and error rendering, CORS for
/// `/v1/*`, 404 for unknown paths, trailing slashes ignored.
pub fn service(state: AppState, groups: &[Group]) -> NormalizePath<Router> {
    service_with(state, groups, Router::new())
}

/// Like [`service`], with `extra` routes inside the same pipeline (the local server's
/// `/_local/*` pages).
pub fn service_with(state: AppState, groups: &[Group], extra: Router) -> NormalizePath<Router> {
    let mut router = extra;
    for group in groups {
        router = router.merge(group.router(&state));
    }
    let router = router
        .fallback(pipeline::not_found)
        .layer(axum::middleware::from_fn(pipeline::cors))
        .layer(axum::middleware::from_fn(pipeline::finish));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// Convenience for tests: the whole API as one service over `state`.
pub fn app(state: AppState) -> NormalizePath<Router> {
    service(state, Group::ALL)
}

//! Cursor lists (spec README §6): reading `limit`/`cursor` and shaping `{items, nextCursor,
//! hasMore, total?}`.

use plunk_http_kit::{ApiError, AppState, QueryParams};
use plunk_store::cursor::CursorBinding;
use plunk_store::table::Position;
use serde::Serialize;

/// The `data` of every list response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Opaque; `null` when `hasMore` is false.
    pub next_cursor: Option<String>,
    pub has_more: bool,
    /// Only on the first page of endpoints that document it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Decodes `cursor` (if any) for `binding`; 400 `INVALID_CURSOR` when it does not verify. An
/// empty `cursor=` is the first page, as if absent (clients often send the last page's
/// `nextCursor: null` that way).
pub async fn start_position(
    state: &AppState,
    query: &QueryParams,
    binding: &CursorBinding,
) -> Result<Option<Position>, ApiError> {
    let Some(cursor) = query.get("cursor").filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let codec = state.store.cursor_codec().await?;
    codec
        .decode(binding, cursor)
        .map(Some)
        .map_err(|_| ApiError::invalid_cursor())
}

/// Builds a page, signing the next position when there is one.
pub async fn page<T>(
    state: &AppState,
    binding: &CursorBinding,
    items: Vec<T>,
    next: Option<Position>,
    total: Option<u64>,
) -> Result<ListPage<T>, ApiError> {
    let next_cursor = match &next {
        Some(position) => Some(state.store.cursor_codec().await?.encode(binding, position)),
        None => None,
    };
    Ok(ListPage {
        items,
        has_more: next_cursor.is_some(),
        next_cursor,
        total,
    })
}

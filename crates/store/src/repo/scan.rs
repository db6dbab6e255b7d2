//! Reading one page of a partition, optionally filtered, for cursor lists (spec README §6).

use crate::table::{Item, Position, Query, StoreError, Table};

/// Most items a filtered page examines before returning a short page (with a cursor).
pub const SCAN_BUDGET: usize = 1000;

/// One page: the matching records and where the next page starts (`None` on the last page).
pub struct ScanPage<T> {
    pub items: Vec<T>,
    pub next: Option<Position>,
}

/// Reads up to `limit` records of `query`'s partition that `keep` accepts (it returns `None` to
/// skip an item). Unfiltered reads ask for one item more than needed, so a full last page is
/// known to be last; filtered reads examine at most `SCAN_BUDGET` items.
pub async fn page<T>(
    table: &dyn Table,
    mut query: Query,
    limit: usize,
    filtered: bool,
    keep: impl Fn(&Item) -> Result<Option<T>, StoreError>,
) -> Result<ScanPage<T>, StoreError> {
    let index = query.index;
    let mut items = Vec::with_capacity(limit);
    let mut last_kept: Option<Position> = None;
    let mut examined = 0;
    loop {
        query.limit = if filtered { 100 } else { limit + 1 };
        let page = table.query(query.clone()).await?;
        let exhausted = page.last.is_none();
        let count = page.items.len();
        for (i, item) in page.items.iter().enumerate() {
            examined += 1;
            if let Some(record) = keep(item)? {
                if items.len() == limit {
                    // Another match exists: this page ends at the previous one.
                    return Ok(ScanPage {
                        items,
                        next: last_kept,
                    });
                }
                items.push(record);
                last_kept = Some(item.position(index));
            }
            let last_of_all = exhausted && i + 1 == count;
            if !last_of_all && examined >= SCAN_BUDGET {
                return Ok(ScanPage {
                    items,
                    next: Some(item.position(index)),
                });
            }
        }
        match page.last {
            Some(last) => query.start_after = Some(last),
            None => return Ok(ScanPage { items, next: None }),
        }
    }
}

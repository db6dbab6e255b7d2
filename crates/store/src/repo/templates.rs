//! Templates: one item per template in the project's templates partition
//! (listed newest first, ids are UUIDv7) with a `Gsi1` entry per type (the `type` filter), and a
//! small sender-use item under the sender's domain (`keys::template_sender_use`), written in the
//! same transaction, so deleting a domain finds its templates with one query (`DOMAIN_IN_USE`).
//! Changes are optimistic: every rewrite is conditional on the version that was read, and
//! retried when a concurrent write won.

use crate::keys;
use crate::repo::scan;
use crate::table::{Condition, Index, Item, Position, Query, StoreError, Table, WriteOp};
use plunk_domain::template::{Template, TemplateChanges, TemplateType};
use plunk_domain::Timestamp;
use uuid::Uuid;

/// How many times a write lost to a concurrent one is retried before giving up.
const MAX_ATTEMPTS: usize = 8;

/// Most bytes of `subject` + `body` kept inside the template item. A DynamoDB item holds at most
/// 400 KB and the rest of the record and its keys need room; larger content needs blob storage,
/// which templates do not use yet.
pub const MAX_INLINE_CONTENT_BYTES: usize = 350_000;

/// Most bytes of the encoded record. The item body is stored as JSON text, where quotes,
/// backslashes and control characters take more room than in the content itself, so content
/// under [`MAX_INLINE_CONTENT_BYTES`] can still be too large; this keeps every item, keys and
/// attribute names included, under DynamoDB's 400 KB.
pub const MAX_ENCODED_BYTES: usize = 395_000;

/// Most bytes of serialised templates in one page, so a list response stays well under 4 MiB
/// (a page may hold fewer than `limit` items when items are large). The item
/// that reaches the budget is still included, which the headroom below 4 MiB allows for.
pub const PAGE_BYTES_BUDGET: usize = 3_000_000;

/// Failures of template operations.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template not found")]
    NotFound,
    /// `subject` + `body` exceed [`MAX_INLINE_CONTENT_BYTES`], or the encoded record exceeds
    /// [`MAX_ENCODED_BYTES`].
    #[error("template content exceeds {MAX_INLINE_CONTENT_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Filters of `GET /templates`.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub template_type: Option<TemplateType>,
    /// Case-insensitive substring of name, description or subject (already lowercased).
    pub search: Option<String>,
}

impl TemplateFilter {
    fn matches(&self, template: &Template) -> bool {
        let Some(search) = self.search.as_deref() else {
            return true;
        };
        template.name.to_lowercase().contains(search)
            || template.subject.to_lowercase().contains(search)
            || template
                .description
                .as_deref()
                .is_some_and(|d| d.to_lowercase().contains(search))
    }
}

/// One page of templates.
#[derive(Debug, Clone)]
pub struct TemplatePage {
    pub items: Vec<Template>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Position>,
}

/// Template operations of one table.
pub struct Templates<'a> {
    table: &'a dyn Table,
}

fn template_item(project: Uuid, template: &Template, version: u64) -> Item {
    Item::new(
        keys::template(project, template.id),
        crate::encode(template),
    )
    .with_gsi1(
        keys::templates_by_type_index(project, template.template_type.as_str()),
        template.id.to_string(),
    )
    .with_version(version)
}

/// The sender-use item of `template`: its type, id and name, for `details.usedBy`.
fn sender_use_item(project: Uuid, template: &Template) -> Item {
    Item::new(
        keys::template_sender_use(project, template.from.domain(), template.id),
        serde_json::json!({"type": "template", "id": template.id, "name": template.name}),
    )
}

fn sender_use_key(project: Uuid, template: &Template) -> crate::table::Key {
    keys::template_sender_use(project, template.from.domain(), template.id)
}

fn check_size(template: &Template) -> Result<(), TemplateError> {
    let content = template.subject.len() + template.body.len();
    if content > MAX_INLINE_CONTENT_BYTES
        || crate::encode(template).to_string().len() > MAX_ENCODED_BYTES
    {
        Err(TemplateError::TooLarge)
    } else {
        Ok(())
    }
}

fn retry_exhausted() -> TemplateError {
    TemplateError::Store(StoreError::Unavailable(
        "template changed concurrently too often; try again".into(),
    ))
}

impl<'a> Templates<'a> {
    pub(crate) fn new(table: &'a dyn Table) -> Self {
        Self { table }
    }

    async fn get_versioned(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> Result<Option<(Template, u64)>, StoreError> {
        match self.table.get(&keys::template(project, id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One template by id.
    pub async fn get(&self, project: Uuid, id: Uuid) -> Result<Option<Template>, StoreError> {
        Ok(self.get_versioned(project, id).await?.map(|(t, _)| t))
    }

    /// Stores a new template (its id must be fresh).
    pub async fn create(&self, project: Uuid, template: &Template) -> Result<(), TemplateError> {
        check_size(template)?;
        self.table
            .transact(vec![
                WriteOp::Put {
                    item: template_item(project, template, 1),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    item: sender_use_item(project, template),
                    condition: Condition::None,
                },
            ])
            .await?;
        Ok(())
    }

    /// Applies validated changes. Nothing changes (and `updatedAt` stays) when the changes
    /// leave the template as it is.
    pub async fn patch(
        &self,
        project: Uuid,
        id: Uuid,
        changes: &TemplateChanges,
    ) -> Result<Template, TemplateError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((mut template, version)) = self.get_versioned(project, id).await? else {
                return Err(TemplateError::NotFound);
            };
            let before = template.updated_at;
            let old_use = sender_use_key(project, &template);
            if !template.apply(changes) {
                return Ok(template);
            }
            check_size(&template)?;
            template.updated_at = Timestamp::now().max(before);
            let mut ops = vec![WriteOp::Put {
                item: template_item(project, &template, version + 1),
                condition: Condition::VersionEquals(version),
            }];
            if old_use != sender_use_key(project, &template) {
                ops.push(WriteOp::Delete {
                    key: old_use,
                    condition: Condition::None,
                });
            }
            ops.push(WriteOp::Put {
                item: sender_use_item(project, &template),
                condition: Condition::None,
            });
            match self.table.transact(ops).await {
                Ok(()) => return Ok(template),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(retry_exhausted())
    }

    /// Deletes a template; returns what was deleted.
    pub async fn delete(&self, project: Uuid, id: Uuid) -> Result<Template, TemplateError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some((template, version)) = self.get_versioned(project, id).await? else {
                return Err(TemplateError::NotFound);
            };
            let ops = vec![
                WriteOp::Delete {
                    key: keys::template(project, id),
                    condition: Condition::VersionEquals(version),
                },
                WriteOp::Delete {
                    key: sender_use_key(project, &template),
                    condition: Condition::None,
                },
            ];
            match self.table.transact(ops).await {
                Ok(()) => return Ok(template),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(retry_exhausted())
    }

    /// Copies a template: new id, `"<name> (copy)"`, same content and type.
    pub async fn duplicate(&self, project: Uuid, id: Uuid) -> Result<Template, TemplateError> {
        let Some(original) = self.get(project, id).await? else {
            return Err(TemplateError::NotFound);
        };
        let copy = original.duplicate(plunk_domain::id::new_id(), Timestamp::now());
        self.create(project, &copy).await?;
        Ok(copy)
    }

    /// One page of templates, newest first. With `search`, up to `scan::SCAN_BUDGET` templates
    /// are examined and the page may be short while more remain; a page also ends early once its
    /// templates serialise to more than [`PAGE_BYTES_BUDGET`].
    pub async fn list(
        &self,
        project: Uuid,
        filter: &TemplateFilter,
        limit: usize,
        start_after: Option<Position>,
    ) -> Result<TemplatePage, StoreError> {
        let mut query = match filter.template_type {
            Some(t) => Query::new(
                Index::Gsi1,
                keys::templates_by_type_index(project, t.as_str()),
            ),
            None => Query::new(Index::Primary, keys::templates_partition(project)),
        };
        query.descending = true;
        query.start_after = start_after;
        let index = query.index;
        let page = scan::page(self.table, query, limit, filter.search.is_some(), |item| {
            let template: Template = crate::decode(item)?;
            Ok(filter
                .matches(&template)
                .then(|| (template, item.position(index))))
        })
        .await?;
        let count = page.items.len();
        let mut items = Vec::with_capacity(count);
        let mut bytes = 0;
        for (i, (template, position)) in page.items.into_iter().enumerate() {
            bytes += serde_json::to_vec(&template).map_or(0, |v| v.len());
            items.push(template);
            if bytes >= PAGE_BYTES_BUDGET && i + 1 < count {
                // Cut short: the next page starts after the last item returned.
                return Ok(TemplatePage {
                    items,
                    next: Some(position),
                });
            }
        }
        Ok(TemplatePage {
            items,
            next: page.next,
        })
    }
}

//! Projects and API keys (spec admin-cli.md). Keys are stored only as SHA-256 hashes, one item per
//! key addressed by its hash (the request path's lookup) and listed per project on `Gsi1`.

use crate::keys;
use crate::lookup_cache::Lookups;
use crate::table::{Condition, Index, Item, Query, StoreError, Table, WriteOp};
use plunk_domain::project::{generate_key, ApiKeyRecord, KeyType, PlainKey, Project, Tracking};
use plunk_domain::Timestamp;
use uuid::Uuid;

/// Failures of project and key administration.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key and the project it belongs to, as the auth path needs them.
#[derive(Debug, Clone)]
pub struct KeyLookup {
    pub key: ApiKeyRecord,
    pub project: Project,
}

/// The result of `rotate`: new plain keys (shown once) and the keys they replace.
#[derive(Debug)]
pub struct RotatedKeys {
    pub created: Vec<(PlainKey, ApiKeyRecord)>,
    pub replaced: Vec<ApiKeyRecord>,
}

/// Project and key operations of one table.
pub struct Projects<'a> {
    table: &'a dyn Table,
    lookups: &'a Lookups,
}

fn key_item(record: &ApiKeyRecord) -> Item {
    Item::new(keys::api_key(&record.sha256), crate::encode(record)).with_gsi1(
        keys::project_keys_index(record.project_id),
        record.key_id.to_string(),
    )
}

fn project_item(project: &Project, version: u64) -> Item {
    Item::new(keys::project(project.id), crate::encode(project))
        .with_gsi1(keys::PROJECTS_INDEX, project.id.to_string())
        .with_version(version)
}

impl<'a> Projects<'a> {
    pub(crate) fn new(table: &'a dyn Table, lookups: &'a Lookups) -> Self {
        Self { table, lookups }
    }

    /// Creates a project with one secret and one public key, atomically.
    pub async fn create(
        &self,
        name: &str,
        rate_limit_per_minute: u32,
        tracking: Tracking,
        language: &str,
    ) -> Result<(Project, PlainKey, PlainKey), ProjectError> {
        let now = Timestamp::now();
        let project = Project {
            id: plunk_domain::id::new_id(),
            name: name.to_owned(),
            rate_limit_per_minute,
            tracking,
            language: language.to_owned(),
            disabled: false,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let (secret, secret_record) = generate_key(project.id, KeyType::Secret, now);
        let (public, public_record) = generate_key(project.id, KeyType::Public, now);
        self.table
            .transact(vec![
                WriteOp::Put {
                    item: project_item(&project, 1),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    item: key_item(&secret_record),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    item: key_item(&public_record),
                    condition: Condition::NotExists,
                },
            ])
            .await?;
        Ok((project, secret, public))
    }

    async fn get_versioned(&self, id: Uuid) -> Result<Option<(Project, u64)>, StoreError> {
        match self.table.get(&keys::project(id)).await? {
            Some(item) => Ok(Some((crate::decode(&item)?, item.version))),
            None => Ok(None),
        }
    }

    /// One project.
    pub async fn get(&self, id: Uuid) -> Result<Option<Project>, StoreError> {
        Ok(self.get_versioned(id).await?.map(|(p, _)| p))
    }

    /// One project, possibly as read up to the store's lookup time to live ago (see
    /// `lookup_cache`): for paths that read the settings of every email they handle.
    pub async fn get_cached(&self, id: Uuid) -> Result<Option<Project>, StoreError> {
        if let Some(hit) = self.lookups.projects.get(&id) {
            return Ok(Some(hit));
        }
        let project = self.get(id).await?;
        if let Some(p) = &project {
            self.lookups.projects.put(id, p.clone());
        }
        Ok(project)
    }

    /// Like [`Self::get_cached`], but never older than `max_age`: the send worker's check of
    /// `disabled`, which must stop a project's mail within seconds (admin-cli.md's emergency stop)
    /// while costing one read per project per `max_age` rather than one per email.
    pub async fn get_cached_within(
        &self,
        id: Uuid,
        max_age: std::time::Duration,
    ) -> Result<Option<Project>, StoreError> {
        if let Some(hit) = self.lookups.projects.get_younger_than(&id, max_age) {
            return Ok(Some(hit));
        }
        let project = self.get(id).await?;
        if let Some(p) = &project {
            self.lookups.projects.put(id, p.clone());
        }
        Ok(project)
    }

    /// Every project, oldest first.
    pub async fn list(&self) -> Result<Vec<Project>, StoreError> {
        let mut out = Vec::new();
        let mut q = Query::new(Index::Gsi1, keys::PROJECTS_INDEX);
        loop {
            let page = self.table.query(q.clone()).await?;
            for item in &page.items {
                out.push(crate::decode(item)?);
            }
            match page.last {
                Some(last) => q.start_after = Some(last),
                None => return Ok(out),
            }
        }
    }

    /// Changes a project with `change`, retrying on concurrent writes.
    pub async fn update<F>(&self, id: Uuid, change: F) -> Result<Project, ProjectError>
    where
        F: Fn(&mut Project) -> Result<(), ProjectError>,
    {
        for _ in 0..5 {
            let (mut project, version) = self
                .get_versioned(id)
                .await?
                .ok_or_else(|| ProjectError::NotFound(format!("project {id}")))?;
            change(&mut project)?;
            project.updated_at = Timestamp::now();
            let result = self
                .table
                .put(
                    project_item(&project, version + 1),
                    Condition::VersionEquals(version),
                )
                .await;
            self.lookups.projects.remove(&id);
            match result {
                Ok(()) => return Ok(project),
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProjectError::Store(StoreError::Unavailable(
            "project changed concurrently; try again".into(),
        )))
    }

    /// The key whose hash is `sha256_hex`, and its project, when both exist.
    pub async fn find_key(&self, sha256_hex: &str) -> Result<Option<KeyLookup>, StoreError> {
        let Some(item) = self.table.get(&keys::api_key(sha256_hex)).await? else {
            return Ok(None);
        };
        let key: ApiKeyRecord = crate::decode(&item)?;
        Ok(self
            .get(key.project_id)
            .await?
            .map(|project| KeyLookup { key, project }))
    }

    /// A project's keys, oldest first; only usable ones unless `include_inactive`.
    pub async fn keys(
        &self,
        project: Uuid,
        include_inactive: bool,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let now = Timestamp::now();
        let mut out = Vec::new();
        let mut q = Query::new(Index::Gsi1, keys::project_keys_index(project));
        loop {
            let page = self.table.query(q.clone()).await?;
            for item in &page.items {
                let record: ApiKeyRecord = crate::decode(item)?;
                if include_inactive || record.is_active(now) {
                    out.push(record);
                }
            }
            match page.last {
                Some(last) => q.start_after = Some(last),
                None => return Ok(out),
            }
        }
    }

    /// Creates a new key of each type in `types`; the active keys of those types expire after
    /// `grace` (revoked at once when it is zero).
    pub async fn rotate(
        &self,
        project: Uuid,
        types: &[KeyType],
        grace: chrono::Duration,
    ) -> Result<RotatedKeys, ProjectError> {
        if self.get(project).await?.is_none() {
            return Err(ProjectError::NotFound(format!("project {project}")));
        }
        let now = Timestamp::now();
        let active = self.keys(project, false).await?;
        let mut ops = Vec::new();
        let mut created = Vec::new();
        let mut replaced = Vec::new();
        for &key_type in types {
            let (plain, record) = generate_key(project, key_type, now);
            ops.push(WriteOp::Put {
                item: key_item(&record),
                condition: Condition::NotExists,
            });
            created.push((plain, record));
            for old in active.iter().filter(|k| k.key_type == key_type) {
                let mut old = old.clone();
                if grace.is_zero() {
                    old.revoked_at = Some(now);
                } else {
                    let expiry = Timestamp::from_datetime(now.as_datetime() + grace);
                    // A key already due to expire sooner keeps its earlier expiry.
                    old.expires_at = Some(old.expires_at.map_or(expiry, |e| e.min(expiry)));
                }
                ops.push(WriteOp::Put {
                    item: key_item(&old),
                    condition: Condition::Exists,
                });
                replaced.push(old);
            }
        }
        self.table.transact(ops).await?;
        Ok(RotatedKeys { created, replaced })
    }

    /// Revokes one key at once.
    pub async fn revoke(&self, project: Uuid, key_id: Uuid) -> Result<ApiKeyRecord, ProjectError> {
        let mut record = self
            .keys(project, true)
            .await?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| ProjectError::NotFound(format!("key {key_id}")))?;
        if record.revoked_at.is_some() {
            return Err(ProjectError::Conflict(format!(
                "key {key_id} is already revoked"
            )));
        }
        record.revoked_at = Some(Timestamp::now());
        self.table.put(key_item(&record), Condition::Exists).await?;
        Ok(record)
    }
}

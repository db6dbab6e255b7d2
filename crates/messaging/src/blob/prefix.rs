//! Every blob key's prefix in one place, the keys built under them, and which function may write
//! or read which prefix.
//!
//! On AWS each function's role grants `s3:PutObject`/`s3:GetObject` on exactly the prefixes
//! listed here (held by a test over `template.yaml`), and the bucket's lifecycle rules expire
//! every prefix. [`GuardedBlobs`] holds every mode to the same list, so a key built under a prefix a
//! function was not granted fails in tests as it would with AccessDenied on AWS.

use super::{BlobError, BlobStore};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use uuid::Uuid;

/// The top-level folders of blob storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobPrefix {
    /// Attachments of accepted emails, kept once per request until the send.
    Attachments,
    /// Email bodies too large for a table item, kept once per request until the send.
    Bodies,
}

impl BlobPrefix {
    /// Every prefix.
    pub const ALL: [BlobPrefix; 2] = [BlobPrefix::Attachments, BlobPrefix::Bodies];

    /// The prefix as keys start with it, slash included.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobPrefix::Attachments => "attachments/",
            BlobPrefix::Bodies => "bodies/",
        }
    }

    /// The prefix `key` lies under, if any.
    pub fn of_key(key: &str) -> Option<BlobPrefix> {
        Self::ALL.into_iter().find(|p| key.starts_with(p.as_str()))
    }
}

/// The key of attachment `index` of the request whose shared content is `root`.
pub fn attachment_key(project: Uuid, root: Uuid, index: usize) -> String {
    format!(
        "{}{project}/{root}/{index}",
        BlobPrefix::Attachments.as_str()
    )
}

/// The key of the large body of the request whose shared content is `root`.
pub fn body_key(project: Uuid, root: Uuid) -> String {
    format!("{}{project}/{root}", BlobPrefix::Bodies.as_str())
}

/// What one function may do in blob storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobAccess {
    /// The function's binary name (as in `template.yaml`'s `BuildProperties.Binary`).
    pub function: &'static str,
    /// Prefixes it stores under.
    pub writes: &'static [BlobPrefix],
    /// Prefixes it reads from.
    pub reads: &'static [BlobPrefix],
}

const BLOB_ACCESS: [BlobAccess; 3] = [
    // The accept step stores attachments and large bodies.
    BlobAccess {
        function: "public-api",
        writes: &[BlobPrefix::Attachments, BlobPrefix::Bodies],
        reads: &[],
    },
    // A workflow's SEND_EMAIL step stores a template body too large for a table item.
    BlobAccess {
        function: "workflow-worker",
        writes: &[BlobPrefix::Bodies],
        reads: &[],
    },
    // The send worker reads them back to build the message.
    BlobAccess {
        function: "send-consumer",
        writes: &[],
        reads: &[BlobPrefix::Attachments, BlobPrefix::Bodies],
    },
];

impl BlobAccess {
    /// Every function that touches blob storage.
    pub fn all() -> &'static [BlobAccess] {
        &BLOB_ACCESS
    }

    /// What `function` may do: nothing when it is not listed.
    pub fn of(function: &str) -> BlobAccess {
        BLOB_ACCESS
            .iter()
            .find(|a| a.function == function)
            .copied()
            .unwrap_or(BlobAccess {
                function: "",
                writes: &[],
                reads: &[],
            })
    }

    fn may(prefixes: &[BlobPrefix], key: &str) -> bool {
        BlobPrefix::of_key(key).is_some_and(|p| prefixes.contains(&p))
    }
}

/// A blob store held to one function's [`BlobAccess`]: a key outside its grants is refused with
/// the error AWS would give, before the inner store sees it.
pub struct GuardedBlobs {
    inner: Arc<dyn BlobStore>,
    access: BlobAccess,
}

impl GuardedBlobs {
    /// `inner` held to `access`.
    pub fn new(inner: Arc<dyn BlobStore>, access: BlobAccess) -> Self {
        Self { inner, access }
    }

    fn refuse(&self, action: &str, key: &str) -> BlobError {
        BlobError::Other(format!(
            "access denied: {} may not {action} {key}",
            self.access.function
        ))
    }
}

#[async_trait]
impl BlobStore for GuardedBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        if !BlobAccess::may(self.access.writes, key) {
            return Err(self.refuse("put", key));
        }
        self.inner.put(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        if !BlobAccess::may(self.access.reads, key) {
            return Err(self.refuse("get", key));
        }
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        // Nothing deletes blobs yet (the lifecycle rules expire them); a delete needs a grant
        // of its own, listed here and in the template, before it is allowed.
        Err(self.refuse("delete", key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBlobs;

    #[test]
    fn keys_lie_under_their_prefix() {
        let (p, r) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            BlobPrefix::of_key(&attachment_key(p, r, 3)),
            Some(BlobPrefix::Attachments)
        );
        assert_eq!(
            BlobPrefix::of_key(&body_key(p, r)),
            Some(BlobPrefix::Bodies)
        );
        assert_eq!(BlobPrefix::of_key("bodiesx/a"), None);
    }

    #[tokio::test]
    async fn a_guard_lets_through_only_the_granted_prefixes() {
        let inner: Arc<dyn BlobStore> = Arc::new(MemoryBlobs::default());
        let api = GuardedBlobs::new(inner.clone(), BlobAccess::of("public-api"));
        let sender = GuardedBlobs::new(inner.clone(), BlobAccess::of("send-consumer"));
        let other = GuardedBlobs::new(inner, BlobAccess::of("webhooks"));
        let key = body_key(Uuid::now_v7(), Uuid::now_v7());
        api.put(&key, Bytes::from_static(b"x")).await.unwrap();
        assert!(api.get(&key).await.is_err(), "the API only writes");
        assert_eq!(sender.get(&key).await.unwrap().as_deref(), Some(&b"x"[..]));
        assert!(sender.put(&key, Bytes::new()).await.is_err());
        assert!(
            other.get(&key).await.is_err(),
            "an unlisted function gets nothing"
        );
        assert!(api.put("other/x", Bytes::new()).await.is_err());
        assert!(sender.delete(&key).await.is_err());
    }
}

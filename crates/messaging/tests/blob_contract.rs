//! The blob contract: one suite of behaviours every adapter of the `BlobStore` port must show,
//! written once in `cases` and run against each adapter by the `contract!` macro.
//!
//! - `folder::*` runs against a [`FolderBlobs`] in a fresh temporary directory, always.
//! - `s3::*` runs against S3 at `PLUNK_TEST_AWS_ENDPOINT` (for example moto started by
//!   `infra/scripts/moto.sh start`, at `http://127.0.0.1:5005`), addressed path-style, with a
//!   fresh bucket per test. Without that variable each of them prints a "skipped" line and
//!   passes. Region and credentials come from `AWS_REGION` / `AWS_ACCESS_KEY_ID` /
//!   `AWS_SECRET_ACCESS_KEY`, defaulting to `us-east-1` / `test` / `test`.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use plunk_messaging::blob::folder::FolderBlobs;
use plunk_messaging::blob::s3::S3Blobs;
use plunk_messaging::blob::BlobStore;

const ENDPOINT_VAR: &str = "PLUNK_TEST_AWS_ENDPOINT";

/// A store under test (and what must live as long as it).
pub struct Subject {
    blobs: Box<dyn BlobStore>,
    _dir: Option<tempfile::TempDir>,
}

fn folder_subject() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    Subject {
        blobs: Box::new(FolderBlobs::new(dir.path().join("blobs"))),
        _dir: Some(dir),
    }
}

/// A fresh bucket, or `None` (after saying so) when no endpoint is set.
async fn s3_subject() -> Option<Subject> {
    let endpoint = match std::env::var(ENDPOINT_VAR) {
        Ok(e) if !e.trim().is_empty() => e,
        _ => {
            // Captured per test (shown with --nocapture) ...
            println!("skipped: {ENDPOINT_VAR} not set");
            // ... and once per run straight to stderr, which the test harness does not capture.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "s3::* contract tests skipped: {ENDPOINT_VAR} not set"
                );
            });
            return None;
        }
    };
    let env_or = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env_or("AWS_REGION", "us-east-1")))
        .credentials_provider(Credentials::new(
            env_or("AWS_ACCESS_KEY_ID", "test"),
            env_or("AWS_SECRET_ACCESS_KEY", "test"),
            None,
            None,
            "blob-contract",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    // Bucket names: 3–63 characters of [a-z0-9-].
    let bucket = format!("contract-{}", uuid::Uuid::now_v7().simple());
    let blobs = S3Blobs::new(aws_sdk_s3::Client::from_conf(config), bucket);
    blobs.create_bucket().await.expect("create the test bucket");
    Some(Subject {
        blobs: Box::new(blobs),
        _dir: None,
    })
}

/// Generates `folder::<case>` and `s3::<case>` tests for each case in `cases`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod folder {
            $(
                #[tokio::test]
                async fn $case() {
                    let subject = super::folder_subject();
                    super::cases::$case(subject.blobs.as_ref()).await;
                }
            )*
        }

        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(subject) = super::s3_subject().await else {
                        return;
                    };
                    super::cases::$case(subject.blobs.as_ref()).await;
                }
            )*
        }
    };
}

contract!(
    put_then_get_returns_the_same_bytes,
    put_replaces_what_was_there,
    delete_removes_the_blob_and_deleting_nothing_is_fine,
    get_of_a_missing_key_is_none,
    every_byte_value_round_trips,
    an_empty_blob_is_not_a_missing_one,
    a_one_mebibyte_blob_round_trips,
    nested_keys_are_independent_blobs,
    keys_outside_the_safe_alphabet_or_escaping_are_refused,
);

mod cases {
    use bytes::Bytes;
    use plunk_messaging::blob::BlobStore;

    pub async fn put_then_get_returns_the_same_bytes(b: &dyn BlobStore) {
        b.put("body.html", Bytes::from_static(b"<p>hi</p>"))
            .await
            .unwrap();
        assert_eq!(
            b.get("body.html").await.unwrap(),
            Some(Bytes::from_static(b"<p>hi</p>"))
        );
    }

    pub async fn put_replaces_what_was_there(b: &dyn BlobStore) {
        b.put("k", Bytes::from_static(b"a much longer first version"))
            .await
            .unwrap();
        b.put("k", Bytes::from_static(b"short")).await.unwrap();
        assert_eq!(
            b.get("k").await.unwrap(),
            Some(Bytes::from_static(b"short"))
        );
    }

    pub async fn delete_removes_the_blob_and_deleting_nothing_is_fine(b: &dyn BlobStore) {
        b.put("doomed", Bytes::from_static(b"x")).await.unwrap();
        b.delete("doomed").await.unwrap();
        assert_eq!(b.get("doomed").await.unwrap(), None);
        b.delete("doomed").await.unwrap();
        b.delete("never/was").await.unwrap();
    }

    pub async fn get_of_a_missing_key_is_none(b: &dyn BlobStore) {
        assert_eq!(b.get("missing").await.unwrap(), None);
        assert_eq!(b.get("missing/nested/key.bin").await.unwrap(), None);
    }

    pub async fn every_byte_value_round_trips(b: &dyn BlobStore) {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        b.put("bytes.bin", Bytes::from(all.clone())).await.unwrap();
        assert_eq!(b.get("bytes.bin").await.unwrap().as_deref(), Some(&all[..]));
    }

    pub async fn an_empty_blob_is_not_a_missing_one(b: &dyn BlobStore) {
        b.put("empty", Bytes::new()).await.unwrap();
        assert_eq!(b.get("empty").await.unwrap(), Some(Bytes::new()));
    }

    pub async fn a_one_mebibyte_blob_round_trips(b: &dyn BlobStore) {
        let big: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        b.put("attachments/big.bin", Bytes::from(big.clone()))
            .await
            .unwrap();
        let got = b.get("attachments/big.bin").await.unwrap().unwrap();
        assert_eq!(got.len(), big.len());
        assert!(got == big[..], "content differs");
    }

    pub async fn nested_keys_are_independent_blobs(b: &dyn BlobStore) {
        b.put("p1/emails/e1/body.html", Bytes::from_static(b"one"))
            .await
            .unwrap();
        b.put("p1/emails/e2/body.html", Bytes::from_static(b"two"))
            .await
            .unwrap();
        b.put("p1/emails/e1/att-1.pdf", Bytes::from_static(b"pdf"))
            .await
            .unwrap();
        assert_eq!(
            b.get("p1/emails/e1/body.html").await.unwrap(),
            Some(Bytes::from_static(b"one"))
        );
        assert_eq!(
            b.get("p1/emails/e2/body.html").await.unwrap(),
            Some(Bytes::from_static(b"two"))
        );
        assert_eq!(
            b.get("p1/emails/e1").await.unwrap(),
            None,
            "a prefix is no blob"
        );
        b.delete("p1/emails/e1/body.html").await.unwrap();
        assert_eq!(b.get("p1/emails/e1/body.html").await.unwrap(), None);
        assert_eq!(
            b.get("p1/emails/e1/att-1.pdf").await.unwrap(),
            Some(Bytes::from_static(b"pdf"))
        );
    }

    pub async fn keys_outside_the_safe_alphabet_or_escaping_are_refused(b: &dyn BlobStore) {
        for bad in [
            "", "/abs", "../up", "a/../b", "a//b", "dir/", "sp ace", "ünï", "a\\b",
        ] {
            assert!(
                b.put(bad, Bytes::from_static(b"x")).await.is_err(),
                "put {bad:?}"
            );
            assert!(b.get(bad).await.is_err(), "get {bad:?}");
            assert!(b.delete(bad).await.is_err(), "delete {bad:?}");
        }
    }
}

//! The data key of webhook signing secrets on AWS: envelope encryption with KMS.
//!
//! The table holds the data key only wrapped by the deployment's KMS key (`SECRET#WEBHOOK_DATA_KEY`,
//! readable by the webhooks API and the delivery worker alone). The first function that needs it
//! and finds none asks KMS for a new data key (`GenerateDataKey`, AES-256) and stores the wrapped
//! copy with a conditional put, so concurrent cold starts agree on one key; every cold start then
//! unwraps it once (`Decrypt`, ~10 ms) and keeps the plain key in memory only. Only the two
//! functions' roles may call `kms:Decrypt` on the key, so the wrapped key in the table is useless
//! to every other function, and to anyone reading a table backup.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use plunk_store::keys;
use plunk_store::table::{Condition, Item, StoreError};
use plunk_store::Store;
use plunk_webhooks::secret_box::DATA_KEY_LEN;
use plunk_webhooks::SecretBox;

/// The box over the deployment's data key, creating the key on first use.
pub async fn load(
    store: &Store,
    kms: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<SecretBox, StoreError> {
    let kms_error = |op: &str, e: &dyn std::fmt::Display| {
        StoreError::Unavailable(format!("KMS {op} for the webhook data key: {e}"))
    };
    for _ in 0..3 {
        if let Some(item) = store.table().get(&keys::webhook_data_key()).await? {
            let wrapped = item.body["wrapped"]
                .as_str()
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or_else(|| {
                    StoreError::Other("the wrapped webhook data key is corrupt".into())
                })?;
            let out = kms
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(wrapped))
                .send()
                .await
                .map_err(|e| kms_error("Decrypt", &aws_sdk_kms::error::DisplayErrorContext(e)))?;
            let plain = out
                .plaintext()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            let key: [u8; DATA_KEY_LEN] = plain
                .try_into()
                .map_err(|_| StoreError::Other("the webhook data key is not 32 bytes".into()))?;
            return Ok(SecretBox::new(&key));
        }
        let generated = kms
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .map_err(|e| {
                kms_error(
                    "GenerateDataKey",
                    &aws_sdk_kms::error::DisplayErrorContext(e),
                )
            })?;
        let wrapped = generated
            .ciphertext_blob()
            .map(|b| STANDARD.encode(b.as_ref()))
            .ok_or_else(|| StoreError::Other("KMS returned no wrapped data key".into()))?;
        let item = Item::new(
            keys::webhook_data_key(),
            serde_json::json!({ "wrapped": wrapped, "kmsKeyId": key_id }),
        );
        match store.table().put(item, Condition::NotExists).await {
            // Read back (and unwrap) on the next turn, like every later cold start.
            Ok(()) => {}
            Err(e) if e.is_condition_failed() => {}
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Other(
        "could not establish the webhook data key".into(),
    ))
}

//! Standard Webhooks signatures (webhooks.md §3): `v1,` + base64(HMAC-SHA256(key,
//! `<msg id>.<timestamp>.<raw body>`)), one per active secret, space separated.

use crate::secret::WebhookSecret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The signature scheme version this crate produces and accepts.
const VERSION: &str = "v1";

/// How far a receiver's clock may be from the signed timestamp (Standard Webhooks default).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a signed request does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance.
    #[error("timestamp too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("timestamp too far in the future")]
    TimestampInFuture,
    /// No `v1` signature in the header matches any of the secrets.
    #[error("no matching signature")]
    NoMatchingSignature,
}

/// The raw HMAC-SHA256 of `<msg_id>.<timestamp>.<body>` under `key`.
fn mac(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` header value: `v1,<base64>` for each secret, in order, space
/// separated. With no secret the value is empty.
pub fn sign(msg_id: &str, timestamp_secs: i64, body: &[u8], secrets: &[WebhookSecret]) -> String {
    secrets
        .iter()
        .map(|s| {
            let sig = mac(s.key(), msg_id, timestamp_secs, body);
            format!("{VERSION},{}", STANDARD.encode(sig))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a received request the way a Standard Webhooks receiver does: the timestamp header is
/// within `tolerance` of `now_secs`, and at least one `v1` signature in `signature_header` matches
/// one of `secrets`. Signatures are compared in constant time.
pub fn verify(
    msg_id: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    secrets: &[WebhookSecret],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now_secs.saturating_sub(timestamp) > tolerance {
        return Err(VerifyError::TimestampTooOld);
    }
    if timestamp.saturating_sub(now_secs) > tolerance {
        return Err(VerifyError::TimestampInFuture);
    }

    let candidates: Vec<Vec<u8>> = signature_header
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .collect();
    for secret in secrets {
        let expected = mac(secret.key(), msg_id, timestamp, body);
        for candidate in &candidates {
            // `ct_eq` on slices of different lengths is false without comparing contents.
            if bool::from(candidate.as_slice().ct_eq(&expected)) {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).unwrap()
    }

    /// Published in the Standard Webhooks JavaScript library's tests ("sign function works").
    #[test]
    fn matches_the_standard_webhooks_javascript_vector() {
        let sig = sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &[secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// Published in the Standard Webhooks Rust library's tests (`test_sign`).
    #[test]
    fn matches_the_standard_webhooks_rust_vector() {
        let sig = sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
            &[secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")],
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn the_published_vector_verifies_at_its_own_time() {
        let secrets = [secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            &secrets,
            1614265330,
            DEFAULT_TOLERANCE,
        )
        .unwrap();
    }

    #[test]
    fn two_secrets_give_two_signatures_each_of_which_verifies() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let body = br#"{"type":"email.sent"}"#;
        let header = sign("evt", 1_700_000_000, body, &[new.clone(), old.clone()]);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        for s in [old, new] {
            verify(
                "evt",
                "1700000000",
                body,
                &header,
                &[s],
                1_700_000_000,
                DEFAULT_TOLERANCE,
            )
            .unwrap();
        }
    }

    #[test]
    fn a_round_trip_fails_on_any_change() {
        let s = WebhookSecret::generate();
        let other = WebhookSecret::generate();
        let body = br#"{"a":1}"#;
        let header = sign("msg_1", 1_000, body, std::slice::from_ref(&s));
        let ok = |id: &str, ts: &str, body: &[u8], hdr: &str, secret: &WebhookSecret| {
            verify(
                id,
                ts,
                body,
                hdr,
                std::slice::from_ref(secret),
                1_000,
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(ok("msg_1", "1000", body, &header, &s), Ok(()));
        let no = Err(VerifyError::NoMatchingSignature);
        assert_eq!(ok("msg_2", "1000", body, &header, &s), no);
        assert_eq!(ok("msg_1", "1001", body, &header, &s), no);
        assert_eq!(ok("msg_1", "1000", br#"{"a":2}"#, &header, &s), no);
        assert_eq!(ok("msg_1", "1000", body, &header, &other), no);
        let v2 = header.replacen("v1,", "v2,", 1);
        assert_eq!(ok("msg_1", "1000", body, &v2, &s), no);
        assert_eq!(ok("msg_1", "1000", body, "v1,", &s), no);
        assert_eq!(ok("msg_1", "1000", body, &header[..8], &s), no);
        assert_eq!(ok("msg_1", "1000", body, "", &s), no);
    }

    #[test]
    fn a_valid_signature_among_foreign_ones_verifies() {
        let s = WebhookSecret::generate();
        let body = b"{}";
        let good = sign("m", 50, body, std::slice::from_ref(&s));
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {good} garbage"
        );
        assert_eq!(
            verify("m", "50", body, &header, &[s], 50, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_rejected() {
        let s = WebhookSecret::generate();
        let now = 10_000;
        let check = |ts: i64| {
            let header = sign("m", ts, b"x", std::slice::from_ref(&s));
            verify(
                "m",
                &ts.to_string(),
                b"x",
                &header,
                std::slice::from_ref(&s),
                now,
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(check(now - 300), Ok(()));
        assert_eq!(check(now + 300), Ok(()));
        assert_eq!(check(now - 301), Err(VerifyError::TimestampTooOld));
        assert_eq!(check(now + 301), Err(VerifyError::TimestampInFuture));
        assert_eq!(
            verify(
                "m",
                "hello",
                b"x",
                "",
                std::slice::from_ref(&s),
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::InvalidTimestamp)
        );
    }
}

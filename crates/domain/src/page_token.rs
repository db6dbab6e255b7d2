//! Signed tokens of the hosted unsubscribe, subscribe and manage pages, and the page URLs built
//! from them.
//!
//! `token = base64url(payload) "." base64url(tag)`, without padding, where
//! `payload = version 2 ‖ key id (1 byte) ‖ contact id (16 bytes) ‖ email id (16 bytes, zeros when
//! there is no email) ‖ the first 8 bytes of SHA-256 of the address the token was made for` and
//! `tag` is the first 16 bytes of HMAC-SHA256(secret[key id], payload). A token whose address is
//! no longer the contact's (the contact changed its email) does not act on the contact: a link
//! sent to an old address cannot reach the new one. Tokens of version 1 (the same payload without
//! the address, already in people's mailboxes) still verify. Tokens never expire and are not bound
//! to one page. Several secrets can be live at once: the current one signs, every one verifies,
//! so a new signing secret keeps old links working.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The version signed now: with the address.
const VERSION: u8 = 2;
/// The first version: without the address.
const VERSION_1: u8 = 1;
/// Bytes of a version 1 payload: version, key id, contact id, email id.
const PAYLOAD_V1_LEN: usize = 1 + 1 + 16 + 16;
/// Bytes of the address hash of version 2.
const ADDRESS_LEN: usize = 8;
/// Bytes of a version 2 payload.
const PAYLOAD_LEN: usize = PAYLOAD_V1_LEN + ADDRESS_LEN;
/// Bytes of the truncated tag.
const TAG_LEN: usize = 16;
/// Length of a well-formed version 2 token: 56 + "." + 22 characters.
const TOKEN_LEN: usize = 56 + 1 + 22;
/// Length of a well-formed version 1 token: 46 + "." + 22 characters.
const TOKEN_V1_LEN: usize = 46 + 1 + 22;
/// Bytes of every signing secret.
pub const SECRET_LEN: usize = 32;

/// One signing secret and its id.
#[derive(Clone)]
pub struct PageTokenSecret {
    pub id: u8,
    pub bytes: [u8; SECRET_LEN],
}

impl std::fmt::Debug for PageTokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageTokenSecret({}, <redacted>)", self.id)
    }
}

/// The live secrets, one of them current (the signing one).
#[derive(Debug, Clone)]
pub struct PageTokenKeys {
    secrets: Vec<PageTokenSecret>,
    current: usize,
}

/// What a valid token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageTokenClaims {
    pub contact_id: Uuid,
    /// The email the link was sent in, if any (campaign attribution).
    pub email_id: Option<Uuid>,
    /// The hash of the address the token was made for (`None` for a version 1 token).
    pub address: Option<[u8; ADDRESS_LEN]>,
}

impl PageTokenClaims {
    /// Whether the token may act on a contact whose address is now `address`: a version 2 token
    /// only for the address it was made for, a version 1 token for any.
    pub fn fits(&self, address: &str) -> bool {
        self.address
            .is_none_or(|hash| hash == address_hash(address))
    }
}

/// The first bytes of SHA-256 of a normalised address.
fn address_hash(address: &str) -> [u8; ADDRESS_LEN] {
    use sha2::Digest;
    let digest = Sha256::digest(address.as_bytes());
    let mut hash = [0u8; ADDRESS_LEN];
    hash.copy_from_slice(&digest[..ADDRESS_LEN]);
    hash
}

impl PageTokenKeys {
    /// Keys over `secrets`, signing with the one whose id is `current`. `None` when `current` is
    /// not among them or two secrets share an id.
    pub fn new(secrets: Vec<PageTokenSecret>, current: u8) -> Option<Self> {
        let mut ids: Vec<u8> = secrets.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != secrets.len() {
            return None;
        }
        let current = secrets.iter().position(|s| s.id == current)?;
        Some(Self { secrets, current })
    }

    /// The id of the signing secret.
    pub fn current_id(&self) -> u8 {
        self.secrets[self.current].id
    }

    fn tag(secret: &PageTokenSecret, payload: &[u8]) -> [u8; TAG_LEN] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// A token for `contact` at `address` (normalised), attributed to `email` when given.
    pub fn sign(&self, contact: Uuid, email: Option<Uuid>, address: &str) -> String {
        let secret = &self.secrets[self.current];
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[0] = VERSION;
        payload[1] = secret.id;
        payload[2..18].copy_from_slice(contact.as_bytes());
        if let Some(email) = email {
            payload[18..34].copy_from_slice(email.as_bytes());
        }
        payload[34..].copy_from_slice(&address_hash(address));
        let tag = Self::tag(secret, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a token this deployment signed, or `None` for anything else: wrong shape or
    /// length, bad base64 (padding and non-canonical encodings included), another version, an
    /// unknown key id, or a tag that does not match (compared in constant time).
    pub fn verify(&self, token: &str) -> Option<PageTokenClaims> {
        if token.len() != TOKEN_LEN && token.len() != TOKEN_V1_LEN {
            return None;
        }
        let (payload_text, tag_text) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_text).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag_text).ok()?;
        let well_formed = match payload.first() {
            Some(&VERSION) => payload.len() == PAYLOAD_LEN,
            Some(&VERSION_1) => payload.len() == PAYLOAD_V1_LEN,
            _ => false,
        };
        if !well_formed || tag.len() != TAG_LEN {
            return None;
        }
        let secret = self.secrets.iter().find(|s| s.id == payload[1])?;
        let expected = Self::tag(secret, &payload);
        if !bool::from(expected.ct_eq(tag.as_slice())) {
            return None;
        }
        let contact_id = Uuid::from_slice(&payload[2..18]).ok()?;
        let email_id = Uuid::from_slice(&payload[18..34]).ok()?;
        let address = payload
            .get(PAYLOAD_V1_LEN..)
            .and_then(|bytes| <[u8; ADDRESS_LEN]>::try_from(bytes).ok());
        Some(PageTokenClaims {
            contact_id,
            email_id: (!email_id.is_nil()).then_some(email_id),
            address,
        })
    }
}

/// The three hosted-page URLs of one token (spec feedback-and-unsubscribe.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedUrls {
    pub unsubscribe: String,
    pub subscribe: String,
    pub manage: String,
}

impl HostedUrls {
    /// `<base>/unsubscribe/<token>` and so on; a trailing slash of `base` is dropped.
    pub fn new(base: &str, token: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            unsubscribe: format!("{base}/unsubscribe/{token}"),
            subscribe: format!("{base}/subscribe/{token}"),
            manage: format!("{base}/manage/{token}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: u8, fill: u8) -> PageTokenSecret {
        PageTokenSecret {
            id,
            bytes: [fill; SECRET_LEN],
        }
    }

    fn keys(id: u8, fill: u8) -> PageTokenKeys {
        PageTokenKeys::new(vec![secret(id, fill)], id).unwrap()
    }

    const ADDRESS: &str = "ada@example.org";

    /// A version 1 token, as links sent before version 2 carry them.
    fn sign_v1(k: &PageTokenKeys, contact: Uuid, email: Option<Uuid>) -> String {
        let secret = &k.secrets[k.current];
        let mut payload = [0u8; PAYLOAD_V1_LEN];
        payload[0] = VERSION_1;
        payload[1] = secret.id;
        payload[2..18].copy_from_slice(contact.as_bytes());
        if let Some(email) = email {
            payload[18..34].copy_from_slice(email.as_bytes());
        }
        let tag = PageTokenKeys::tag(secret, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    #[test]
    fn a_token_acts_only_for_the_address_it_was_made_for_and_version_1_still_verifies() {
        let (contact, email) = ids();
        let k = keys(1, 7);
        let claims = k.verify(&k.sign(contact, Some(email), ADDRESS)).unwrap();
        assert!(claims.fits(ADDRESS));
        assert!(!claims.fits("ada@new.example"));
        let old = sign_v1(&k, contact, Some(email));
        assert_eq!(old.len(), TOKEN_V1_LEN);
        let claims = k.verify(&old).unwrap();
        assert_eq!(
            (claims.contact_id, claims.email_id, claims.address),
            (contact, Some(email), None)
        );
        assert!(claims.fits("ada@new.example"));
    }

    fn ids() -> (Uuid, Uuid) {
        (
            Uuid::parse_str("0193a1f2-5b7c-7d10-8a21-4f6e9c0d1a23").unwrap(),
            Uuid::parse_str("0193a1f2-5b80-7e44-9b02-7c1d2e3f4a56").unwrap(),
        )
    }

    #[test]
    fn a_token_names_its_contact_and_email() {
        let (contact, email) = ids();
        let k = keys(1, 7);
        let token = k.sign(contact, Some(email), ADDRESS);
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        assert_eq!(
            k.verify(&token),
            Some(PageTokenClaims {
                contact_id: contact,
                email_id: Some(email),
                address: Some(address_hash(ADDRESS)),
            })
        );
    }

    #[test]
    fn the_layout_is_the_spec_one() {
        let (contact, email) = ids();
        let k = keys(3, 9);
        let token = k.sign(contact, Some(email), ADDRESS);
        let (p, t) = token.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(p).unwrap();
        assert_eq!(payload[0], 2, "version");
        assert_eq!(payload[1], 3, "key id");
        assert_eq!(&payload[2..18], contact.as_bytes());
        assert_eq!(&payload[18..34], email.as_bytes());
        use sha2::Digest;
        assert_eq!(&payload[34..42], &Sha256::digest(ADDRESS.as_bytes())[..8]);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[9; 32]).unwrap();
        mac.update(&payload);
        let full = mac.finalize().into_bytes();
        assert_eq!(URL_SAFE_NO_PAD.decode(t).unwrap(), &full[..16]);
    }

    #[test]
    fn a_token_without_email_carries_zeros_and_verifies_to_none() {
        let (contact, _) = ids();
        let k = keys(1, 7);
        let token = k.sign(contact, None, ADDRESS);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split_once('.').unwrap().0)
            .unwrap();
        assert!(payload[18..34].iter().all(|b| *b == 0));
        assert_eq!(
            k.verify(&token),
            Some(PageTokenClaims {
                contact_id: contact,
                email_id: None,
                address: Some(address_hash(ADDRESS)),
            })
        );
    }

    #[test]
    fn changing_any_byte_of_payload_or_tag_is_refused() {
        let (contact, email) = ids();
        let k = keys(1, 7);
        let token = k.sign(contact, Some(email), ADDRESS);
        let (p, t) = token.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(p).unwrap();
        let tag = URL_SAFE_NO_PAD.decode(t).unwrap();
        for i in 0..payload.len() {
            for flip in [0x01, 0x80] {
                let mut altered = payload.clone();
                altered[i] ^= flip;
                let forged = format!("{}.{t}", URL_SAFE_NO_PAD.encode(&altered));
                assert_eq!(k.verify(&forged), None, "payload byte {i} ^ {flip:#x}");
            }
        }
        for i in 0..tag.len() {
            let mut altered = tag.clone();
            altered[i] ^= 0x01;
            let forged = format!("{p}.{}", URL_SAFE_NO_PAD.encode(&altered));
            assert_eq!(k.verify(&forged), None, "tag byte {i}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (contact, email) = ids();
        let k = keys(1, 7);
        let token = k.sign(contact, Some(email), ADDRESS);
        let (p, t) = token.split_once('.').unwrap();
        let cases = [
            String::new(),
            "garbage".to_owned(),
            contact.to_string(),
            contact.simple().to_string(),
            p.to_owned(),
            format!("{p}{t}"),
            format!("{p}.{t}="),
            format!("{p}=.{t}"),
            format!("{p}.{t}.x"),
            format!("{p}.{}", &t[1..]),
            format!("{p}x.{t}"),
            token.replace('.', "!"),
            format!("{}+{}", &p[..10], &p[11..]) + "." + t,
            token.to_uppercase(),
        ];
        for case in cases {
            assert_eq!(k.verify(&case), None, "{case:?}");
        }
        // A non-canonical last character (unused low bits set) decodes leniently elsewhere.
        let last = t.chars().last().unwrap();
        let other = if last == 'A' { 'B' } else { 'A' };
        let lenient = format!("{p}.{}{other}", &t[..t.len() - 1]);
        assert_eq!(k.verify(&lenient), None);
    }

    #[test]
    fn another_version_or_an_unknown_key_id_is_refused_even_when_correctly_signed() {
        let (contact, email) = ids();
        let s = secret(1, 7);
        // A payload of `len` bytes with the given version and key id, correctly tagged.
        let forge = |version: u8, key: u8, len: usize| {
            let mut payload = vec![0u8; len];
            payload[0] = version;
            payload[1] = key;
            payload[2..18].copy_from_slice(contact.as_bytes());
            payload[18..34].copy_from_slice(email.as_bytes());
            let tag = PageTokenKeys::tag(&s, &payload);
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(tag)
            )
        };
        let k = keys(1, 7);
        assert!(
            k.verify(&forge(2, 1, PAYLOAD_LEN)).is_some(),
            "the control case verifies"
        );
        assert!(
            k.verify(&forge(1, 1, PAYLOAD_V1_LEN)).is_some(),
            "version 1 at its own length verifies"
        );
        assert_eq!(k.verify(&forge(1, 1, PAYLOAD_LEN)), None, "version 1, long");
        assert_eq!(
            k.verify(&forge(2, 1, PAYLOAD_V1_LEN)),
            None,
            "version 2, short"
        );
        assert_eq!(k.verify(&forge(3, 1, PAYLOAD_LEN)), None, "version 3");
        assert_eq!(k.verify(&forge(0, 1, PAYLOAD_LEN)), None, "version 0");
        assert_eq!(k.verify(&forge(2, 2, PAYLOAD_LEN)), None, "unknown key id");
    }

    #[test]
    fn another_deployments_secret_does_not_verify() {
        let (contact, email) = ids();
        let token = keys(1, 7).sign(contact, Some(email), ADDRESS);
        assert_eq!(keys(1, 8).verify(&token), None);
    }

    #[test]
    fn after_rotation_old_tokens_verify_and_new_ones_use_the_new_key() {
        let (contact, email) = ids();
        let old = keys(1, 7).sign(contact, Some(email), ADDRESS);
        let rotated = PageTokenKeys::new(vec![secret(1, 7), secret(2, 9)], 2).unwrap();
        assert_eq!(rotated.current_id(), 2);
        assert_eq!(rotated.verify(&old).unwrap().contact_id, contact);
        let new = rotated.sign(contact, Some(email), ADDRESS);
        let payload = URL_SAFE_NO_PAD
            .decode(new.split_once('.').unwrap().0)
            .unwrap();
        assert_eq!(payload[1], 2);
        assert!(rotated.verify(&new).is_some());
        assert_eq!(keys(1, 7).verify(&new), None, "the old set lacks key 2");
    }

    #[test]
    fn keys_need_their_current_id_and_distinct_ids() {
        assert!(PageTokenKeys::new(vec![secret(1, 7)], 2).is_none());
        assert!(PageTokenKeys::new(vec![secret(1, 7), secret(1, 8)], 1).is_none());
        assert!(PageTokenKeys::new(vec![], 1).is_none());
    }

    #[test]
    fn urls_join_the_base_and_the_token() {
        let urls = HostedUrls::new("https://api.example.com/", "abc.def");
        assert_eq!(
            urls.unsubscribe,
            "https://api.example.com/unsubscribe/abc.def"
        );
        assert_eq!(urls.subscribe, "https://api.example.com/subscribe/abc.def");
        assert_eq!(urls.manage, "https://api.example.com/manage/abc.def");
    }
}

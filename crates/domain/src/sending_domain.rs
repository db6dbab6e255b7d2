//! Sending domains (spec domains.md): the Domain record, its statuses, the DNS records a project
//! publishes, and the rules for a domain name given to `POST /domains`.

use crate::time::Timestamp;
use crate::validation::{FieldCode, FieldError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use uuid::Uuid;

/// Verification status of a Domain, from the provider's DKIM status (spec domains.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DomainStatus {
    Pending,
    Verified,
    Failed,
    TemporaryFailure,
}

/// Status of the MAIL FROM subdomain (informational; sending does not wait for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MailFromStatus {
    Pending,
    Success,
    Failed,
    TemporaryFailure,
}

/// A sending domain of one project, as stored.
///
/// `dkim_tokens`, `region` and `reinitiated` are kept for building the DNS records and for the
/// verification rules; the API never returns them as members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: Uuid,
    /// Lowercase ASCII host name, as returned by [`parse_domain_name`].
    pub domain: String,
    pub status: DomainStatus,
    /// `status == VERIFIED`; the only condition for sending.
    pub verified: bool,
    /// `<label>.<domain>`.
    pub mail_from_domain: String,
    pub mail_from_status: MailFromStatus,
    pub last_checked_at: Option<Timestamp>,
    /// Set the first time the domain becomes VERIFIED, then kept.
    pub verified_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Easy DKIM tokens of the provider identity.
    #[serde(default)]
    pub dkim_tokens: Vec<String>,
    /// Provider region, for the MAIL FROM MX record.
    #[serde(default)]
    pub region: String,
    /// True once a FAILED identity has been re-initiated (delete + create); cleared when the
    /// domain verifies, so each failure episode is re-initiated at most once.
    #[serde(default)]
    pub reinitiated: bool,
}

impl Domain {
    /// A new PENDING domain with the provider's DKIM tokens and region.
    pub fn new(
        id: Uuid,
        domain: String,
        mail_from_domain: String,
        dkim_tokens: Vec<String>,
        region: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            domain,
            status: DomainStatus::Pending,
            verified: false,
            mail_from_domain,
            mail_from_status: MailFromStatus::Pending,
            last_checked_at: None,
            verified_at: None,
            created_at: now,
            updated_at: now,
            dkim_tokens,
            region,
            reinitiated: false,
        }
    }

    /// Applies a status check made at `now`: statuses, `verified`, `lastCheckedAt`, and
    /// `verifiedAt` the first time the domain is VERIFIED.
    pub fn record_check(
        &mut self,
        status: DomainStatus,
        mail_from_status: MailFromStatus,
        now: Timestamp,
    ) {
        self.status = status;
        self.verified = status == DomainStatus::Verified;
        self.mail_from_status = mail_from_status;
        self.last_checked_at = Some(now);
        if self.verified {
            self.reinitiated = false;
            if self.verified_at.is_none() {
                self.verified_at = Some(now);
            }
        }
        self.updated_at = now.max(self.updated_at);
    }

    /// The DNS records to publish for this domain.
    pub fn records(&self) -> Vec<DnsRecord> {
        dns_records(
            &self.domain,
            &self.mail_from_domain,
            &self.dkim_tokens,
            &self.region,
        )
    }
}

/// DNS record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    Cname,
    Mx,
    Txt,
}

/// What a DNS record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordPurpose {
    Dkim,
    MailFromMx,
    MailFromSpf,
    Dmarc,
}

/// One DNS record of a domain (spec domains.md §1). `name` is fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub name: String,
    pub value: String,
    /// MX only; `null` otherwise.
    pub priority: Option<u16>,
    pub purpose: RecordPurpose,
    /// False for suggestions (DMARC: skip it if the domain already has a DMARC record).
    pub required: bool,
}

/// Priority of the MAIL FROM MX record.
pub const MAIL_FROM_MX_PRIORITY: u16 = 10;
/// Value of the MAIL FROM SPF record, quoted as published.
pub const SPF_VALUE: &str = "\"v=spf1 include:amazonses.com ~all\"";
/// Value of the suggested DMARC record, quoted as published.
pub const DMARC_VALUE: &str = "\"v=DMARC1; p=none;\"";

/// The records for `domain` (spec domains.md §1 table): one DKIM CNAME per token, the MAIL FROM
/// MX and SPF records, and a DMARC suggestion.
pub fn dns_records(
    domain: &str,
    mail_from_domain: &str,
    dkim_tokens: &[String],
    region: &str,
) -> Vec<DnsRecord> {
    let mut records: Vec<DnsRecord> = dkim_tokens
        .iter()
        .map(|token| DnsRecord {
            record_type: RecordType::Cname,
            name: format!("{token}._domainkey.{domain}"),
            value: format!("{token}.dkim.amazonses.com"),
            priority: None,
            purpose: RecordPurpose::Dkim,
            required: true,
        })
        .collect();
    records.push(DnsRecord {
        record_type: RecordType::Mx,
        name: mail_from_domain.to_owned(),
        value: format!("feedback-smtp.{region}.amazonses.com"),
        priority: Some(MAIL_FROM_MX_PRIORITY),
        purpose: RecordPurpose::MailFromMx,
        required: true,
    });
    records.push(DnsRecord {
        record_type: RecordType::Txt,
        name: mail_from_domain.to_owned(),
        value: SPF_VALUE.to_owned(),
        priority: None,
        purpose: RecordPurpose::MailFromSpf,
        required: true,
    });
    records.push(DnsRecord {
        record_type: RecordType::Txt,
        name: format!("_dmarc.{domain}"),
        value: DMARC_VALUE.to_owned(),
        priority: None,
        purpose: RecordPurpose::Dmarc,
        required: false,
    });
    records
}

/// Shortest and longest domain name, in characters, after normalising.
pub const MIN_DOMAIN_LEN: usize = 3;
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a domain name was refused; the text is shown to API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDomainName {
    #[error("Domain must be {MIN_DOMAIN_LEN}-{MAX_DOMAIN_LEN} characters")]
    Length,
    #[error("IP addresses are not allowed; use a domain name")]
    IpLiteral,
    #[error("localhost is not allowed")]
    Localhost,
    #[error("Domain must have at least two labels, e.g. example.com")]
    TooFewLabels,
    #[error("Each label must be 1-{MAX_LABEL_LEN} characters")]
    LabelLength,
    #[error("Labels may contain only a-z, 0-9 and '-' (use punycode for other characters)")]
    LabelCharacters,
    #[error("Labels must not start or end with '-'")]
    LabelHyphen,
    #[error("The top-level label must not be all digits")]
    NumericTopLevel,
}

impl InvalidDomainName {
    /// The field error for member `field` (always `invalid_string`).
    pub fn field_error(&self, field: &str) -> FieldError {
        FieldError::new(field, FieldCode::InvalidString, self.to_string())
    }
}

/// Normalises and validates a domain name (spec domains.md §2): trimmed, lowercased, one trailing
/// `.` removed; 3–253 characters; at least two labels of 1–63 characters of `[a-z0-9-]` that do
/// not start or end with `-`; a top-level label that is not all digits; no IP literal; no
/// `localhost` (nor a name under the reserved `.localhost` top-level domain).
pub fn parse_domain_name(raw: &str) -> Result<String, InvalidDomainName> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let name = trimmed.to_ascii_lowercase();
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(&name);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(InvalidDomainName::IpLiteral);
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.last() == Some(&"localhost") || name == "localhost.localdomain" {
        return Err(InvalidDomainName::Localhost);
    }
    let chars = name.chars().count();
    if !(MIN_DOMAIN_LEN..=MAX_DOMAIN_LEN).contains(&chars) {
        return Err(InvalidDomainName::Length);
    }
    if labels.len() < 2 {
        return Err(InvalidDomainName::TooFewLabels);
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(InvalidDomainName::LabelLength);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(InvalidDomainName::LabelCharacters);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(InvalidDomainName::LabelHyphen);
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(InvalidDomainName::NumericTopLevel);
    }
    Ok(name)
}

/// True when `label` is a valid DNS label by the rules above (e.g. a MAIL FROM label).
pub fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(parse_domain_name("Acme.io").unwrap(), "acme.io");
        assert_eq!(
            parse_domain_name("  MAIL.Acme.IO.  ").unwrap(),
            "mail.acme.io"
        );
        assert_eq!(parse_domain_name("a.io").unwrap(), "a.io");
        assert_eq!(
            parse_domain_name("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(parse_domain_name("1-2.3com").unwrap(), "1-2.3com");
        assert_eq!(
            parse_domain_name("acme.io..").unwrap_err(),
            InvalidDomainName::LabelLength,
            "only one trailing dot is removed"
        );
    }

    #[test]
    fn every_rule_refuses_its_case() {
        use InvalidDomainName::*;
        let long_label = "a".repeat(64);
        let label63 = "a".repeat(63);
        let too_long = format!("{label63}.{label63}.{label63}.{label63}.io"); // 258 chars
        let max_len = format!("{label63}.{label63}.{label63}.{}.io", "a".repeat(58)); // 253
        assert_eq!(max_len.len(), 253);
        assert_eq!(parse_domain_name(&max_len).unwrap(), max_len);
        let cases: Vec<(String, InvalidDomainName)> = vec![
            ("".into(), Length),
            ("   ".into(), Length),
            ("a.".into(), Length),
            ("io".into(), Length),
            ("acme".into(), TooFewLabels),
            (too_long, Length),
            (format!("{long_label}.io"), LabelLength),
            ("acme..io".into(), LabelLength),
            (".acme.io".into(), LabelLength),
            ("ac_me.io".into(), LabelCharacters),
            ("ac me.io".into(), LabelCharacters),
            ("bücher.de".into(), LabelCharacters),
            ("*.acme.io".into(), LabelCharacters),
            ("user@acme.io".into(), LabelCharacters),
            ("acme.io/path".into(), LabelCharacters),
            ("-acme.io".into(), LabelHyphen),
            ("acme-.io".into(), LabelHyphen),
            ("acme.-io".into(), LabelHyphen),
            ("acme.123".into(), NumericTopLevel),
            ("999.999.999.999".into(), NumericTopLevel),
            ("192.168.0.1".into(), IpLiteral),
            ("::1".into(), IpLiteral),
            ("[2001:db8::1]".into(), IpLiteral),
            ("localhost".into(), Localhost),
            ("LocalHost.".into(), Localhost),
            ("app.localhost".into(), Localhost),
            ("localhost.localdomain".into(), Localhost),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_domain_name(&raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn field_errors_are_invalid_string_on_the_member() {
        let e = InvalidDomainName::Localhost.field_error("domain");
        assert_eq!(e.field, "domain");
        assert_eq!(e.code, FieldCode::InvalidString);
    }

    #[test]
    fn records_follow_the_spec_table() {
        let tokens: Vec<String> = ["t1", "t2", "t3"].iter().map(|s| s.to_string()).collect();
        let records = dns_records("acme.io", "mail.acme.io", &tokens, "eu-west-1");
        assert_eq!(records.len(), 6);
        let json = serde_json::to_value(&records).unwrap();
        assert_eq!(
            json[0],
            json!({"type":"CNAME","name":"t1._domainkey.acme.io","value":"t1.dkim.amazonses.com",
                   "priority":null,"purpose":"DKIM","required":true})
        );
        assert_eq!(json[2]["name"], json!("t3._domainkey.acme.io"));
        assert_eq!(
            json[3],
            json!({"type":"MX","name":"mail.acme.io","value":"feedback-smtp.eu-west-1.amazonses.com",
                   "priority":10,"purpose":"MAIL_FROM_MX","required":true})
        );
        assert_eq!(
            json[4],
            json!({"type":"TXT","name":"mail.acme.io","value":"\"v=spf1 include:amazonses.com ~all\"",
                   "priority":null,"purpose":"MAIL_FROM_SPF","required":true})
        );
        assert_eq!(
            json[5],
            json!({"type":"TXT","name":"_dmarc.acme.io","value":"\"v=DMARC1; p=none;\"",
                   "priority":null,"purpose":"DMARC","required":false})
        );
    }

    #[test]
    fn checks_set_verified_at_only_the_first_time() {
        let t0 = Timestamp::parse_rfc3339("2026-03-01T08:00:00Z").unwrap();
        let t1 = Timestamp::parse_rfc3339("2026-03-01T09:00:00Z").unwrap();
        let t2 = Timestamp::parse_rfc3339("2026-03-01T10:00:00Z").unwrap();
        let t3 = Timestamp::parse_rfc3339("2026-03-01T11:00:00Z").unwrap();
        let mut d = Domain::new(
            Uuid::nil(),
            "acme.io".into(),
            "mail.acme.io".into(),
            vec![],
            "eu-west-1".into(),
            t0,
        );
        d.record_check(DomainStatus::Pending, MailFromStatus::Pending, t1);
        assert_eq!(
            (d.verified, d.verified_at, d.last_checked_at),
            (false, None, Some(t1))
        );
        d.record_check(DomainStatus::Verified, MailFromStatus::Success, t2);
        assert_eq!((d.verified, d.verified_at), (true, Some(t2)));
        d.record_check(DomainStatus::TemporaryFailure, MailFromStatus::Success, t3);
        assert!(!d.verified);
        d.record_check(DomainStatus::Verified, MailFromStatus::Success, t3);
        assert_eq!(d.verified_at, Some(t2));
        assert_eq!(d.updated_at, t3);
    }

    #[test]
    fn mail_from_labels() {
        assert!(is_valid_label("mail"));
        assert!(is_valid_label("bounce-1"));
        assert!(!is_valid_label(""));
        assert!(!is_valid_label("-x"));
        assert!(!is_valid_label("Mail"));
        assert!(!is_valid_label("a.b"));
    }
}

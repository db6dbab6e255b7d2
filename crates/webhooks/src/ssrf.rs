//! SSRF rules for outgoing HTTP (webhook URLs, later workflow WEBHOOK steps): which URLs may be saved,
//! which addresses may be connected to, and a resolver that vets every DNS answer and returns the one
//! address the connection must use (so it is not resolved a second time).

use plunk_domain::validation::FieldCode;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// Longest accepted URL, in characters.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRejection {
    /// Not an acceptable URL; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// A literal address in a forbidden range, or a forbidden name such as `localhost`.
    #[error("URL points to a forbidden address")]
    ForbiddenAddress,
}

impl UrlRejection {
    /// The field error code: `forbidden_address` or `invalid_string`.
    pub fn field_code(&self) -> FieldCode {
        match self {
            Self::Invalid(_) => FieldCode::InvalidString,
            Self::ForbiddenAddress => FieldCode::ForbiddenAddress,
        }
    }
}

/// Why an address for a connection was refused or could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VetError {
    /// The host is a forbidden name, or a literal or DNS answer is in a forbidden range.
    #[error("forbidden_address")]
    Forbidden,
    /// The URL has no host or no port.
    #[error("invalid_url: {0}")]
    InvalidUrl(&'static str),
    /// DNS resolution failed.
    #[error("dns_error: {0}")]
    Resolve(String),
    /// DNS returned no address.
    #[error("dns_error: no address")]
    NoAddress,
}

/// Checks a URL at save time: absolute `http`/`https`, at most 2048 characters, no user-info, a host,
/// and no literal forbidden address or forbidden name. Names are not resolved here; that happens
/// before every call ([`resolve_vetted`]).
pub fn validate_url(raw: &str) -> Result<Url, UrlRejection> {
    let raw = raw.trim();
    let too_long =
        || UrlRejection::Invalid(format!("URL must be at most {MAX_URL_LEN} characters"));
    if raw.chars().count() > MAX_URL_LEN {
        return Err(too_long());
    }
    let url = Url::parse(raw).map_err(|_| UrlRejection::Invalid("Invalid URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRejection::Invalid("URL must use http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRejection::Invalid(
            "URL must not contain user information".into(),
        ));
    }
    // Normalisation (IDNA, percent-encoding) can lengthen the URL that will actually be stored.
    if url.as_str().chars().count() > MAX_URL_LEN {
        return Err(too_long());
    }
    match url.host() {
        None => return Err(UrlRejection::Invalid("URL must have a host".into())),
        Some(Host::Ipv4(ip)) if is_forbidden_ip(IpAddr::V4(ip)) => {
            return Err(UrlRejection::ForbiddenAddress)
        }
        Some(Host::Ipv6(ip)) if is_forbidden_ip(IpAddr::V6(ip)) => {
            return Err(UrlRejection::ForbiddenAddress)
        }
        Some(Host::Domain(name)) if is_forbidden_host_name(name) => {
            return Err(UrlRejection::ForbiddenAddress)
        }
        Some(_) => {}
    }
    Ok(url)
}

/// Whether `name` is refused by name alone: `localhost`, `*.localhost`, `*.local`, `*.internal`
/// (case-insensitive, trailing dots ignored). The bare single labels `local` and `internal` are
/// refused too.
pub fn is_forbidden_host_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    ["localhost", "local", "internal"]
        .iter()
        .any(|suffix| name == *suffix || name.ends_with(&format!(".{suffix}")))
}

/// IPv4 ranges that must never be connected to.
const FORBIDDEN_V4: [(Ipv4Addr, u8); 14] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation TEST-NET-1
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation TEST-NET-2
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation TEST-NET-3
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, including broadcast
];

/// IPv6 ranges that must never be connected to, besides the IPv4-embedding
/// forms handled in [`is_forbidden_ip`].
const FORBIDDEN_V6: [(Ipv6Addr, u8); 7] = [
    (Ipv6Addr::UNSPECIFIED, 128),                         // ::
    (Ipv6Addr::LOCALHOST, 128),                           // ::1
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),      // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),     // link-local
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),      // multicast
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    // Local-use NAT64 (RFC 8215): not globally routable, and its IPv4 embedding depends on the
    // deployment, so the whole block is refused rather than decoded.
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The IPv4 addresses an IPv6 address carries, which a relay or translator would connect to:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), the NAT64 well-known prefix
/// (`64:ff9b::/96`) and deprecated IPv4-compatible (`::/96`) forms carry it in the low 32 bits;
/// 6to4 (`2002::/16`) in the 32 bits after the prefix; Teredo (`2001::/32`) carries its server in
/// bits 32–63 and its client, inverted, in the low 32 bits.
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let low_prefixes = [
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
        (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
        (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
        (Ipv6Addr::UNSPECIFIED, 96),
    ];
    let mut found = Vec::new();
    if low_prefixes
        .iter()
        .any(|(net, prefix)| in_v6(ip, *net, *prefix))
    {
        found.push(low);
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        found.push(Ipv4Addr::from((bits >> 80) as u32));
    }
    if in_v6(ip, Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32) {
        found.push(Ipv4Addr::from((bits >> 64) as u32));
        found.push(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32)));
    }
    found
}

/// Whether a connection to `ip` is forbidden: every forbidden range, including the IPv4 ranges in
/// each IPv6 form that carries an IPv4 address (see [`embedded_v4`]).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => FORBIDDEN_V4
            .iter()
            .any(|(net, prefix)| in_v4(v4, *net, *prefix)),
        IpAddr::V6(v6) => {
            FORBIDDEN_V6
                .iter()
                .any(|(net, prefix)| in_v6(v6, *net, *prefix))
                || embedded_v4(v6)
                    .into_iter()
                    .any(|v4| is_forbidden_ip(IpAddr::V4(v4)))
        }
    }
}

/// Resolves the URL's host and returns the address to connect to. Unless `allow_private`, a
/// forbidden name, a forbidden literal, or ANY forbidden DNS answer refuses the whole host (a name
/// with one public and one private answer could otherwise be steered to the private one).
/// IPv4 answers are preferred, since serverless runtimes often lack IPv6 egress.
pub async fn resolve_vetted(url: &Url, allow_private: bool) -> Result<SocketAddr, VetError> {
    let port = url
        .port_or_known_default()
        .ok_or(VetError::InvalidUrl("no port"))?;
    let vet = |ip: IpAddr| {
        if !allow_private && is_forbidden_ip(ip) {
            Err(VetError::Forbidden)
        } else {
            Ok(SocketAddr::new(ip, port))
        }
    };
    match url.host() {
        None => Err(VetError::InvalidUrl("no host")),
        Some(Host::Ipv4(ip)) => vet(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => vet(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            if !allow_private && is_forbidden_host_name(name) {
                return Err(VetError::Forbidden);
            }
            let answers: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| VetError::Resolve(e.to_string()))?
                .collect();
            pick_vetted(&answers, allow_private)
        }
    }
}

/// Chooses the address to connect to among DNS answers: refused if ANY answer is forbidden (unless
/// `allow_private`), otherwise the first IPv4 answer, else the first answer.
pub fn pick_vetted(answers: &[SocketAddr], allow_private: bool) -> Result<SocketAddr, VetError> {
    if !allow_private && answers.iter().any(|a| is_forbidden_ip(a.ip())) {
        return Err(VetError::Forbidden);
    }
    answers
        .iter()
        .find(|a| a.is_ipv4())
        .or(answers.first())
        .copied()
        .ok_or(VetError::NoAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every range edge: the first and last address inside, and the neighbours just outside.
    #[test]
    fn ipv4_ranges_are_forbidden_exactly_to_their_edges() {
        let table: [(&str, bool); 52] = [
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("126.255.255.255", false),
            ("127.0.0.0", true),
            ("127.0.0.1", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.254.255.255", true),
            ("169.255.0.0", false),
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("191.255.255.255", false),
            ("192.0.0.0", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            ("192.0.2.0", true),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            ("192.167.255.255", false),
            ("192.168.0.0", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.99.255", false),
            ("198.51.100.0", true),
            ("198.51.100.255", true),
            ("198.51.101.0", false),
            ("203.0.112.255", false),
            ("203.0.113.0", true),
            ("203.0.113.255", true),
            ("203.0.114.0", false),
            ("223.255.255.255", false),
            ("224.0.0.0", true),
            ("239.255.255.255", true),
            ("255.255.255.255", true),
        ];
        for (addr, forbidden) in table {
            assert_eq!(is_forbidden_ip(ip(addr)), forbidden, "{addr}");
        }
        assert!(is_forbidden_ip(ip("240.0.0.0")));
        for public in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "52.95.110.1"] {
            assert!(!is_forbidden_ip(ip(public)), "{public}");
        }
    }

    #[test]
    fn ipv6_ranges_are_forbidden_exactly_to_their_edges() {
        let table = [
            ("::", true),
            ("::1", true),
            ("::2", true), // IPv4-compatible 0.0.0.2, inside 0/8
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fc00::", true),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fe00::", false),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fe80::", true),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fec0::", false),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("ff00::", true),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db8::", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("64:ff9b:1::", true),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true),
            ("64:ff9b:2::", false),
            ("2606:4700:4700::1111", false),
            ("2a00:1450:4001:82a::200e", false),
        ];
        for (addr, forbidden) in table {
            assert_eq!(is_forbidden_ip(ip(addr)), forbidden, "{addr}");
        }
    }

    #[test]
    fn ipv4_embedded_in_ipv6_follows_the_ipv4_rules() {
        let table = [
            // IPv4-mapped
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.1.2.3", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:9.255.255.255", false),
            ("::ffff:8.8.8.8", false),
            // NAT64 well-known prefix
            ("64:ff9b::127.0.0.1", true),
            ("64:ff9b::192.168.1.1", true),
            ("64:ff9b::100.64.0.0", true),
            ("64:ff9b::8.8.8.8", false),
            // just outside the NAT64 /96: not decoded, and public
            ("64:ff9b:0:0:0:1:7f00:1", false),
            // deprecated IPv4-compatible
            ("::127.0.0.1", true),
            ("::10.0.0.1", true),
            ("::8.8.8.8", false),
            // just outside the mapped /96
            ("::fffe:7f00:1", false),
            // IPv4-translated
            ("::ffff:0:127.0.0.1", true),
            ("::ffff:0:8.8.8.8", false),
            // 6to4: the IPv4 address after 2002:
            ("2002:7f00:1::", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:c0a8:101:1::1", true),
            ("2002:808:808::1", false),
            // Teredo: the server, and the client inverted
            ("2001:0:7f00:1::", true),
            ("2001:0:808:808:0:0:80ff:fffe", true),
            ("2001:0:808:808:0:0:f7f7:f7f7", false),
        ];
        for (addr, forbidden) in table {
            assert_eq!(is_forbidden_ip(ip(addr)), forbidden, "{addr}");
        }
    }

    #[test]
    fn forbidden_names_are_recognised() {
        for name in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "api.localhost",
            "printer.local",
            "db.corp.internal",
            "metadata.google.internal",
            "local",
            "internal",
        ] {
            assert!(is_forbidden_host_name(name), "{name}");
        }
        for name in [
            "example.com",
            "localhost.example.com",
            "mylocal",
            "local.example.com",
            "internal.example.com",
            "notinternal",
        ] {
            assert!(!is_forbidden_host_name(name), "{name}");
        }
    }

    #[test]
    fn save_time_accepts_public_http_and_https_urls() {
        for raw in [
            "https://hooks.acme.io/plunk",
            "http://example.com:8080/a?b=c",
            "https://8.8.8.8/hook",
            "https://[2606:4700:4700::1111]/hook",
            "  https://example.com/padded  ",
        ] {
            assert!(validate_url(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn save_time_refuses_forbidden_literals_and_names() {
        for raw in [
            "http://10.0.0.5/hook",
            "http://169.254.169.254/latest",
            "http://127.0.0.1:8080/",
            "http://2130706433/", // decimal form of 127.0.0.1
            "http://0x7f.0.0.1/", // hex form
            "http://127.1/",      // short form
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[fe80::1]/",
            "http://localhost/",
            "http://LocalHost:3000/",
            "http://app.localhost/",
            "http://nas.local/",
            "http://metadata.google.internal/",
        ] {
            assert_eq!(
                validate_url(raw),
                Err(UrlRejection::ForbiddenAddress),
                "{raw}"
            );
        }
        assert_eq!(
            UrlRejection::ForbiddenAddress.field_code(),
            FieldCode::ForbiddenAddress
        );
    }

    #[test]
    fn save_time_refuses_malformed_urls_as_invalid() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for raw in [
            "",
            "not a url",
            "/relative/path",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "https://",
            "https://:443/",
            long.as_str(),
        ] {
            let got = validate_url(raw);
            assert!(
                matches!(got, Err(UrlRejection::Invalid(_))),
                "{raw}: {got:?}"
            );
        }
        let exact = format!(
            "https://e.io/{}",
            "a".repeat(MAX_URL_LEN - "https://e.io/".len())
        );
        assert!(validate_url(&exact).is_ok());
        assert!(validate_url(&format!("{exact}a")).is_err());
    }

    #[tokio::test]
    async fn resolution_refuses_forbidden_literals_unless_private_is_allowed() {
        let url = Url::parse("http://127.0.0.1:9/x").unwrap();
        assert_eq!(resolve_vetted(&url, false).await, Err(VetError::Forbidden));
        assert_eq!(
            resolve_vetted(&url, true).await,
            Ok("127.0.0.1:9".parse().unwrap())
        );
        let v6 = Url::parse("http://[::1]/").unwrap();
        assert_eq!(resolve_vetted(&v6, false).await, Err(VetError::Forbidden));
        assert_eq!(
            resolve_vetted(&v6, true).await,
            Ok("[::1]:80".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn resolution_refuses_forbidden_names_before_any_lookup() {
        let url = Url::parse("https://localhost/").unwrap();
        assert_eq!(resolve_vetted(&url, false).await, Err(VetError::Forbidden));
    }

    #[tokio::test]
    async fn public_literals_resolve_to_themselves_with_the_default_port() {
        let url = Url::parse("https://8.8.8.8/hook").unwrap();
        assert_eq!(
            resolve_vetted(&url, false).await,
            Ok("8.8.8.8:443".parse().unwrap())
        );
    }

    #[test]
    fn one_forbidden_dns_answer_refuses_the_whole_name() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let public4 = a("93.184.216.34:443");
        let public6 = a("[2606:4700::1]:443");
        let table: [(Vec<SocketAddr>, bool, Result<SocketAddr, VetError>); 7] = [
            (vec![public4], false, Ok(public4)),
            (vec![public6, public4], false, Ok(public4)),
            (vec![public6], false, Ok(public6)),
            (
                vec![public4, a("10.0.0.1:443")],
                false,
                Err(VetError::Forbidden),
            ),
            (
                vec![a("[::ffff:127.0.0.1]:443"), public4],
                false,
                Err(VetError::Forbidden),
            ),
            (
                vec![a("127.0.0.1:443"), public4],
                true,
                Ok(a("127.0.0.1:443")),
            ),
            (vec![], false, Err(VetError::NoAddress)),
        ];
        for (answers, allow_private, expected) in table {
            assert_eq!(
                pick_vetted(&answers, allow_private),
                expected,
                "{answers:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_forbidden_name_resolves_when_private_addresses_are_allowed() {
        // Shows the refusal above comes from the rules, not from a failing lookup: `localhost`
        // resolves through the system resolver without any network.
        let url = Url::parse("http://localhost:8080/").unwrap();
        let addr = resolve_vetted(&url, true).await.unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 8080);
    }
}

//! SMTP mailer: delivers to any SMTP server through lettre's async tokio transport (pooled
//! connections), sending the bytes built by [`super::mime`] with the envelope `from.email` →
//! `to.email`.
//!
//! Server URL: `smtp://[user[:password]@]host[:port][?tls=starttls|opportunistic|none]` or
//! `smtps://…` (TLS from the first byte, default port 465). For `smtp://` the default is
//! `opportunistic` (STARTTLS when offered) on port 25; `tls=starttls` requires STARTTLS and
//! defaults to port 587; `tls=none` never encrypts. User and password are percent-decoded.
//! Credentials are never logged nor shown by `Debug`.
//!
//! Errors: a 5xx reply is [`MailError::Permanent`]; a 4xx reply, a refused or broken connection,
//! a timeout or a TLS failure is [`MailError::Transient`].

use super::{mime, MailError, Mailer, OutgoingEmail};
use async_trait::async_trait;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Time allowed for each SMTP command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// An invalid SMTP server URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMTP URL: {0}")]
pub struct SmtpUrlError(String);

/// Sends through one SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    builder: AsyncSmtpTransportBuilder,
    /// Built on the first send: the connection pool needs a running tokio runtime.
    transport: Arc<OnceLock<AsyncSmtpTransport<Tokio1Executor>>>,
    /// `scheme://host:port`, for logs and `Debug` (no credentials).
    target: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// TLS from the first byte (`smtps://`).
    Wrapper,
    /// STARTTLS required.
    StartTls,
    /// STARTTLS when the server offers it.
    Opportunistic,
    None,
}

/// The parts of a server URL.
#[derive(Debug, PartialEq, Eq)]
struct ServerUrl {
    tls: TlsMode,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl SmtpMailer {
    /// Connects lazily to the server named by `url` (see the module docs for the forms).
    pub fn from_url(url: &str) -> Result<Self, SmtpUrlError> {
        let server = parse_url(url)?;
        let target = format!(
            "{}://{}:{}",
            if server.tls == TlsMode::Wrapper {
                "smtps"
            } else {
                "smtp"
            },
            server.host,
            server.port
        );
        let tls_params = || {
            TlsParameters::new(server.host.clone())
                .map_err(|e| SmtpUrlError(format!("TLS setup for {}: {e}", server.host)))
        };
        let tls = match server.tls {
            TlsMode::Wrapper => Tls::Wrapper(tls_params()?),
            TlsMode::StartTls => Tls::Required(tls_params()?),
            TlsMode::Opportunistic => Tls::Opportunistic(tls_params()?),
            TlsMode::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host.as_str())
                .port(server.port)
                .tls(tls)
                .timeout(Some(COMMAND_TIMEOUT));
        if let Some((user, password)) = server.credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            builder,
            transport: Arc::default(),
            target,
        })
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    /// Returns the message's `Message-ID` (without angle brackets).
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let parse = |role: &str, address: &str| {
            address
                .parse::<Address>()
                .map_err(|e| MailError::Permanent(format!("invalid {role} address: {e}")))
        };
        let envelope = Envelope::new(
            Some(parse("sender", &email.from.email)?),
            vec![parse("recipient", &email.to.email)?],
        )
        .map_err(|e| MailError::Permanent(format!("invalid envelope: {e}")))?;
        let built = mime::build(email);
        self.transport()
            .send_raw(&envelope, &built.bytes)
            .await
            .map_err(|e| classify(&e))?;
        tracing::debug!(email_id = %email.email_id, server = %self.target, "message sent over SMTP");
        Ok(built.message_id)
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> MailError {
    let text = format!("SMTP: {e}");
    if e.is_permanent() {
        MailError::Permanent(text)
    } else {
        MailError::Transient(text)
    }
}

fn parse_url(url: &str) -> Result<ServerUrl, SmtpUrlError> {
    let err = |m: &str| SmtpUrlError(m.to_string());
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| err("expected smtp://… or smtps://…"))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or_default();

    let mut tls_param = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", value)) => tls_param = Some(value.to_ascii_lowercase()),
            _ => return Err(SmtpUrlError(format!("unknown parameter {pair:?}"))),
        }
    }
    let tls = match (scheme.to_ascii_lowercase().as_str(), tls_param.as_deref()) {
        ("smtps", None | Some("tls" | "wrapper" | "implicit")) => TlsMode::Wrapper,
        ("smtp", None | Some("opportunistic")) => TlsMode::Opportunistic,
        ("smtp", Some("starttls" | "required")) => TlsMode::StartTls,
        ("smtp", Some("none" | "off" | "false")) => TlsMode::None,
        ("smtp" | "smtps", Some(other)) => {
            return Err(SmtpUrlError(format!(
                "tls={other} (expected starttls, opportunistic or none)"
            )))
        }
        (other, _) => return Err(SmtpUrlError(format!("unknown scheme {other:?}"))),
    };

    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| err("unclosed [ in host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(err("missing host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| SmtpUrlError(format!("invalid port {p:?}")))?,
        None => match tls {
            TlsMode::Wrapper => 465,
            TlsMode::StartTls => 587,
            TlsMode::Opportunistic | TlsMode::None => 25,
        },
    };
    let credentials = match userinfo {
        Some(u) => {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            Some((percent_decode(user)?, percent_decode(password)?))
        }
        None => None,
    };
    Ok(ServerUrl {
        tls,
        host: host.to_string(),
        port,
        credentials,
    })
}

fn percent_decode(s: &str) -> Result<String, SmtpUrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| SmtpUrlError("invalid percent-encoding in credentials".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SmtpUrlError("credentials are not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ServerUrl {
        parse_url(s).unwrap()
    }

    #[test]
    fn smtp_urls_default_to_opportunistic_tls_on_port_25() {
        assert_eq!(
            url("smtp://mail.example.com"),
            ServerUrl {
                tls: TlsMode::Opportunistic,
                host: "mail.example.com".into(),
                port: 25,
                credentials: None
            }
        );
    }

    #[test]
    fn the_tls_parameter_selects_starttls_or_plain_text() {
        let u = url("smtp://user:p%40ss%3Aword@mail.example.com?tls=starttls");
        assert_eq!((u.tls, u.port), (TlsMode::StartTls, 587));
        assert_eq!(u.credentials, Some(("user".into(), "p@ss:word".into())));
        let u = url("smtp://127.0.0.1:2525?tls=none");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (TlsMode::None, "127.0.0.1", 2525)
        );
        let u = url("smtp://[::1]:2525/?tls=none");
        assert_eq!((u.host.as_str(), u.port), ("::1", 2525));
    }

    #[test]
    fn smtps_urls_use_tls_from_the_first_byte_on_port_465() {
        let u = url("smtps://apikey:secret@smtp.example.com");
        assert_eq!((u.tls, u.port), (TlsMode::Wrapper, 465));
        assert_eq!(u.credentials, Some(("apikey".into(), "secret".into())));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        for bad in [
            "http://host",
            "smtp://",
            "smtp://host:99999",
            "smtp://host?tls=maybe",
            "smtp://host?foo=bar",
            "mail.example.com",
            "smtp://u:%zz@host",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = SmtpMailer::from_url("smtp://user:hunter2@host:notaport").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn debug_output_hides_credentials() {
        let m = SmtpMailer::from_url("smtp://user:hunter2@127.0.0.1:2525?tls=none").unwrap();
        let shown = format!("{m:?}");
        assert!(shown.contains("smtp://127.0.0.1:2525"), "{shown}");
        assert!(!shown.contains("hunter2"));
    }
}

//! Validation authority (VA): proves control of identifiers and checks CAA.
//!
//! * `http-01` (RFC 8555 §8.3, RFC 8738 §4 for IP identifiers): see `http01`.
//! * `dns-01` (RFC 8555 §8.4): see `dns01`.
//! * tenant domains by `dns-01` or `dns-persist-01` (issue 17): see [`Va::check_domain_control`].
//! * `tls-alpn-01` (RFC 8737, RFC 8738 §6 for IP identifiers): see `tlsalpn01`.
//! * CAA (RFC 8659 with the RFC 8657 `accounturi` / `validationmethods` parameters): see `caa`.
//!
//! Every DNS lookup goes through one hickory resolver with its cache turned off, so each
//! validation sees the records as they are now. Every address the VA would connect to (after
//! DNS, for each http-01 hop and for tls-alpn-01) is checked by [`AddressPolicy`] first:
//! loopback, link-local, metadata endpoints and the like are refused unless the operator
//! allows them (see [`address`]), and the connection goes to the checked address itself.
//!
//! Problem details never repeat what a remote server sent (bodies, headers, Location, TXT
//! values, certificate names): a status, a count and a fixed reason only.
//!
//! Error mapping (each [`ValidationError`] variant is exactly one ACME problem type):
//! * `unauthorized`: nothing was provisioned where the challenge says it must be (no TXT record
//!   at `_acme-challenge.<name>`, an HTTP status other than 200, a TLS server that does not speak
//!   `acme-tls/1`);
//! * `incorrectResponse`: something was provisioned but it is wrong (body, TXT value, certificate
//!   SAN or acmeIdentifier value);
//! * `dns`: SERVFAIL, timeouts, no A/AAAA record;
//! * `connection`: TCP failures, timeouts talking to the server, forbidden redirects,
//!   addresses the [`AddressPolicy`] refuses (the detail names only their class);
//! * `tls`: TLS handshake failures;
//! * `caa`: CAA forbids issuance;
//! * `malformed`: the request itself cannot be validated (wildcard with http-01, dns-01 for an IP).

pub mod address;
mod caa;
mod dns;
mod dns01;
mod domain;
mod http01;
pub mod mpic;
mod tls;
mod tlsalpn01;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use address::{AddressClass, AddressPolicy};
pub use domain::{persist_record, txt_name, DomainCheck, DomainEvidence, DomainProof};

/// Configuration of the validation authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaConfig {
    /// DNS server to ask (UDP, falling back to TCP). `None`: the `nameserver` lines of
    /// `/etc/resolv.conf`.
    pub dns_resolver: Option<SocketAddr>,
    /// Port for http-01 (80; another value only in a lab).
    pub http01_port: u16,
    /// Port for tls-alpn-01 and for `https` redirects of http-01 (443; another value only in a lab).
    pub tlsalpn01_port: u16,
    /// Budget for one challenge validation (DNS + connect + response) and, separately, for the
    /// CAA check.
    pub timeout: Duration,
    /// How many HTTP redirects http-01 follows (10).
    pub max_http_redirects: usize,
    /// Which addresses may be contacted (`serve --va-allow-address` / `--va-deny-address`).
    pub addresses: AddressPolicy,
}

impl Default for VaConfig {
    fn default() -> Self {
        VaConfig {
            dns_resolver: None,
            http01_port: 80,
            tlsalpn01_port: 443,
            timeout: Duration::from_secs(10),
            max_http_redirects: 10,
            addresses: AddressPolicy::default(),
        }
    }
}

/// The identifier being validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// A DNS name: lower-case A-label form, without a wildcard prefix.
    Dns(String),
    /// An IP address (RFC 8738).
    Ip(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Dns(n) => f.write_str(n),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Challenge types the VA can validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeKind {
    /// `http-01` (RFC 8555 §8.3).
    #[serde(rename = "http-01")]
    Http01,
    /// `dns-01` (RFC 8555 §8.4).
    #[serde(rename = "dns-01")]
    Dns01,
    /// `tls-alpn-01` (RFC 8737).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// `dns-persist-01` (draft-ietf-acme-dns-persist): proves tenant domains only
    /// ([`Va::check_domain_control`]), never an ACME challenge here.
    #[serde(rename = "dns-persist-01")]
    DnsPersist01,
}

impl ChallengeKind {
    /// The ACME challenge type name, also the RFC 8657 `validationmethods` label.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::DnsPersist01 => "dns-persist-01",
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationRequest {
    /// The identifier.
    pub target: Target,
    /// The order asked for `*.` + the name (only dns-01 can prove that).
    pub wildcard: bool,
    /// Which challenge the client answered.
    pub kind: ChallengeKind,
    /// The challenge token (base64url).
    pub token: String,
    /// `token || "." || base64url(JWK thumbprint)`.
    pub key_authorization: String,
    /// The account URL, for the RFC 8657 `accounturi` CAA parameter.
    pub account_uri: String,
    /// The CAA issuer domain names of the tenant the validation is for (its
    /// `meta.caaIdentities`, RFC 8555 §7.1.1): each tenant is its own CA to domain owners.
    /// CAA is always checked: with an empty list no `issue` property can match, so any CAA
    /// `issue` record forbids issuance.
    pub caa_identities: Vec<String>,
    /// The names the tenant may issue for (its issuing CA's permitted subtrees): besides the
    /// identifier's own host, the only hosts an http-01 redirect may lead to.
    pub permitted: pki::Permitted,
}

/// One HTTP request made during http-01 (the first one, then one per redirect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHop {
    /// The URL requested.
    pub url: String,
    /// Its host (name or IP literal).
    pub hostname: String,
    /// The TCP port.
    pub port: u16,
    /// Addresses DNS returned for the host (or the literal), IPv6 first.
    pub addresses_resolved: Vec<IpAddr>,
    /// The address the request went to.
    pub address_used: Option<IpAddr>,
    /// The HTTP status received.
    pub status: Option<u16>,
}

/// What the VA contacted, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The challenge type validated.
    pub kind: ChallengeKind,
    /// The identifier (name or IP literal).
    pub identifier: String,
    /// Host first contacted (the name, or the IP literal), or for dns-01 the TXT name queried.
    pub hostname: String,
    /// Port first contacted (none for dns-01).
    pub port: Option<u16>,
    /// Addresses DNS returned for `hostname` (IPv6 first).
    pub addresses_resolved: Vec<IpAddr>,
    /// Address of the first connection that answered.
    pub address_used: Option<IpAddr>,
    /// URLs requested, in order (http-01).
    pub urls: Vec<String>,
    /// Per-request detail of http-01, redirects included.
    pub hops: Vec<HttpHop>,
    /// TLS SNI sent (tls-alpn-01).
    pub sni: Option<String>,
    /// CAA was checked and allows issuance (always for DNS names; never for IPs).
    pub caa_checked: bool,
    /// What the remote network perspectives answered (BR §3.2.2.9), when any are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpic: Option<mpic::Corroboration>,
}

impl ValidationRecord {
    fn new(kind: ChallengeKind, target: &Target) -> Self {
        ValidationRecord {
            kind,
            identifier: target.to_string(),
            hostname: target.to_string(),
            port: None,
            addresses_resolved: Vec::new(),
            address_used: None,
            urls: Vec::new(),
            hops: Vec::new(),
            sni: None,
            caa_checked: false,
            mpic: None,
        }
    }
}

/// Why a validation failed; each variant is exactly one ACME problem type (see
/// [`ValidationError::acme_type`]). The text is meant for the device owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `dns`: a DNS lookup failed (SERVFAIL, timeout, no address records).
    #[error("DNS problem: {0}")]
    Dns(String),
    /// `connection`: could not talk to the server (refused, reset, timeout, forbidden redirect).
    #[error("connection problem: {0}")]
    Connection(String),
    /// `incorrectResponse`: the server answered with the wrong content.
    #[error("incorrect response: {0}")]
    IncorrectResponse(String),
    /// `unauthorized`: the expected response was not provisioned.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// `tls`: the TLS handshake failed.
    #[error("TLS problem: {0}")]
    Tls(String),
    /// `caa`: CAA records forbid issuance.
    #[error("CAA forbids issuance: {0}")]
    Caa(String),
    /// `malformed`: the request cannot be validated this way.
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl ValidationError {
    /// The ACME problem type short name (`urn:ietf:params:acme:error:` + this).
    pub fn acme_type(&self) -> &'static str {
        match self {
            ValidationError::Dns(_) => "dns",
            ValidationError::Connection(_) => "connection",
            ValidationError::IncorrectResponse(_) => "incorrectResponse",
            ValidationError::Unauthorized(_) => "unauthorized",
            ValidationError::Tls(_) => "tls",
            ValidationError::Caa(_) => "caa",
            ValidationError::Malformed(_) => "malformed",
        }
    }

    /// The detail text without the category prefix.
    pub fn detail(&self) -> &str {
        match self {
            ValidationError::Dns(s)
            | ValidationError::Connection(s)
            | ValidationError::IncorrectResponse(s)
            | ValidationError::Unauthorized(s)
            | ValidationError::Tls(s)
            | ValidationError::Caa(s)
            | ValidationError::Malformed(s) => s,
        }
    }
}

/// The VA could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VaError {
    /// The DNS resolver configuration is unusable.
    #[error("VA resolver configuration: {0}")]
    Resolver(String),
    /// The TLS client configuration could not be built.
    #[error("VA TLS configuration: {0}")]
    Tls(String),
}

/// The validation authority. Cheap to clone.
#[derive(Clone)]
pub struct Va {
    inner: Arc<Inner>,
    /// Remote network perspectives that must corroborate every result (none: this VA decides
    /// alone, as a perspective itself does).
    perspectives: Option<Arc<mpic::Perspectives>>,
}

impl fmt::Debug for Va {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Va")
            .field("cfg", &self.inner.cfg)
            .field("perspectives", &self.perspectives)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) cfg: VaConfig,
    pub(crate) resolver: dns::VaResolver,
    pub(crate) tls: tls::TlsClients,
}

impl Va {
    /// Builds the VA (resolver without cache, TLS clients). Needs no runtime.
    pub fn new(cfg: VaConfig) -> Result<Va, VaError> {
        let resolver = dns::VaResolver::new(cfg.dns_resolver, cfg.timeout)?;
        let tls = tls::TlsClients::new()?;
        Ok(Va {
            inner: Arc::new(Inner { cfg, resolver, tls }),
            perspectives: None,
        })
    }

    /// This VA as a primary: every validation and CAA check must then be corroborated by
    /// `perspectives` (an empty list turns corroboration off).
    pub fn with_perspectives(mut self, perspectives: mpic::Perspectives) -> Va {
        self.perspectives = (!perspectives.is_empty()).then(|| Arc::new(perspectives));
        self
    }

    /// The remote perspectives configured, if any.
    pub fn perspectives(&self) -> Option<&mpic::Perspectives> {
        self.perspectives.as_deref()
    }

    /// The configuration in use.
    pub fn config(&self) -> &VaConfig {
        &self.inner.cfg
    }

    /// Validates one challenge; for DNS names, then checks CAA (RFC 8659) for the method used;
    /// then has the remote perspectives corroborate both (BR §3.2.2.9) when any are configured.
    pub async fn validate(
        &self,
        req: &ValidationRequest,
    ) -> Result<ValidationRecord, ValidationError> {
        self.validate_audited(req).await.0
    }

    /// [`Va::validate`], also returning the corroboration evidence when the perspectives were
    /// asked (whether or not they corroborated): the caller stores it as the audit record.
    pub async fn validate_audited(
        &self,
        req: &ValidationRequest,
    ) -> (
        Result<ValidationRecord, ValidationError>,
        Option<mpic::Corroboration>,
    ) {
        let mut record = match self.validate_here(req).await {
            Ok(r) => r,
            Err(e) => return (Err(e), None),
        };
        let Some(evidence) = self.corroborate(&mpic::Check::challenge(req)).await else {
            return (Ok(record), None);
        };
        if !evidence.corroborated {
            return (Err(evidence.to_error()), Some(evidence));
        }
        record.mpic = Some(evidence.clone());
        (Ok(record), Some(evidence))
    }

    /// Asks the remote perspectives to make `check` (the primary's own check is the caller's);
    /// `None` when no perspectives are configured.
    pub async fn corroborate(&self, check: &mpic::Check) -> Option<mpic::Corroboration> {
        let p = self.perspectives.as_ref()?;
        Some(p.corroborate(check).await)
    }

    /// A TXT record at `name` must hold exactly `expected` (a proof of control placed for
    /// something other than a challenge), here and, when configured, at the perspectives.
    pub async fn check_dns_txt(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Option<mpic::Corroboration>, ValidationError> {
        self.check_dns_txt_here(name, expected).await?;
        let check = mpic::Check::DnsTxt {
            name: name.to_string(),
            expected: expected.to_string(),
        };
        match self.corroborate(&check).await {
            Some(ev) if !ev.corroborated => Err(ev.to_error()),
            other => Ok(other),
        }
    }

    /// [`Va::check_dns_txt`] from this network only.
    pub async fn check_dns_txt_here(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<(), ValidationError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        // Owner names of proof records start with an underscore label (`_acme-challenge`).
        let labels: Vec<&str> = name
            .split('.')
            .map(|l| l.strip_prefix('_').unwrap_or(l))
            .collect();
        check_dns_name(&labels.join("."))?;
        match tokio::time::timeout(
            self.inner.cfg.timeout,
            dns01::check_txt(&self.inner, &name, expected),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ValidationError::Dns(format!(
                "TXT lookup for {name} did not finish within {:?}",
                self.inner.cfg.timeout
            ))),
        }
    }

    /// [`Va::validate`] from this network only (what a perspective does).
    pub async fn validate_here(
        &self,
        req: &ValidationRequest,
    ) -> Result<ValidationRecord, ValidationError> {
        check_request(req)?;
        let inner = &*self.inner;
        let budget = inner.cfg.timeout;
        let deadline = tokio::time::Instant::now() + budget;
        let work = async {
            match req.kind {
                ChallengeKind::Http01 => {
                    http01::validate(
                        inner,
                        &req.target,
                        &req.token,
                        &req.key_authorization,
                        &req.permitted,
                        deadline,
                    )
                    .await
                }
                ChallengeKind::Dns01 => match &req.target {
                    Target::Dns(name) => dns01::validate(inner, name, &req.key_authorization).await,
                    Target::Ip(_) => unreachable!("rejected by check_request"),
                },
                ChallengeKind::TlsAlpn01 => {
                    tlsalpn01::validate(inner, &req.target, &req.key_authorization, deadline).await
                }
                ChallengeKind::DnsPersist01 => Err(ValidationError::Malformed(
                    "dns-persist-01 proves tenant domains, not challenges".into(),
                )),
            }
        };
        // Each step has its own deadline; this outer bound is a safety net only.
        let mut record = match tokio::time::timeout(budget + Duration::from_millis(250), work).await
        {
            Ok(r) => r?,
            Err(_) => {
                let msg = format!(
                    "{}: {} validation did not finish within {:?}",
                    req.target, req.kind, budget
                );
                return Err(match req.kind {
                    ChallengeKind::Dns01 => ValidationError::Dns(msg),
                    _ => ValidationError::Connection(msg),
                });
            }
        };
        if let Target::Dns(name) = &req.target {
            self.check_caa_here(
                name,
                req.wildcard,
                &req.account_uri,
                req.kind,
                &req.caa_identities,
            )
            .await?;
            record.caa_checked = true;
        }
        tracing::debug!(identifier = %req.target, kind = %req.kind, "validation succeeded");
        Ok(record)
    }

    /// RFC 8659 CAA check for `name` (without `*.`; `wildcard` selects `issuewild`), with the
    /// RFC 8657 `accounturi` and `validationmethods` parameters, for the CA known to domain
    /// owners by `identities` (the tenant's `caaIdentities`). Fails closed on DNS errors.
    /// When perspectives are configured they must corroborate that CAA allows issuance.
    pub async fn check_caa(
        &self,
        name: &str,
        wildcard: bool,
        account_uri: &str,
        method: ChallengeKind,
        identities: &[String],
    ) -> Result<(), ValidationError> {
        self.check_caa_here(name, wildcard, account_uri, method, identities)
            .await?;
        let check = mpic::Check::Caa {
            name: name.to_string(),
            wildcard,
            account_uri: account_uri.to_string(),
            method,
            caa_identities: identities.to_vec(),
        };
        match self.corroborate(&check).await {
            Some(ev) if !ev.corroborated => Err(ev.to_error()),
            _ => Ok(()),
        }
    }

    /// [`Va::check_caa`] from this network only.
    pub async fn check_caa_here(
        &self,
        name: &str,
        wildcard: bool,
        account_uri: &str,
        method: ChallengeKind,
        identities: &[String],
    ) -> Result<(), ValidationError> {
        let (name, wildcard) = match name.strip_prefix("*.") {
            Some(base) => (base, true),
            None => (name, wildcard),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        check_dns_name(&name)?;
        let budget = self.inner.cfg.timeout;
        match tokio::time::timeout(
            budget,
            caa::check(
                &self.inner,
                &name,
                wildcard,
                account_uri,
                method,
                identities,
            ),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ValidationError::Dns(format!(
                "CAA lookup for {name} did not finish within {budget:?}; issuance is not allowed \
                 while CAA cannot be checked"
            ))),
        }
    }
}

fn check_request(req: &ValidationRequest) -> Result<(), ValidationError> {
    match (&req.target, req.kind) {
        (Target::Ip(ip), _) if ip.is_unspecified() => {
            return Err(ValidationError::Malformed(format!(
                "{ip} is the unspecified address and cannot be validated"
            )));
        }
        (Target::Ip(ip), ChallengeKind::Dns01) => {
            return Err(ValidationError::Malformed(format!(
                "dns-01 cannot validate the IP address {ip} (RFC 8738): use http-01 or tls-alpn-01"
            )));
        }
        (Target::Dns(name), _) => check_dns_name(name)?,
        _ => {}
    }
    if req.wildcard {
        if matches!(req.target, Target::Ip(_)) {
            return Err(ValidationError::Malformed(
                "an IP address identifier cannot be a wildcard".into(),
            ));
        }
        if req.kind != ChallengeKind::Dns01 {
            return Err(ValidationError::Malformed(format!(
                "*.{} is a wildcard: only dns-01 can validate it, not {}",
                req.target, req.kind
            )));
        }
    }
    if req.kind == ChallengeKind::Http01 {
        let ok = !req.token.is_empty()
            && req
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(ValidationError::Malformed(
                "the challenge token is not base64url".into(),
            ));
        }
    }
    Ok(())
}

/// Lower-case A-label DNS name: labels of 1-63 of `a-z 0-9 -`, not starting or ending with `-`.
fn check_dns_name(name: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| {
        Err(ValidationError::Malformed(format!(
            "{:?} is not a valid DNS name: {why}",
            truncate(name, 80)
        )))
    };
    if name.is_empty() || name.len() > 253 {
        return bad("empty or longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("empty label or label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("only lower-case a-z, 0-9 and '-' are allowed (A-label form)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(())
}

/// Printable, length-limited rendering of untrusted text for error details.
pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n >= max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 8738 §6: the reverse-mapping name used as SNI for an IP address.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("1.2.3.4".parse().unwrap()),
            "4.3.2.1.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn names() {
        assert!(check_dns_name("a.example").is_ok());
        assert!(check_dns_name("xn--bcher-kva.example").is_ok());
        assert!(check_dns_name("A.example").is_err());
        assert!(check_dns_name("-a.example").is_err());
        assert!(check_dns_name("a..example").is_err());
        assert!(check_dns_name("*.example").is_err());
    }

    #[test]
    fn truncation() {
        assert_eq!(truncate("ab\ncd", 10), "ab\\ncd");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }

    #[test]
    fn acme_types() {
        assert_eq!(ValidationError::Dns("x".into()).acme_type(), "dns");
        assert_eq!(
            ValidationError::IncorrectResponse("x".into()).acme_type(),
            "incorrectResponse"
        );
        assert_eq!(ChallengeKind::TlsAlpn01.as_str(), "tls-alpn-01");
    }
}

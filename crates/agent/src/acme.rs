//! The ACME flow (RFC 8555 §7): account, order, authorizations, challenges,
//! finalize, download; revocation (§7.6) and renewal info (RFC 9773).

use std::time::{Duration, Instant};

use acme_types::sign::AccountKey;
use acme_types::wire::{Authorization, Identifier, Order};
use serde_json::{json, Value};

use crate::challenge::{Responders, DEVICE_ATTEST_01, PERMANENT_IDENTIFIER};
use crate::error::{AgentError, Result};
use crate::http::{server_error, AcmeHttp, Response};
use crate::log;

/// An ACME session with a registered account.
pub struct Session {
    /// The transport.
    pub http: AcmeHttp,
    /// The account key.
    pub key: AccountKey,
    /// The account URL.
    pub kid: String,
    /// Certificate profile named in newOrder (draft-aaron-acme-profiles).
    pub profile: Option<String>,
    /// The account's orders list URL (RFC 8555 §7.1.2.1), if the server gave one.
    pub orders: Option<String>,
}

/// External account binding settings (RFC 8555 §7.3.4).
pub struct Eab {
    /// Key id.
    pub kid: String,
    /// HMAC key (never logged).
    pub hmac_key: Vec<u8>,
}

impl Session {
    /// Registers (or finds, if the key is already registered) the account.
    pub fn open(
        mut http: AcmeHttp,
        key: AccountKey,
        contact: Option<&str>,
        eab: Option<&Eab>,
    ) -> Result<Session> {
        let url = http.directory.new_account.clone();
        let mut payload = json!({"termsOfServiceAgreed": true});
        if let Some(c) = contact {
            payload["contact"] = json!([c]);
        }
        if let Some(eab) = eab {
            payload["externalAccountBinding"] = acme_types::eab::eab_jws(
                &eab.kid,
                &eab.hmac_key,
                &url,
                key.jwk(),
                acme_types::eab::EabAlgorithm::HS256,
            );
        }
        let resp = http.post(&url, &key, None, Some(&payload))?;
        let kid = resp.location.clone().ok_or_else(|| AgentError::Server {
            url: url.clone(),
            status: Some(resp.status),
            detail: "newAccount answer has no Location".into(),
        })?;
        if resp.status == 201 {
            log::info(format!("account created: {kid}"));
        }
        let orders = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v.get("orders")?.as_str().map(str::to_owned));
        Ok(Session {
            http,
            key,
            kid,
            profile: None,
            orders,
        })
    }

    fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response> {
        let kid = self.kid.clone();
        self.http.post(url, &self.key, Some(&kid), payload)
    }

    fn post_json<T: serde::de::DeserializeOwned>(
        &mut self,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<(T, Response)> {
        let resp = self.post(url, payload)?;
        Ok((resp.json(url)?, resp))
    }

    /// Places a newOrder for `names` (and the device's permanent-identifier
    /// when attesting); returns the order URL.
    pub fn new_order(
        &mut self,
        names: &[String],
        responders: &Responders<'_>,
        replaces: Option<&str>,
    ) -> Result<String> {
        let mut identifiers: Vec<Identifier> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => Identifier::ip(n.as_str()),
                Err(_) => Identifier::dns(n.as_str()),
            })
            .collect();
        // draft-ietf-acme-device-attest §3: the device's own identity, proven by
        // device-attest-01. It is not put in the CSR (§3.2 lets the client omit it).
        if let Some(dev) = responders.device() {
            identifiers.push(Identifier {
                r#type: PERMANENT_IDENTIFIER.into(),
                value: dev.permanent_id().to_string(),
                ancestor_domain: None,
            });
        }
        let mut payload = json!({ "identifiers": identifiers });
        if let Some(r) = replaces {
            payload["replaces"] = json!(r);
        }
        if let Some(p) = &self.profile {
            payload["profile"] = json!(p);
        }
        let new_order = self.http.directory.new_order.clone();
        let (_, resp): (Order, Response) = self.post_json(&new_order, Some(&payload))?;
        let order_url = resp.location.clone().ok_or_else(|| AgentError::Server {
            url: new_order.clone(),
            status: Some(resp.status),
            detail: "newOrder answer has no Location".into(),
        })?;
        log::info(format!("order {order_url} for {}", names.join(",")));
        Ok(order_url)
    }

    /// Reads an order (POST-as-GET).
    pub fn fetch_order(&mut self, url: &str) -> Result<Order> {
        Ok(self.post_json::<Order>(url, None)?.0)
    }

    /// The account's orders list (RFC 8555 §7.1.2.1), following up to
    /// `max_pages` `rel="next"` links; empty when the server gave no `orders`
    /// URL.
    pub fn list_orders_pages(&mut self, max_pages: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = self.orders.clone();
        for _ in 0..max_pages {
            let Some(url) = next.take() else { break };
            let (list, resp): (acme_types::wire::OrdersList, Response) =
                self.post_json(&url, None)?;
            out.extend(list.orders);
            next = resp
                .links
                .iter()
                .find(|(rel, _)| rel == "next")
                .map(|(_, u)| u.clone());
        }
        Ok(out)
    }

    /// Drives the order at `order_url` from whatever state it is in to a
    /// certificate: answers pending authorizations, finalizes a ready order
    /// with `csr`, waits while processing, downloads when valid. Used for a
    /// fresh order and to resume one after a restart.
    pub fn complete(
        &mut self,
        order_url: &str,
        csr: &[u8],
        responders: &mut Responders<'_>,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let order_url = order_url.to_owned();
        let mut order = self.fetch_order(&order_url)?;

        // Authorizations without a challenge are granted by the server on the strength of
        // another one (fleetca: names its templates derive from the attested serial); they are
        // waited for after every challenge has been answered.
        if order.status.as_str() == "pending" {
            let mut granted = Vec::new();
            for authz_url in order.authorizations.clone() {
                if !self.authorize(&authz_url, responders, deadline)? {
                    granted.push(authz_url);
                }
            }
            for authz_url in granted {
                self.await_authz(&authz_url, deadline, "granted with the device attestation")?;
            }
            // Wait for ready (the server may still be processing authz results).
            order = self.poll_order(&order_url, deadline, |s| s != "pending")?;
        }
        crate::install::test_pause("after-challenge");
        if order.status.as_str() == "ready" {
            let body = json!({ "csr": acme_types::b64::encode(csr) });
            let finalize = order.finalize.clone();
            match self.post_json::<Order>(&finalize, Some(&body)) {
                Ok((o, _)) => order = o,
                Err(e) => {
                    // The finalize may have been carried out although its answer was lost
                    // (a server node killed after its commit; a retried request answered
                    // orderNotReady): the order says whether a certificate is on its way, so
                    // the device does not order, and the CA issue, a second one.
                    let (now, _): (Order, Response) = self.post_json(&order_url, None)?;
                    if !matches!(now.status.as_str(), "valid" | "processing") {
                        return Err(e);
                    }
                    log::info(format!(
                        "finalize answered with an error but the order is {}: {e}",
                        now.status.as_str()
                    ));
                    order = now;
                }
            }
            crate::install::test_pause("after-finalize");
        }
        if order.status.as_str() != "valid" {
            order = self.poll_order(&order_url, deadline, |s| s != "processing" && s != "ready")?;
        }
        if order.status.as_str() != "valid" {
            let why = order
                .error
                .as_ref()
                .map(|p| format!("{}: {}", p.r#type, p.detail))
                .unwrap_or_default();
            return Err(AgentError::Server {
                url: order_url,
                status: None,
                detail: format!("order is {} {why}", order.status.as_str()),
            });
        }
        let cert_url = order
            .certificate
            .clone()
            .ok_or_else(|| AgentError::Server {
                url: order_url.clone(),
                status: None,
                detail: "valid order has no certificate URL".into(),
            })?;
        let resp = self.post(&cert_url, None)?;
        let pem = String::from_utf8(resp.body).map_err(|_| AgentError::Server {
            url: cert_url.clone(),
            status: Some(resp.status),
            detail: "certificate is not text".into(),
        })?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(AgentError::Server {
                url: cert_url,
                status: Some(resp.status),
                detail: format!(
                    "expected a PEM certificate chain, got {:?}",
                    resp.content_type
                ),
            });
        }
        crate::install::test_pause("after-download");
        Ok(pem)
    }

    /// Answers one authorization's challenge and waits for it to be valid. `Ok(false)`: it
    /// is pending without any challenge, for the caller to wait on later.
    fn authorize(
        &mut self,
        authz_url: &str,
        responders: &mut Responders<'_>,
        deadline: Instant,
    ) -> Result<bool> {
        let (authz, _): (Authorization, Response) = self.post_json(authz_url, None)?;
        match authz.status.as_str() {
            "valid" => return Ok(true),
            "pending" => {}
            other => {
                return Err(AgentError::Challenge(format!(
                    "authorization for {} is {other}",
                    authz.identifier.value
                )))
            }
        }
        if authz.challenges.is_empty() {
            return Ok(false);
        }
        if authz.identifier.r#type == PERMANENT_IDENTIFIER {
            self.attest(authz_url, &authz, responders, deadline)?;
            return Ok(true);
        }
        let domain = authz.identifier.value.clone();
        let shown = if authz.wildcard == Some(true) {
            format!("*.{domain}")
        } else {
            domain.clone()
        };
        if responders.preferences() == [crate::config::ChallengeKind::None] {
            return Err(AgentError::Challenge(format!(
                "{shown} needs a challenge, and --challenge none answers none (the server does \
                 not grant this name to this account)"
            )));
        }
        // Per identifier, the first type in the preference list the server offers.
        let (kind, chall) = responders
            .preferences()
            .iter()
            .find_map(|k| {
                authz
                    .challenges
                    .iter()
                    .find(|c| c.r#type == k.as_str())
                    .map(|c| (*k, c))
            })
            .ok_or_else(|| {
                let want: Vec<&str> = responders
                    .preferences()
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                let offered: Vec<&str> =
                    authz.challenges.iter().map(|c| c.r#type.as_str()).collect();
                AgentError::Challenge(format!(
                    "server offers none of {want:?} for {shown} (offered: {offered:?})"
                ))
            })?;
        let challenge_type = kind.as_str();
        log::info(format!("{shown}: using {challenge_type}"));
        let responder = responders.get(kind)?;
        let token = chall.token.clone().unwrap_or_default();
        let ka = acme_types::keyauth::key_authorization(&token, self.key.jwk());
        let chall_url = chall.url.clone();
        responder.present(&domain, &token, &ka)?;
        let result = (|| {
            self.post(&chall_url, Some(&json!({})))?;
            self.await_authz(authz_url, deadline, challenge_type)
        })();
        if let Err(e) = responder.cleanup(&domain, &token, &ka) {
            log::warn(format!("challenge cleanup for {domain}: {e}"));
        }
        result.map(|()| true)
    }

    /// device-attest-01 (draft-ietf-acme-device-attest §5): POSTs `{"attObj": ...}` signed
    /// over this challenge's key authorization, then waits for the authorization.
    fn attest(
        &mut self,
        authz_url: &str,
        authz: &Authorization,
        responders: &Responders<'_>,
        deadline: Instant,
    ) -> Result<()> {
        let device = responders.device().ok_or_else(|| {
            AgentError::Challenge(format!(
                "the order names permanent-identifier {} but no --attest-key is set",
                authz.identifier.value
            ))
        })?;
        let chall = authz
            .challenges
            .iter()
            .find(|c| c.r#type == DEVICE_ATTEST_01)
            .ok_or_else(|| {
                AgentError::Challenge(format!(
                    "server offers no {DEVICE_ATTEST_01} for permanent-identifier {}",
                    authz.identifier.value
                ))
            })?;
        log::info(format!(
            "permanent-identifier {}: using {DEVICE_ATTEST_01}",
            authz.identifier.value
        ));
        let token = chall.token.clone().unwrap_or_default();
        let ka = acme_types::keyauth::key_authorization(&token, self.key.jwk());
        let payload = device.response(&ka)?;
        let url = chall.url.clone();
        self.post(&url, Some(&payload))?;
        self.await_authz(authz_url, deadline, DEVICE_ATTEST_01)
    }

    /// Polls an authorization until it is valid; any other final state is a
    /// challenge failure naming `what` and the server's reason.
    fn await_authz(&mut self, authz_url: &str, deadline: Instant, what: &str) -> Result<()> {
        let mut delay = Duration::from_millis(500);
        loop {
            let (a, resp): (Authorization, Response) = self.post_json(authz_url, None)?;
            match a.status.as_str() {
                "valid" => return Ok(()),
                "pending" => {}
                status => {
                    let why = a
                        .challenges
                        .iter()
                        .find_map(|c| c.error.as_ref())
                        .map(|p| format!("{}: {}", p.r#type, p.detail))
                        .unwrap_or_else(|| format!("the authorization is {status}"));
                    return Err(AgentError::Challenge(format!(
                        "{what} for {} failed: {why}",
                        a.identifier.value
                    )));
                }
            }
            delay = wait(resp.retry_after, delay, deadline, authz_url)?;
        }
    }

    fn poll_order(
        &mut self,
        url: &str,
        deadline: Instant,
        done: impl Fn(&str) -> bool,
    ) -> Result<Order> {
        let mut delay = Duration::from_millis(500);
        loop {
            let (order, resp): (Order, Response) = self.post_json(url, None)?;
            if done(order.status.as_str()) {
                return Ok(order);
            }
            delay = wait(resp.retry_after, delay, deadline, url)?;
        }
    }

    /// Revokes `cert_der` (RFC 8555 §7.6) with the account key.
    pub fn revoke(&mut self, cert_der: &[u8], reason: Option<i64>) -> Result<()> {
        let mut payload = json!({ "certificate": acme_types::b64::encode(cert_der) });
        if let Some(r) = reason {
            payload["reason"] = json!(r);
        }
        let url = self.http.directory.revoke_cert.clone();
        self.post(&url, Some(&payload))?;
        Ok(())
    }
}

/// Fetches the ARI window for `cert_id` (RFC 9773 §4.2): `(start, end,
/// retry_after)`. `None` when the directory has no `renewalInfo`.
pub fn fetch_renewal_info(
    http: &mut AcmeHttp,
    cert_id: &str,
) -> Result<Option<(i64, i64, Option<Duration>)>> {
    let Some(base) = http.directory.renewal_info.clone() else {
        return Ok(None);
    };
    let url = format!("{}/{cert_id}", base.trim_end_matches('/'));
    let resp = http.get(&url)?;
    if resp.status != 200 {
        return Err(server_error(&url, &resp));
    }
    let info: acme_types::ari::RenewalInfo = resp.json(&url)?;
    let parse = |s: &str| {
        crate::schedule::parse_rfc3339(s).ok_or_else(|| AgentError::Server {
            url: url.clone(),
            status: Some(200),
            detail: format!("bad time {s:?} in renewalInfo"),
        })
    };
    let start = parse(&info.suggested_window.start)?;
    let end = parse(&info.suggested_window.end)?;
    Ok(Some((start, end, resp.retry_after)))
}

/// Sleeps for Retry-After (capped at 60 s) or the backoff delay; fails once
/// the deadline would pass. Returns the next backoff delay.
fn wait(
    retry_after: Option<Duration>,
    delay: Duration,
    deadline: Instant,
    url: &str,
) -> Result<Duration> {
    let pause = retry_after.unwrap_or(delay).min(Duration::from_secs(60));
    if Instant::now() + pause > deadline {
        return Err(AgentError::Timeout(format!(
            "{url} did not finish before the deadline"
        )));
    }
    std::thread::sleep(pause);
    Ok((delay * 2).min(Duration::from_secs(10)))
}

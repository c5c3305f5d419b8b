//! Challenges (RFC 8555 §7.5.1, §8): the client's "ready" POST starts an asynchronous
//! validation with bounded concurrency and a time limit; the result moves the challenge and
//! its authorization to valid or invalid together.

use super::statuses::{self, challenge_type, identifier_type, va_kind};
use super::validation_queue::{Claim, Ticket};
use super::Ra;
use crate::error::{Error, Result};
use crate::sa::{
    AccountRecord, AuthzRecord, ChallengeOutcome, ChallengeRecord, ChallengeStart, ChallengeState,
    Lease, Nonce, StartStep, StartableKinds, StoredChallengeKind,
};
use crate::tenant::Tenant;
use crate::va::{Target, ValidationRequest};
use acme_types::jwk::Jwk;
use acme_types::problem::{Problem, ProblemType};
use acme_types::wire::{ChallengeType, IdentifierType};
use std::sync::Arc;

/// What [`Ra::start_at_read`] did.
enum AtRead {
    /// Started the challenge: the answer.
    Answered(Box<(ChallengeRecord, AuthzRecord)>),
    /// Nothing (the nonce is as it was).
    NotTried,
    /// Read (spending the nonce) but did not start it.
    NotStarted,
}

/// What [`Ra::start_with_read`] did.
enum StartedAtRead {
    /// Started the challenge (now `processing` under `lease`), as read before the start.
    Started {
        ch: ChallengeRecord,
        authz: Box<AuthzRecord>,
        lease: Lease,
        /// When the failed-validation token was taken.
        taken: std::time::Instant,
    },
    /// Nothing (the nonce is as it was).
    NotTried,
    /// Read (spending the nonce) but did not start it.
    NotStarted,
}

/// `ch` as `outcome` leaves it, which is what `finish_challenge` wrote to its row.
fn decide(ch: &mut ChallengeRecord, outcome: ChallengeOutcome) {
    ch.status = if outcome.valid {
        ChallengeState::Valid
    } else {
        ChallengeState::Invalid
    };
    ch.validated_at = outcome.valid.then_some(outcome.at);
    ch.error = outcome.error;
    ch.record = outcome.record;
}

impl Ra {
    /// Reads a challenge and its authorization, both owned by `acct`.
    pub async fn get_challenge(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        self.get_challenge_spending(tenant, acct, id, &Nonce::Spent)
            .await
    }

    /// [`Self::get_challenge`], spending a pending `nonce` with the read.
    pub(crate) async fn get_challenge_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        // One lookup for both. Another account's (or tenant's) challenge does not exist for
        // this one; a database outage stays one (500 + Retry-After), not a misleading 404.
        let (spend, authz) = self.sa.get_authz_by_challenge_spending(id, nonce).await?;
        super::settle_nonce(spend)?;
        let authz = authz
            .filter(|a| super::owned_by(tenant, acct, &a.tenant, &a.account_id))
            .ok_or_else(|| Error::not_found("challenge"))?;
        let ch = authz
            .challenges
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found("challenge"))?;
        Ok((ch, authz))
    }

    /// The client says it is ready (§7.5.1): starts validation if the challenge is pending and
    /// returns the challenge as it now stands. Repeating the POST is harmless. The response
    /// waits up to `challenge_wait` for the validation, so a fast one is reported `valid` or
    /// `invalid` at once; a slower one is reported `processing` and goes on in the background.
    /// A validation this node has no room for (queue full, the account's in-flight cap, its
    /// failed-validation budget spent) is refused with `rateLimited` before anything changes.
    pub async fn respond_challenge(
        self: &Arc<Self>,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        self.respond_challenge_spending(tenant, acct, id, &Nonce::Spent)
            .await
    }

    /// [`Self::respond_challenge`] with the request's `nonce`, spent by the first read.
    pub(crate) async fn respond_challenge_spending(
        self: &Arc<Self>,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        let nonce = match self.start_at_read(tenant, acct, id, nonce).await? {
            AtRead::Answered(done) => return Ok(*done),
            AtRead::NotTried => nonce,
            AtRead::NotStarted => &Nonce::Spent,
        };
        let (ch, authz) = self.get_challenge_spending(tenant, acct, id, nonce).await?;
        if self.clock.unix() >= authz.expires {
            return Err(Error::malformed("the authorization has expired"));
        }
        if challenge_type(ch.kind) == ChallengeType::DeviceAttest01 {
            return Err(Error::malformed(
                "a device-attest-01 response must carry the attestation object in \"attObj\"",
            ));
        }
        if ch.status != ChallengeState::Pending {
            // Started or decided already: nothing to admit, nothing to charge.
            return Ok((ch, authz));
        }
        let ticket = self.admit(&acct.id)?;
        self.take_budget(&tenant.name, &acct.id).await?;
        let taken = std::time::Instant::now();
        let lease = self.new_lease();
        match self.sa.try_start_challenge(id, &lease).await {
            Ok(true) => {}
            other => {
                // Not started here (a concurrent POST won, or storage failed): the token
                // was not spent on a validation.
                self.give_back_budget(&tenant.name, &acct.id).await;
                other?;
                return self.get_challenge(tenant, acct, id).await;
            }
        }
        Ok(self
            .run_started(acct, id, (ch, authz), lease, ticket, taken)
            .await)
    }

    /// The challenge POST's start made with its read, in one step (see
    /// [`Self::start_with_read`]), after a place in this node's validation queue was
    /// reserved; a full queue leaves the answer to the ordinary path, which refuses only what
    /// it would start.
    async fn start_at_read(
        self: &Arc<Self>,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<AtRead> {
        if !matches!(nonce, Nonce::Pending(_)) {
            return Ok(AtRead::NotTried);
        }
        let Ok(ticket) = self.admit(&acct.id) else {
            return Ok(AtRead::NotTried);
        };
        let kinds = StartableKinds::AllBut(StoredChallengeKind::DeviceAttest01);
        Ok(
            match self.start_with_read(tenant, acct, id, nonce, kinds).await? {
                StartedAtRead::Started {
                    ch,
                    authz,
                    lease,
                    taken,
                } => AtRead::Answered(Box::new(
                    self.run_started(acct, id, (ch, *authz), lease, ticket, taken)
                        .await,
                )),
                StartedAtRead::NotTried => AtRead::NotTried,
                StartedAtRead::NotStarted => AtRead::NotStarted,
            },
        )
    }

    /// Reads challenge `id` spending `nonce`, and starts it in the same step if it is
    /// pending and of `kinds` (on storage that spends nonces with reads; see
    /// [`crate::sa::Storage::start_challenge_spending`]). The failed-validation token is
    /// reserved first in this node's memory, unless the budget is kept in storage, where the
    /// step itself takes it (and nothing starts if the bucket is empty). A refusal of an
    /// in-memory reservation, or a challenge the step did not start, leaves the answer to
    /// the ordinary path, which refuses only what it would start and re-reads what it
    /// answers with.
    async fn start_with_read(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
        kinds: StartableKinds,
    ) -> Result<StartedAtRead> {
        if !matches!(nonce, Nonce::Pending(_)) {
            return Ok(StartedAtRead::NotTried);
        }
        let charge = self.budget_charge(&tenant.name, &acct.id);
        if charge.is_none() && self.take_budget(&tenant.name, &acct.id).await.is_err() {
            return Ok(StartedAtRead::NotTried);
        }
        let taken = std::time::Instant::now();
        let lease = self.new_lease();
        let step = ChallengeStart {
            challenge_id: id,
            tenant: &tenant.name,
            account_id: &acct.id,
            now: self.clock.unix(),
            kinds,
            lease: &lease,
            budget: charge.as_ref(),
        };
        let started = self.sa.start_challenge_spending(&step, nonce).await;
        let (spend, authz, step) = match started {
            Ok(r) => r,
            Err(e) => {
                if charge.is_none() {
                    self.give_back_budget(&tenant.name, &acct.id).await;
                }
                return Err(e.into());
            }
        };
        super::settle_nonce(spend)?;
        match (step, &charge) {
            (StartStep::Started, _) => {}
            (StartStep::Refused(r), Some(c)) => return Err(self.budget_refused(c, r)),
            (StartStep::NotStarted { charged }, _) => {
                // Not started here: the token was not spent on a validation.
                if charged || charge.is_none() {
                    self.give_back_budget(&tenant.name, &acct.id).await;
                }
                return Ok(StartedAtRead::NotStarted);
            }
            (StartStep::Refused(_), None) => {
                return Err(Error::internal("storage refused a budget it was not given"))
            }
        }
        let authz = authz.ok_or_else(|| Error::internal("a started challenge was not read"))?;
        let ch = authz
            .challenges
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| Error::internal("a started challenge was not read"))?;
        Ok(StartedAtRead::Started {
            ch,
            authz: Box::new(authz),
            lease,
            taken,
        })
    }

    /// A started challenge (status `processing`, leased): validates it on this node and waits
    /// up to `challenge_wait` for the outcome.
    async fn run_started(
        self: &Arc<Self>,
        acct: &AccountRecord,
        id: &str,
        (mut ch, authz): (ChallengeRecord, AuthzRecord),
        lease: Lease,
        ticket: Ticket,
        taken: std::time::Instant,
    ) -> (ChallengeRecord, AuthzRecord) {
        ch.status = ChallengeState::Processing;
        let held = self.held.validation(id, &lease);
        let claim = Claim::new(id.to_string(), lease, ticket, taken, held);
        let validation = self.spawn_claimed(claim, Some((ch.clone(), authz.clone(), acct.clone())));
        if let Ok(Ok(Some(outcome))) =
            tokio::time::timeout(self.cfg.challenge_wait, validation).await
        {
            // The row now says exactly this (finish_challenge wrote it), so it need not be
            // read back.
            decide(&mut ch, outcome);
        }
        (ch, authz)
    }

    /// A `device-attest-01` response (draft-ietf-acme-device-attest §5): the attestation
    /// arrives in the POST, so it is verified here, synchronously, against the key
    /// authorization of this challenge and the tenant's manufacturing roots. Failure makes the
    /// challenge and its authorization invalid with `badAttestationStatement`. Only a pending
    /// challenge is evaluated: a second response to a decided challenge changes nothing.
    pub async fn respond_attestation(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        att_obj_b64: &str,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        self.respond_attestation_spending(tenant, acct, id, att_obj_b64, &Nonce::Spent)
            .await
    }

    /// [`Self::respond_attestation`] with the request's `nonce`, spent by the first read. On
    /// storage that spends nonces with reads the read, the spend, the failed-validation token
    /// and the start are one step, and the outcome gives the token back after a success: two
    /// statements for the response, as for any other challenge.
    pub(crate) async fn respond_attestation_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        att_obj_b64: &str,
        nonce: &Nonce,
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        use base64::Engine as _;
        // Decoded before anything is read or started: a malformed object changes nothing.
        let att_obj = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(att_obj_b64.trim_end_matches('='))
            .map_err(|_| Error::malformed("attObj is not base64url"))?;
        let kinds = StartableKinds::Only(StoredChallengeKind::DeviceAttest01);
        let nonce = match self.start_with_read(tenant, acct, id, nonce, kinds).await? {
            StartedAtRead::Started { ch, authz, .. } => {
                return self
                    .attest_started(tenant, acct, ch, *authz, &att_obj)
                    .await;
            }
            StartedAtRead::NotTried => nonce,
            StartedAtRead::NotStarted => &Nonce::Spent,
        };
        let (ch, authz) = self.get_challenge_spending(tenant, acct, id, nonce).await?;
        if challenge_type(ch.kind) != ChallengeType::DeviceAttest01 {
            return Err(Error::malformed(
                "attObj is only meaningful for device-attest-01",
            ));
        }
        if self.clock.unix() >= authz.expires {
            return Err(Error::malformed("the authorization has expired"));
        }
        if ch.status != ChallengeState::Pending {
            return Ok((ch, authz));
        }
        self.take_budget(&tenant.name, &acct.id).await?;
        let lease = self.new_lease();
        match self.sa.try_start_challenge(id, &lease).await {
            Ok(true) => {}
            other => {
                self.give_back_budget(&tenant.name, &acct.id).await;
                other?;
                return self.get_challenge(tenant, acct, id).await;
            }
        }
        self.attest_started(tenant, acct, ch, authz, &att_obj).await
    }

    /// Verifies the attestation of a started device-attest-01 challenge (its
    /// failed-validation token taken) and records the outcome.
    async fn attest_started(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        ch: ChallengeRecord,
        authz: AuthzRecord,
        att_obj: &[u8],
    ) -> Result<(ChallengeRecord, AuthzRecord)> {
        let jwk_json: serde_json::Value = serde_json::from_str(&acct.jwk)
            .map_err(|_| Error::internal("stored account key does not parse"))?;
        let jwk = Jwk::from_json(&jwk_json)
            .map_err(|_| Error::internal("stored account key does not parse"))?;
        let key_auth = acme_types::keyauth::key_authorization(&ch.token, &jwk);
        let started = std::time::Instant::now();
        let now = self.clock.unix();
        let result = super::attest::verify(
            att_obj,
            &key_auth,
            &tenant.attestation_roots,
            now,
            &authz.identifier.value,
        );
        let outcome = match result {
            Ok(()) => {
                tracing::info!(challenge = %ch.id, identifier = %authz.identifier.value, "device attestation verified");
                // The token was not needed: given back by the step that records the success
                // when the budget is kept in storage.
                let give_back = self.budget_charge(&tenant.name, &acct.id);
                if give_back.is_none() {
                    self.give_back_budget(&tenant.name, &acct.id).await;
                }
                ChallengeOutcome {
                    valid: true,
                    at: now,
                    authz_expires: now + Self::secs(self.cfg.valid_authz_lifetime),
                    error: None,
                    record: Some(r#"{"attestation":"packed"}"#.into()),
                    give_back,
                }
            }
            Err(detail) => {
                tracing::info!(challenge = %ch.id, identifier = %authz.identifier.value, %detail, "device attestation refused");
                let mut p = Problem::new(ProblemType::BadAttestationStatement, detail);
                p.identifier = Some(acme_types::wire::Identifier {
                    r#type: identifier_type(&authz.identifier).as_str().to_owned(),
                    value: authz.identifier.value.clone(),
                    ancestor_domain: None,
                });
                ChallengeOutcome {
                    valid: false,
                    at: now,
                    authz_expires: authz.expires,
                    error: Some(serde_json::to_string(&p).unwrap_or_default()),
                    record: None,
                    give_back: None,
                }
            }
        };
        crate::metrics::validation(ch.kind.as_str(), outcome.valid, started.elapsed());
        self.sa.finish_challenge(&ch.id, outcome.clone()).await?;
        // The row now says exactly this (finish_challenge wrote it, under the lease this
        // request took a moment ago), so it need not be read back. The authorization is
        // answered as read: the response uses only its id.
        let mut ch = ch;
        decide(&mut ch, outcome);
        Ok((ch, authz))
    }

    /// Takes over validations left in `processing` whose lease ran out (their node crashed),
    /// as many as the queue has room for, so no authorization stays stuck.
    pub async fn resume_validations(self: &Arc<Self>) -> Result<usize> {
        let room = u32::try_from(self.queue_room()).unwrap_or(u32::MAX);
        if room == 0 {
            return Ok(0);
        }
        let taken = std::time::Instant::now();
        let lease = self.new_lease();
        let ids = self
            .sa
            .claim_stale_challenges(self.clock.unix(), &lease, room)
            .await?;
        let n = ids.len();
        for id in ids {
            tracing::info!(challenge = %id, "taking over a validation whose lease expired");
            let held = self.held.validation(&id, &lease);
            let claim = Claim::new(id, lease.clone(), self.admit_taken_over(), taken, held);
            drop(self.spawn_claimed(claim, None));
        }
        Ok(n)
    }

    /// Sweeps for expired validation leases a few times per lease (several nodes may run it:
    /// each stale challenge is claimed by exactly one).
    pub fn spawn_validation_sweeper(self: &Arc<Self>) {
        let ra = Arc::clone(self);
        tokio::spawn(async move {
            let every = (ra.cfg.validation_lease / 2).clamp(
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(10),
            );
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = ra.resume_validations().await {
                    tracing::warn!(error = %e, "validation lease sweep failed");
                }
            }
        });
    }

    /// Runs a claimed validation once it has a slot and still holds its lease, with the rows
    /// the claiming request already read (`None`: read them here). The handle yields the
    /// recorded outcome (`None` if it did not run or could not be recorded); dropping it
    /// leaves the validation running.
    fn spawn_claimed(
        self: &Arc<Self>,
        mut claim: Claim,
        loaded: Option<(ChallengeRecord, AuthzRecord, AccountRecord)>,
    ) -> tokio::task::JoinHandle<Option<ChallengeOutcome>> {
        let ra = Arc::clone(self);
        tokio::spawn(async move {
            let _permit = ra.wait_for_slot(&mut claim).await?;
            let (ch, authz, acct) = match loaded {
                Some(rows) => rows,
                None => match ra.load(&claim.id).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(challenge = %claim.id, error = %e, "validation could not be loaded");
                        return None;
                    }
                },
            };
            let id = claim.id.clone();
            let result = tokio::select! {
                r = ra.validate_loaded(&ch, &authz, &acct) => r,
                () = ra.keep_lease(&mut claim) => {
                    tracing::warn!(challenge = %id, "validation lease lost while validating; result discarded");
                    return None;
                }
            };
            match result {
                Ok(outcome) => Some(outcome),
                Err(e) => {
                    tracing::error!(challenge = %id, error = %e, "validation could not be recorded");
                    None
                }
            }
        })
    }

    /// The challenge, its authorization and account, for a validation taken over.
    async fn load(
        &self,
        challenge_id: &str,
    ) -> Result<(ChallengeRecord, AuthzRecord, AccountRecord)> {
        let ch = self
            .sa
            .get_challenge(challenge_id)
            .await?
            .ok_or_else(|| Error::internal("challenge vanished"))?;
        let authz = self
            .sa
            .get_authz(&ch.authz_id)
            .await?
            .ok_or_else(|| Error::internal("authorization vanished"))?;
        let acct = self
            .sa
            .get_account(&authz.account_id)
            .await?
            .ok_or_else(|| Error::internal("account vanished"))?;
        Ok((ch, authz, acct))
    }

    /// Runs the validation of `ch` and records its outcome (challenge and authorization).
    async fn validate_loaded(
        &self,
        ch: &ChallengeRecord,
        authz: &AuthzRecord,
        acct: &AccountRecord,
    ) -> Result<ChallengeOutcome> {
        let tenant = self
            .tenant(&authz.tenant)
            .ok_or_else(|| Error::internal("tenant vanished"))?;
        let started = std::time::Instant::now();
        let outcome = match self.run_validation(&tenant, ch, authz, acct).await {
            Ok(record) => {
                tracing::info!(challenge = %ch.id, identifier = %authz.identifier.value, kind = %ch.kind, "validation succeeded");
                // The token taken when the validation started was not needed: given back by
                // the step that records the success when the budget is kept in storage.
                let give_back = self.budget_charge(&authz.tenant, &acct.id);
                if give_back.is_none() {
                    self.give_back_budget(&authz.tenant, &acct.id).await;
                }
                ChallengeOutcome {
                    valid: true,
                    at: self.clock.unix(),
                    authz_expires: self.clock.unix() + Self::secs(self.cfg.valid_authz_lifetime),
                    error: None,
                    record: Some(record),
                    give_back,
                }
            }
            Err((problem, evidence)) => {
                tracing::info!(challenge = %ch.id, identifier = %authz.identifier.value, kind = %ch.kind, detail = %problem.detail, "validation failed");
                ChallengeOutcome {
                    valid: false,
                    at: self.clock.unix(),
                    authz_expires: authz.expires,
                    error: Some(serde_json::to_string(&problem).unwrap_or_default()),
                    // A failed corroboration is audit evidence too (BR §3.2.2.9).
                    record: evidence,
                    give_back: None,
                }
            }
        };
        crate::metrics::validation(ch.kind.as_str(), outcome.valid, started.elapsed());
        self.sa.finish_challenge(&ch.id, outcome.clone()).await?;
        Ok(outcome)
    }

    async fn run_validation(
        &self,
        tenant: &Tenant,
        ch: &ChallengeRecord,
        authz: &AuthzRecord,
        acct: &AccountRecord,
    ) -> std::result::Result<String, (Problem, Option<String>)> {
        let internal = |d: &str| (Problem::new(ProblemType::ServerInternal, d), None);
        if self.cfg.skip_validation {
            return Ok(
                r#"{"skipped":"serve --insecure-skip-validation (load tests only)"}"#.into(),
            );
        }
        let Some(kind) = va_kind(challenge_type(ch.kind)) else {
            return Err(internal("not a challenge the VA validates"));
        };
        let target = match identifier_type(&authz.identifier) {
            IdentifierType::Ip => Target::Ip(
                authz
                    .identifier
                    .value
                    .parse()
                    .map_err(|_| internal("stored IP identifier does not parse"))?,
            ),
            _ => Target::Dns(authz.identifier.value.clone()),
        };
        let jwk_json: serde_json::Value = serde_json::from_str(&acct.jwk)
            .map_err(|_| internal("stored account key does not parse"))?;
        let jwk =
            Jwk::from_json(&jwk_json).map_err(|_| internal("stored account key does not parse"))?;
        let req = ValidationRequest {
            target,
            wildcard: authz.wildcard,
            kind,
            key_authorization: acme_types::keyauth::key_authorization(&ch.token, &jwk),
            token: ch.token.clone(),
            account_uri: tenant.account_url(&acct.id),
            caa_identities: tenant.caa_identities.clone(),
            permitted: tenant.ca.permitted().clone(),
        };
        let problem = |kind: ProblemType, detail: String| {
            let mut p = Problem::new(kind, detail);
            p.identifier = Some(statuses::identifier(&authz.identifier));
            p
        };
        let validation = self.va.validate_audited(&req);
        match tokio::time::timeout(self.cfg.validation_timeout, validation).await {
            Err(_) => Err((
                problem(
                    ProblemType::Connection,
                    format!(
                        "validation of {} timed out after {:?}",
                        authz.identifier.value, self.cfg.validation_timeout
                    ),
                ),
                None,
            )),
            Ok((Err(e), evidence)) => {
                let kind = format!("urn:ietf:params:acme:error:{}", e.acme_type())
                    .parse()
                    .unwrap_or(ProblemType::ServerInternal);
                let evidence = evidence.map(|ev| serde_json::json!({ "mpic": ev }).to_string());
                Err((problem(kind, e.to_string()), evidence))
            }
            Ok((Ok(record), _)) => Ok(serde_json::to_string(&record).unwrap_or_default()),
        }
    }
}

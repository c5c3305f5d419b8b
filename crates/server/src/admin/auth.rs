//! Bearer tokens for the admin API. `fleetca admin token create` mints `fca.<id>.<secret>`,
//! prints it once and stores only its SHA-256 in `DIR/admin-tokens.json` (mode 0600), with its
//! scopes. A request names the token id in clear; the hash of the whole token is compared in
//! constant time, so neither a timing difference nor the file reveals a usable token. The file
//! is re-read on each request, so new and revoked tokens take effect without a restart.

use crate::datadir::{write_atomic, DataDir};
use crate::ids::new_id;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use subtle::ConstantTimeEq;

/// What a token may do. Each scope includes the ones before it: `admin` ⊇ `write` ⊇ `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Listings, search, stats, audit log.
    Read,
    /// Operator state changes: revoke, deactivate, renew-early, EAB revoke.
    Write,
    /// Minting enrollment credentials (EAB create).
    Admin,
}

impl Scope {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope {other:?}: use read, write or admin")),
        }
    }

    /// The name used in the token file and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// One stored token (never the token itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id: the audit-log actor is `token:<id>`.
    pub id: String,
    /// SHA-256 of the whole token, lower-case hex.
    pub sha256: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Free-text note (who or what the token is for).
    #[serde(default)]
    pub label: Option<String>,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
    /// Revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

impl TokenRecord {
    /// Whether the token grants `need` (scopes are hierarchical).
    pub fn allows(&self, need: Scope) -> bool {
        self.revoked_at.is_none() && self.scopes.iter().any(|s| *s >= need)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// The token file of a data directory.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

/// Why a presented token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token, a malformed one, an unknown id, a wrong secret or a revoked token.
    Unauthenticated,
    /// A good token without the scope the request needs.
    Forbidden,
}

fn sha256_hex(s: &str) -> String {
    crate::ca::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

impl TokenStore {
    /// The store at `DIR/admin-tokens.json`.
    pub fn new(dd: &DataDir) -> Self {
        Self {
            path: dd.path().join("admin-tokens.json"),
        }
    }

    fn load(&self) -> anyhow::Result<TokenFile> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(serde_json::from_slice(&b)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, f: &TokenFile) -> anyhow::Result<()> {
        write_atomic(&self.path, &serde_json::to_vec_pretty(f)?, 0o600)
    }

    /// Mints a token with `scopes`; returns its record and the token (shown once).
    pub fn create(
        &self,
        scopes: &[Scope],
        label: Option<String>,
        now: i64,
    ) -> anyhow::Result<(TokenRecord, String)> {
        if scopes.is_empty() {
            anyhow::bail!("a token needs at least one scope");
        }
        let id = new_id().replace(['-', '_'], "x")[..12].to_string();
        let token = format!("fca.{id}.{}", new_id() + &new_id());
        let rec = TokenRecord {
            id,
            sha256: sha256_hex(&token),
            scopes: scopes.to_vec(),
            label,
            created_at: now,
            revoked_at: None,
        };
        let mut f = self.load()?;
        f.tokens.push(rec.clone());
        self.save(&f)?;
        Ok((rec, token))
    }

    /// Every token record (no secrets).
    pub fn list(&self) -> anyhow::Result<Vec<TokenRecord>> {
        Ok(self.load()?.tokens)
    }

    /// Revokes a token by id; false if no unrevoked token has it.
    pub fn revoke(&self, id: &str, now: i64) -> anyhow::Result<bool> {
        let mut f = self.load()?;
        let Some(t) = f
            .tokens
            .iter_mut()
            .find(|t| t.id == id && t.revoked_at.is_none())
        else {
            return Ok(false);
        };
        t.revoked_at = Some(now);
        self.save(&f)?;
        Ok(true)
    }

    /// Checks a presented token against the store and the scope a request needs.
    pub fn authorize(&self, token: &str, need: Scope) -> Result<TokenRecord, AuthError> {
        let mut parts = token.split('.');
        let (Some("fca"), Some(id), Some(_secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Unauthenticated);
        };
        let file = self.load().map_err(|e| {
            tracing::error!(error = %e, "reading the admin token file failed");
            AuthError::Unauthenticated
        })?;
        let rec = file
            .tokens
            .into_iter()
            .find(|t| t.id == id)
            .ok_or(AuthError::Unauthenticated)?;
        let presented = sha256_hex(token);
        if !bool::from(presented.as_bytes().ct_eq(rec.sha256.as_bytes())) {
            return Err(AuthError::Unauthenticated);
        }
        if rec.revoked_at.is_some() {
            return Err(AuthError::Unauthenticated);
        }
        if !rec.allows(need) {
            return Err(AuthError::Forbidden);
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hash_scope_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&DataDir::new(dir.path()));
        let (rec, token) = store.create(&[Scope::Write], None, 1).unwrap();
        let text = std::fs::read_to_string(dir.path().join("admin-tokens.json")).unwrap();
        assert!(
            !text.contains(token.rsplit('.').next().unwrap()),
            "secret stored"
        );
        assert_eq!(store.authorize(&token, Scope::Read).unwrap().id, rec.id);
        assert_eq!(store.authorize(&token, Scope::Write).unwrap().id, rec.id);
        assert_eq!(
            store.authorize(&token, Scope::Admin).unwrap_err(),
            AuthError::Forbidden
        );
        let forged = format!("fca.{}.AAAA", rec.id);
        assert_eq!(
            store.authorize(&forged, Scope::Read).unwrap_err(),
            AuthError::Unauthenticated
        );
        assert!(store.revoke(&rec.id, 2).unwrap());
        assert_eq!(
            store.authorize(&token, Scope::Read).unwrap_err(),
            AuthError::Unauthenticated
        );
    }
}

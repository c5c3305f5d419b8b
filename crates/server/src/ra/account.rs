//! Accounts: creation, lookup, update, deactivation and key rollover (RFC 8555 §7.3).

use super::Ra;
use crate::error::{Error, Result};
use crate::ids::new_object_id;
use crate::sa::{AccountRecord, AccountState, SaError};
use crate::tenant::Tenant;
use acme_types::jwk::Jwk;
use acme_types::problem::ProblemType;

/// Most contact URIs an account may list.
const MAX_CONTACTS: usize = 10;

/// A newAccount request after JWS verification (§7.3).
#[derive(Debug, Default)]
pub struct NewAccount {
    /// Contact URIs.
    pub contact: Vec<String>,
    /// `termsOfServiceAgreed`.
    pub tos_agreed: bool,
    /// `onlyReturnExisting` (§7.3.1).
    pub only_return_existing: bool,
    /// The key id of a verified external account binding (§7.3.4), if one was presented.
    pub eab_kid: Option<String>,
    /// The `externalAccountBinding` JWS as received (§7.3.4), to verify and consume.
    pub eab_binding: Option<serde_json::Value>,
}

/// An account update request (§7.3.2, §7.3.6).
#[derive(Debug, Default)]
pub struct AccountUpdate {
    /// New contact list, if given.
    pub contact: Option<Vec<String>>,
    /// `deactivated` to deactivate; other statuses are refused.
    pub status: Option<acme_types::wire::AccountStatus>,
}

/// RFC 8555 §7.3: the server must support `mailto:`; we accept only that, one plain address per
/// URI and no header fields, so a contact cannot smuggle extra recipients.
pub(crate) fn validate_contacts(contact: &[String]) -> Result<()> {
    if contact.len() > MAX_CONTACTS {
        return Err(Error::acme(
            ProblemType::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are allowed"),
        ));
    }
    for c in contact {
        let Some(addr) = c.strip_prefix("mailto:") else {
            return Err(Error::acme(
                ProblemType::UnsupportedContact,
                format!("contact {c:?}: only mailto: URIs are supported"),
            ));
        };
        let bad =
            |why: &str| Error::acme(ProblemType::InvalidContact, format!("contact {c:?}: {why}"));
        if addr.contains(['?', ',', ' ', '<', '>', '"', '\\'])
            || addr.chars().any(|ch| ch.is_control())
        {
            return Err(bad(
                "a mailto: URI must hold exactly one plain address without header fields",
            ));
        }
        let Some((local, domain)) = addr.split_once('@') else {
            return Err(bad("missing '@'"));
        };
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || addr.len() > 254
        {
            return Err(bad("not a valid email address"));
        }
        if domain
            .split('.')
            .any(|l| l.is_empty() || !l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
        {
            return Err(bad("the domain part is not a valid hostname"));
        }
    }
    Ok(())
}

impl Ra {
    /// newAccount (§7.3): returns the account and whether it was created now (201) or
    /// already existed for this key (200).
    pub async fn new_account(
        &self,
        tenant: &Tenant,
        jwk: &Jwk,
        req: NewAccount,
    ) -> Result<(AccountRecord, bool)> {
        let thumbprint = jwk.thumbprint();
        if let Some(existing) = self
            .sa
            .get_account_by_key(&tenant.name, &thumbprint)
            .await?
        {
            if existing.status != AccountState::Valid {
                return Err(Error::unauthorized(format!(
                    "account is {}",
                    existing.status.as_str()
                )));
            }
            return Ok((existing, false));
        }
        if req.only_return_existing {
            return Err(Error::acme(
                ProblemType::AccountDoesNotExist,
                "no account exists for this key (onlyReturnExisting)",
            ));
        }
        if tenant.terms_of_service.is_some() && !req.tos_agreed {
            return Err(Error::acme(
                ProblemType::UserActionRequired,
                "the terms of service must be agreed to (termsOfServiceAgreed)",
            ));
        }
        let verified = match &req.eab_binding {
            Some(b) => Some(self.verify_eab(tenant, jwk, b).await?),
            None => None,
        };
        let eab_kid = verified.as_ref().map(|v| v.kid.clone()).or(req.eab_kid);
        if tenant.external_account_required && eab_kid.is_none() {
            return Err(Error::acme(
                ProblemType::ExternalAccountRequired,
                "this CA requires an externalAccountBinding",
            ));
        }
        validate_contacts(&req.contact)?;
        let acct = AccountRecord {
            id: new_object_id(),
            tenant: tenant.name.clone(),
            jwk_thumbprint: thumbprint,
            jwk: jwk.to_json().to_string(),
            contact: req.contact,
            status: AccountState::Valid,
            tos_agreed: req.tos_agreed,
            eab_kid,
            created_at: self.clock.unix(),
        };
        let inserted = match &verified {
            // §7.3.4: the credential's use is spent in the same transaction as the insert.
            Some(v) => self.insert_eab_account(&acct, &v.binding).await?,
            None => self.sa.insert_account(&acct).await,
        };
        match inserted {
            Ok(()) => Ok((acct, true)),
            // Lost a race with the same key: return the winner, as if it had existed.
            Err(SaError::Conflict(_)) => match self
                .sa
                .get_account_by_key(&tenant.name, &acct.jwk_thumbprint)
                .await?
            {
                Some(a) => Ok((a, false)),
                None => Err(Error::internal("account vanished after a key conflict")),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Account update and deactivation (§7.3.2, §7.3.6). An empty update returns the account.
    pub async fn update_account(
        &self,
        acct: &AccountRecord,
        upd: AccountUpdate,
    ) -> Result<AccountRecord> {
        if let Some(status) = upd.status {
            if status != acme_types::wire::AccountStatus::Deactivated {
                return Err(Error::malformed(format!(
                    "an account's status can only be changed to \"deactivated\", not {:?}",
                    status.as_str()
                )));
            }
        }
        if let Some(contact) = &upd.contact {
            validate_contacts(contact)?;
        }
        if let Some(contact) = &upd.contact {
            self.sa.update_account_contact(&acct.id, contact).await?;
        }
        let deactivated = upd.status.is_none() || self.sa.try_deactivate_account(&acct.id).await?;
        if !deactivated {
            return Err(Error::unauthorized("account is not valid"));
        }
        self.sa
            .get_account(&acct.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during update"))
    }

    /// keyChange (§7.3.5), after the front end verified both signatures: replaces the account
    /// key with `new_key` if `old_key` is the current one and no other account uses `new_key`.
    pub async fn change_key(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        old_key: &Jwk,
        new_key: &Jwk,
    ) -> Result<AccountRecord> {
        let old_tp = old_key.thumbprint();
        if old_tp != acct.jwk_thumbprint {
            return Err(Error::unauthorized(
                "keyChange: oldKey is not the account's current key",
            ));
        }
        let new_tp = new_key.thumbprint();
        if let Some(other) = self.sa.get_account_by_key(&tenant.name, &new_tp).await? {
            // §7.3.5: 409 Conflict with the Location of the account that holds the key.
            return Err(
                Error::malformed("keyChange: the new key is already in use by an account")
                    .with_status(409)
                    .with_location(tenant.account_url(&other.id)),
            );
        }
        match self
            .sa
            .try_change_account_key(&acct.id, &old_tp, &new_tp, &new_key.to_json().to_string())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::unauthorized(
                    "keyChange: the account key changed concurrently",
                ))
            }
            Err(SaError::Conflict(_)) => {
                return Err(Error::malformed(
                    "keyChange: the new key is already in use by an account",
                )
                .with_status(409))
            }
            Err(e) => return Err(e.into()),
        }
        self.sa
            .get_account(&acct.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during keyChange"))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_contacts;

    #[test]
    fn contacts_are_checked() {
        assert!(validate_contacts(&["mailto:ops@example.com".into()]).is_ok());
        for bad in [
            "mailto:a@b.com,c@d.com",
            "mailto:a@b.com?cc=x@y.com",
            "mailto:nobody",
            "mailto:@example.com",
            "mailto:a@localhost",
            "mailto:a@exa mple.com",
        ] {
            let e = validate_contacts(&[bad.into()]).unwrap_err();
            assert_eq!(
                e.kind(),
                acme_types::problem::ProblemType::InvalidContact,
                "{bad}"
            );
        }
        let e = validate_contacts(&["tel:+15551234".into()]).unwrap_err();
        assert_eq!(
            e.kind(),
            acme_types::problem::ProblemType::UnsupportedContact
        );
        let many: Vec<String> = (0..11)
            .map(|i| format!("mailto:a{i}@example.com"))
            .collect();
        assert!(validate_contacts(&many).is_err());
    }
}

//! Stored rows to records, once for every driver: sqlx's SQLite and PostgreSQL rows and
//! `rusqlite`'s (the inline SQLite reads, `sqlite::reads`). Each mapping reads columns by name
//! through [`Cols`], so the drivers cannot disagree about what a row means.

use super::lifecycle::OrderLifecycle;
use super::sql::from_json;
use super::{
    AccountRecord, AccountState, AuthzRecord, AuthzState, AuthzSummary, CertRecord,
    ChallengeRecord, ChallengeState, IdentifierKind, LifecycleLoaded, OrderRecord, OrderState,
    SaError, StoredChallengeKind, StoredIdentifier,
};

/// Typed access to a row's columns by name.
pub(super) trait Cols {
    /// A non-NULL text column.
    fn text(&self, col: &str) -> Result<String, SaError>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, SaError>;
    /// A non-NULL integer column.
    fn int(&self, col: &str) -> Result<i64, SaError>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, SaError>;
    /// A non-NULL blob (`bytea`) column.
    fn blob(&self, col: &str) -> Result<Vec<u8>, SaError>;
}

macro_rules! sqlx_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, col: &str) -> Result<String, SaError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, SaError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn int(&self, col: &str) -> Result<i64, SaError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, SaError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn blob(&self, col: &str) -> Result<Vec<u8>, SaError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
        }
    };
}
sqlx_cols!(sqlx::sqlite::SqliteRow);
sqlx_cols!(sqlx::postgres::PgRow);

/// A rusqlite row with its statement's column names, fetched once per query.
///
/// rusqlite's lookup by name asks SQLite for every column's name (and measures it) on each
/// lookup: a row mapped by ten names cost ~50 `sqlite3_column_name` calls, ~1 % of the
/// server's CPU in the issuance bench.
pub(super) struct NamedRow<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a [&'a str],
}

impl<'a, 'r> NamedRow<'a, 'r> {
    /// `row` of a statement whose column names are `names` (`Statement::column_names`).
    pub(super) fn new(row: &'a rusqlite::Row<'r>, names: &'a [&'a str]) -> Self {
        Self { row, names }
    }

    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> Result<T, SaError> {
        let i = self
            .names
            .iter()
            .position(|n| *n == col)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(col.to_string()))?;
        Ok(self.row.get(i)?)
    }
}

impl Cols for NamedRow<'_, '_> {
    fn text(&self, col: &str) -> Result<String, SaError> {
        self.get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, SaError> {
        self.get(col)
    }
    fn int(&self, col: &str) -> Result<i64, SaError> {
        self.get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, SaError> {
        self.get(col)
    }
    fn blob(&self, col: &str) -> Result<Vec<u8>, SaError> {
        self.get(col)
    }
}

/// An account by id.
pub(super) const ACCOUNT_BY_ID: &str = "SELECT * FROM accounts WHERE id = $1";
/// A challenge by id.
pub(super) const CHALLENGE_BY_ID: &str = "SELECT * FROM challenges WHERE id = $1";
/// A certificate by id.
pub(super) const CERT_BY_ID: &str = "SELECT * FROM certificates WHERE id = $1";

/// An `accounts` row.
pub(super) fn account(r: &impl Cols) -> Result<AccountRecord, SaError> {
    Ok(AccountRecord {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        jwk_thumbprint: r.text("jwk_thumbprint")?,
        jwk: r.text("jwk")?,
        contact: from_json(&r.text("contact")?)?,
        status: AccountState::parse(&r.text("status")?)?,
        tos_agreed: r.int("tos_agreed")? != 0,
        eab_kid: r.opt_text("eab_kid")?,
        created_at: r.int("created_at")?,
    })
}

/// A `challenges` row.
pub(super) fn challenge(r: &impl Cols) -> Result<ChallengeRecord, SaError> {
    Ok(ChallengeRecord {
        id: r.text("id")?,
        authz_id: r.text("authz_id")?,
        kind: StoredChallengeKind::parse(&r.text("type")?)?,
        token: r.text("token")?,
        status: ChallengeState::parse(&r.text("status")?)?,
        validated_at: r.opt_int("validated_at")?,
        error: r.opt_text("error")?,
        record: r.opt_text("record")?,
    })
}

/// A `certificates` row.
pub(super) fn cert(r: &impl Cols) -> Result<CertRecord, SaError> {
    Ok(CertRecord {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        serial: r.text("serial")?,
        account_id: r.text("account_id")?,
        order_id: r.text("order_id")?,
        der: r.blob("der")?,
        names: from_json(&r.text("names")?)?,
        not_before: r.int("not_before")?,
        not_after: r.int("not_after")?,
        issued_at: r.int("issued_at")?,
        revoked_at: r.opt_int("revoked_at")?,
        revocation_reason: r.opt_int("revocation_reason")?.map(|v| v as u8),
        issuer: r.opt_text("issuer")?,
    })
}

/// An order and its authorization links in one round trip: the order's columns repeat on each
/// link row, in position order.
pub(super) const ORDER_WITH_AUTHZS: &str =
    "SELECT o.id, o.tenant, o.account_id, o.status, o.expires, o.identifiers, o.error,
            o.cert_id, o.created_at, ol.profile AS lc_profile,
            ol.replaces_cert_id AS lc_replaces, l.authz_id,
            a.status AS authz_status, a.expires AS authz_expires,
            COALESCE(
              (SELECT MAX(c.validated_at) FROM challenges c
                WHERE c.authz_id = a.id AND c.status = 'valid'),
              (SELECT MAX(c.validated_at) FROM challenges c
                WHERE c.authz_id = a.attested_by AND c.status = 'valid')
            ) AS authz_validated_at
     FROM orders o LEFT JOIN order_lifecycle ol ON ol.order_id = o.id
          LEFT JOIN order_authzs l ON l.order_id = o.id
          LEFT JOIN authzs a ON a.id = l.authz_id
     WHERE o.id = $1 ORDER BY l.position";

/// The order of the first [`ORDER_WITH_AUTHZS`] row, without its links.
pub(super) fn order_head(r: &impl Cols) -> Result<OrderRecord, SaError> {
    Ok(OrderRecord {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        account_id: r.text("account_id")?,
        status: OrderState::parse(&r.text("status")?)?,
        expires: r.int("expires")?,
        identifiers: from_json(&r.text("identifiers")?)?,
        error: r.opt_text("error")?,
        cert_id: r.opt_text("cert_id")?,
        created_at: r.int("created_at")?,
        authz_ids: Vec::new(),
        authz_states: Vec::new(),
        lifecycle: LifecycleLoaded::Read(
            r.opt_text("lc_profile")?
                .map(|profile| -> Result<OrderLifecycle, SaError> {
                    Ok(OrderLifecycle {
                        profile,
                        replaces_cert_id: r.opt_text("lc_replaces")?,
                    })
                })
                .transpose()?,
        ),
    })
}

/// Adds an [`ORDER_WITH_AUTHZS`] row's link (if any) to the order.
pub(super) fn order_link(o: &mut OrderRecord, r: &impl Cols) -> Result<(), SaError> {
    if let Some(a) = r.opt_text("authz_id")? {
        o.authz_ids.push(a);
        // order_authzs references authzs, so the state is there; if it ever were not, the
        // lengths differ and the order's status is worked out from reads instead.
        if let (Some(status), Some(expires)) =
            (r.opt_text("authz_status")?, r.opt_int("authz_expires")?)
        {
            o.authz_states.push(AuthzSummary {
                status: AuthzState::parse(&status)?,
                expires,
                validated_at: r.opt_int("authz_validated_at")?,
            });
        }
    }
    Ok(())
}

/// A parent joined with its children, from all its rows (sqlx; the rusqlite reads stream
/// theirs in `sqlite::reads::joined`): the parent from the first row, each row's child added.
pub(super) fn joined<R: Cols, T>(
    rows: &[R],
    head: impl Fn(&R) -> Result<T, SaError>,
    link: impl Fn(&mut T, &R) -> Result<(), SaError>,
) -> Result<Option<T>, SaError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut parent = head(first)?;
    for r in rows {
        link(&mut parent, r)?;
    }
    Ok(Some(parent))
}

/// An authorization and its challenges in one round trip, for the authorization `$cond`
/// selects: the authorization's columns repeat on each challenge row (none for an attested
/// name).
macro_rules! authz_with_challenges_where {
    ($cond:literal) => {
        concat!(
            "SELECT a.id, a.tenant, a.account_id, a.ident_type, a.ident_value, a.wildcard,
                    a.status, a.expires, a.created_at, a.attested_by, a.derived_from,
                    a.subdomain_auth_allowed, a.ancestor_authz,
                    c.id AS c_id, c.type AS c_type, c.token AS c_token, c.status AS c_status,
                    c.validated_at AS c_validated_at, c.error AS c_error, c.record AS c_record
             FROM authzs a LEFT JOIN challenges c ON c.authz_id = a.id
             WHERE ",
            $cond,
            " ORDER BY c.type"
        )
    };
}

/// The authorization `$1` with its challenges.
pub(super) const AUTHZ_WITH_CHALLENGES: &str = authz_with_challenges_where!("a.id = $1");

/// The authorization holding challenge `$1`, with all its challenges.
pub(super) const AUTHZ_WITH_CHALLENGES_BY_CHALLENGE: &str =
    authz_with_challenges_where!("a.id = (SELECT authz_id FROM challenges WHERE id = $1)");

/// The authorization of the first [`AUTHZ_WITH_CHALLENGES`] row, without its challenges.
pub(super) fn authz_head(r: &impl Cols) -> Result<AuthzRecord, SaError> {
    Ok(AuthzRecord {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        account_id: r.text("account_id")?,
        identifier: StoredIdentifier {
            kind: IdentifierKind::parse(&r.text("ident_type")?)?,
            value: r.text("ident_value")?,
        },
        wildcard: r.int("wildcard")? != 0,
        status: AuthzState::parse(&r.text("status")?)?,
        expires: r.int("expires")?,
        created_at: r.int("created_at")?,
        challenges: Vec::new(),
        attested_by: r.opt_text("attested_by")?,
        derived_from: r.opt_text("derived_from")?,
        subdomain_auth_allowed: r.int("subdomain_auth_allowed")? != 0,
        ancestor_authz: r.opt_text("ancestor_authz")?,
    })
}

/// Adds an [`AUTHZ_WITH_CHALLENGES`] row's challenge (if any) to the authorization.
pub(super) fn authz_challenge(a: &mut AuthzRecord, r: &impl Cols) -> Result<(), SaError> {
    let Some(id) = r.opt_text("c_id")? else {
        return Ok(());
    };
    a.challenges.push(ChallengeRecord {
        id,
        authz_id: a.id.clone(),
        kind: StoredChallengeKind::parse(&r.text("c_type")?)?,
        token: r.text("c_token")?,
        status: ChallengeState::parse(&r.text("c_status")?)?,
        validated_at: r.opt_int("c_validated_at")?,
        error: r.opt_text("c_error")?,
        record: r.opt_text("c_record")?,
    });
    Ok(())
}

/// An `order_lifecycle` row (`lifecycle::ORDER_LIFECYCLE_BY_ORDER`).
pub(super) fn order_lifecycle(r: &impl Cols) -> Result<OrderLifecycle, SaError> {
    Ok(OrderLifecycle {
        profile: r.text("profile")?,
        replaces_cert_id: r.opt_text("replaces_cert_id")?,
    })
}

//! The storage suite, written once against [`Storage`] so every backend runs it.

use super::*;
use std::sync::Arc;

async fn sqlite() -> Arc<dyn Storage> {
    Arc::new(
        SqliteStorage::open_scratch()
            .await
            .expect("scratch sqlite database"),
    )
}

fn account(id: &str, tp: &str) -> AccountRecord {
    AccountRecord {
        id: id.into(),
        tenant: "default".into(),
        jwk_thumbprint: tp.into(),
        jwk: "{}".into(),
        contact: vec!["mailto:a@example.com".into()],
        status: AccountState::Valid,
        tos_agreed: true,
        eab_kid: None,
        created_at: 100,
    }
}

fn lease(owner: &str, until: i64) -> Lease {
    Lease {
        owner: owner.into(),
        until,
    }
}

fn ident(v: &str) -> StoredIdentifier {
    StoredIdentifier {
        kind: IdentifierKind::Dns,
        value: v.into(),
    }
}

fn order_with_authz(id: &str, acct: &str, authz_status: AuthzState) -> (OrderRecord, AuthzRecord) {
    let authz = AuthzRecord {
        id: format!("{id}-authz"),
        tenant: "default".into(),
        account_id: acct.into(),
        identifier: ident("a.example.com"),
        wildcard: false,
        status: authz_status,
        expires: 10_000,
        created_at: 100,
        challenges: vec![ChallengeRecord {
            id: format!("{id}-chall"),
            authz_id: format!("{id}-authz"),
            kind: StoredChallengeKind::Dns01,
            token: "tok".into(),
            status: ChallengeState::Pending,
            validated_at: None,
            error: None,
            record: None,
        }],
        attested_by: None,
        derived_from: None,
        subdomain_auth_allowed: false,
        ancestor_authz: None,
    };
    let order = OrderRecord {
        id: id.into(),
        tenant: "default".into(),
        account_id: acct.into(),
        status: OrderState::Pending,
        expires: 10_000,
        identifiers: vec![ident("a.example.com")],
        error: None,
        cert_id: None,
        created_at: 100,
        authz_ids: vec![authz.id.clone()],
        authz_states: Vec::new(),
        lifecycle: Default::default(),
    };
    (order, authz)
}

fn cert(id: &str, order: &str) -> CertRecord {
    CertRecord {
        id: id.into(),
        tenant: "default".into(),
        serial: format!("{:0>32}", id.len()),
        account_id: "acct".into(),
        order_id: order.into(),
        der: vec![1, 2, 3],
        names: vec![ident("a.example.com")],
        not_before: 100,
        not_after: 5000,
        issued_at: 100,
        revoked_at: None,
        revocation_reason: None,
        issuer: None,
    }
}

async fn suite(sa: Arc<dyn Storage>) {
    // Accounts: one per key per tenant.
    sa.insert_account(&account("acct", "tp1")).await.unwrap();
    assert!(matches!(
        sa.insert_account(&account("acct2", "tp1")).await,
        Err(SaError::Conflict(_))
    ));
    sa.insert_account(&account("acct3", "tp3")).await.unwrap();
    assert_eq!(
        sa.get_account_by_key("default", "tp1")
            .await
            .unwrap()
            .unwrap()
            .id,
        "acct"
    );
    assert!(sa
        .get_account_by_key("other", "tp1")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        sa.try_change_account_key("acct", "tp1", "tp3", "{}").await,
        Err(SaError::Conflict(_))
    ));
    assert!(!sa
        .try_change_account_key("acct", "wrong-old", "tp9", "{}")
        .await
        .unwrap());
    assert!(sa
        .try_change_account_key("acct", "tp1", "tp9", "{}")
        .await
        .unwrap());

    // Orders with their authorizations and challenges.
    let (order, authz) = order_with_authz("o1", "acct", AuthzState::Pending);
    sa.insert_order(&order, std::slice::from_ref(&authz), None)
        .await
        .unwrap();
    let got = sa.get_order("o1").await.unwrap().unwrap();
    assert_eq!(got.authz_ids, vec!["o1-authz".to_string()]);
    // The order's read carries each authorization's state, for the order's status.
    assert_eq!(
        got.authz_states,
        vec![AuthzSummary {
            status: AuthzState::Pending,
            expires: 10_000,
            validated_at: None
        }]
    );
    assert_eq!(
        sa.get_authz("o1-authz")
            .await
            .unwrap()
            .unwrap()
            .challenges
            .len(),
        1
    );
    assert_eq!(
        sa.find_reusable_authz("acct", &ident("a.example.com"), false, 0, 5000)
            .await
            .unwrap()
            .as_deref(),
        Some("o1-authz")
    );
    assert_eq!(
        sa.find_reusable_authz("acct", &ident("a.example.com"), true, 0, 5000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        sa.find_reusable_authz("acct", &ident("a.example.com"), false, 0, 20_000)
            .await
            .unwrap(),
        None,
        "expiring too soon"
    );

    // Challenge: started once, finished once; success validates the authorization.
    assert!(sa
        .try_start_challenge("o1-chall", &lease("first", 150))
        .await
        .unwrap());
    assert!(!sa
        .try_start_challenge("o1-chall", &lease("first", 150))
        .await
        .unwrap());
    // Still leased: nobody takes it over, and its owner can renew it.
    assert!(sa
        .claim_stale_challenges(149, &lease("sweep", 300), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(sa
        .renew_challenge_lease("o1-chall", &lease("first", 150))
        .await
        .unwrap());
    assert!(
        !sa.renew_challenge_lease("o1-chall", &lease("other", 150))
            .await
            .unwrap(),
        "only the lease's owner renews it"
    );
    // A sweep with no room takes nothing; after the lease, exactly one sweep takes it.
    assert!(sa
        .claim_stale_challenges(151, &lease("sweep", 300), 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sa.claim_stale_challenges(151, &lease("sweep", 300), 10)
            .await
            .unwrap(),
        vec!["o1-chall".to_string()]
    );
    assert!(sa
        .claim_stale_challenges(151, &lease("sweep2", 300), 10)
        .await
        .unwrap()
        .is_empty());
    // The first owner lost it: a validation that waited that long must not run.
    assert!(!sa
        .renew_challenge_lease("o1-chall", &lease("first", 400))
        .await
        .unwrap());
    assert!(sa
        .renew_challenge_lease("o1-chall", &lease("sweep", 400))
        .await
        .unwrap());
    sa.finish_challenge(
        "o1-chall",
        ChallengeOutcome {
            valid: true,
            at: 200,
            authz_expires: 9000,
            error: None,
            record: Some("{}".into()),
            give_back: None,
        },
    )
    .await
    .unwrap();
    let a = sa.get_authz("o1-authz").await.unwrap().unwrap();
    assert_eq!((a.status, a.expires), (AuthzState::Valid, 9000));
    assert!(
        !sa.renew_challenge_lease("o1-chall", &lease("sweep", 500))
            .await
            .unwrap(),
        "a decided validation is not run again"
    );
    // The authorization found through its challenge is the same, challenge state included.
    let by_ch = sa
        .get_authz_by_challenge("o1-chall")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format!("{by_ch:?}"), format!("{a:?}"));
    assert_eq!(by_ch.challenges[0].status, ChallengeState::Valid);
    assert_eq!(by_ch.challenges[0].validated_at, Some(200));
    assert_eq!(
        sa.get_order("o1").await.unwrap().unwrap().authz_states,
        vec![AuthzSummary {
            status: AuthzState::Valid,
            expires: 9000,
            validated_at: Some(200)
        }]
    );
    assert!(sa
        .get_authz_by_challenge("o1-authz")
        .await
        .unwrap()
        .is_none());
    assert!(sa.get_authz_by_challenge("nope").await.unwrap().is_none());
    assert!(sa
        .has_valid_authzs("acct", &[(ident("a.example.com"), false)], 300)
        .await
        .unwrap());
    assert!(!sa
        .has_valid_authzs("acct", &[(ident("b.example.com"), false)], 300)
        .await
        .unwrap());
    // A plain authorization is not a wildcard one (RFC 8555 §7.6 revocation).
    assert!(!sa
        .has_valid_authzs("acct", &[(ident("a.example.com"), true)], 300)
        .await
        .unwrap());

    // Finalize: a claim makes the order processing; only its holder stores, once; a released
    // claim makes it pending again; a second claim of a processing or valid order fails.
    let first = claim("t1", 1000);
    assert!(sa.try_claim_order("o1", &first).await.unwrap());
    assert_eq!(
        sa.get_order("o1").await.unwrap().unwrap().status,
        OrderState::Processing
    );
    assert!(!sa.try_claim_order("o1", &claim("t2", 1000)).await.unwrap());
    assert!(!sa.release_order_claim("o1", "t2").await.unwrap());
    assert!(sa.release_order_claim("o1", "t1").await.unwrap());
    assert_eq!(
        sa.get_order("o1").await.unwrap().unwrap().status,
        OrderState::Pending
    );
    // A stale token (its claim was released) stores nothing.
    assert!(!sa
        .store_certificate("o1", "t1", &cert("c0", "o1"), None)
        .await
        .unwrap());
    assert!(sa.get_cert("c0").await.unwrap().is_none());
    assert!(sa.try_claim_order("o1", &claim("t3", 1000)).await.unwrap());
    assert!(!sa
        .store_certificate("o1", "t1", &cert("c0", "o1"), None)
        .await
        .unwrap());
    assert!(sa
        .store_certificate("o1", "t3", &cert("c1", "o1"), None)
        .await
        .unwrap());
    let o = sa.get_order("o1").await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.cert_id.as_deref()),
        (OrderState::Valid, Some("c1"))
    );
    assert!(sa.get_cert("c0").await.unwrap().is_none());
    assert!(!sa.try_claim_order("o1", &claim("t4", 1000)).await.unwrap());
    assert!(!sa
        .store_certificate("o1", "t3", &cert("c2", "o1"), None)
        .await
        .unwrap());

    // Revocation is one-shot and feeds the CRL until expiry.
    assert!(sa.try_revoke_cert("c1", 300, Some(1)).await.unwrap());
    assert!(!sa.try_revoke_cert("c1", 301, None).await.unwrap());
    let revoked = sa.revoked_certs("default", "default", 1000).await.unwrap();
    assert_eq!((revoked.len(), revoked[0].reason), (1, Some(1)));
    assert!(
        sa.revoked_certs("default", "default", 6000)
            .await
            .unwrap()
            .is_empty(),
        "expired entries drop off"
    );
    // A certificate stored without an issuer id belongs to the tenant's first CA only: the
    // CRL of a CA made by a rollover does not list it.
    assert!(sa
        .revoked_certs("default", "default_g2", 1000)
        .await
        .unwrap()
        .is_empty());

    // CRLs only move forward.
    sa.store_crl(
        "default",
        &CrlRecord {
            number: 5,
            der: vec![5],
            this_update: 1,
            next_update: 2,
        },
    )
    .await
    .unwrap();
    sa.store_crl(
        "default",
        &CrlRecord {
            number: 4,
            der: vec![4],
            this_update: 1,
            next_update: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(sa.get_crl("default").await.unwrap().unwrap().number, 5);

    // Orders list pagination.
    for i in 0..5 {
        let (o, a) = order_with_authz(&format!("p{i}"), "acct3", AuthzState::Pending);
        sa.insert_order(&o, &[a], None).await.unwrap();
    }
    let page1 = sa.list_order_ids("acct3", None, 3).await.unwrap();
    let page2 = sa
        .list_order_ids("acct3", page1.last().map(String::as_str), 3)
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 5);
    assert!(page1.iter().all(|p| !page2.contains(p)));

    // The order's read carries its lifecycle row (or that it has none): no second read.
    assert_eq!(
        sa.get_order("p0").await.unwrap().unwrap().lifecycle,
        LifecycleLoaded::Read(None)
    );
    let (o, a) = order_with_authz("lc1", "acct3", AuthzState::Pending);
    let lifecycle = OrderLifecycle {
        profile: "shortlived".into(),
        replaces_cert_id: Some("c-old".into()),
    };
    sa.insert_order(&o, &[a], Some(&lifecycle)).await.unwrap();
    assert_eq!(
        sa.get_order("lc1").await.unwrap().unwrap().lifecycle,
        LifecycleLoaded::Read(Some(lifecycle))
    );
}

/// A device order: a `permanent-identifier` authorization with a device-attest-01 challenge
/// and a templated DNS authorization attested by it (listed first, as the RA does).
fn device_order(id: &str, acct: &str) -> (OrderRecord, Vec<AuthzRecord>) {
    let dev = AuthzRecord {
        id: format!("{id}-dev"),
        tenant: "default".into(),
        account_id: acct.into(),
        identifier: StoredIdentifier {
            kind: IdentifierKind::PermanentIdentifier,
            value: "SN1".into(),
        },
        wildcard: false,
        status: AuthzState::Pending,
        expires: 10_000,
        created_at: 100,
        challenges: vec![ChallengeRecord {
            id: format!("{id}-chall"),
            authz_id: format!("{id}-dev"),
            kind: StoredChallengeKind::DeviceAttest01,
            token: "tok".into(),
            status: ChallengeState::Pending,
            validated_at: None,
            error: None,
            record: None,
        }],
        attested_by: None,
        derived_from: None,
        subdomain_auth_allowed: false,
        ancestor_authz: None,
    };
    let name = AuthzRecord {
        id: format!("{id}-name"),
        identifier: ident("sn1.routers.example.com"),
        challenges: Vec::new(),
        attested_by: Some(dev.id.clone()),
        ..dev.clone()
    };
    let order = OrderRecord {
        id: id.into(),
        tenant: "default".into(),
        account_id: acct.into(),
        status: OrderState::Pending,
        expires: 10_000,
        identifiers: vec![name.identifier.clone(), dev.identifier.clone()],
        error: None,
        cert_id: None,
        created_at: 100,
        authz_ids: vec![name.id.clone(), dev.id.clone()],
        authz_states: Vec::new(),
        lifecycle: Default::default(),
    };
    (order, vec![name, dev])
}

/// Authorizations attested by another move with it, in the same transaction, and are never
/// reused (nor is the authorization that decides them).
async fn attested_suite(sa: Arc<dyn Storage>) {
    sa.insert_account(&account("acct", "tp1")).await.unwrap();
    let outcome = |valid: bool| ChallengeOutcome {
        valid,
        at: 200,
        authz_expires: 9000,
        error: (!valid).then(|| "{}".to_string()),
        record: None,
        give_back: None,
    };
    let status = |id: &'static str| {
        let sa = sa.clone();
        async move { sa.get_authz(id).await.unwrap().unwrap() }
    };

    let (order, authzs) = device_order("d1", "acct");
    sa.insert_order(&order, &authzs, None).await.unwrap();
    let name = status("d1-name").await;
    assert_eq!(name.attested_by.as_deref(), Some("d1-dev"));
    assert!(name.challenges.is_empty());
    for i in [
        ident("sn1.routers.example.com"),
        authzs[1].identifier.clone(),
    ] {
        assert_eq!(
            sa.find_reusable_authz("acct", &i, false, 0, 5000)
                .await
                .unwrap(),
            None,
            "{i:?} is bound to its order"
        );
    }
    assert!(sa
        .try_start_challenge("d1-chall", &lease("first", 150))
        .await
        .unwrap());
    sa.finish_challenge("d1-chall", outcome(true))
        .await
        .unwrap();
    for id in ["d1-dev", "d1-name"] {
        let a = status(id).await;
        assert_eq!((a.status, a.expires), (AuthzState::Valid, 9000), "{id}");
    }
    // The templated name counts as validated when its device's attestation was verified.
    let d1 = sa.get_order("d1").await.unwrap().unwrap();
    let at = |s: &[AuthzSummary]| s.iter().map(|a| a.validated_at).collect::<Vec<_>>();
    let verified = sa
        .get_challenge("d1-chall")
        .await
        .unwrap()
        .unwrap()
        .validated_at;
    assert!(verified.is_some());
    assert_eq!(at(&d1.authz_states), vec![verified, verified]);
    assert_eq!(
        sa.find_reusable_authz("acct", &ident("sn1.routers.example.com"), false, 0, 5000)
            .await
            .unwrap(),
        None,
        "a valid templated authorization is not reused either"
    );

    // A refused attestation takes the templated name down with it.
    let (order, authzs) = device_order("d2", "acct");
    sa.insert_order(&order, &authzs, None).await.unwrap();
    assert!(sa
        .try_start_challenge("d2-chall", &lease("first", 150))
        .await
        .unwrap());
    sa.finish_challenge("d2-chall", outcome(false))
        .await
        .unwrap();
    for id in ["d2-dev", "d2-name"] {
        assert_eq!(status(id).await.status, AuthzState::Invalid, "{id}");
    }
    // The order's read carries both states, in its authorizations' order.
    let d2 = sa.get_order("d2").await.unwrap().unwrap();
    assert_eq!(d2.authz_ids, vec!["d2-name", "d2-dev"]);
    assert_eq!(
        d2.authz_states,
        vec![
            AuthzSummary {
                status: AuthzState::Invalid,
                expires: 10_000,
                validated_at: None
            };
            2
        ]
    );
    // The first order's names are untouched by the second order's failure.
    assert_eq!(status("d1-name").await.status, AuthzState::Valid);

    // Deactivating the device's authorization deactivates the names it grants.
    let (order, authzs) = device_order("d3", "acct");
    sa.insert_order(&order, &authzs, None).await.unwrap();
    assert!(sa.try_deactivate_authz("d3-dev").await.unwrap());
    assert_eq!(status("d3-name").await.status, AuthzState::Deactivated);
    assert!(!sa
        .try_start_challenge("d3-chall", &lease("first", 150))
        .await
        .unwrap());
}

#[tokio::test]
async fn sqlite_attested_authzs() {
    attested_suite(sqlite().await).await;
}

#[tokio::test]
async fn postgres_attested_authzs() {
    if let Some(sa) = postgres().await {
        attested_suite(sa).await;
    }
}

/// A PostgreSQL storage in a fresh schema of the database `FLEETCA_TEST_POSTGRES` names
/// (.ci/run starts the cluster and exports it). Outside CI a missing database skips the test.
pub(crate) async fn postgres() -> Option<Arc<dyn Storage>> {
    postgres_pair().await.map(|(a, _)| a as Arc<dyn Storage>)
}

/// The tool gate the integration tests use: a visible SKIP outside CI, a failure under CI.
#[path = "../../tests/support/gate.rs"]
mod gate;

/// Two independent connections ("nodes") to the same fresh PostgreSQL schema.
pub(crate) async fn postgres_pair() -> Option<(Arc<PgStorage>, Arc<PgStorage>)> {
    let opts = postgres_schema().await?;
    let a = PgStorage::connect_with(opts.clone())
        .await
        .expect("PgStorage");
    let b = PgStorage::connect_with(opts)
        .await
        .expect("second PgStorage");
    Some((Arc::new(a), Arc::new(b)))
}

/// Connection options for a fresh schema of its own in the test database, if there is one.
async fn postgres_schema() -> Option<sqlx::postgres::PgConnectOptions> {
    // The harness names each test's thread after the test, which is what SKIP should name.
    let test = std::thread::current()
        .name()
        .unwrap_or("postgres_pair")
        .to_string();
    let url = gate::postgres_url(&test)?;
    use sqlx::{Connection, Executor};
    use std::str::FromStr;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let schema = format!(
        "t_{now}_{}",
        crate::ids::new_id().to_lowercase().replace(['-', '_'], "")
    );
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to FLEETCA_TEST_POSTGRES");
    // Each pair gets its own schema and nothing drops it when the test ends (the storages
    // outlive the test body), so schemas made over an hour ago are swept here instead: no
    // test runs that long, and a developer's database does not grow by ~10 schemas a run.
    let made: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_'")
            .fetch_all(&mut admin)
            .await
            .expect("list test schemas");
    for old in made {
        let at = old[2..]
            .split('_')
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        let plain = old
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain && at.is_some_and(|at| at + 3600 < now) {
            // Only names this function makes get here (checked character by character, as
            // they go into SQL text); another run may be sweeping the same one, so a failure
            // is not an error.
            let _ = admin
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {old} CASCADE"
                ))))
                .await;
        }
    }
    let ddl = format!("CREATE SCHEMA {schema}");
    // The schema name is generated here from base64url characters, never from input.
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)))
        .await
        .expect("create schema");
    let opts = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    Some(opts)
}

/// `serve --database-pool N`: a node keeps at most N connections to PostgreSQL, however many
/// requests wait for one (they queue for the pool instead); a larger pool opens more under
/// the same load, so the bound is the setting's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_size_bounds_the_connections() {
    let Some(opts) = postgres_schema().await else {
        return;
    };
    async fn busiest(opts: &sqlx::postgres::PgConnectOptions, pool: u32) -> u32 {
        let sa = PgStorage::connect_with_pool(opts.clone(), pool)
            .await
            .expect("PgStorage");
        let p = sa.pool_for_tests().clone();
        let mut queries = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let p = p.clone();
            queries.spawn(async move { sqlx::query("SELECT pg_sleep(0.2)").execute(&p).await });
        }
        let mut most = 0;
        loop {
            tokio::select! {
                done = queries.join_next() => match done {
                    Some(r) => {
                        r.expect("task").expect("every query runs");
                        most = most.max(p.size());
                    }
                    None => return most,
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {
                    most = most.max(p.size());
                }
            }
        }
    }
    assert!(busiest(&opts, 2).await <= 2);
    assert!(busiest(&opts, 8).await > 2, "a larger pool opens more");
}

/// A schema an earlier run left over an hour ago is dropped when the next pair is made; one
/// made a minute ago (maybe a concurrent run's) is kept.
#[tokio::test]
async fn test_schemas_left_behind_are_swept() {
    let Some(url) = gate::postgres_url("test_schemas_left_behind_are_swept") else {
        return;
    };
    use sqlx::{Connection, Executor};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let suffix = crate::ids::new_id().to_lowercase().replace(['-', '_'], "");
    let (stale, recent) = (
        format!("t_{}_{suffix}", now - 7200),
        format!("t_{}_{suffix}", now - 60),
    );
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    for s in [&stale, &recent] {
        // Generated above from digits and base64url letters.
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA {s}"
            ))))
            .await
            .unwrap();
    }
    postgres_pair().await.expect("pair");
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1 OR nspname = $2",
    )
    .bind(&stale)
    .bind(&recent)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(left, std::slice::from_ref(&recent));
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {recent}"
        ))))
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_storage_suite() {
    suite(sqlite().await).await;
}

/// The same suite on a database file, where writes go through the group-commit barrier.
#[tokio::test]
async fn sqlite_file_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    let sa = SqliteStorage::open(&dir.path().join("suite.db"))
        .await
        .unwrap();
    suite(Arc::new(sa.clone())).await;
    assert!(
        sa.group_commit_counts().1 > 0,
        "the file-backed writes synced"
    );
    assert_eq!(sa.integrity_check().await.unwrap(), "ok");
}

/// Every write is durable before it returns, by one of two routes: the issuance-path writes
/// run on the writer thread, whose batch commit syncs the WAL (`sqlite::batch`); the others go
/// through sqlx on a `synchronous=NORMAL` connection and must pass the group-commit barrier.
/// A write that took neither route could be reported done and then lost to a power cut.
#[tokio::test]
async fn sqlite_writes_wait_for_durability() {
    let dir = tempfile::tempdir().unwrap();
    let sa = SqliteStorage::open(&dir.path().join("d.db")).await.unwrap();
    // (barriers passed, writes committed by the writer thread)
    let routes = || (sa.group_commit_counts().0, sa.write_batch_counts().1);
    let mut seen = routes();
    let mut step = |what: &str, batched: bool| {
        let now = routes();
        let want = if batched {
            (seen.0, seen.1 + 1)
        } else {
            (seen.0 + 1, seen.1)
        };
        assert_eq!(now, want, "{what} took its durable route exactly once");
        seen = now;
    };
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    step("insert_account", false);
    sa.update_account_contact("acct", &[]).await.unwrap();
    step("update_account_contact", false);
    let (order, authz) = order_with_authz("o", "acct", AuthzState::Pending);
    sa.insert_order(&order, &[authz], None).await.unwrap();
    step("insert_order", true);
    assert!(sa
        .try_start_challenge("o-chall", &lease("first", 10))
        .await
        .unwrap());
    step("try_start_challenge", true);
    sa.finish_challenge(
        "o-chall",
        ChallengeOutcome {
            valid: true,
            at: 200,
            authz_expires: 20_000,
            error: None,
            record: None,
            give_back: None,
        },
    )
    .await
    .unwrap();
    step("finish_challenge", true);
    assert!(sa.try_claim_order("o", &claim("t", 1000)).await.unwrap());
    step("try_claim_order", true);
    assert!(sa
        .store_certificate("o", "t", &cert("c1", "o"), None)
        .await
        .unwrap());
    step("store_certificate", true);
    assert!(sa.try_revoke_cert("c1", 300, Some(1)).await.unwrap());
    step("try_revoke_cert", false);
    assert!(sa.try_deactivate_account("acct").await.unwrap());
    step("try_deactivate_account", false);
}

#[tokio::test]
async fn postgres_storage_suite() {
    if let Some(sa) = postgres().await {
        suite(sa).await;
    }
}

#[tokio::test]
async fn concurrent_finalize_signs_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_finalize(Arc::new(
        SqliteStorage::open(&dir.path().join("t.db")).await.unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn concurrent_finalize_signs_once_postgres() {
    if let Some(sa) = postgres().await {
        concurrent_finalize(sa).await;
    }
}

async fn concurrent_finalize(sa: Arc<dyn Storage>) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("o", "acct", AuthzState::Valid);
    sa.insert_order(&order, &[authz], None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let sa = sa.clone();
        tasks.push(tokio::spawn(async move {
            let token = format!("t{i}");
            if !sa.try_claim_order("o", &claim(&token, 1000)).await.unwrap() {
                return 0;
            }
            // Only a claim's holder signs; its store must then succeed.
            assert!(sa
                .store_certificate("o", &token, &cert(&format!("c{i}"), "o"), None)
                .await
                .unwrap());
            1
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap();
    }
    assert_eq!(winners, 1, "only one request claims the order");
}

/// Finalize's claim with its read (`Storage::claim_order_spending`) takes the order only when
/// it is ready for the asking tenant and account and no CAA recheck is due; each condition
/// broken alone leaves the order unclaimed, and the read shows the order as it was before.
/// `nonce` makes the request's nonce as the front end would hand it to this backend.
async fn claim_at_read(sa: Arc<dyn Storage>, nonce: impl Fn() -> Nonce) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    // Orders whose authorization is validated at 200 (valid until 9000), and one whose
    // authorization stays pending.
    for id in ["ok", "late", "old", "other"] {
        let (order, authz) = order_with_authz(id, "acct", AuthzState::Pending);
        sa.insert_order(&order, &[authz], None).await.unwrap();
        assert!(sa
            .try_start_challenge(&format!("{id}-chall"), &lease("va", 150))
            .await
            .unwrap());
        sa.finish_challenge(
            &format!("{id}-chall"),
            ChallengeOutcome {
                valid: true,
                at: 200,
                authz_expires: 9000,
                error: None,
                record: None,
                give_back: None,
            },
        )
        .await
        .unwrap();
    }
    let (order, authz) = order_with_authz("unready", "acct", AuthzState::Pending);
    sa.insert_order(&order, &[authz], None).await.unwrap();

    let token = claim("t", 5000);
    let at =
        |order_id: &'static str, tenant: &'static str, account_id: &'static str, now, since| {
            ClaimAtRead {
                order_id,
                tenant,
                account_id,
                now,
                validated_since: since,
                claim: &token,
            }
        };
    async fn claim_with(
        sa: &dyn Storage,
        at: ClaimAtRead<'_>,
        nonce: Nonce,
    ) -> (Option<OrderState>, bool) {
        let (spend, order, claimed) = sa.claim_order_spending(&at, &nonce).await.unwrap();
        assert_eq!(spend, GuardedSpend::Spent);
        (order.map(|o| o.status), claimed)
    }
    let try_claim = |at| claim_with(sa.as_ref(), at, nonce());
    let pending = Some(OrderState::Pending);
    let unclaimed = [
        ("another tenant", at("ok", "other", "acct", 300, Some(100))),
        (
            "another account",
            at("ok", "default", "acct2", 300, Some(100)),
        ),
        (
            "an expired authorization",
            at("late", "default", "acct", 9000, None),
        ),
        (
            "a validation before the CAA window",
            at("old", "default", "acct", 300, Some(201)),
        ),
        (
            "a pending authorization",
            at("unready", "default", "acct", 300, None),
        ),
    ];
    for (what, at) in unclaimed {
        let id = at.order_id;
        assert_eq!(try_claim(at).await, (pending, false), "{what}");
        assert_eq!(
            sa.get_order(id).await.unwrap().unwrap().status,
            OrderState::Pending,
            "{what} claims nothing"
        );
    }
    assert_eq!(
        try_claim(at("gone", "default", "acct", 300, None)).await,
        (None, false)
    );
    // Validated exactly at the window's start, and without a window: claimed; the read is
    // the order before its claim.
    assert_eq!(
        try_claim(at("old", "default", "acct", 300, Some(200))).await,
        (pending, true)
    );
    assert_eq!(
        try_claim(at("ok", "default", "acct", 300, None)).await,
        (pending, true)
    );
    assert_eq!(
        sa.get_order("ok").await.unwrap().unwrap().status,
        OrderState::Processing
    );
    // Claimed once: a second request reads it processing and claims nothing.
    assert_eq!(
        try_claim(at("ok", "default", "acct", 300, None)).await,
        (Some(OrderState::Processing), false)
    );
    assert!(sa
        .store_certificate("ok", "t", &cert("c-ok", "ok"), None)
        .await
        .unwrap());
}

#[tokio::test]
async fn sqlite_claims_a_ready_order_with_its_read() {
    claim_at_read(sqlite().await, || Nonce::Spent).await;
}

/// A fresh nonce as the front end hands it to a store that spends nonces with its reads.
fn fresh_nonce() -> Nonce {
    Nonce::Pending(PendingSpend {
        id: crate::ids::new_id().into_bytes(),
        expires: i64::MAX / 2,
        guard: None,
    })
}

#[tokio::test]
async fn postgres_claims_a_ready_order_with_its_read() {
    if let Some(sa) = postgres().await {
        claim_at_read(sa, fresh_nonce).await;
    }
}

/// During a zero-downtime restart two `serve` processes share one SQLite file: a finalize
/// claim taken by one must keep the other from claiming (and signing) the same order, and
/// show it `processing` there, until the holder stores.
#[tokio::test]
async fn a_sqlite_claim_excludes_another_process_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.db");
    let old = SqliteStorage::open(&path).await.unwrap();
    let new = SqliteStorage::open(&path).await.unwrap();
    old.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("o", "acct", AuthzState::Valid);
    old.insert_order(&order, &[authz], None).await.unwrap();
    assert!(old.try_claim_order("o", &claim("old", 1000)).await.unwrap());
    let status = |o: Option<OrderRecord>| o.unwrap().status;
    assert_eq!(
        status(new.get_order("o").await.unwrap()),
        OrderState::Processing
    );
    assert!(!new.try_claim_order("o", &claim("new", 1000)).await.unwrap());
    assert!(old
        .store_certificate("o", "old", &cert("c1", "o"), None)
        .await
        .unwrap());
    assert_eq!(status(new.get_order("o").await.unwrap()), OrderState::Valid);
    assert!(!new.try_claim_order("o", &claim("new", 1000)).await.unwrap());
}

/// A claim whose holder died is released once its lease ran out, and only then; the order is
/// pending again and its late holder can no longer store.
async fn stale_finalize_claims_are_released(sa: Arc<dyn Storage>) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("o", "acct", AuthzState::Valid);
    sa.insert_order(&order, &[authz], None).await.unwrap();
    assert!(sa.try_claim_order("o", &claim("dead", 500)).await.unwrap());
    assert!(sa.release_stale_order_claims(499).await.unwrap().is_empty());
    assert_eq!(
        sa.get_order("o").await.unwrap().unwrap().status,
        OrderState::Processing
    );
    assert_eq!(
        sa.release_stale_order_claims(501).await.unwrap(),
        vec!["o".to_string()]
    );
    assert!(sa.release_stale_order_claims(501).await.unwrap().is_empty());
    assert_eq!(
        sa.get_order("o").await.unwrap().unwrap().status,
        OrderState::Pending
    );
    assert!(!sa
        .store_certificate("o", "dead", &cert("c1", "o"), None)
        .await
        .unwrap());
    assert!(sa.get_cert("c1").await.unwrap().is_none());
}

#[tokio::test]
async fn stale_finalize_claims_are_released_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    stale_finalize_claims_are_released(Arc::new(
        SqliteStorage::open(&dir.path().join("t.db")).await.unwrap(),
    ))
    .await;
    stale_finalize_claims_are_released(sqlite().await).await;
}

#[tokio::test]
async fn stale_finalize_claims_are_released_postgres() {
    if let Some(sa) = postgres().await {
        stale_finalize_claims_are_released(sa).await;
    }
}

fn claim(token: &str, until: i64) -> OrderClaim {
    OrderClaim {
        token: token.into(),
        until,
    }
}

#[test]
fn outages_are_told_apart_from_bugs() {
    use std::io::{Error as IoError, ErrorKind};
    let unavailable = |e: sqlx::Error| SaError::Db(e).is_unavailable();
    assert!(unavailable(sqlx::Error::Io(IoError::from(
        ErrorKind::ConnectionRefused
    ))));
    assert!(unavailable(sqlx::Error::Io(IoError::from(
        ErrorKind::ConnectionReset
    ))));
    assert!(unavailable(sqlx::Error::PoolTimedOut));
    assert!(!unavailable(sqlx::Error::RowNotFound));
    assert!(!unavailable(sqlx::Error::Protocol(
        "unexpected message".into()
    )));
    assert!(!SaError::Conflict("key in use".into()).is_unavailable());
    assert!(!SaError::Corrupt("bad row".into()).is_unavailable());
    // PostgreSQL going away, starting up or out of connections; SQLite busy or failing I/O.
    for code in ["08006", "08001", "57P01", "57P03", "53300"] {
        assert!(pg_unavailable(code), "{code}");
    }
    for code in [5, 517, 6, 10, 3850] {
        assert!(sqlite_unavailable(code), "{code}");
    }
    // A constraint or syntax error is a bug or a conflict, not an outage.
    for code in ["23505", "42601", "40001"] {
        assert!(!pg_unavailable(code), "{code}");
    }
    for code in [19, 2067, 1] {
        assert!(!sqlite_unavailable(code), "{code}");
    }
}

/// The lifecycle rows (profile, `replaces`, CRL shard) commit in the same transaction as their
/// order and certificate: a failed signature leaves no certificate lifecycle row behind, a
/// successful one leaves exactly the shard the certificate was issued in.
async fn lifecycle_rows_commit_with_their_rows<D: Storage + LifecycleStore>(sa: &D) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("o1", "acct", AuthzState::Valid);
    let lc = OrderLifecycle {
        profile: "shortlived".into(),
        replaces_cert_id: None,
    };
    sa.insert_order(&order, std::slice::from_ref(&authz), Some(&lc))
        .await
        .unwrap();
    assert_eq!(sa.get_order_lifecycle("o1").await.unwrap(), Some(lc));

    // A lost claim stores neither the certificate nor its lifecycle row.
    assert!(sa.try_claim_order("o1", &claim("t1", 1000)).await.unwrap());
    assert!(sa.release_order_claim("o1", "t1").await.unwrap());
    assert!(!sa
        .store_certificate("o1", "t1", &cert("c1", "o1"), Some(("shortlived", Some(3))))
        .await
        .unwrap());
    assert_eq!(sa.get_cert_lifecycle("c1").await.unwrap(), None);

    assert!(sa.try_claim_order("o1", &claim("t2", 1000)).await.unwrap());
    assert!(sa
        .store_certificate("o1", "t2", &cert("c1", "o1"), Some(("shortlived", Some(3))))
        .await
        .unwrap());
    assert_eq!(
        sa.get_cert_lifecycle("c1").await.unwrap(),
        Some(("shortlived".to_string(), Some(3)))
    );
}

#[tokio::test]
async fn sqlite_lifecycle_rows_are_atomic() {
    let sa = SqliteStorage::open_scratch().await.unwrap();
    lifecycle_rows_commit_with_their_rows(&sa).await;
}

#[tokio::test]
async fn postgres_lifecycle_rows_are_atomic() {
    if let Some((sa, _)) = postgres_pair().await {
        lifecycle_rows_commit_with_their_rows(sa.as_ref()).await;
    }
}

/// Storage is a leaf (the RA directs, storage only persists): nothing under `sa/`
/// reaches up into the CA, the RA, the front end or the server's error type.
#[test]
fn storage_imports_nothing_from_the_roles_above_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sa");
    let mut offending = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/sa") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for role in ["ca", "ra", "wfe", "error"] {
                if code.contains(&format!("crate::{role}::"))
                    || code.contains(&format!("use crate::{role};"))
                {
                    offending.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(offending.is_empty(), "sa/ reaches up: {offending:#?}");
}

/// The challenge POST's start charges a failed-validation budget kept in the database in the
/// same step (`ChallengeStart::budget`), and recording a success gives the token back in the
/// same step (`ChallengeOutcome::give_back`): a challenge that cannot start takes no token, an
/// empty bucket refuses the start with the wait until its next token and leaves the challenge
/// pending, and the token given back lets the next start through. `nonce` is the request's
/// nonce as the front end hands it over (pending: one statement; spent: statement by
/// statement).
async fn start_charges_the_budget(sa: Arc<PgStorage>, nonce: impl Fn() -> Nonce) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    for id in ["a", "b"] {
        let (order, authz) = order_with_authz(id, "acct", AuthzState::Pending);
        sa.insert_order(&order, &[authz], None).await.unwrap();
    }
    let bucket = SharedBucket {
        limit: "failed_validations_per_account_per_hour",
        subject: "acct".into(),
        size: 1.0,
        per_sec: 1.0 / 3600.0,
    };
    let now_ms = 1_000_000;
    let charge = BucketCharge {
        tenant: "default".into(),
        buckets: vec![bucket.clone()],
        now_ms,
    };
    let has_token = || async {
        let check = sa.rate_apply(
            "default",
            std::slice::from_ref(&bucket),
            now_ms,
            RateOp::Check,
        );
        check.await.unwrap().is_none()
    };
    let va = lease("va", 150);
    let start = |challenge_id, account_id| ChallengeStart {
        challenge_id,
        tenant: "default",
        account_id,
        now: 300,
        kinds: StartableKinds::AllBut(StoredChallengeKind::DeviceAttest01),
        lease: &va,
        budget: Some(&charge),
    };
    let status = |id: &'static str| {
        let sa = sa.clone();
        async move { sa.get_challenge(id).await.unwrap().unwrap().status }
    };
    async fn start_with(sa: &PgStorage, s: ChallengeStart<'_>, nonce: Nonce) -> StartStep {
        let (spend, authz, step) = sa.start_challenge_spending(&s, &nonce).await.unwrap();
        assert_eq!(spend, GuardedSpend::Spent);
        assert!(authz.is_some(), "the read answers the authorization");
        step
    }
    let run = |s| start_with(&sa, s, nonce());

    // Another account's challenge does not start and takes no token.
    let step = run(start("a-chall", "acct2")).await;
    assert_eq!(step, StartStep::NotStarted { charged: false });
    assert!(has_token().await);
    // The bucket's one token starts "a".
    assert_eq!(run(start("a-chall", "acct")).await, StartStep::Started);
    assert_eq!(status("a-chall").await, ChallengeState::Processing);
    assert!(!has_token().await, "the start took the token");
    // "a" again: not startable, nothing taken (there is nothing left to take anyway).
    let step = run(start("a-chall", "acct")).await;
    assert_eq!(step, StartStep::NotStarted { charged: false });
    // "b": refused with the wait until the next token; "b" stays pending.
    match run(start("b-chall", "acct")).await {
        StartStep::Refused((0, wait)) => assert!((3599.0..=3600.0).contains(&wait), "{wait}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(status("b-chall").await, ChallengeState::Pending);
    // "a" succeeds; its token comes back with the outcome, and "b" starts.
    let outcome = ChallengeOutcome {
        valid: true,
        at: 400,
        authz_expires: 9000,
        error: None,
        record: None,
        give_back: Some(charge.clone()),
    };
    sa.finish_challenge("a-chall", outcome).await.unwrap();
    assert_eq!(status("a-chall").await, ChallengeState::Valid);
    assert!(has_token().await, "the success gave the token back");
    assert_eq!(run(start("b-chall", "acct")).await, StartStep::Started);
    assert!(!has_token().await);
}

#[tokio::test]
async fn postgres_challenge_start_charges_the_budget_in_its_statement() {
    if let Some((sa, _)) = postgres_pair().await {
        start_charges_the_budget(sa, fresh_nonce).await;
    }
}

#[tokio::test]
async fn postgres_challenge_start_charges_the_budget_statement_by_statement() {
    if let Some((sa, _)) = postgres_pair().await {
        start_charges_the_budget(sa, || Nonce::Spent).await;
    }
}

/// A store that keeps no shared buckets refuses a start with a budget and changes nothing,
/// rather than starting a validation nobody paid for.
#[tokio::test]
async fn sqlite_refuses_a_budget_it_cannot_keep() {
    let sa = sqlite().await;
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("a", "acct", AuthzState::Pending);
    sa.insert_order(&order, &[authz], None).await.unwrap();
    let charge = BucketCharge {
        tenant: "default".into(),
        buckets: Vec::new(),
        now_ms: 0,
    };
    let va = lease("va", 150);
    let start = ChallengeStart {
        challenge_id: "a-chall",
        tenant: "default",
        account_id: "acct",
        now: 300,
        kinds: StartableKinds::AllBut(StoredChallengeKind::DeviceAttest01),
        lease: &va,
        budget: Some(&charge),
    };
    let r = sa.start_challenge_spending(&start, &Nonce::Spent).await;
    assert!(matches!(r, Err(SaError::NoRateBuckets)), "{:?}", r.err());
    let ch = sa.get_challenge("a-chall").await.unwrap().unwrap();
    assert_eq!(ch.status, ChallengeState::Pending);
    let lookup = OrderLookup {
        tenant: "default",
        account_id: "acct",
        now: 300,
        min_expires: 400,
        wanted: &[],
        charge: Some(&charge),
    };
    let r = sa.new_order_reads_spending(&lookup, &Nonce::Spent).await;
    assert!(matches!(r, Err(SaError::NoRateBuckets)), "{:?}", r.err());
}

/// newOrder's lookup takes its rate-limit tokens in the same step when the buckets are kept
/// in the database (`OrderLookup::charge`): a token per lookup while the bucket has one, then
/// a refusal with the wait until the next that takes nothing; a replayed nonce charges
/// nothing. `nonce` makes a fresh nonce as the front end hands it over.
async fn order_lookup_charges(sa: Arc<PgStorage>, nonce: impl Fn() -> Nonce) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let bucket = |subject: &str| SharedBucket {
        limit: "certificates_per_name_per_week",
        subject: subject.into(),
        size: 2.0,
        per_sec: 2.0 / 604_800.0,
    };
    let now_ms = 5_000_000;
    let charge = BucketCharge {
        tenant: "default".into(),
        buckets: vec![bucket("x.example"), bucket("y.example")],
        now_ms,
    };
    let wanted = [(ident("x.example"), false)];
    let lookup = OrderLookup {
        tenant: "default",
        account_id: "acct",
        now: 300,
        min_expires: 400,
        wanted: &wanted,
        charge: Some(&charge),
    };
    let tokens = |subject: &'static str| {
        let sa = sa.clone();
        let b = [bucket(subject)];
        async move {
            // Taking nothing: a check passes while a token is left.
            let check = sa.rate_apply("default", &b, now_ms, RateOp::Check);
            check.await.unwrap().is_none()
        }
    };
    for _ in 0..2 {
        let (spend, reads) = sa
            .new_order_reads_spending(&lookup, &nonce())
            .await
            .unwrap();
        assert_eq!(spend, GuardedSpend::Spent);
        assert_eq!(reads.refused, None);
        assert_eq!(reads.reusable, vec![None]);
    }
    assert!(!tokens("x.example").await && !tokens("y.example").await);
    let (_, reads) = sa
        .new_order_reads_spending(&lookup, &nonce())
        .await
        .unwrap();
    match reads.refused {
        Some((i, wait)) => {
            assert!(i < 2);
            assert!((302_399.0..=302_400.0).contains(&wait), "{wait}");
        }
        None => panic!("a third lookup must be refused"),
    }
    if let n @ Nonce::Pending(_) = nonce() {
        // A replayed nonce: refused as such, and nothing is charged (a fresh bucket shows it).
        let fresh = BucketCharge {
            buckets: vec![bucket("z.example")],
            ..charge.clone()
        };
        let lookup = OrderLookup {
            charge: Some(&fresh),
            ..lookup
        };
        sa.new_order_reads_spending(&lookup, &n).await.unwrap();
        let (spend, _) = sa.new_order_reads_spending(&lookup, &n).await.unwrap();
        assert_eq!(spend, GuardedSpend::Replayed);
        let b = [bucket("z.example")];
        let left = sa.rate_apply("default", &b, now_ms, RateOp::Take).await;
        assert_eq!(
            left.unwrap(),
            None,
            "one token was left after the fresh lookup"
        );
        let gone = sa.rate_apply("default", &b, now_ms, RateOp::Check).await;
        assert!(
            gone.unwrap().is_some(),
            "and only one: the replay took none"
        );
    }
}

#[tokio::test]
async fn postgres_order_lookup_charges_in_its_statement() {
    if let Some((sa, _)) = postgres_pair().await {
        order_lookup_charges(sa, fresh_nonce).await;
    }
}

#[tokio::test]
async fn postgres_order_lookup_charges_statement_by_statement() {
    if let Some((sa, _)) = postgres_pair().await {
        order_lookup_charges(sa, || Nonce::Spent).await;
    }
}

/// Two nodes (two pools on one database) racing 24 newOrder lookups at once, each charging the
/// same bucket that does not exist yet, size 10: the first creations collide, the losing
/// statements change nothing (their nonces unspent) and run again, and exactly 10 lookups get
/// a token. Five rounds, each on a bucket of its own.
#[tokio::test]
async fn postgres_nodes_charge_one_bucket_from_their_lookups() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    a.insert_account(&account("acct", "tp")).await.unwrap();
    for round in 0..5 {
        let charge = Arc::new(BucketCharge {
            tenant: "default".into(),
            buckets: vec![SharedBucket {
                limit: "new_orders_per_account_per_hour",
                subject: format!("acct-{round}"),
                size: 10.0,
                per_sec: 10.0 / 3600.0,
            }],
            now_ms: 7_000,
        });
        let start = Arc::new(tokio::sync::Barrier::new(24));
        let mut tasks = Vec::new();
        for i in 0..24 {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (charge, start) = (charge.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                let wanted = [(ident("x.example"), false)];
                let lookup = OrderLookup {
                    tenant: "default",
                    account_id: "acct",
                    now: 300,
                    min_expires: 400,
                    wanted: &wanted,
                    charge: Some(&charge),
                };
                let nonce = fresh_nonce();
                start.wait().await;
                let (spend, reads) = db.new_order_reads_spending(&lookup, &nonce).await.unwrap();
                assert_eq!(spend, GuardedSpend::Spent);
                reads.refused.is_none()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 10, "round {round}");
    }
}

/// A challenge POST's one-step start admits only the challenge types it is given: the
/// "ready" POST every type but device-attest-01, an attestation response device-attest-01
/// only. A challenge of another type is read but neither started nor changed. `nonce`
/// makes the nonce the front end hands over (a fresh one rides the read on PostgreSQL; a
/// spent one takes the statement-by-statement path every store has).
async fn start_admits_only_its_kinds(sa: Arc<dyn Storage>, nonce: impl Fn() -> Nonce) {
    sa.insert_account(&account("acct", "tp")).await.unwrap();
    let (order, authz) = order_with_authz("d", "acct", AuthzState::Pending);
    sa.insert_order(&order, &[authz], None).await.unwrap();
    let (order, authzs) = device_order("v", "acct");
    sa.insert_order(&order, &authzs, None).await.unwrap();
    let va = lease("va", 150);
    let ready_post = StartableKinds::AllBut(StoredChallengeKind::DeviceAttest01);
    let attestation = StartableKinds::Only(StoredChallengeKind::DeviceAttest01);
    let status = |id: &'static str| {
        let sa = sa.clone();
        async move { sa.get_challenge(id).await.unwrap().unwrap().status }
    };
    let go = |id: &'static str, kinds: StartableKinds| {
        let (sa, nonce, va) = (sa.clone(), nonce(), va.clone());
        async move {
            let s = ChallengeStart {
                challenge_id: id,
                tenant: "default",
                account_id: "acct",
                now: 300,
                kinds,
                lease: &va,
                budget: None,
            };
            let (_, authz, step) = sa.start_challenge_spending(&s, &nonce).await.unwrap();
            assert!(authz.is_some(), "the read answers the authorization");
            step
        }
    };
    // An attestation response does not start a dns-01 challenge, nor a ready POST a
    // device-attest-01 one; both stay pending.
    let not = StartStep::NotStarted { charged: false };
    assert_eq!(go("d-chall", attestation).await, not);
    assert_eq!(status("d-chall").await, ChallengeState::Pending);
    assert_eq!(go("v-chall", ready_post).await, not);
    assert_eq!(status("v-chall").await, ChallengeState::Pending);
    // Each starts the type it admits.
    assert_eq!(go("v-chall", attestation).await, StartStep::Started);
    assert_eq!(status("v-chall").await, ChallengeState::Processing);
    assert_eq!(go("d-chall", ready_post).await, StartStep::Started);
    assert_eq!(status("d-chall").await, ChallengeState::Processing);
}

#[tokio::test]
async fn sqlite_start_admits_only_its_kinds() {
    start_admits_only_its_kinds(sqlite().await, || Nonce::Spent).await;
}

#[tokio::test]
async fn postgres_start_admits_only_its_kinds_with_its_read() {
    if let Some(sa) = postgres().await {
        start_admits_only_its_kinds(sa, fresh_nonce).await;
    }
}

#[tokio::test]
async fn postgres_start_admits_only_its_kinds_statement_by_statement() {
    if let Some(sa) = postgres().await {
        start_admits_only_its_kinds(sa, || Nonce::Spent).await;
    }
}

//! TLS to the ACME server with a device clock that may be wrong.
//!
//! rustls checks the server's certificate against the system clock, so a
//! device that boots at 1970 could never connect and never learn the time.
//! [`FloorVerifier`] wraps rustls' WebPki verifier and, when the local clock
//! is earlier than a trusted floor (the newest of the agent's build time, the
//! installed certificate's notBefore and the last server `Date` stored in the
//! state file), verifies at the floor instead; it never verifies at a time
//! earlier than the floor, and uses the local clock when that is later.
//!
//! A clock running *ahead* (an RTC set years late) makes a valid server
//! certificate look expired. Then, and only for the time check, the chain is
//! verified at a time inside its own validity period (every other check —
//! signatures, trust anchor, name, usage — is unchanged), and the
//! connection is marked as on probation in [`SessionClock`]: the HTTP layer
//! accepts it only if the `Date` of the first response over it lies in that
//! period (and not before the floor), which makes the local clock the
//! outlier; the server's time is then used for the rest of the session and
//! every later handshake is verified strictly at it. Otherwise the request
//! fails as the TLS error it was.
//!
//! ureq 3 does not let a caller set a rustls verifier, so [`TlsConnector`] is
//! a small ureq connector (modelled on ureq's own rustls one) that does.

use std::fmt;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::error::{AgentError, Result};

/// Unix time the agent binary was built (`SOURCE_DATE_EPOCH` if set at build
/// time); a device's real clock is never earlier than this.
pub fn build_time() -> i64 {
    env!("FLEETCA_AGENT_BUILD_TIME").parse().unwrap_or(0)
}

/// How far (seconds) the local clock must be from the server's `Date` to be
/// called the outlier (the threshold `schedule::effective_now` uses too).
const OUTLIER: i64 = 86_400;

/// What the verifier and the HTTP layer share about time in one session.
#[derive(Debug, Default)]
pub struct SessionClock {
    /// Seconds added to the local clock once the server's `Date` has been
    /// accepted as this session's time.
    offset: Mutex<Option<i64>>,
    /// Set when a chain passed only the relaxed time check: its validity
    /// period (newest notBefore, oldest notAfter), at most the floor, and
    /// the local time used, awaiting the server's `Date`.
    probation: Mutex<Option<Probation>>,
}

/// A connection accepted under the relaxed time check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probation {
    /// Earliest time the chain is valid (never before the trusted floor).
    pub from: i64,
    /// Latest time the chain is valid.
    pub until: i64,
    /// The local clock at the handshake.
    pub local: i64,
}

impl SessionClock {
    /// The accepted offset from the local clock, if any.
    pub fn offset(&self) -> Option<i64> {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the pending probation (at most one connection is on probation).
    pub fn take_probation(&self) -> Option<Probation> {
        self.probation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Decides a probation with the server's `Date` read over that
    /// connection: the offset (used from now on) when
    /// the date lies in the chain's validity period and the local clock is
    /// more than a day off it, else `None`. The day keeps a correct clock
    /// from being argued out of a recently expired certificate: with the
    /// floor (which includes the last server `Date`), a device that reached
    /// its server within the last day never accepts an expired one.
    pub fn settle(&self, p: Probation, server_date: Option<i64>) -> Option<i64> {
        match server_date {
            Some(d) if (p.from..=p.until).contains(&d) && (d - p.local).abs() > OUTLIER => {
                let off = d - p.local;
                *self.offset.lock().unwrap_or_else(|e| e.into_inner()) = Some(off);
                Some(off)
            }
            _ => None,
        }
    }
}

/// Verifies server certificates at `max(local clock, floor)`.
pub struct FloorVerifier {
    inner: Arc<WebPkiServerVerifier>,
    floor: i64,
    clock: fn() -> i64,
    logged: AtomicBool,
    session: Arc<SessionClock>,
}

impl fmt::Debug for FloorVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloorVerifier")
            .field("floor", &self.floor)
            .finish()
    }
}

/// Newest notBefore among `certs` (those that parse).
fn newest_not_before(certs: &[&CertificateDer<'_>]) -> Option<i64> {
    certs
        .iter()
        .filter_map(|c| {
            x509_parser::parse_x509_certificate(c.as_ref())
                .ok()
                .map(|(_, x)| x.validity().not_before.timestamp())
        })
        .max()
}

/// The period in which every parsable certificate of `certs` is valid:
/// (newest notBefore, oldest notAfter).
fn common_validity(certs: &[&CertificateDer<'_>]) -> Option<(i64, i64)> {
    let mut from = i64::MIN;
    let mut until = i64::MAX;
    for c in certs {
        let (_, x) = x509_parser::parse_x509_certificate(c.as_ref()).ok()?;
        from = from.max(x.validity().not_before.timestamp());
        until = until.min(x.validity().not_after.timestamp());
    }
    (from <= until).then_some((from, until))
}

fn is_time_error(r: &std::result::Result<ServerCertVerified, rustls::Error>) -> bool {
    use rustls::CertificateError as E;
    matches!(
        r,
        Err(rustls::Error::InvalidCertificate(
            E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. }
        ))
    )
}

fn unix(t: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.max(0) as u64))
}

impl FloorVerifier {
    /// A verifier trusting `roots`, with the trusted time `floor` and the
    /// local clock `clock` (Unix seconds).
    pub fn new(
        roots: RootCertStore,
        provider: Arc<rustls::crypto::CryptoProvider>,
        floor: i64,
        clock: fn() -> i64,
        session: Arc<SessionClock>,
    ) -> Result<FloorVerifier> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| AgentError::Config(format!("TLS trust anchors: {e}")))?;
        Ok(FloorVerifier {
            inner,
            floor,
            clock,
            logged: AtomicBool::new(false),
            session,
        })
    }

    fn note(&self, msg: String) {
        if !self.logged.swap(true, Ordering::Relaxed) {
            crate::log::warn(msg);
        }
    }
}

impl ServerCertVerifier for FloorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _rustls_now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let local = (self.clock)();
        let verify = |t: i64| {
            self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                unix(t),
            )
        };
        if let Some(off) = self.session.offset() {
            // The session's time was settled with the server's Date.
            return verify((local + off).max(self.floor));
        }
        if local >= self.floor {
            let r = verify(local);
            if !is_time_error(&r) {
                return r;
            }
            // Expired or not yet valid by the local clock: maybe the clock
            // is ahead. Relax the time check only, to a time inside the
            // chain's own validity and not before the floor; the caller
            // must confirm it with the server's Date (SessionClock).
            let mut all: Vec<&CertificateDer<'_>> = vec![end_entity];
            all.extend(intermediates.iter());
            let Some((from, until)) = common_validity(&all) else {
                return r;
            };
            let from = from.max(self.floor);
            if from > until {
                return r;
            }
            return match verify(from) {
                Ok(v) => {
                    *self
                        .session
                        .probation
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) =
                        Some(Probation { from, until, local });
                    Ok(v)
                }
                Err(_) => r,
            };
        }
        // The local clock is provably wrong (earlier than a time we know has
        // passed): verify at the floor instead.
        match verify(self.floor) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet
                | rustls::CertificateError::NotValidYetContext { .. },
            )) => {
                // Real time is unknown but >= floor; a chain issued after the
                // floor says time has reached its newest notBefore (its CA
                // signed that). Verify there (still >= floor, so a chain
                // expired at the floor stays rejected).
                let mut all: Vec<&CertificateDer<'_>> = vec![end_entity];
                all.extend(intermediates.iter());
                let t = newest_not_before(&all)
                    .unwrap_or(self.floor)
                    .max(self.floor);
                self.note(format!(
                    "local clock ({local}) is before the trusted floor ({}); verifying the \
                     server certificate at its notBefore ({t})",
                    self.floor
                ));
                verify(t)
            }
            r => {
                self.note(format!(
                    "local clock ({local}) is before the trusted floor ({}); verifying the \
                     server certificate at the floor",
                    self.floor
                ));
                r
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls client config using [`FloorVerifier`].
pub fn client_config(
    roots: &[CertificateDer<'static>],
    floor: i64,
    clock: fn() -> i64,
    session: Arc<SessionClock>,
) -> Result<Arc<ClientConfig>> {
    let provider = crate::http::crypto_provider();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let verifier = FloorVerifier::new(store, provider.clone(), floor, clock, session)?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| AgentError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A ureq connector wrapping the TCP transport in rustls with our config.
pub struct TlsConnector {
    /// The rustls client config.
    pub config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish()
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection as a ureq transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    const Y2024: i64 = 1_704_067_200;
    const Y2025: i64 = 1_735_689_600;
    const Y2027: i64 = 1_798_761_600;

    /// A root and a `localhost` leaf valid [nb, na]. Returns (root, leaf).
    fn chain(nb: i64, na: i64) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let t = |s: i64| ::time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.not_before = t(Y2024 - 86_400);
        ca.not_after = t(Y2027 + 86_400 * 365);
        let root = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.not_before = t(nb);
        leaf.not_after = t(na);
        let leaf = leaf
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();
        (root.der().clone(), leaf.der().clone())
    }

    fn check(
        root: &CertificateDer<'static>,
        leaf: &CertificateDer<'_>,
        floor: i64,
        clock: fn() -> i64,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut store = RootCertStore::empty();
        store.add(root.clone()).unwrap();
        check_session(root, leaf, floor, clock, Arc::default())
    }

    fn check_session(
        root: &CertificateDer<'static>,
        leaf: &CertificateDer<'_>,
        floor: i64,
        clock: fn() -> i64,
        session: Arc<SessionClock>,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut store = RootCertStore::empty();
        store.add(root.clone()).unwrap();
        let v = FloorVerifier::new(store, crate::http::crypto_provider(), floor, clock, session)
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        v.verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
    }

    fn expired_err(r: &std::result::Result<ServerCertVerified, rustls::Error>) -> bool {
        matches!(
            r,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            ))
        )
    }

    #[test]
    fn clock_in_1970_verifies_at_the_floor() {
        // Valid 2024..2027; device clock at 1970; floor 2025: accepted.
        let (root, leaf) = chain(Y2024, Y2027);
        assert!(check(&root, &leaf, Y2025, || 0).is_ok());
        // Leaf issued after the floor: verified at its notBefore, accepted.
        let (root, leaf) = chain(Y2025 + 86_400, Y2027);
        assert!(check(&root, &leaf, Y2025, || 0).is_ok());
    }

    #[test]
    fn expired_relative_to_the_floor_is_rejected() {
        // Valid 2024..2025 (+1 day), floor 2027, clock 1970: at 1970 it would
        // be "not yet valid", at the floor it is expired. Never earlier.
        let (root, leaf) = chain(Y2024, Y2025 + 86_400);
        let r = check(&root, &leaf, Y2027, || 0);
        assert!(expired_err(&r), "{r:?}");
        // A clock later than the floor is used as is: expired at 2027, the
        // chain is only accepted on probation, which the server's Date must
        // settle (see clock_ahead_is_on_probation_until_the_server_date_settles_it).
        let (root, leaf) = chain(Y2024, Y2025 + 86_400);
        let session = Arc::new(SessionClock::default());
        assert!(check_session(&root, &leaf, Y2024 + 10, || Y2027, session.clone()).is_ok());
        assert!(session.take_probation().is_some());
        assert!(check_session(&root, &leaf, Y2024 + 10, || Y2025, session.clone()).is_ok());
        assert!(session.take_probation().is_none());
    }

    #[test]
    fn clock_ahead_is_on_probation_until_the_server_date_settles_it() {
        // Valid 2024..2025 (+1 day); device clock at 2027 (ahead); floor 2024.
        let (root, leaf) = chain(Y2024, Y2025 + 86_400);
        let session = Arc::new(SessionClock::default());
        assert!(check_session(&root, &leaf, Y2024, || Y2027, session.clone()).is_ok());
        let p = session.take_probation().expect("on probation");
        assert_eq!((p.from, p.until, p.local), (Y2024, Y2025 + 86_400, Y2027));
        // A Date outside the chain's validity (or none), or one within a
        // day of the local clock, does not settle it.
        assert!(session.settle(p, Some(Y2027)).is_none());
        assert!(session.settle(p, None).is_none());
        let near = Probation {
            local: Y2025 + 3600,
            ..p
        };
        assert!(session.settle(near, Some(Y2025)).is_none());
        assert_eq!(session.offset(), None);
        // A Date inside it does; later handshakes verify strictly at it.
        assert_eq!(session.settle(p, Some(Y2025)), Some(Y2025 - Y2027));
        assert!(check_session(&root, &leaf, Y2024, || Y2027, session.clone()).is_ok());
        assert!(session.take_probation().is_none());
    }

    #[test]
    fn relaxed_time_check_keeps_every_other_check() {
        // Expired by the local clock and signed by another CA: rejected, and
        // not put on probation.
        let (_, leaf) = chain(Y2024, Y2025 + 86_400);
        let (other_root, _) = chain(Y2024, Y2025 + 86_400);
        let session = Arc::new(SessionClock::default());
        let r = check_session(&other_root, &leaf, Y2024, || Y2027, session.clone());
        assert!(r.is_err(), "{r:?}");
        assert!(session.take_probation().is_none());
        // Likewise for the wrong name: only the time check is ever relaxed.
        let (root, leaf) = chain(Y2024, Y2025 + 86_400);
        let mut store = RootCertStore::empty();
        store.add(root.clone()).unwrap();
        let v = FloorVerifier::new(
            store,
            crate::http::crypto_provider(),
            Y2024,
            || Y2027,
            session.clone(),
        )
        .unwrap();
        let other = ServerName::try_from("other.example").unwrap();
        assert!(v
            .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
            .is_err());
        assert!(session.take_probation().is_none());
        // A chain already expired at the floor is never relaxed.
        let (root, leaf) = chain(Y2024, Y2025 + 86_400);
        let r = check_session(&root, &leaf, Y2027 - 10, || Y2027, session.clone());
        assert!(expired_err(&r), "{r:?}");
        assert!(session.take_probation().is_none());
    }

    #[test]
    fn build_time_is_embedded() {
        assert!(build_time() > Y2025, "{}", build_time());
    }
}

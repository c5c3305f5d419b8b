//! TLS client pieces of the VA.
//!
//! tls-alpn-01 certificates are self-signed and carry a critical extension webpki does not know
//! (STACK pitfall 5), and http-01 redirects to https are followed without checking the
//! certificate (as Let's Encrypt does). So the verifier accepts any certificate that parses,
//! but it still verifies the handshake signature against the leaf's raw SubjectPublicKeyInfo,
//! which proves the server holds the key of the certificate it presented.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use x509_parser::asn1_rs::{Any, FromDer};

use super::VaError;

/// ALPN protocol of RFC 8737.
pub(crate) const ACME_TLS_1: &[u8] = b"acme-tls/1";

pub(crate) struct TlsClients {
    /// For tls-alpn-01: offers only `acme-tls/1`, no session resumption.
    pub(crate) alpn: Arc<ClientConfig>,
    /// For https redirects of http-01: offers `http/1.1`.
    pub(crate) https: Arc<ClientConfig>,
}

impl TlsClients {
    pub(crate) fn new() -> Result<Self, VaError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(RawKeyVerifier {
            algs: provider.signature_verification_algorithms,
        });
        let build = |alpn: &[u8]| -> Result<Arc<ClientConfig>, VaError> {
            let mut cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| VaError::Tls(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            cfg.alpn_protocols = vec![alpn.to_vec()];
            // A resumed session presents no certificate: every validation is a full handshake.
            cfg.resumption = Resumption::disabled();
            cfg.enable_early_data = false;
            Ok(Arc::new(cfg))
        };
        Ok(TlsClients {
            alpn: build(ACME_TLS_1)?,
            https: build(b"http/1.1")?,
        })
    }
}

#[derive(Debug)]
struct RawKeyVerifier {
    algs: WebPkiSupportedAlgorithms,
}

/// The leaf's key: AlgorithmIdentifier contents, subjectPublicKey bits, whole SPKI DER.
struct LeafKey {
    alg_id: Vec<u8>,
    public_key: Vec<u8>,
    spki: Vec<u8>,
}

fn leaf_spki(cert: &CertificateDer<'_>) -> Result<LeafKey, Error> {
    let bad = || Error::InvalidCertificate(CertificateError::BadEncoding);
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
    let spki = &x509.tbs_certificate.subject_pki;
    let (_, seq) = Any::from_der(spki.raw).map_err(|_| bad())?;
    let (_, alg) = Any::from_der(seq.data).map_err(|_| bad())?;
    Ok(LeafKey {
        alg_id: alg.data.to_vec(),
        public_key: spki.subject_public_key.data.to_vec(),
        spki: spki.raw.to_vec(),
    })
}

impl ServerCertVerifier for RawKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Structure only; the challenge code checks the content after the handshake.
        x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let LeafKey {
            alg_id, public_key, ..
        } = leaf_spki(cert)?;
        // TLS 1.2 schemes may map to several algorithms: use the one whose public key
        // AlgorithmIdentifier matches the certificate's key.
        for (scheme, candidates) in self.algs.mapping {
            if *scheme != dss.scheme {
                continue;
            }
            for alg in *candidates {
                if alg.public_key_alg_id().as_ref() != alg_id.as_slice() {
                    continue;
                }
                return alg
                    .verify_signature(&public_key, message, dss.signature())
                    .map(|_| HandshakeSignatureValid::assertion())
                    .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature));
            }
        }
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let LeafKey { spki, .. } = leaf_spki(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.algs,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

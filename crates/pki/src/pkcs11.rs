//! [`Pkcs11Signer`]: a CA key held in a PKCS#11 token (an HSM, or SoftHSM2 in tests), as
//! BR §6.2.7 asks for CA keys. The key is generated inside the token, marked sensitive and
//! non-extractable (PKCS#11 v2.40 §4.9: CKA_SENSITIVE, CKA_EXTRACTABLE), and never leaves it;
//! fleetca records only the module path, the token label and the key label.
//!
//! Signing hashes in software and asks the token for the raw primitive where tokens differ:
//! SoftHSM 2.6 has no CKM_ECDSA_SHA256/384, so ECDSA is SHA-2 here, then CKM_ECDSA, and the
//! token's `r || s` becomes the DER `ECDSA-Sig-Value` of RFC 3279 §2.2.3. RSA uses
//! CKM_SHA256_RSA_PKCS (PKCS#1 v1.5 with SHA-256, RFC 8017 §8.2), matching
//! [`Signer::algorithm`].
//!
//! Sessions come from a small pool so concurrent signatures do not queue on one session
//! (a PKCS#11 session serves one operation at a time). When the token was reset or removed
//! (CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, ...) every pooled
//! session is dropped, a fresh one is opened and logged in, and the signature is tried once
//! more; if that fails too the error says so, with the token's code as its source.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rcgen::SignatureAlgorithm;

use crate::keys::KeyType;
use crate::signer::Signer;
use crate::PkiError;

/// Where a token key lives: what a tenant's configuration records instead of a key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11KeyRef {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// CKA_LABEL of the token (the token label given at `softhsm2-util --init-token`).
    pub token_label: String,
    /// CKA_LABEL of the key pair inside the token.
    pub key_label: String,
}

/// Why the token could not be used. Each variant names the module, token or key involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {module}: {context}")]
    Module {
        /// The module path.
        module: PathBuf,
        /// What failed.
        context: &'static str,
        /// cryptoki's error.
        #[source]
        source: CkError,
    },
    /// No slot holds a token with this label.
    #[error("no PKCS#11 token labelled {token:?} in {module}")]
    TokenNotFound {
        /// The module path.
        module: PathBuf,
        /// The token label.
        token: String,
    },
    /// The token has no private (or no public) key with this label.
    #[error("token {token:?} holds no {what} labelled {key:?}")]
    KeyNotFound {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
        /// `private key` or `public key`.
        what: &'static str,
    },
    /// `generate` never replaces a key: the label is taken.
    #[error("token {token:?} already holds a key labelled {key:?}; refusing to create another")]
    KeyExists {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
    },
    /// A token operation failed.
    #[error("token {token:?}: {context}")]
    Token {
        /// The token label.
        token: String,
        /// What was being done.
        context: &'static str,
        /// cryptoki's error (carries the CKR_ code).
        #[source]
        source: CkError,
    },
    /// The key in the token is not one fleetca signs with, or its public half is malformed.
    #[error("token {token:?}, key {key:?}: {detail}")]
    UnsupportedKey {
        /// The token label.
        token: String,
        /// The key label.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The PIN file could not be read.
    #[error("reading PKCS#11 PIN file {path}")]
    PinFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Pkcs11Error {
    /// True when the failure looks like a reset, removed or logged-out token: worth dropping
    /// every session and trying once more with fresh ones.
    fn is_reset(&self) -> bool {
        match self {
            Pkcs11Error::Token {
                source: CkError::Pkcs11(rv, _),
                ..
            } => matches!(
                rv,
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
                    | RvError::TokenNotRecognized
                    | RvError::KeyHandleInvalid
                    | RvError::ObjectHandleInvalid
                    | RvError::CryptokiNotInitialized
            ),
            // The key or token vanished with a reset; a reopen looks them up again.
            Pkcs11Error::TokenNotFound { .. } | Pkcs11Error::KeyNotFound { .. } => true,
            _ => false,
        }
    }
}

/// Reads a PIN file: its first line, without the line end (as `--key-passphrase-file`).
pub fn read_pin_file(path: &Path) -> Result<String, Pkcs11Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Pkcs11Error::PinFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Most sessions one signer keeps open; a few let concurrent signatures proceed in
/// parallel without exhausting an HSM's session table.
pub const MAX_SESSIONS: usize = 4;

/// One PKCS#11 library is initialised once per process (C_Initialize may not run twice), and
/// every signer on the same module shares it.
fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    let mut all = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, ctx)) = all.iter().find(|(p, _)| p == module) {
        return Ok(ctx.clone());
    }
    let err = |context| {
        let module = module.to_path_buf();
        move |source| Pkcs11Error::Module {
            module,
            context,
            source,
        }
    };
    let ctx = Pkcs11::new(module).map_err(err("cannot load the module"))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err("C_Initialize failed")(e)),
    }
    all.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

/// A session logged in as the user, with the key's private handle found in it.
struct Held {
    session: Session,
    key: ObjectHandle,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Held>,
    /// Sessions open now, idle or lent out.
    open: usize,
}

/// A [`Signer`] whose key stays in a PKCS#11 token.
pub struct Pkcs11Signer {
    key_ref: Pkcs11KeyRef,
    pin: AuthPin,
    ctx: Pkcs11,
    key_type: KeyType,
    spki: Vec<u8>,
    pool: Mutex<Pool>,
    freed: Condvar,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key_ref", &self.key_ref)
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Opens the key `key_ref` names, logging in with `pin`.
    pub fn open(key_ref: &Pkcs11KeyRef, pin: &str) -> Result<Self, Pkcs11Error> {
        let ctx = context(&key_ref.module)?;
        let pin = AuthPin::from(pin.to_string());
        let session = login(&ctx, key_ref, &pin)?;
        let (key_type, spki) = read_public_key(&session, key_ref)?;
        let key = find_key(&session, key_ref, ObjectClass::PRIVATE_KEY)?;
        let signer = Pkcs11Signer {
            key_ref: key_ref.clone(),
            pin,
            ctx,
            key_type,
            spki,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
        };
        signer.release(Held { session, key }, true);
        signer.lock().open = 1;
        Ok(signer)
    }

    /// Generates a `key_type` key pair inside the token (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE
    /// true; CKA_EXTRACTABLE false) labelled `key_ref.key_label`, then opens it. Refuses if
    /// the label is already taken.
    pub fn generate(
        key_ref: &Pkcs11KeyRef,
        pin: &str,
        key_type: KeyType,
    ) -> Result<Self, Pkcs11Error> {
        // SoftHSM 2.6's file store answers CKR_GENERAL_ERROR when two threads create objects
        // in one token at once; key generation is rare, so it is serialised per process.
        static GENERATING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = GENERATING.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = context(&key_ref.module)?;
        let auth = AuthPin::from(pin.to_string());
        let session = login(&ctx, key_ref, &auth)?;
        let label = key_ref.key_label.as_bytes().to_vec();
        let taken = [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY]
            .into_iter()
            .map(|class| match find_key(&session, key_ref, class) {
                Ok(_) => Ok(true),
                Err(Pkcs11Error::KeyNotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        if taken.contains(&true) {
            return Err(Pkcs11Error::KeyExists {
                token: key_ref.token_label.clone(),
                key: key_ref.key_label.clone(),
            });
        }
        let mut id = [0u8; 16];
        session
            .generate_random_slice(&mut id)
            .map_err(token_err(key_ref, "C_GenerateRandom failed"))?;
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.to_vec()),
        ];
        let mechanism = match key_type {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                public.push(Attribute::EcParams(curve_oid(key_type).to_vec()));
                Mechanism::EccKeyPairGen
            }
            _ => {
                let bits = key_type.rsa_bits().unwrap_or(2048) as u64;
                public.push(Attribute::ModulusBits(bits.into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.to_vec()),
        ];
        session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(token_err(key_ref, "C_GenerateKeyPair failed"))?;
        drop(session);
        Self::open(key_ref, pin)
    }

    /// Where the key lives.
    pub fn key_ref(&self) -> &Pkcs11KeyRef {
        &self.key_ref
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session from the pool, or a new one while fewer than [`MAX_SESSIONS`] are open.
    fn acquire(&self) -> Result<Held, Pkcs11Error> {
        let mut pool = self.lock();
        loop {
            if let Some(h) = pool.idle.pop() {
                return Ok(h);
            }
            if pool.open < MAX_SESSIONS {
                pool.open += 1;
                drop(pool);
                let opened = login(&self.ctx, &self.key_ref, &self.pin).and_then(|session| {
                    let key = find_key(&session, &self.key_ref, ObjectClass::PRIVATE_KEY)?;
                    Ok(Held { session, key })
                });
                if opened.is_err() {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                }
                return opened;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Returns a session to the pool (`healthy`), or closes it.
    fn release(&self, held: Held, healthy: bool) {
        let mut pool = self.lock();
        if healthy {
            pool.idle.push(held);
        } else {
            pool.open -= 1;
            drop(pool);
            drop(held);
        }
        self.freed.notify_one();
    }

    /// Closes every idle session (after a reset they are all dead).
    fn drop_idle(&self) {
        let mut pool = self.lock();
        let idle = std::mem::take(&mut pool.idle);
        pool.open -= idle.len();
        drop(pool);
        drop(idle);
        self.freed.notify_all();
    }

    /// Runs `op` on a pooled session; after a reset-class failure, once more on a new one.
    fn with_session<T>(
        &self,
        op: impl Fn(&Held) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self.acquire().and_then(|held| {
                let r = op(&held);
                let healthy = !matches!(&r, Err(e) if e.is_reset());
                self.release(held, healthy);
                r
            });
            match result {
                Err(e) if e.is_reset() && tries < 2 => self.drop_idle(),
                other => return other,
            }
        }
    }

    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let (mechanism, input) = match self.key_type {
            KeyType::EcdsaP256 => (Mechanism::Ecdsa, sha(&aws_lc_rs::digest::SHA256, msg)),
            KeyType::EcdsaP384 => (Mechanism::Ecdsa, sha(&aws_lc_rs::digest::SHA384, msg)),
            _ => (Mechanism::Sha256RsaPkcs, msg.to_vec()),
        };
        let raw = self.with_session(|h| {
            h.session
                .sign(&mechanism, h.key, &input)
                .map_err(token_err(&self.key_ref, "C_Sign failed"))
        })?;
        match self.key_type {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                ecdsa_raw_to_der(&raw).ok_or_else(|| Pkcs11Error::UnsupportedKey {
                    token: self.key_ref.token_label.clone(),
                    key: self.key_ref.key_label.clone(),
                    detail: format!("the token returned a {}-byte ECDSA signature", raw.len()),
                })
            }
            _ => Ok(raw),
        }
    }

    /// Simulates a token reset for tests: logs the token's user out, which ends the login
    /// of every session this process has on the token (PKCS#11 v2.40 §5.6 C_Logout).
    #[doc(hidden)]
    pub fn logout_for_tests(&self) -> Result<(), Pkcs11Error> {
        let held = self.acquire()?;
        let r = held
            .session
            .logout()
            .map_err(token_err(&self.key_ref, "C_Logout failed"));
        self.release(held, true);
        r
    }
}

impl Signer for Pkcs11Signer {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.key_type {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.sign_raw(msg)
            .map_err(|e| PkiError::Signing(Box::new(e)))
    }

    fn blocks(&self) -> bool {
        true
    }

    fn check_available(&self) -> Result<(), PkiError> {
        self.with_session(|h| {
            h.session
                .get_session_info()
                .map_err(token_err(&self.key_ref, "C_GetSessionInfo failed"))?;
            // A logged-out session still answers C_GetSessionInfo; reading the private key's
            // (public) CKA_SIGN attribute needs the login.
            h.session
                .get_attributes(h.key, &[AttributeType::Sign])
                .map_err(token_err(&self.key_ref, "C_GetAttributeValue failed"))
                .map(drop)
        })
        .map_err(|e| PkiError::Signing(Box::new(e)))
    }
}

fn token_err(key_ref: &Pkcs11KeyRef, context: &'static str) -> impl FnOnce(CkError) -> Pkcs11Error {
    let token = key_ref.token_label.clone();
    move |source| Pkcs11Error::Token {
        token,
        context,
        source,
    }
}

/// Opens a session on the token labelled `key_ref.token_label` and logs the user in.
fn login(ctx: &Pkcs11, key_ref: &Pkcs11KeyRef, pin: &AuthPin) -> Result<Session, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(token_err(key_ref, "C_GetSlotList failed"))?;
    let slot = slots
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == key_ref.token_label)
        })
        .ok_or_else(|| Pkcs11Error::TokenNotFound {
            module: key_ref.module.clone(),
            token: key_ref.token_label.clone(),
        })?;
    // Read-write: key generation needs it, and some tokens refuse C_Login on a read-only
    // session when the security officer is logged in.
    let session = ctx
        .open_rw_session(slot)
        .map_err(token_err(key_ref, "C_OpenSession failed"))?;
    match session.login(UserType::User, Some(pin)) {
        // Login is per application and token: a second session inherits it.
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(token_err(key_ref, "C_Login failed (wrong PIN?)")(e)),
    }
}

fn find_key(
    session: &Session,
    key_ref: &Pkcs11KeyRef,
    class: ObjectClass,
) -> Result<ObjectHandle, Pkcs11Error> {
    let found = session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(key_ref.key_label.as_bytes().to_vec()),
        ])
        .map_err(token_err(key_ref, "C_FindObjects failed"))?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| Pkcs11Error::KeyNotFound {
            token: key_ref.token_label.clone(),
            key: key_ref.key_label.clone(),
            what: if class == ObjectClass::PRIVATE_KEY {
                "private key"
            } else {
                "public key"
            },
        })
}

/// The key type and SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of the token's public key.
fn read_public_key(
    session: &Session,
    key_ref: &Pkcs11KeyRef,
) -> Result<(KeyType, Vec<u8>), Pkcs11Error> {
    let public = find_key(session, key_ref, ObjectClass::PUBLIC_KEY)?;
    let unsupported = |detail: String| Pkcs11Error::UnsupportedKey {
        token: key_ref.token_label.clone(),
        key: key_ref.key_label.clone(),
        detail,
    };
    let attrs = session
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(token_err(key_ref, "C_GetAttributeValue failed"))?;
    let mut kind = None;
    let (mut params, mut point, mut modulus, mut exponent) = (None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kind = Some(k),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    match kind {
        Some(CkKeyType::EC) => {
            let params = params.ok_or_else(|| unsupported("no CKA_EC_PARAMS".into()))?;
            let key_type = [KeyType::EcdsaP256, KeyType::EcdsaP384]
                .into_iter()
                .find(|k| curve_oid(*k) == params.as_slice())
                .ok_or_else(|| unsupported("the curve is neither P-256 nor P-384".into()))?;
            let point = point.ok_or_else(|| unsupported("no CKA_EC_POINT".into()))?;
            // CKA_EC_POINT is the DER OCTET STRING of the X9.62 point (PKCS#11 v2.40 §2.3.3);
            // a few tokens return the bare point.
            let point = match der_content(&point, 0x04) {
                Some(inner) if inner.first() == Some(&0x04) => inner.to_vec(),
                _ => point,
            };
            let alg = tlv(0x30, &[EC_PUBLIC_KEY_OID, curve_oid(key_type)].concat());
            Ok((key_type, tlv(0x30, &[alg, bit_string(&point)].concat())))
        }
        Some(CkKeyType::RSA) => {
            let n = modulus.ok_or_else(|| unsupported("no CKA_MODULUS".into()))?;
            let e = exponent.ok_or_else(|| unsupported("no CKA_PUBLIC_EXPONENT".into()))?;
            let bits = (n.iter().skip_while(|b| **b == 0).count() * 8) as u32;
            let key_type = match bits {
                2048 => KeyType::Rsa2048,
                3072 => KeyType::Rsa3072,
                4096 => KeyType::Rsa4096,
                other => return Err(unsupported(format!("a {other}-bit RSA modulus"))),
            };
            let rsa_key = tlv(0x30, &[der_uint(&n), der_uint(&e)].concat());
            let alg = tlv(0x30, &[RSA_ENCRYPTION_OID, &[0x05, 0x00]].concat());
            Ok((key_type, tlv(0x30, &[alg, bit_string(&rsa_key)].concat())))
        }
        other => Err(unsupported(format!("key type {other:?}"))),
    }
}

/// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1), as a DER OBJECT IDENTIFIER.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 3279 §2.3.1).
const RSA_ENCRYPTION_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The named curve as DER OBJECT IDENTIFIER (RFC 5480 §2.1.1.1): CKA_EC_PARAMS' value too.
fn curve_oid(key_type: KeyType) -> &'static [u8] {
    match key_type {
        // secp384r1, 1.3.132.0.34
        KeyType::EcdsaP384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        // prime256v1, 1.2.840.10045.3.1.7
        _ => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    }
}

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, msg: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(alg, msg).as_ref().to_vec()
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The content of a DER element with tag `tag`, if `der` is exactly one such element.
fn der_content(der: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() == len).then_some(rest)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8]; // no unused bits
    v.extend_from_slice(content);
    tlv(0x03, &v)
}

/// A non-negative DER INTEGER from big-endian magnitude bytes: minimal, with a leading zero
/// when the top bit is set (X.690 §8.3.2).
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match magnitude.iter().position(|b| *b != 0) {
        Some(i) => &magnitude[i..],
        None => &[0],
    };
    let mut v = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    tlv(0x02, &v)
}

/// PKCS#11 returns ECDSA signatures as `r || s`, each the curve's size (v2.40 §2.3.1);
/// X.509 wants `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(tlv(0x30, &[der_uint(r), der_uint(s)].concat()))
}

#[cfg(test)]
#[path = "pkcs11_tests.rs"]
mod hsm_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signature_becomes_der() {
        // r has its top bit set (needs a 0x00 pad), s has leading zeros (must be trimmed).
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0, 31));
        raw.push(0x05);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let mut want = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        want.extend(vec![0x80; 32]);
        want.extend([0x02, 0x01, 0x05]);
        assert_eq!(der, want);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_raw_to_der(&[]).is_none());
    }

    #[test]
    fn long_der_lengths() {
        let v = tlv(0x04, &[7u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der_content(&v, 0x04).unwrap().len(), 300);
    }
}

//! [`Pkcs11HmacKey`]: SAS signatures (HMAC-SHA256) made inside the token, and group
//! enrollments whose device keys are derived inside it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use super::error::Pkcs11Error;
use super::token::Pkcs11Token;
use super::uri::Pkcs11Uri;
use crate::error::SignError;
use crate::signer::{SIGNATURE_LEN, Signer};

/// A symmetric key in a PKCS#11 token (a `CKK_GENERIC_SECRET` or `CKK_SHA256_HMAC` secret-key
/// object) that signs SAS tokens with `CKM_SHA256_HMAC` inside the token: a [`Signer`] for
/// [`SasAuthenticator`](crate::SasAuthenticator) and [`generate_sas`](crate::generate_sas),
/// so tokens are minted and renewed exactly as with a [`SymmetricKey`](crate::SymmetricKey).
///
/// For an enrollment group's key, [`derive_device_key`](Self::derive_device_key) gives each
/// device's key as a session object of the token: see there for why.
#[derive(Clone)]
pub struct Pkcs11HmacKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    token: Pkcs11Token,
    handle: ObjectHandle,
    label: String,
    /// A derived key: a session object, destroyed with the last clone.
    ephemeral: bool,
}

impl Drop for KeyInner {
    fn drop(&mut self) {
        if self.ephemeral {
            let handle = self.handle;
            if let Err(e) = self.token.with_session(|s| {
                s.destroy_object(handle)
                    .map_err(|e| Pkcs11Error::device("C_DestroyObject", &e))
            }) {
                tracing::warn!(error = %e, "cannot destroy a derived key's session object");
            }
        }
    }
}

impl fmt::Debug for Pkcs11HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11HmacKey")
            .field("token", &self.inner.token.label())
            .field("object", &self.inner.label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11HmacKey {
    /// Opens the secret key `uri` names (`pkcs11:token=...;object=...`), logging in to its
    /// token once; `module` as in [`Pkcs11Token::open`].
    ///
    /// # Errors
    /// A [`Pkcs11Error`]: module, token, PIN, object, or [`Pkcs11Error::UnsupportedMechanism`]
    /// when the token has no `CKM_SHA256_HMAC`.
    pub fn open(module: Option<&Path>, uri: &Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        let token = Pkcs11Token::open(module, uri)?;
        Self::in_token(&token, uri)
    }

    /// Opens the secret key `uri` names in an already open `token`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn in_token(token: &Pkcs11Token, uri: &Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        token.require(MechanismType::SHA256_HMAC, "CKM_SHA256_HMAC")?;
        let handle = token.find_object(uri, vec![Attribute::Class(ObjectClass::SECRET_KEY)])?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                token: token.clone(),
                handle,
                label: uri.object.clone().unwrap_or_default(),
                ephemeral: false,
            }),
        })
    }

    /// Imports `key` (e.g. the key DPS issued for an enrollment) into the token as a persistent
    /// secret-key object labelled `label`, sensitive and not extractable, so from then on it
    /// can only be used, never read. The caller should wipe its copy.
    ///
    /// # Errors
    /// [`Pkcs11Error::Device`] when the token refuses the object.
    pub fn import(token: &Pkcs11Token, label: &str, key: &[u8]) -> Result<Self, Pkcs11Error> {
        let handle = create_secret(token, label, key, true)?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                token: token.clone(),
                handle,
                label: label.to_owned(),
                ephemeral: false,
            }),
        })
    }

    /// The device key of `registration_id` in this enrollment group: HMAC-SHA256(group key,
    /// registration id), as DPS derives it, computed by the token.
    ///
    /// **Why a session object, not bytes:** no PKCS#11 derivation mechanism that SoftHSM2,
    /// `tpm2-pkcs11` and common HSMs share yields an HMAC of arbitrary data as a key object, so
    /// the token computes the HMAC with `C_Sign` and the result is imported straight back as a
    /// sensitive, non-extractable *session* object (`CKA_TOKEN` false). The device key then
    /// exists in process memory only for the microseconds between the two calls (in a wiped
    /// buffer), never in an API the caller can reach, and it disappears from the token when the
    /// returned key is dropped. A caller that truly needs the bytes (to hand them to another
    /// device) can use [`GroupKey`](crate::GroupKey) with a software key instead: this type
    /// never returns them.
    ///
    /// # Errors
    /// [`Pkcs11Error`] when the token cannot sign or create the object.
    pub fn derive_device_key(&self, registration_id: &str) -> Result<Self, Pkcs11Error> {
        let token = &self.inner.token;
        let derived = Zeroizing::new(self.hmac(registration_id.as_bytes())?);
        let label = format!("{}/{registration_id}", self.inner.label);
        let handle = create_secret(token, &label, derived.as_slice(), false)?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                token: token.clone(),
                handle,
                label,
                ephemeral: true,
            }),
        })
    }

    /// Whether the token reports this key as sensitive and not extractable (its value can
    /// never be read).
    ///
    /// # Errors
    /// [`Pkcs11Error::Device`] when the attributes cannot be read.
    pub fn is_protected(&self) -> Result<bool, Pkcs11Error> {
        is_protected(&self.inner.token, self.inner.handle)
    }

    fn hmac(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let handle = self.inner.handle;
        self.inner.token.with_session(|s| {
            s.sign(&Mechanism::Sha256Hmac, handle, message)
                .map_err(|e| Pkcs11Error::device("C_Sign(CKM_SHA256_HMAC)", &e))
        })
    }
}

impl Signer for Pkcs11HmacKey {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        let mac = self.hmac(message).map_err(|e| match e {
            Pkcs11Error::Device { .. } => SignError::unavailable(e),
            _ => SignError::failed(e),
        })?;
        let mac: [u8; SIGNATURE_LEN] = mac.as_slice().try_into().map_err(|_| {
            SignError::failed(format!(
                "the token returned a {}-byte HMAC-SHA256",
                mac.len()
            ))
        })?;
        Ok(mac)
    }
}

fn create_secret(
    token: &Pkcs11Token,
    label: &str,
    value: &[u8],
    persistent: bool,
) -> Result<ObjectHandle, Pkcs11Error> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(persistent),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value.to_vec()),
    ];
    let created = token.with_session(|s| {
        s.create_object(&template)
            .map_err(|e| Pkcs11Error::device("C_CreateObject", &e))
    });
    // The template's copy of the value is wiped before it is freed.
    if let Some(Attribute::Value(mut v)) = template.into_iter().last() {
        zeroize::Zeroize::zeroize(&mut v);
    }
    created
}

/// Whether `object` is sensitive and not extractable.
pub(crate) fn is_protected(token: &Pkcs11Token, object: ObjectHandle) -> Result<bool, Pkcs11Error> {
    use cryptoki::object::AttributeType;
    let attrs = token.attributes(
        object,
        &[AttributeType::Sensitive, AttributeType::Extractable],
    )?;
    let mut sensitive = false;
    let mut extractable = true;
    for attr in attrs {
        match attr {
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            _ => {}
        }
    }
    Ok(sensitive && !extractable)
}

//! [`Authenticator`]: fresh credentials for every connection attempt.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dps_core::sas::{SasResource, SasStyle, SasToken};

use crate::error::{AuthError, SignError};
use crate::signer::Signer;
use crate::token::generate_sas;

/// What a transport presents when it connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A SAS token: the MQTT password ([`SasToken::expose`]). Its expiry
    /// ([`SasToken::expiry_unix`]) says when to reconnect with a new one.
    Sas(SasToken),
    /// A client certificate and its private key, for the TLS handshake; the MQTT password is
    /// left empty.
    #[cfg(feature = "x509")]
    X509(crate::x509::X509Identity),
}

impl Credentials {
    /// The MQTT password: the token for SAS, `None` for X.509. Never log it.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        match self {
            Self::Sas(token) => Some(token.expose()),
            #[cfg(feature = "x509")]
            Self::X509(_) => None,
        }
    }

    /// When these credentials stop working (seconds since the Unix epoch), if they expire.
    /// Reconnect with fresh credentials before then (80 % of the lifetime is customary).
    #[must_use]
    pub fn expiry_unix(&self) -> Option<u64> {
        match self {
            Self::Sas(token) => token.expiry_unix(),
            #[cfg(feature = "x509")]
            Self::X509(_) => None,
        }
    }
}

/// Produces the credentials for a connection.
///
/// Transports call [`credentials`](Self::credentials) on **every** connect and reconnect, so
/// tokens are always fresh: a reconnect after the old token expired just works, and renewing a
/// token is a reconnect. Implementations must be cheap, must not block for long, and must not
/// reveal secrets through `Debug`.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Credentials for `resource` (the DPS registration or hub device being connected to), at
    /// `unix_now` seconds since the Unix epoch (the wall clock is the caller's).
    ///
    /// # Errors
    /// An [`AuthError`]; retry only when [`AuthError::is_retriable`].
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError>;
}

impl<A: Authenticator + ?Sized> Authenticator for &A {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        (**self).credentials(resource, unix_now)
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Box<A> {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        (**self).credentials(resource, unix_now)
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        (**self).credentials(resource, unix_now)
    }
}

/// Mints a SAS token with a [`Signer`] on every connect.
///
/// Defaults: tokens live [one hour](Self::DEFAULT_TOKEN_LIFETIME); DPS tokens use the documented
/// form with `skn=registration` ([`SasStyle::documented_dps`]), hub tokens the documented hub form
/// without `skn` ([`SasStyle::hub`]). Both can be changed:
///
/// ```
/// # #[cfg(feature = "sas")] {
/// use std::time::Duration;
/// use dps_auth::{Authenticator, SasAuthenticator, SasResource, SasStyle, SymmetricKey};
///
/// let key = SymmetricKey::from_base64("a2V5MQ==")?;
/// let auth = SasAuthenticator::new(key)
///     .with_token_lifetime(Duration::from_secs(600))
///     .with_dps_style(SasStyle::embedded_c());
/// let credentials = auth.credentials(&SasResource::dps("0ne00000A0A", "dev1"), 1_700_000_000)?;
/// assert_eq!(credentials.expiry_unix(), Some(1_700_000_600));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SasAuthenticator<S> {
    signer: S,
    lifetime: Duration,
    dps_style: SasStyle,
    hub_style: SasStyle,
}

impl<S: Signer> SasAuthenticator<S> {
    /// The default token lifetime: one hour, as the C, Python and Node SDKs use.
    pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

    /// An authenticator signing with `signer`, with the defaults above.
    #[must_use]
    pub const fn new(signer: S) -> Self {
        Self {
            signer,
            lifetime: Self::DEFAULT_TOKEN_LIFETIME,
            dps_style: SasStyle::documented_dps(),
            hub_style: SasStyle::hub(),
        }
    }

    /// Sets how long each token is valid (whole seconds; the fraction is dropped). Shorter
    /// lifetimes limit the damage of a leaked token but mean more reconnects.
    #[must_use]
    pub const fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets the form of DPS tokens (default [`SasStyle::documented_dps`]).
    #[must_use]
    pub fn with_dps_style(mut self, style: SasStyle) -> Self {
        self.dps_style = style;
        self
    }

    /// Sets the form of hub device, module and custom-resource tokens (default
    /// [`SasStyle::hub`]).
    #[must_use]
    pub fn with_hub_style(mut self, style: SasStyle) -> Self {
        self.hub_style = style;
        self
    }

    /// The token lifetime.
    #[must_use]
    pub const fn token_lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The signer.
    #[must_use]
    pub const fn signer(&self) -> &S {
        &self.signer
    }

    /// The style used for `resource`.
    #[must_use]
    pub const fn style_for(&self, resource: &SasResource) -> &SasStyle {
        if resource.is_dps() {
            &self.dps_style
        } else {
            &self.hub_style
        }
    }

    /// A token for `resource`, expiring one lifetime after `unix_now`.
    ///
    /// # Errors
    /// The signer's [`SignError`].
    pub fn token(&self, resource: &SasResource, unix_now: u64) -> Result<SasToken, SignError> {
        mint(
            &self.signer,
            resource,
            self.style_for(resource),
            unix_now,
            self.lifetime,
        )
    }
}

pub(crate) fn mint<S: Signer + ?Sized>(
    signer: &S,
    resource: &SasResource,
    style: &SasStyle,
    unix_now: u64,
    lifetime: Duration,
) -> Result<SasToken, SignError> {
    generate_sas(
        signer,
        resource,
        style,
        unix_now.saturating_add(lifetime.as_secs()),
    )
}

impl<S: Signer> Authenticator for SasAuthenticator<S> {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        Ok(Credentials::Sas(self.token(resource, unix_now)?))
    }
}

/// A key used directly: the defaults of [`SasAuthenticator`].
#[cfg(feature = "sas")]
impl Authenticator for crate::SymmetricKey {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        let lifetime = SasAuthenticator::<Self>::DEFAULT_TOKEN_LIFETIME;
        let style = SasStyle::for_resource(resource);
        Ok(Credentials::Sas(mint(
            self, resource, &style, unix_now, lifetime,
        )?))
    }
}

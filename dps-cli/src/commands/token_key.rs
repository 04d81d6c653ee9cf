//! `--key-uri` / `--group-key-uri`: device keys in a PKCS#11 token (RFC 7512 URIs).

use std::path::{Path, PathBuf};

use dps_auth::Authenticator;
use dps_auth::pkcs11::{
    ChainSource, KeyAlgorithm, ObjectType, Pkcs11Error, Pkcs11HmacKey, Pkcs11PrivateKey,
    Pkcs11Token, Pkcs11Uri,
};

use crate::exit::CliError;

/// Where the token keys are, as the command line gives them.
pub(crate) struct TokenKeyArgs<'a> {
    /// `--key-uri`: the device's own key (secret key: SAS; private key: X.509).
    pub(crate) key_uri: Option<&'a str>,
    /// `--group-key-uri`: the enrollment group's key; the device key is derived in the token.
    pub(crate) group_key_uri: Option<&'a str>,
    /// `--cert`: the chain of an X.509 key (else the token's certificate objects).
    pub(crate) cert: Option<&'a Path>,
    /// `--pkcs11-module`.
    pub(crate) module: Option<&'a PathBuf>,
}

impl TokenKeyArgs<'_> {
    /// Whether a token key was asked for.
    pub(crate) fn given(&self) -> bool {
        self.key_uri.is_some() || self.group_key_uri.is_some()
    }

    /// The authenticator for `registration_id` (`None` where the identity names it, X.509).
    pub(crate) fn authenticator(
        &self,
        registration_id: Option<&str>,
    ) -> Result<Box<dyn Authenticator>, CliError> {
        let module = self.module.map(PathBuf::as_path);
        if let Some(text) = self.group_key_uri {
            let uri = parse(text, "--group-key-uri")?;
            let Some(registration_id) = registration_id else {
                return Err(CliError::invalid_input(
                    "--group-key-uri needs the device's registration id",
                ));
            };
            let group =
                Pkcs11HmacKey::open(module, &uri).map_err(|e| failed("--group-key-uri", &e))?;
            let key = group
                .derive_device_key(registration_id)
                .map_err(|e| failed("--group-key-uri", &e))?;
            return Ok(Box::new(dps_auth::SasAuthenticator::new(key)));
        }
        let Some(text) = self.key_uri else {
            return Err(CliError::invalid_input("give --key-uri or --group-key-uri"));
        };
        let uri = parse(text, "--key-uri")?;
        let x509 = match uri.object_type() {
            Some(ObjectType::Private) => true,
            Some(ObjectType::SecretKey) => false,
            _ => self.cert.is_some(),
        };
        if !x509 {
            match Pkcs11HmacKey::open(module, &uri) {
                Ok(key) => return Ok(Box::new(dps_auth::SasAuthenticator::new(key))),
                // No secret key by that name: it may be a private key.
                Err(Pkcs11Error::ObjectNotFound { .. }) if uri.object_type().is_none() => {}
                Err(e) => return Err(failed("--key-uri", &e)),
            }
        }
        let chain = match self.cert {
            Some(path) => ChainSource::PemFile(path),
            None => ChainSource::Token,
        };
        let identity = dps_auth::pkcs11::load_identity(module, &uri, chain)
            .map_err(|e| CliError::invalid_input(format_args!("--key-uri: {e}")))?;
        let identity = match registration_id {
            Some(id) => identity
                .with_registration_id_check(id)
                .map_err(|e| CliError::invalid_input(format_args!("--key-uri: {e}")))?,
            None => identity,
        };
        Ok(Box::new(identity))
    }
}

fn parse(text: &str, option: &str) -> Result<Pkcs11Uri, CliError> {
    Pkcs11Uri::parse(text).map_err(|e| CliError::invalid_input(format_args!("{option}: {e}")))
}

fn failed(option: &str, e: &Pkcs11Error) -> CliError {
    CliError::invalid_input(format_args!("{option}: {e}"))
}

/// `--csr-key-uri`: a key pair generated in the token, its CSR signed there, and the issued
/// chain stored back next to it.
pub(crate) struct TokenCsr {
    token: Pkcs11Token,
    label: String,
    id: Vec<u8>,
    der: Vec<u8>,
}

impl TokenCsr {
    pub(crate) fn generate(
        text: &str,
        module: Option<&Path>,
        registration_id: &str,
    ) -> Result<Self, CliError> {
        let uri = parse(text, "--csr-key-uri")?;
        let Some(label) = uri.object().map(str::to_owned) else {
            return Err(CliError::invalid_input(
                "--csr-key-uri needs an `object` label for the new key",
            ));
        };
        let id = uri
            .id()
            .map_or_else(|| label.as_bytes().to_vec(), <[u8]>::to_vec);
        let token = Pkcs11Token::open(module, &uri).map_err(|e| failed("--csr-key-uri", &e))?;
        let key = Pkcs11PrivateKey::generate(&token, &label, &id, KeyAlgorithm::EcP256)
            .map_err(|e| failed("--csr-key-uri", &e))?;
        let der = key
            .certificate_signing_request(registration_id)
            .map_err(|e| failed("--csr-key-uri", &e))?;
        Ok(Self {
            token,
            label,
            id,
            der,
        })
    }

    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// Stores the issued chain (base64 DER, leaf first) in the token next to the key.
    pub(crate) fn store_chain(&self, chain: &[String]) -> Result<(), CliError> {
        use base64::Engine as _;
        if chain.is_empty() {
            return Err(CliError::new(
                crate::exit::ExitCode::Failed,
                "the service issued no certificate",
            ));
        }
        let certs = chain
            .iter()
            .map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(dps_auth::CertificateDer::from)
                    .map_err(|_| {
                        CliError::new(
                            crate::exit::ExitCode::Failed,
                            "the issued certificate is not base64",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        dps_auth::pkcs11::store_chain(&self.token, &self.label, &self.id, &certs)
            .map_err(|e| CliError::failure(format_args!("cannot store the issued chain: {e}")))
    }
}

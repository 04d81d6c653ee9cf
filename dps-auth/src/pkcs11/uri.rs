//! [`Pkcs11Uri`]: RFC 7512 PKCS#11 URIs naming a token and an object in it.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::error::Pkcs11Error;

/// Where a key's PIN comes from.
#[derive(Clone)]
enum PinSpec {
    /// `pin-value` in the URI (RFC 7512 §2.3).
    Value(Zeroizing<String>),
    /// `pin-source=file:...` or a plain path (RFC 7512 §2.3): the first line of the file.
    File(PathBuf),
    /// Neither: the [`PIN_ENV`](super::PIN_ENV) environment variable, if set.
    Environment,
}

/// The kind of object a URI names (RFC 7512 §2.3 `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectType {
    /// A private key (`type=private`).
    Private,
    /// A secret key, e.g. an HMAC key (`type=secret-key`).
    SecretKey,
    /// A certificate (`type=cert`).
    Cert,
    /// A public key (`type=public`).
    Public,
}

/// A parsed PKCS#11 URI (RFC 7512): `pkcs11:token=gw;object=dev-42;type=private?pin-source=file:/etc/pin`.
///
/// Understood path attributes: `token`, `object`, `id` (percent-encoded bytes), `type`,
/// `serial`; query attributes: `pin-value`, `pin-source`, `module-path`. Others are ignored as
/// RFC 7512 §2.3 allows. The PIN never appears in `Debug` output.
#[derive(Clone)]
pub struct Pkcs11Uri {
    pub(crate) token: Option<String>,
    pub(crate) serial: Option<String>,
    pub(crate) object: Option<String>,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) object_type: Option<ObjectType>,
    pub(crate) module_path: Option<PathBuf>,
    pin: PinSpec,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("object", &self.object)
            .field("id", &self.id)
            .field("type", &self.object_type)
            .field("module_path", &self.module_path)
            .field("pin", &"<redacted>")
            .finish()
    }
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI.
    ///
    /// # Errors
    /// [`Pkcs11Error::InvalidUri`] saying what is wrong (never echoing a PIN).
    pub fn parse(uri: &str) -> Result<Self, Pkcs11Error> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| invalid("it does not start with `pkcs11:`"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Self {
            token: None,
            serial: None,
            object: None,
            id: None,
            object_type: None,
            module_path: None,
            pin: PinSpec::Environment,
        };
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| invalid("a path attribute has no `=`"))?;
            let bytes = percent_decode(value)?;
            match name {
                "token" => parsed.token = Some(text(bytes, "token")?),
                "serial" => parsed.serial = Some(text(bytes, "serial")?),
                "object" => parsed.object = Some(text(bytes, "object")?),
                "id" => parsed.id = Some(bytes),
                "type" => {
                    parsed.object_type = Some(match text(bytes, "type")?.as_str() {
                        "private" => ObjectType::Private,
                        "secret-key" => ObjectType::SecretKey,
                        "cert" => ObjectType::Cert,
                        "public" => ObjectType::Public,
                        _ => {
                            return Err(invalid(
                                "`type` is not private, secret-key, cert or public",
                            ));
                        }
                    });
                }
                // RFC 7512 §2.3: unknown or irrelevant attributes narrow nothing here.
                _ => {}
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| invalid("a query attribute has no `=`"))?;
            let bytes = Zeroizing::new(percent_decode(value)?);
            match name {
                "pin-value" => {
                    let pin = String::from_utf8(bytes.to_vec())
                        .map_err(|_| invalid("`pin-value` is not UTF-8"))?;
                    parsed.pin = PinSpec::Value(Zeroizing::new(pin));
                }
                "pin-source" => {
                    let source = text(bytes.to_vec(), "pin-source")?;
                    let path = source.strip_prefix("file:").unwrap_or(&source);
                    parsed.pin = PinSpec::File(PathBuf::from(path));
                }
                "module-path" => {
                    parsed.module_path = Some(PathBuf::from(text(bytes.to_vec(), "module-path")?));
                }
                _ => {}
            }
        }
        if parsed.token.is_none() && parsed.serial.is_none() {
            return Err(invalid("it names no `token` (or `serial`)"));
        }
        Ok(parsed)
    }

    /// The token label, if given.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The object label, if given.
    #[must_use]
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The object id, if given.
    #[must_use]
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The object type, if given.
    #[must_use]
    pub fn object_type(&self) -> Option<ObjectType> {
        self.object_type
    }

    /// The module path given in the URI (`module-path`), if any.
    #[must_use]
    pub fn module_path(&self) -> Option<&std::path::Path> {
        self.module_path.as_deref()
    }

    /// The same URI with another `object` label (and no `id`): to name a certificate or a
    /// device's derived key next to a key.
    #[must_use]
    pub fn with_object(&self, label: &str) -> Self {
        let mut other = self.clone();
        other.object = Some(label.to_owned());
        other.id = None;
        other
    }

    /// Resolves the user PIN: `pin-value`, else `pin-source`, else the environment variable
    /// [`PIN_ENV`](super::PIN_ENV); `None` when the token needs no login.
    pub(crate) fn pin(&self) -> Result<Option<Zeroizing<String>>, Pkcs11Error> {
        match &self.pin {
            PinSpec::Value(pin) => Ok(Some(pin.clone())),
            PinSpec::File(path) => {
                let content = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Pkcs11Error::PinSourceUnreadable {
                        path: path.clone(),
                        kind: e.kind(),
                    }
                })?);
                let line = content.lines().next().unwrap_or("");
                Ok(Some(Zeroizing::new(line.to_owned())))
            }
            PinSpec::Environment => Ok(std::env::var(super::PIN_ENV).ok().map(Zeroizing::new)),
        }
    }
}

fn invalid(reason: &'static str) -> Pkcs11Error {
    Pkcs11Error::InvalidUri { reason }
}

fn text(bytes: Vec<u8>, _name: &str) -> Result<String, Pkcs11Error> {
    String::from_utf8(bytes).map_err(|_| invalid("an attribute is not UTF-8"))
}

/// RFC 3986 §2.1 percent-decoding, as RFC 7512 §2.3 requires for every attribute value.
fn percent_decode(value: &str) -> Result<Vec<u8>, Pkcs11Error> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("a `%` is not followed by two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_attributes() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=dev-1;type=private;id=%01%ff?pin-value=12%3b34&module-path=/x.so",
        )
        .unwrap();
        assert_eq!(uri.token(), Some("My Token"));
        assert_eq!(uri.object(), Some("dev-1"));
        assert_eq!(uri.id(), Some(&[1u8, 0xff][..]));
        assert_eq!(uri.object_type(), Some(ObjectType::Private));
        assert_eq!(uri.pin().unwrap().unwrap().as_str(), "12;34");
        assert!(!format!("{uri:?}").contains("12;34"));
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "pkcs12:token=a",
            "pkcs11:object=a",
            "pkcs11:token=%zz",
            "pkcs11:token",
        ] {
            assert!(
                matches!(Pkcs11Uri::parse(bad), Err(Pkcs11Error::InvalidUri { .. })),
                "{bad}"
            );
        }
    }
}

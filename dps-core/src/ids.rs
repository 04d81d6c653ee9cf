//! Identifier rules: DPS registration ids, IoT Hub device ids and module ids.
//!
//! Validate ids before they reach a topic, a username or a SAS resource: an id the service would
//! reject then fails early with an [`IdError`] that says which rule was broken, instead of an
//! opaque `401` or `400` from the service.
//!
//! ```
//! use dps_core::ids::{validate_device_id, validate_registration_id, IdError};
//! assert!(validate_registration_id("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6").is_ok());
//! assert!(matches!(validate_registration_id("ends-with."), Err(IdError::InvalidEnd { .. })));
//! assert!(validate_device_id("dev$1(a)").is_ok());
//! ```

use core::fmt;

/// Maximum length, in characters, of a registration id, device id or module id.
pub const MAX_ID_LEN: usize = 128;

/// Maximum length of a registration id used with X.509 attestation: the certificate's subject
/// common name, which X.509 limits to 64 characters, must equal the registration id.
pub const MAX_X509_REGISTRATION_ID_LEN: usize = 64;

/// Which kind of identifier was validated; carried by [`IdError`] so the message names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdKind {
    /// A DPS registration id (also the X.509 leaf certificate's common name).
    RegistrationId,
    /// An IoT Hub device id.
    DeviceId,
    /// An IoT Hub module id.
    ModuleId,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RegistrationId => "registration id",
            Self::DeviceId => "device id",
            Self::ModuleId => "module id",
        })
    }
}

/// Why an identifier is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty. Supply the id the enrollment or identity registry uses.
    #[error("{kind} is empty")]
    Empty {
        /// The kind of id.
        kind: IdKind,
    },
    /// The id is longer than allowed ([`MAX_ID_LEN`], or [`MAX_X509_REGISTRATION_ID_LEN`] for
    /// X.509). Use a shorter id; the service would reject this one.
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// The kind of id.
        kind: IdKind,
        /// Length of the id in characters.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// The id contains a character outside the allowed set. Registration ids allow ASCII letters,
    /// digits and `- . _ :`; device and module ids allow ASCII letters, digits and
    /// `- . + % _ # * ? ! ( ) , : = @ $ '`.
    #[error("{kind} contains the character {ch:?} at character {at}, which is not allowed")]
    InvalidChar {
        /// The kind of id.
        kind: IdKind,
        /// The offending character.
        ch: char,
        /// Its position, counted in characters from 0.
        at: usize,
    },
    /// A registration id must start with an ASCII letter or digit.
    #[error("{kind} must start with an ASCII letter or digit, not {ch:?}")]
    InvalidStart {
        /// The kind of id.
        kind: IdKind,
        /// The first character.
        ch: char,
    },
    /// A registration id must end with an ASCII letter, digit or `-`.
    #[error("{kind} must end with an ASCII letter, digit or '-', not {ch:?}")]
    InvalidEnd {
        /// The kind of id.
        kind: IdKind,
        /// The last character.
        ch: char,
    },
}

/// Validates a DPS registration id.
///
/// The rule is `^[A-Za-z0-9]([A-Za-z0-9:._-]{0,126}[A-Za-z0-9-])?$`: 1 to 128 characters, ASCII
/// letters, digits and `: . _ -`, starting with a letter or digit and ending with a letter, digit
/// or `-`. DPS compares registration ids case-insensitively. With X.509 attestation the id must
/// also fit in the certificate's common name; see [`validate_x509_registration_id`].
///
/// # Errors
/// An [`IdError`] naming the first rule that is broken.
pub fn validate_registration_id(id: &str) -> Result<(), IdError> {
    validate_registration_id_max(id, MAX_ID_LEN)
}

/// Validates a registration id used with X.509 attestation: the rules of
/// [`validate_registration_id`] with a limit of [`MAX_X509_REGISTRATION_ID_LEN`] characters.
///
/// # Errors
/// An [`IdError`] naming the first rule that is broken.
pub fn validate_x509_registration_id(id: &str) -> Result<(), IdError> {
    validate_registration_id_max(id, MAX_X509_REGISTRATION_ID_LEN)
}

fn validate_registration_id_max(id: &str, max: usize) -> Result<(), IdError> {
    let kind = IdKind::RegistrationId;
    check_length(kind, id, max)?;
    for (at, ch) in id.chars().enumerate() {
        if !(ch.is_ascii_alphanumeric() || matches!(ch, ':' | '.' | '_' | '-')) {
            return Err(IdError::InvalidChar { kind, ch, at });
        }
    }
    // Only ASCII from here on, and the id is not empty.
    let bytes = id.as_bytes();
    let first = char::from(bytes[0]);
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::InvalidStart { kind, ch: first });
    }
    let last = char::from(bytes[bytes.len() - 1]);
    if !(last.is_ascii_alphanumeric() || last == '-') {
        return Err(IdError::InvalidEnd { kind, ch: last });
    }
    Ok(())
}

/// Validates an IoT Hub device id: 1 to 128 characters, ASCII letters, digits and
/// `- . + % _ # * ? ! ( ) , : = @ $ '`. Device ids are case-sensitive.
///
/// The accepted set is the union of the current documentation's and the older one's (the portal's
/// own pattern), so no id that a hub may hold is refused.
///
/// # Errors
/// An [`IdError`] naming the first rule that is broken.
pub fn validate_device_id(id: &str) -> Result<(), IdError> {
    validate_hub_id(IdKind::DeviceId, id)
}

/// Validates an IoT Hub module id; the rules are those of [`validate_device_id`].
///
/// # Errors
/// An [`IdError`] naming the first rule that is broken.
pub fn validate_module_id(id: &str) -> Result<(), IdError> {
    validate_hub_id(IdKind::ModuleId, id)
}

/// True for the characters allowed in device and module ids.
#[must_use]
pub const fn is_hub_id_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric()
        || matches!(
            ch,
            '-' | '.'
                | '+'
                | '%'
                | '_'
                | '#'
                | '*'
                | '?'
                | '!'
                | '('
                | ')'
                | ','
                | ':'
                | '='
                | '@'
                | '$'
                | '\''
        )
}

fn validate_hub_id(kind: IdKind, id: &str) -> Result<(), IdError> {
    check_length(kind, id, MAX_ID_LEN)?;
    match id.chars().enumerate().find(|&(_, ch)| !is_hub_id_char(ch)) {
        Some((at, ch)) => Err(IdError::InvalidChar { kind, ch, at }),
        None => Ok(()),
    }
}

fn check_length(kind: IdKind, id: &str, max: usize) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { kind });
    }
    // Counting bytes first keeps the common case cheap; characters are counted only for the
    // message.
    if id.len() > max {
        let len = id.chars().count();
        if len > max {
            return Err(IdError::TooLong { kind, len, max });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};

    #[test]
    fn registration_id_examples() {
        for ok in [
            "a",
            "0",
            "myRegistrationId",
            "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
            "symm-key-rust-device-001",
            "a:b.c_d-",
            "ends-with-dash-",
        ] {
            assert_eq!(validate_registration_id(ok), Ok(()), "{ok}");
        }
        let kind = IdKind::RegistrationId;
        assert_eq!(validate_registration_id(""), Err(IdError::Empty { kind }));
        assert_eq!(
            validate_registration_id("-a"),
            Err(IdError::InvalidStart { kind, ch: '-' })
        );
        assert_eq!(
            validate_registration_id("a."),
            Err(IdError::InvalidEnd { kind, ch: '.' })
        );
        assert_eq!(
            validate_registration_id("a_"),
            Err(IdError::InvalidEnd { kind, ch: '_' })
        );
        assert_eq!(
            validate_registration_id("a b"),
            Err(IdError::InvalidChar {
                kind,
                ch: ' ',
                at: 1
            })
        );
        assert_eq!(
            validate_registration_id("dév"),
            Err(IdError::InvalidChar {
                kind,
                ch: 'é',
                at: 1
            })
        );
        assert_eq!(
            validate_registration_id("a/b"),
            Err(IdError::InvalidChar {
                kind,
                ch: '/',
                at: 1
            })
        );
    }

    #[test]
    fn registration_id_length_limits() {
        let max: String = "a".repeat(128);
        assert_eq!(validate_registration_id(&max), Ok(()));
        let too_long: String = "a".repeat(129);
        assert_eq!(
            validate_registration_id(&too_long),
            Err(IdError::TooLong {
                kind: IdKind::RegistrationId,
                len: 129,
                max: 128
            })
        );
        assert_eq!(validate_x509_registration_id(&"a".repeat(64)), Ok(()));
        assert_eq!(
            validate_x509_registration_id(&"a".repeat(65)),
            Err(IdError::TooLong {
                kind: IdKind::RegistrationId,
                len: 65,
                max: 64
            })
        );
    }

    #[test]
    fn device_and_module_id_examples() {
        for ok in ["my_device", "dev$1", "a-.+%_#*?!(),:=@$'z", "A"] {
            assert_eq!(validate_device_id(ok), Ok(()), "{ok}");
            assert_eq!(validate_module_id(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_device_id("a/b"),
            Err(IdError::InvalidChar {
                kind: IdKind::DeviceId,
                ch: '/',
                at: 1
            })
        );
        assert_eq!(
            validate_module_id("a;b"),
            Err(IdError::InvalidChar {
                kind: IdKind::ModuleId,
                ch: ';',
                at: 1
            })
        );
        assert_eq!(
            validate_device_id(""),
            Err(IdError::Empty {
                kind: IdKind::DeviceId
            })
        );
        assert_eq!(validate_device_id(&"x".repeat(128)), Ok(()));
        assert!(matches!(
            validate_device_id(&"x".repeat(129)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        // Multi-byte characters count as one character in the length and position.
        assert!(matches!(
            validate_device_id(&"é".repeat(100)),
            Err(IdError::InvalidChar {
                ch: 'é', at: 0, ..
            })
        ));
    }

    #[test]
    fn errors_name_the_kind_in_lower_case() {
        let e = validate_module_id("").unwrap_err().to_string();
        assert_eq!(e, "module id is empty");
        let e = validate_registration_id("-").unwrap_err().to_string();
        assert!(e.starts_with("registration id must start"), "{e}");
    }

    /// Reference implementation of the registration id regular expression, written independently
    /// of the validator (character classes checked per position).
    fn matches_registration_regex(s: &str) -> bool {
        let chars: alloc::vec::Vec<char> = s.chars().collect();
        let n = chars.len();
        let alnum = |c: char| c.is_ascii_alphanumeric();
        let middle = |c: char| alnum(c) || ":._-".contains(c);
        match n {
            0 => false,
            1 => alnum(chars[0]),
            _ => {
                n <= 128
                    && alnum(chars[0])
                    && chars[1..n - 1].iter().all(|&c| middle(c))
                    && (alnum(chars[n - 1]) || chars[n - 1] == '-')
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = validate_registration_id(&s);
            let _ = validate_x509_registration_id(&s);
            let _ = validate_device_id(&s);
            let _ = validate_module_id(&s);
        }

        #[test]
        fn generated_registration_ids_are_accepted(
            s in "[A-Za-z0-9]([A-Za-z0-9:._-]{0,126}[A-Za-z0-9-])?"
        ) {
            proptest::prop_assert_eq!(validate_registration_id(&s), Ok(()));
        }

        #[test]
        fn registration_validator_agrees_with_the_regex(s in "[A-Za-z0-9:._/ é-]{0,130}") {
            proptest::prop_assert_eq!(validate_registration_id(&s).is_ok(), matches_registration_regex(&s));
        }

        #[test]
        fn generated_device_ids_are_accepted(s in "[a-zA-Z0-9\\-.+%_#*?!(),:=@$']{1,128}") {
            proptest::prop_assert_eq!(validate_device_id(&s), Ok(()));
            proptest::prop_assert_eq!(validate_module_id(&s), Ok(()));
        }

        #[test]
        fn device_ids_with_a_foreign_character_are_refused(
            prefix in "[a-z]{0,10}", bad in "[/;&^ \"é]", suffix in "[a-z]{0,10}"
        ) {
            let id = alloc::format!("{prefix}{bad}{suffix}");
            let is_invalid_char = matches!(validate_device_id(&id), Err(IdError::InvalidChar { .. }));
            proptest::prop_assert!(is_invalid_char);
        }
    }
}

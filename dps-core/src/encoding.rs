//! Percent-encoding as IoT Hub and DPS use it (RFC 3986 unreserved set, `+` is never a space).
//!
//! Encoding is done through [`PercentEncoded`], a [`Display`](core::fmt::Display) adapter, so
//! topics and usernames are written straight into their output buffer without an intermediate
//! `String`. Decoding borrows when there is nothing to decode.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Hex digit case used when percent-encoding.
///
/// The documented form and every official SDK but one use upper case (`%2F`); the Embedded C SDK
/// writes the separators of its DPS SAS resource in lower case (`%2f`), which the service accepts
/// because it verifies the signature over the text as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a closed set: hexadecimal has two cases"
)]
pub enum HexCase {
    /// `%2F` (the default, as the documentation and most SDKs do).
    #[default]
    Upper,
    /// `%2f`.
    Lower,
}

/// Returns true for the bytes that are never percent-encoded: `A-Z a-z 0-9 - _ . ~`.
#[inline]
#[must_use]
pub const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// [`is_unreserved`] for every byte, looked up rather than computed: the property bag of every
/// telemetry message is encoded byte by byte (#16).
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        // `b` < 256: the cast keeps its value.
        #[expect(clippy::cast_possible_truncation, reason = "b < 256")]
        {
            table[b] = is_unreserved(b as u8);
        }
        b += 1;
    }
    table
};

/// Displays a string percent-encoded: every byte outside the unreserved set becomes `%XX`.
///
/// ```
/// use dps_core::encoding::PercentEncoded;
/// assert_eq!(PercentEncoded::new("abc/=%012").to_string(), "abc%2F%3D%25012");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentEncoded<'a> {
    text: &'a str,
    case: HexCase,
}

impl<'a> PercentEncoded<'a> {
    /// Encodes `text` with upper-case hex digits.
    #[must_use]
    pub const fn new(text: &'a str) -> Self {
        Self {
            text,
            case: HexCase::Upper,
        }
    }

    /// Encodes `text` with the given hex digit case.
    #[must_use]
    pub const fn with_case(text: &'a str, case: HexCase) -> Self {
        Self { text, case }
    }

    /// The length of the encoded text in bytes, for sizing a buffer up front.
    ///
    /// ```
    /// use dps_core::encoding::PercentEncoded;
    /// assert_eq!(PercentEncoded::new("a/b").encoded_len(), 5);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let escaped = self
            .text
            .bytes()
            .filter(|b| !UNRESERVED[usize::from(*b)])
            .count();
        self.text.len() + 2 * escaped
    }
}

impl PercentEncoded<'_> {
    /// Hands the encoded text to `emit` piece by piece: runs of unreserved bytes as they are,
    /// each other byte as its `%XX` escape. The one encoder behind `Display` and the property
    /// bag's writer, which appends the pieces without the formatting machinery (this runs for
    /// every property of every telemetry message).
    pub(crate) fn write_pieces<E>(&self, emit: &mut E) -> fmt::Result
    where
        E: FnMut(&str) -> fmt::Result + ?Sized,
    {
        let digits: &[u8; 16] = match self.case {
            HexCase::Upper => b"0123456789ABCDEF",
            HexCase::Lower => b"0123456789abcdef",
        };
        let mut start = 0;
        for (i, b) in self.text.bytes().enumerate() {
            if UNRESERVED[usize::from(b)] {
                continue;
            }
            // A run of unreserved bytes is ASCII, so a non-empty run's ends are char
            // boundaries (an empty one may start inside a multi-byte character: skipped).
            if start < i {
                emit(self.text.get(start..i).unwrap_or_default())?;
            }
            let escape = [
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0x0f)],
            ];
            emit(core::str::from_utf8(&escape).map_err(|_| fmt::Error)?)?;
            start = i + 1;
        }
        if start < self.text.len() {
            emit(self.text.get(start..).unwrap_or_default())?;
        }
        Ok(())
    }
}

/// A sink for the `write_pieces` writers that appends each piece to `out`: the writers' pieces
/// straight into a `String`, without the formatting machinery.
pub(crate) fn appending(out: &mut String) -> impl FnMut(&str) -> fmt::Result + '_ {
    |piece| {
        out.push_str(piece);
        Ok(())
    }
}

impl fmt::Display for PercentEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_pieces(&mut |piece| f.write_str(piece))
    }
}

/// Why a percent-encoded text could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A `%` is not followed by two hex digits.
    #[error("invalid percent escape at byte {at}")]
    InvalidEscape {
        /// Byte offset of the `%`.
        at: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded text is not valid UTF-8")]
    InvalidUtf8,
}

/// Decodes `%XX` escapes. `+` stays `+` (IoT Hub does not use form encoding).
///
/// Borrows the input when it contains no `%`, so the common case allocates nothing.
///
/// ```
/// use dps_core::encoding::percent_decode;
/// assert_eq!(percent_decode("fake%24method").unwrap(), "fake$method");
/// assert_eq!(percent_decode("fake+method").unwrap(), "fake+method");
/// ```
pub fn percent_decode(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !text.as_bytes().contains(&b'%') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(DecodeError::InvalidEscape { at: i }),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn the_pieces_are_what_display_writes() {
        for text in [
            "",
            "abc",
            "a/b=c&d",
            "%",
            "ünï/cödé~",
            "日本語-x",
            "~._-",
            "a b+c",
        ] {
            for case in [HexCase::Upper, HexCase::Lower] {
                let encoded = PercentEncoded::with_case(text, case);
                let mut appended = String::from("prefix:");
                let _ = encoded.write_pieces(&mut appending(&mut appended));
                assert_eq!(appended, alloc::format!("prefix:{encoded}"), "{text:?}");
                assert_eq!(appended.len() - 7, encoded.encoded_len(), "{text:?}");
            }
        }
    }

    #[test]
    fn official_url_encode_vector() {
        // azure-sdk-for-c test_az_iot_common.c
        assert_eq!(
            PercentEncoded::new("abc/=%012").to_string(),
            "abc%2F%3D%25012"
        );
    }

    #[test]
    fn lower_case_encoding() {
        assert_eq!(
            PercentEncoded::with_case("a/b", HexCase::Lower).to_string(),
            "a%2fb"
        );
    }

    #[test]
    fn multibyte_characters_are_encoded_per_byte() {
        assert_eq!(PercentEncoded::new("é").to_string(), "%C3%A9");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
    }

    #[test]
    fn decode_errors_are_typed() {
        assert_eq!(
            percent_decode("a%2"),
            Err(DecodeError::InvalidEscape { at: 1 })
        );
        assert_eq!(
            percent_decode("%zz"),
            Err(DecodeError::InvalidEscape { at: 0 })
        );
        assert_eq!(percent_decode("%FF"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn decode_borrows_when_nothing_to_do() {
        assert!(matches!(
            percent_decode("plain+text").unwrap(),
            Cow::Borrowed(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn encode_then_decode_round_trips(s in ".*") {
            let encoded = PercentEncoded::new(&s).to_string();
            proptest::prop_assert!(encoded.bytes().all(|b| is_unreserved(b) || b == b'%'));
            proptest::prop_assert_eq!(percent_decode(&encoded).unwrap(), s.as_str());
        }

        #[test]
        fn decode_never_panics(s in ".*") {
            let _ = percent_decode(&s);
        }
    }
}

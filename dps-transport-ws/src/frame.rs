//! RFC 6455 framing for the data phase of the connection: what MQTT over WebSocket needs and
//! nothing else (binary messages, ping/pong, close).
//!
//! The framing is ours rather than tungstenite's because tungstenite traces every frame with
//! its payload in hex at `trace` level, and the first frame a device sends is the MQTT CONNECT,
//! whose password is the SAS token: any application that turns `trace` on (or bridges the `log`
//! crate into `tracing`) would print a live credential (#11). tungstenite still performs and
//! checks the HTTP upgrade, which carries no secret.

use bytes::{BufMut as _, BytesMut};

/// Continues a fragmented message (RFC 6455 §5.2).
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// A text message: never valid on an MQTT connection.
pub(crate) const OP_TEXT: u8 = 0x1;
/// A binary message: MQTT bytes.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close (§5.5.1).
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping (§5.5.2): answered with a pong carrying the same payload.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong (§5.5.3): ignored.
pub(crate) const OP_PONG: u8 = 0xA;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;
/// Control frames carry at most 125 bytes and are never fragmented (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A frame header read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The final fragment of its message.
    pub(crate) fin: bool,
    /// The opcode.
    pub(crate) opcode: u8,
    /// The header's own length in bytes.
    pub(crate) header_len: usize,
    /// The payload's length in bytes.
    pub(crate) payload_len: usize,
}

/// Why a frame from the server is unusable; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A reserved bit is set, but no extension was negotiated (§5.2).
    #[error("websocket frame with reserved bits set")]
    Reserved,
    /// An opcode RFC 6455 does not define.
    #[error("websocket frame with unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// The server masked a frame, which a client must refuse (§5.1).
    #[error("masked websocket frame from the server")]
    MaskedByServer,
    /// A control frame longer than 125 bytes or fragmented (§5.5).
    #[error("malformed websocket control frame")]
    BadControl,
    /// The frame is larger than this client accepts.
    #[error("websocket frame of {len} bytes is too large (the limit is {limit})")]
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The limit.
        limit: usize,
    },
}

/// Reads a frame header from the start of `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn parse_header(buf: &[u8], limit: usize) -> Result<Option<Header>, FrameError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & RSV != 0 {
        return Err(FrameError::Reserved);
    }
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::UnknownOpcode(opcode));
    }
    if b1 & MASKED != 0 {
        return Err(FrameError::MaskedByServer);
    }
    let fin = b0 & FIN != 0;
    let (len, header_len) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if opcode >= OP_CLOSE && (len > MAX_CONTROL_PAYLOAD || !fin) {
        return Err(FrameError::BadControl);
    }
    let payload_len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= limit)
        .ok_or(FrameError::TooLarge { len, limit })?;
    Ok(Some(Header {
        fin,
        opcode,
        header_len,
        payload_len,
    }))
}

/// Appends one final, masked frame (every client frame is masked, §5.3) to `out`.
pub(crate) fn encode(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut BytesMut) {
    out.reserve(payload.len() + 14);
    out.put_u8(FIN | opcode);
    match payload.len() {
        len @ 0..=125 => out.put_u8(MASKED | len as u8),
        len @ 126..=0xFFFF => {
            out.put_u8(MASKED | 126);
            out.put_u16(len as u16);
        }
        len => {
            out.put_u8(MASKED | 127);
            out.put_u64(len as u64);
        }
    }
    out.put_slice(&mask);
    let start = out.len();
    out.put_slice(payload);
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn the_rfc_examples_parse() {
        // §5.7: a single-frame unmasked text message "Hello".
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let header = parse_header(&frame, LIMIT).unwrap().unwrap();
        assert_eq!(
            header,
            Header {
                fin: true,
                opcode: OP_TEXT,
                header_len: 2,
                payload_len: 5
            }
        );
        // §5.7: a fragmented unmasked text message: "Hel" then "lo".
        let first = parse_header(&[0x01, 0x03, 0x48, 0x65, 0x6c], LIMIT)
            .unwrap()
            .unwrap();
        assert!(!first.fin);
        let last = parse_header(&[0x80, 0x02, 0x6c, 0x6f], LIMIT)
            .unwrap()
            .unwrap();
        assert_eq!((last.fin, last.opcode), (true, OP_CONTINUATION));
        // §5.7: 256 bytes binary in a single unmasked frame, and 64 KiB.
        let h = parse_header(&[0x82, 0x7E, 0x01, 0x00], LIMIT)
            .unwrap()
            .unwrap();
        assert_eq!((h.header_len, h.payload_len), (4, 256));
        let h = parse_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0], LIMIT)
            .unwrap()
            .unwrap();
        assert_eq!((h.header_len, h.payload_len), (10, 65536));
    }

    #[test]
    fn the_rfc_masked_example_encodes() {
        // §5.7: a single-frame masked text message "Hello".
        let mut out = BytesMut::new();
        encode(OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d], &mut out);
        assert_eq!(
            &out[..],
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn lengths_use_each_encoding() {
        for (len, header) in [(0, 6), (125, 6), (126, 8), (65535, 8), (65536, 14)] {
            let mut out = BytesMut::new();
            encode(OP_BINARY, &vec![7; len], [1, 2, 3, 4], &mut out);
            assert_eq!(out.len(), header + len, "{len}");
            // Unmask and parse it back as if a server had sent it.
            let mut plain = out.to_vec();
            plain[1] &= !MASKED;
            let mask_at = header - 4;
            plain.drain(mask_at..header);
            let parsed = parse_header(&plain, LIMIT).unwrap().unwrap();
            assert_eq!(parsed.payload_len, len);
            assert_eq!(parsed.header_len, header - 4);
        }
    }

    #[test]
    fn partial_headers_ask_for_more() {
        for partial in [
            &[][..],
            &[0x82],
            &[0x82, 0x7E, 0x01],
            &[0x82, 0x7F, 0, 0, 0],
        ] {
            assert_eq!(parse_header(partial, LIMIT), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(parse_header(&[0xC2, 0], LIMIT), Err(FrameError::Reserved));
        assert_eq!(
            parse_header(&[0x83, 0], LIMIT),
            Err(FrameError::UnknownOpcode(3))
        );
        assert_eq!(
            parse_header(&[0x82, 0x81, 1, 2, 3, 4, 0], LIMIT),
            Err(FrameError::MaskedByServer)
        );
        assert_eq!(
            parse_header(&[0x89, 0x7E, 0, 126], LIMIT),
            Err(FrameError::BadControl)
        );
        assert_eq!(parse_header(&[0x09, 0], LIMIT), Err(FrameError::BadControl));
        assert_eq!(
            parse_header(&[0x82, 0x7F, 0xFF, 0, 0, 0, 0, 0, 0, 0], LIMIT),
            Err(FrameError::TooLarge {
                len: 0xFF00_0000_0000_0000,
                limit: LIMIT
            })
        );
    }
}

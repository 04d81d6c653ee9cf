//! Certificate renewal: when to renew (a share of the lifetime, jittered), and the hub's
//! credentials topic (hub-device-protocol.md, "Hub certificate renewal"): publish the CSR,
//! expect 202 then 200 with the chain; 409004 means a request is already active.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use bytes::Bytes;

use crate::hub::credentials::{
    CredentialErrorBody, CredentialResponseKind, IssueCertificateRequest, IssueCertificateTopic,
    IssuedCertificates, parse_credentials_topic,
};
use crate::mqtt::{PublishId, QoS, Transmit};
use crate::retry::JitterSource;

/// The largest CSR the hub accepts on its credentials topic, in bytes (base64 text).
pub const MAX_CSR_LEN: usize = 8 * 1024;

/// The error code of "a certificate request is already active".
pub const REQUEST_ALREADY_ACTIVE: u32 = 409_004;

/// Publish ids of credentials requests live above this, far from the hub session's own,
/// which count up from 1.
pub(crate) const RENEWAL_ID_BASE: u64 = 1 << 62;

/// When and how a CSR-issued certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateRenewal {
    /// Renew at this share of the lifetime, in percent (default 80).
    pub at_percent: u8,
    /// Renew up to this share of the lifetime earlier, in percent, at random (default 5), so
    /// a fleet issued at once does not renew at once.
    pub jitter_percent: u8,
    /// Renew over the hub's credentials topic (default); `false` when the hub does not offer
    /// it: the device then provisions again with the new CSR.
    pub over_hub: bool,
}

impl Default for CertificateRenewal {
    fn default() -> Self {
        Self {
            at_percent: 80,
            jitter_percent: 5,
            over_hub: true,
        }
    }
}

impl CertificateRenewal {
    /// Renew at `percent` of the lifetime.
    #[must_use]
    pub const fn at_percent(mut self, percent: u8) -> Self {
        self.at_percent = percent;
        self
    }

    /// Renew up to `percent` of the lifetime earlier, at random.
    #[must_use]
    pub const fn jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent;
        self
    }

    /// Renew over the hub's credentials topic (`true`) or by provisioning again (`false`).
    #[must_use]
    pub const fn over_hub(mut self, over_hub: bool) -> Self {
        self.over_hub = over_hub;
        self
    }

    /// The Unix second at which a certificate valid from `not_before` to `not_after` is
    /// renewed.
    #[must_use]
    pub fn renew_at(&self, not_before: u64, not_after: u64, jitter: &mut JitterSource) -> u64 {
        let lifetime = not_after.saturating_sub(not_before);
        let share = |percent: u8| lifetime.saturating_mul(u64::from(percent.min(100))) / 100;
        let early = jitter
            .jitter(Duration::from_secs(share(self.jitter_percent)))
            .as_secs();
        not_before
            .saturating_add(share(self.at_percent))
            .saturating_sub(early)
    }
}

/// Who issued a renewed certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Issuer {
    /// The hub, over its credentials topic.
    Hub,
    /// DPS, in a registration carrying the CSR.
    Dps,
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hub => "the hub's credentials topic",
            Self::Dps => "a provisioning with the new CSR",
        })
    }
}

/// Why a renewal could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewError {
    /// The CSR is longer than the hub accepts ([`MAX_CSR_LEN`]).
    CsrTooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// The CSR is empty.
    EmptyCsr,
    /// The device has stopped.
    Stopped,
}

impl fmt::Display for RenewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CsrTooLarge { len } => write!(
                f,
                "the CSR is {len} bytes, the hub accepts at most {MAX_CSR_LEN}"
            ),
            Self::EmptyCsr => f.write_str("the CSR is empty"),
            Self::Stopped => f.write_str("the device has stopped"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RenewError {}

/// Checks a CSR before it is sent anywhere.
pub(crate) fn check_csr(csr: &str) -> Result<(), RenewError> {
    match csr.len() {
        0 => Err(RenewError::EmptyCsr),
        len if len > MAX_CSR_LEN => Err(RenewError::CsrTooLarge { len }),
        _ => Ok(()),
    }
}

/// The publish of a credentials request `rid` for `device_id`.
pub(crate) fn request(rid: u64, device_id: &str, csr: &str) -> Transmit {
    let rid_text = rid.to_string();
    Transmit::Publish {
        id: PublishId::new(RENEWAL_ID_BASE + rid),
        topic: IssueCertificateTopic::new(&rid_text).to_string(),
        // A request replaces any earlier one of this device still active on the hub, so a
        // request lost with a connection never blocks the next (409004).
        payload: Bytes::from(
            IssueCertificateRequest::new(device_id, csr)
                .replace_any()
                .to_string(),
        ),
        qos: QoS::AtLeastOnce,
    }
}

/// What a credentials response means to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// 202: accepted, the chain follows.
    Accepted,
    /// 200: the new chain.
    Issued(Vec<String>),
    /// 409004: a request is already active; try again after the wait.
    AlreadyActive(Duration),
    /// Any other error: the hub will not issue.
    Failed,
}

/// Parses a response on the credentials topic; `None` when it is not one, or for another
/// request than `rid`.
pub(crate) fn parse_reply(topic: &str, payload: &[u8], rid: u64) -> Option<Reply> {
    let response = parse_credentials_topic(topic).ok()?;
    if response.decoded_rid().ok()?.parse::<u64>().ok()? != rid {
        return None;
    }
    Some(match response.kind() {
        CredentialResponseKind::Accepted => Reply::Accepted,
        CredentialResponseKind::Completed => serde_json::from_slice::<IssuedCertificates>(payload)
            .ok()
            .filter(|c| !c.certificates.is_empty())
            .map_or(Reply::Failed, |c| Reply::Issued(c.certificates)),
        CredentialResponseKind::Error | CredentialResponseKind::Other => {
            match serde_json::from_slice::<CredentialErrorBody>(payload) {
                Ok(body) if body.error_code == REQUEST_ALREADY_ACTIVE => Reply::AlreadyActive(
                    body.retry_after_duration()
                        .unwrap_or(Duration::from_secs(30)),
                ),
                _ => Reply::Failed,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_instant_is_within_the_jittered_share() {
        let policy = CertificateRenewal::default();
        for seed in 0..100 {
            let at = policy.renew_at(1_000, 1_000 + 10_000, &mut JitterSource::new(seed));
            assert!((1_000 + 7_500..=1_000 + 8_000).contains(&at), "{at}");
        }
    }

    #[test]
    fn csr_limits() {
        assert_eq!(check_csr(""), Err(RenewError::EmptyCsr));
        assert_eq!(check_csr(&"a".repeat(MAX_CSR_LEN)), Ok(()));
        assert_eq!(
            check_csr(&"a".repeat(MAX_CSR_LEN + 1)),
            Err(RenewError::CsrTooLarge {
                len: MAX_CSR_LEN + 1
            })
        );
    }

    #[test]
    fn replies() {
        let t = |s: u16| alloc::format!("$iothub/credentials/res/{s}/?$rid=3");
        assert_eq!(parse_reply(&t(202), b"{}", 3), Some(Reply::Accepted));
        assert_eq!(parse_reply(&t(202), b"{}", 4), None);
        assert_eq!(
            parse_reply(&t(200), br#"["a","b"]"#, 3),
            Some(Reply::Issued(alloc::vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_reply(&t(409), br#"{"errorCode":409004,"retryAfter":5}"#, 3),
            Some(Reply::AlreadyActive(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_reply(&t(400), br#"{"errorCode":400001}"#, 3),
            Some(Reply::Failed)
        );
        assert_eq!(parse_reply("devices/x", b"", 3), None);
    }
}

//! Blob service SAS tokens: minted by the hub for each upload, checked by the built-in blob
//! endpoint (and by Azurite, which holds the same account key).
//!
//! The string to sign is the one of a service SAS for signed version 2020-12-06 and later
//! (Azure Storage REST reference, "Create a service SAS", version 2020-12-06 and later):
//! sixteen fields joined by `\n`, signed with HMAC-SHA256 under the account key.

use std::time::Duration;

use base64::Engine as _;
use dps_auth::{Signer as _, SymmetricKey};
use subtle::ConstantTimeEq as _;

use crate::net::HttpRequest;
use crate::util::time;

/// The signed version of the tokens minted here.
pub(crate) const SAS_VERSION: &str = "2020-12-06";

/// A blob SAS as query parameters (without the leading `?`), granting `permissions` (`r`, `w`,
/// `c` ...) on one blob until `expiry_unix`.
pub(crate) fn blob_sas(
    account: &str,
    key: &SymmetricKey,
    container: &str,
    blob: &str,
    permissions: &str,
    expiry_unix: u64,
) -> Result<String, String> {
    service_sas(
        account,
        key,
        container,
        Some(blob),
        permissions,
        expiry_unix,
    )
}

/// A container SAS as query parameters, granting `permissions` on every blob of `container`
/// until `expiry_unix` (what an import or export job's container URI carries).
pub(crate) fn container_sas(
    account: &str,
    key: &SymmetricKey,
    container: &str,
    permissions: &str,
    expiry_unix: u64,
) -> Result<String, String> {
    service_sas(account, key, container, None, permissions, expiry_unix)
}

/// A service SAS for one blob (`sr=b`) or a whole container (`sr=c`, signed with an empty
/// blob name).
fn service_sas(
    account: &str,
    key: &SymmetricKey,
    container: &str,
    blob: Option<&str>,
    permissions: &str,
    expiry_unix: u64,
) -> Result<String, String> {
    let expiry = format_iso(expiry_unix);
    let resource = if blob.is_some() { "b" } else { "c" };
    let fields = SignedFields {
        permissions,
        expiry: &expiry,
        resource,
        version: SAS_VERSION,
        ..SignedFields::default()
    };
    let to_sign = fields.string_to_sign(account, container, blob.unwrap_or_default());
    let signature = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&sr={resource}&sp={}&se={}&sig={}",
        encode(permissions),
        encode(&expiry),
        encode(&signature)
    ))
}

/// An account SAS for the blob service (`ss=b`), for the emulator's own calls to an external
/// account (creating the upload container, reading a blob's size). "Create an account SAS",
/// version 2020-12-06 and later.
pub(crate) fn account_sas(
    account: &str,
    key: &SymmetricKey,
    permissions: &str,
    resource_types: &str,
    expiry_unix: u64,
) -> Result<String, String> {
    let expiry = format_iso(expiry_unix);
    // account, sp, ss, srt, st, se, sip, spr, sv, ses, and a final empty line.
    let to_sign = format!(
        "{account}\n{permissions}\nb\n{resource_types}\n\n{expiry}\n\nhttps\n{SAS_VERSION}\n\n"
    );
    let signature = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&ss=b&srt={resource_types}&sp={permissions}&se={}&spr=https&sig={}",
        encode(&expiry),
        encode(&signature)
    ))
}

/// What a request's SAS must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Checks the service SAS in `request`'s query for `container`/`blob` of `account`: signed with
/// `key`, not expired, started, and granting `access`. The reason when not (never the token).
pub(crate) fn check(
    request: &HttpRequest,
    account: &str,
    key: &SymmetricKey,
    container: &str,
    blob: &str,
    access: Access,
) -> Result<(), String> {
    let pairs = request.query_pairs();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let signature = get("sig");
    if signature.is_empty() {
        return Err("the request carries no SAS signature".into());
    }
    let resource = get("sr");
    if resource != "b" && resource != "c" {
        return Err("the SAS is not for a blob or container (sr)".into());
    }
    let fields = SignedFields {
        permissions: get("sp"),
        start: get("st"),
        expiry: get("se"),
        identifier: get("si"),
        ip: get("sip"),
        protocol: get("spr"),
        version: get("sv"),
        resource,
        snapshot: get("sst"),
        encryption_scope: get("ses"),
        cache_control: get("rscc"),
        disposition: get("rscd"),
        encoding: get("rsce"),
        language: get("rscl"),
        content_type: get("rsct"),
    };
    if fields.version.is_empty() {
        return Err("the SAS has no signed version (sv)".into());
    }
    let signed_blob = if resource == "b" { blob } else { "" };
    let expected = sign(key, &fields.string_to_sign(account, container, signed_blob))?;
    if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
        return Err("the SAS signature does not match".into());
    }
    let now = time::unix_now();
    let expiry = parse_iso(fields.expiry).ok_or("the SAS expiry (se) is not a valid time")?;
    if now > expiry {
        return Err("the SAS has expired".into());
    }
    if !fields.start.is_empty() {
        let start = parse_iso(fields.start).ok_or("the SAS start (st) is not a valid time")?;
        if now < start {
            return Err("the SAS is not valid yet".into());
        }
    }
    let needed = match access {
        Access::Read => 'r',
        Access::Write => 'w',
    };
    let granted = fields.permissions.contains(needed)
        || (access == Access::Write && fields.permissions.contains('c'));
    if !granted {
        return Err(format!("the SAS does not grant the {needed:?} permission"));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct SignedFields<'a> {
    permissions: &'a str,
    start: &'a str,
    expiry: &'a str,
    identifier: &'a str,
    ip: &'a str,
    protocol: &'a str,
    version: &'a str,
    resource: &'a str,
    snapshot: &'a str,
    encryption_scope: &'a str,
    cache_control: &'a str,
    disposition: &'a str,
    encoding: &'a str,
    language: &'a str,
    content_type: &'a str,
}

impl SignedFields<'_> {
    fn string_to_sign(&self, account: &str, container: &str, blob: &str) -> String {
        let resource = if blob.is_empty() {
            format!("/blob/{account}/{container}")
        } else {
            format!("/blob/{account}/{container}/{blob}")
        };
        [
            self.permissions,
            self.start,
            self.expiry,
            &resource,
            self.identifier,
            self.ip,
            self.protocol,
            self.version,
            self.resource,
            self.snapshot,
            self.encryption_scope,
            self.cache_control,
            self.disposition,
            self.encoding,
            self.language,
            self.content_type,
        ]
        .join("\n")
    }
}

fn sign(key: &SymmetricKey, text: &str) -> Result<String, String> {
    let mac = key
        .sign(text.as_bytes())
        .map_err(|e| format!("signing failed: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    dps_core::encoding::PercentEncoded::new(text).to_string()
}

/// `YYYY-MM-DDThh:mm:ssZ`, the form storage accepts for `se` and `st`.
pub(crate) fn format_iso(unix: u64) -> String {
    let full = time::format_utc(Duration::from_secs(unix));
    // `...:ss.0000000Z` → `...:ssZ`
    match full.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => full,
    }
}

/// Parses `YYYY-MM-DDThh:mm:ss[.f]Z` (or a bare date) to seconds since the Unix epoch.
pub(crate) fn parse_iso(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, clock) = text.split_once('T').unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':').map(str::parse::<u64>);
    let (h, m) = (c.next()?.ok()?, c.next()?.ok()?);
    let s = c.next().transpose().ok()?.unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days)
        .ok()?
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    fn request(query: &str) -> HttpRequest {
        HttpRequest {
            method: Method::PUT,
            path: "/acct/c/dev/a.txt".into(),
            query: Some(query.into()),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer_certificates: Vec::new(),
            peer_addr: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_iso(1_893_456_000), "2030-01-01T00:00:00Z");
        for t in [0, 951_782_400, 1_700_000_123, 4_102_444_800] {
            assert_eq!(parse_iso(&format_iso(t)), Some(t));
        }
        assert_eq!(
            parse_iso("2030-01-01T00:00:00.1234567Z"),
            Some(1_893_456_000)
        );
        for bad in ["", "2030-13-01T00:00:00Z", "x", "2030-01-01T25:00:00Z"] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn minted_tokens_check_and_tampering_fails() {
        let key = SymmetricKey::from_base64("a2V5LW9mLXRoZS1hY2NvdW50").unwrap();
        let expiry = time::unix_now() + 600;
        let sas = blob_sas("acct", &key, "c", "dev/a.txt", "rw", expiry).unwrap();
        let ok = check(
            &request(&sas),
            "acct",
            &key,
            "c",
            "dev/a.txt",
            Access::Write,
        );
        assert_eq!(ok, Ok(()));
        assert_eq!(
            check(&request(&sas), "acct", &key, "c", "dev/a.txt", Access::Read),
            Ok(())
        );
        // Another blob, another account, another key, widened permissions.
        assert!(
            check(
                &request(&sas),
                "acct",
                &key,
                "c",
                "dev/b.txt",
                Access::Write
            )
            .is_err()
        );
        assert!(
            check(
                &request(&sas),
                "other",
                &key,
                "c",
                "dev/a.txt",
                Access::Write
            )
            .is_err()
        );
        let other = SymmetricKey::from_base64("b3RoZXI=").unwrap();
        assert!(
            check(
                &request(&sas),
                "acct",
                &other,
                "c",
                "dev/a.txt",
                Access::Write
            )
            .is_err()
        );
        let widened = sas.replace("sp=rw", "sp=rwd");
        assert!(
            check(
                &request(&widened),
                "acct",
                &key,
                "c",
                "dev/a.txt",
                Access::Write
            )
            .is_err()
        );

        let read_only = blob_sas("acct", &key, "c", "dev/a.txt", "r", expiry).unwrap();
        let refused = check(
            &request(&read_only),
            "acct",
            &key,
            "c",
            "dev/a.txt",
            Access::Write,
        );
        assert!(refused.unwrap_err().contains("permission"));

        let expired = blob_sas("acct", &key, "c", "dev/a.txt", "rw", 1_000).unwrap();
        let refused = check(
            &request(&expired),
            "acct",
            &key,
            "c",
            "dev/a.txt",
            Access::Write,
        );
        assert_eq!(refused.unwrap_err(), "the SAS has expired");
        assert!(
            check(
                &request("sv=x"),
                "acct",
                &key,
                "c",
                "dev/a.txt",
                Access::Read
            )
            .is_err()
        );
    }
}

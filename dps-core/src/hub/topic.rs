//! The error shared by every IoT Hub topic parser, and the small scanning helpers they share.
//!
//! A device receives all its publishes on one connection, so a driver typically offers each
//! received topic to the parsers in turn. [`TopicError::NoMatch`] means "not mine, try the next
//! parser"; every other variant means the topic *is* for that feature but is malformed, which is
//! worth reporting (it points at a service change or a broken emulator).

use crate::query::Params;

/// Why a received topic could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic belongs to another feature (or is not an IoT Hub topic at all).
    ///
    /// Offer it to the next parser; if none matches, log and drop the publish.
    #[error("topic does not match")]
    NoMatch,
    /// The topic is for this feature but stops before a required part, such as the `/?$rid=`
    /// parameters of a response (`$iothub/twin/res/200`).
    ///
    /// Nothing can be correlated; drop the publish and let the request time out.
    #[error("topic ends before its required parts")]
    UnexpectedEnd,
    /// The status segment of a response topic is not a decimal number from 0 to 65535.
    #[error("topic status is not a number from 0 to 65535")]
    InvalidStatus,
    /// The parameter list after `?` lacks a required parameter (or has it without a value).
    #[error("topic parameters lack `{name}`")]
    MissingParameter {
        /// The parameter, as it appears in the topic (`$rid`).
        name: &'static str,
    },
    /// The topic is for this feature but has unexpected text where a separator or a non-empty
    /// segment belongs (for example `$iothub/twin/res/200/x` or an empty method name).
    #[error("topic is malformed")]
    Malformed,
}

/// The request-id parameter of response and request topics.
pub(crate) const RID: &str = "$rid";
/// The twin version parameter.
pub(crate) const VERSION: &str = "$version";

/// Parses a status segment: one to five ASCII digits whose value fits a `u16`.
pub(crate) fn parse_status(segment: &str) -> Result<u16, TopicError> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TopicError::InvalidStatus);
    }
    segment.parse().map_err(|_| TopicError::InvalidStatus)
}

/// Splits `{status}/?{params}` (the text after `.../res/`) into the status and the raw parameter
/// list.
pub(crate) fn status_and_params(rest: &str) -> Result<(u16, &str), TopicError> {
    let (status, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if status.is_empty() {
        return Err(TopicError::UnexpectedEnd);
    }
    let status = parse_status(status)?;
    Ok((status, params_after_slash(tail)?))
}

/// The parameter list of a tail that must be empty (an error: the parameters are missing) or
/// start with `?`.
pub(crate) fn params_after_slash(tail: &str) -> Result<&str, TopicError> {
    match tail.strip_prefix('?') {
        Some(params) => Ok(params),
        None if tail.is_empty() => Err(TopicError::UnexpectedEnd),
        None => Err(TopicError::Malformed),
    }
}

/// The raw value of a required parameter.
pub(crate) fn required_param<'a>(
    params: &'a str,
    name: &'static str,
) -> Result<&'a str, TopicError> {
    match Params::new(params).get(name) {
        Some(Some(value)) => Ok(value),
        _ => Err(TopicError::MissingParameter { name }),
    }
}

/// The raw value of an optional parameter; a bare key counts as absent.
pub(crate) fn optional_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    Params::new(params).get(name).flatten()
}

/// Takes one non-empty path segment (up to the next `/`) off the front of `text`, returning the
/// segment and the text after the `/`. `None` when there is no `/` or the segment is empty.
pub(crate) fn take_segment(text: &str) -> Option<(&str, &str)> {
    text.split_once('/')
        .filter(|(segment, _)| !segment.is_empty())
}

/// Splits `devices/{device}[/modules/{module}]/{rest}` into the device id, the module id and
/// the rest. `None` when the topic does not start that way.
pub(crate) fn identity_prefix(topic: &str) -> Option<(&str, Option<&str>, &str)> {
    let (device_id, rest) = take_segment(topic.strip_prefix("devices/")?)?;
    match rest.strip_prefix("modules/") {
        Some(rest) => {
            let (module_id, rest) = take_segment(rest)?;
            Some((device_id, Some(module_id), rest))
        }
        None => Some((device_id, None, rest)),
    }
}

/// The bag after `{feature}/` (for example `messages/events/`); a topic that ends with the
/// feature and no `/` has an empty bag.
pub(crate) fn bag_after<'a>(rest: &'a str, feature: &str) -> Option<&'a str> {
    match rest.strip_prefix(feature)? {
        "" => Some(""),
        tail => tail.strip_prefix('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200"), Ok(200));
        assert_eq!(parse_status("65535"), Ok(65535));
        assert_eq!(parse_status("00204"), Ok(204));
        for bad in ["", "+200", "-1", "65536", "2x0", " 200", "٣"] {
            assert_eq!(parse_status(bad), Err(TopicError::InvalidStatus), "{bad}");
        }
    }

    #[test]
    fn status_and_params_shapes() {
        assert_eq!(status_and_params("200/?$rid=1"), Ok((200, "$rid=1")));
        assert_eq!(status_and_params("200/?"), Ok((200, "")));
        assert_eq!(status_and_params("200"), Err(TopicError::UnexpectedEnd));
        assert_eq!(status_and_params("200/"), Err(TopicError::UnexpectedEnd));
        assert_eq!(status_and_params(""), Err(TopicError::UnexpectedEnd));
        assert_eq!(status_and_params("200/x"), Err(TopicError::Malformed));
        assert_eq!(
            status_and_params("abc/?$rid=1"),
            Err(TopicError::InvalidStatus)
        );
    }

    #[test]
    fn params() {
        assert_eq!(required_param("$rid=1&$version=2", RID), Ok("1"));
        assert_eq!(
            required_param("$rid", RID),
            Err(TopicError::MissingParameter { name: RID })
        );
        assert_eq!(optional_param("$rid=1", VERSION), None);
        assert_eq!(optional_param("$version", VERSION), None);
        assert_eq!(take_segment("a/b/c"), Some(("a", "b/c")));
        assert_eq!(take_segment("/b"), None);
        assert_eq!(take_segment("a"), None);
    }

    #[test]
    fn identities() {
        assert_eq!(identity_prefix("devices/d/x"), Some(("d", None, "x")));
        assert_eq!(
            identity_prefix("devices/d/modules/m/x"),
            Some(("d", Some("m"), "x"))
        );
        assert_eq!(identity_prefix("devices/d/modules/m"), None);
        assert_eq!(identity_prefix("devices//x"), None);
        assert_eq!(identity_prefix("device/d/x"), None);
        assert_eq!(
            bag_after("messages/events/a=1", "messages/events"),
            Some("a=1")
        );
        assert_eq!(bag_after("messages/events", "messages/events"), Some(""));
        assert_eq!(bag_after("messages/eventsX", "messages/events"), None);
    }
}

//! Direct methods (and IoT Plug and Play commands): requests on
//! `$iothub/methods/POST/{name}/?$rid={rid}`, responses on
//! `$iothub/methods/res/{status}/?$rid={rid}`.

use alloc::borrow::Cow;
use core::fmt;

use super::topic::{RID, TopicError, required_param, status_and_params};
use crate::encoding::{DecodeError, PercentEncoded, percent_decode};

/// The filter for direct method requests.
pub const METHODS_SUBSCRIPTION: &str = "$iothub/methods/POST/#";

/// The separator between component and command in an IoT Plug and Play command's method name.
pub const COMMAND_SEPARATOR: char = '*';

/// A direct method request received by a device. Both fields are the raw topic text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a parsed view of one wire format, field for field; the protocol vectors build it by literal"
)]
pub struct ParsedMethodRequest<'a> {
    /// The method name, as written in the topic.
    pub name: &'a str,
    /// The request id, as written in the topic: echo it unchanged in the
    /// [`MethodResponseTopic`].
    pub rid: &'a str,
}

impl<'a> ParsedMethodRequest<'a> {
    /// The method name percent-decoded (`fake%24method` is `fake$method`; `+` stays `+`).
    pub fn decoded_name(&self) -> Result<Cow<'a, str>, DecodeError> {
        percent_decode(self.name)
    }

    /// The request id percent-decoded.
    pub fn decoded_rid(&self) -> Result<Cow<'a, str>, DecodeError> {
        percent_decode(self.rid)
    }

    /// The raw name split into an IoT Plug and Play component and command; see
    /// [`split_command`].
    #[must_use]
    pub fn command(&self) -> PnpCommand<'a> {
        split_command(self.name)
    }

    /// The response topic for this request with `status`.
    #[must_use]
    pub const fn response_topic(&self, status: u16) -> MethodResponseTopic<'a> {
        MethodResponseTopic::new(status, self.rid)
    }
}

/// Parses a direct method request topic received by a device.
///
/// A topic of another feature, or one without `/?` after the name (such as the filter
/// `$iothub/methods/POST/#` itself), is [`TopicError::NoMatch`]; an empty name is
/// [`TopicError::Malformed`]; parameters without `$rid` are [`TopicError::MissingParameter`].
///
/// ```
/// use dps_core::hub::parse_method_request;
///
/// let req = parse_method_request("$iothub/methods/POST/fake%24method/?$rid=fake%24request%2Fid").unwrap();
/// assert_eq!(req.name, "fake%24method");
/// assert_eq!(req.decoded_name().unwrap(), "fake$method");
/// assert_eq!(req.decoded_rid().unwrap(), "fake$request/id");
/// assert_eq!(
///     req.response_topic(200).to_string(),
///     "$iothub/methods/res/200/?$rid=fake%24request%2Fid"
/// );
/// ```
pub fn parse_method_request(topic: &str) -> Result<ParsedMethodRequest<'_>, TopicError> {
    let rest = topic
        .strip_prefix("$iothub/methods/POST/")
        .ok_or(TopicError::NoMatch)?;
    let (name, params) = rest.split_once("/?").ok_or(TopicError::NoMatch)?;
    if name.is_empty() {
        return Err(TopicError::Malformed);
    }
    let rid = required_param(params, RID)?;
    Ok(ParsedMethodRequest { name, rid })
}

/// A method name split at the first [`COMMAND_SEPARATOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PnpCommand<'a> {
    /// The component, for `{component}*{command}`; `None` for a command of the default component
    /// (a name without `*`).
    pub component: Option<&'a str>,
    /// The command name.
    pub command: &'a str,
}

/// Splits an IoT Plug and Play method name `{component}*{command}` (a plain direct method name
/// has no component).
///
/// The hub normally sends the `*` unencoded; if the name may be percent-encoded, split the
/// [decoded name](ParsedMethodRequest::decoded_name) instead.
///
/// ```
/// use dps_core::hub::split_command;
///
/// let cmd = split_command("thermostat1*getMaxMinReport");
/// assert_eq!((cmd.component, cmd.command), (Some("thermostat1"), "getMaxMinReport"));
/// assert_eq!(split_command("reboot").component, None);
/// ```
#[must_use]
pub fn split_command(name: &str) -> PnpCommand<'_> {
    match name.split_once(COMMAND_SEPARATOR) {
        Some((component, command)) => PnpCommand {
            component: Some(component),
            command,
        },
        None => PnpCommand {
            component: None,
            command: name,
        },
    }
}

/// The topic a device publishes a method result (a JSON body, possibly empty) to:
/// `$iothub/methods/res/{status}/?$rid={rid}`.
///
/// `rid` is written verbatim: pass [`ParsedMethodRequest::rid`] unchanged. `status` is the
/// application's own result code (the service relays it to the caller).
///
/// ```
/// use dps_core::hub::MethodResponseTopic;
/// assert_eq!(MethodResponseTopic::new(200, "2").to_string(), "$iothub/methods/res/200/?$rid=2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodResponseTopic<'a> {
    status: u16,
    rid: &'a str,
}

impl<'a> MethodResponseTopic<'a> {
    /// The response with `status` to the request `rid` (raw, as received).
    #[must_use]
    pub const fn new(status: u16, rid: &'a str) -> Self {
        Self { status, rid }
    }
}

impl fmt::Display for MethodResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "$iothub/methods/res/{}/?$rid={}", self.status, self.rid)
    }
}

/// The topic of a method request, for an emulator of the hub to publish.
///
/// The name is percent-encoded except for the [`COMMAND_SEPARATOR`], so IoT Plug and Play
/// devices that split the raw name still find it; the request id is percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodRequestTopic<'a> {
    name: &'a str,
    rid: &'a str,
}

impl<'a> MethodRequestTopic<'a> {
    /// The request topic for method `name` with request id `rid`.
    #[must_use]
    pub const fn new(name: &'a str, rid: &'a str) -> Self {
        Self { name, rid }
    }
}

impl fmt::Display for MethodRequestTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$iothub/methods/POST/")?;
        for (i, part) in self.name.split(COMMAND_SEPARATOR).enumerate() {
            if i > 0 {
                write!(f, "{COMMAND_SEPARATOR}")?;
            }
            write!(f, "{}", PercentEncoded::new(part))?;
        }
        write!(f, "/?$rid={}", PercentEncoded::new(self.rid))
    }
}

/// A method response published by a device, as the hub (or an emulator) receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodResponse<'a> {
    /// The device's result status.
    pub status: u16,
    /// The raw request id.
    pub rid: &'a str,
}

/// Parses a method response topic published by a device (the service side of
/// [`MethodResponseTopic`]).
pub fn parse_method_response(topic: &str) -> Result<MethodResponse<'_>, TopicError> {
    let rest = topic
        .strip_prefix("$iothub/methods/res/")
        .ok_or(TopicError::NoMatch)?;
    let (status, params) = status_and_params(rest)?;
    let rid = required_param(params, RID)?;
    Ok(MethodResponse { status, rid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn request_topic_keeps_the_separator() {
        let topic = MethodRequestTopic::new("comp 1*get$x", "r/1").to_string();
        assert_eq!(topic, "$iothub/methods/POST/comp%201*get%24x/?$rid=r%2F1");
        let req = parse_method_request(&topic).unwrap();
        assert_eq!(req.decoded_name().unwrap(), "comp 1*get$x");
        assert_eq!(
            req.command(),
            PnpCommand {
                component: Some("comp%201"),
                command: "get%24x"
            }
        );
    }

    #[test]
    fn parse_edge_cases() {
        assert_eq!(
            parse_method_request("$iothub/methods/POST//?$rid=1"),
            Err(TopicError::Malformed)
        );
        assert_eq!(
            parse_method_request("$iothub/methods/POST/m/?x=1"),
            Err(TopicError::MissingParameter { name: "$rid" })
        );
        assert_eq!(
            parse_method_request("$iothub/methods/POST/m"),
            Err(TopicError::NoMatch)
        );
        assert_eq!(
            split_command("a*b*c"),
            PnpCommand {
                component: Some("a"),
                command: "b*c"
            }
        );
    }

    #[test]
    fn service_side_response() {
        assert_eq!(
            parse_method_response("$iothub/methods/res/65535/?$rid=2"),
            Ok(MethodResponse {
                status: 65535,
                rid: "2"
            })
        );
        assert_eq!(
            parse_method_response("$iothub/methods/res/200"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_method_response("$iothub/methods/POST/m/?$rid=1"),
            Err(TopicError::NoMatch)
        );
    }
}

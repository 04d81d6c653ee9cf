//! The device twin query (`POST /devices/query`), in the common subset of the IoT Hub query
//! language that service code uses to find devices (identity-registry.md; the query language
//! reference: `SELECT * FROM devices WHERE ...`):
//!
//! - conditions on any twin path: `deviceId`, `status`, `connectionState`, `tags.site`,
//!   `properties.reported.fw`, `properties.desired.x`, `capabilities.iotEdge`, ...;
//! - `=`, `!=` / `<>`, `<`, `<=`, `>`, `>=`, `IN [...]`, `IS_DEFINED(path)`, `AND`, `OR`,
//!   `NOT`, parentheses; string, number, boolean and null literals;
//! - keywords in any case; a path that is not defined makes its comparison false, as in the
//!   service.
//!
//! Results are twins in device-id order, a page at a time (`x-ms-max-item-count`, at most
//! [`MAX_PAGE`]), with an opaque `x-ms-continuation` token for the next page.

use base64::Engine as _;
use serde_json::Value;

use crate::hub::live::IdentityKey;
use crate::hub::runtime::HubRuntime;
use crate::hub::service::view::DeviceTwin;
use crate::rest::ServiceFailure;
use crate::store::StoreData;

/// The largest page (the service's default and maximum for twin queries).
pub(crate) const MAX_PAGE: usize = 100;

/// A parsed `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    All,
    And(Box<Self>, Box<Self>),
    Or(Box<Self>, Box<Self>),
    Not(Box<Self>),
    Compare(Operand, Comparison, Operand),
    In(Operand, Vec<Value>),
    IsDefined(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<String>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
}

fn invalid(message: impl Into<String>) -> ServiceFailure {
    ServiceFailure::new(400, 400_023, format!("Invalid query: {}", message.into()))
}

fn tokenize(text: &str) -> Result<Vec<Token>, ServiceFailure> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let start = i + 1;
            let end = chars[start..]
                .iter()
                .position(|&d| d == c)
                .map(|p| start + p)
                .ok_or_else(|| invalid("a string is not closed"))?;
            tokens.push(Token::Text(chars[start..end].iter().collect()));
            i = end + 1;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let number = text
                .parse()
                .map_err(|_| invalid(format!("{text} is not a number")))?;
            tokens.push(Token::Number(number));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|d| d.is_alphanumeric() || matches!(d, '_' | '$' | '.' | '-'))
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(symbol) = symbol {
                tokens.push(Token::Symbol(symbol));
                i += 2;
                continue;
            }
            let symbol = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                '[' => "[",
                ']' => "]",
                ',' => ",",
                '*' => "*",
                other => return Err(invalid(format!("unexpected character {other:?}"))),
            };
            tokens.push(Token::Symbol(symbol));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ServiceFailure> {
        if self.symbol(symbol) {
            Ok(())
        } else {
            Err(invalid(format!("expected {symbol}")))
        }
    }

    fn query(&mut self) -> Result<Condition, ServiceFailure> {
        if !self.keyword("select") || !self.symbol("*") {
            return Err(invalid(
                "only SELECT * FROM devices [WHERE ...] is supported",
            ));
        }
        if !self.keyword("from") || !self.keyword("devices") {
            return Err(invalid("only queries FROM devices are supported"));
        }
        let condition = if self.keyword("where") {
            self.or()?
        } else {
            Condition::All
        };
        match self.peek() {
            None => Ok(condition),
            Some(token) => Err(invalid(format!("unexpected {token:?}"))),
        }
    }

    fn or(&mut self) -> Result<Condition, ServiceFailure> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ServiceFailure> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, ServiceFailure> {
        if self.keyword("not") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        if self.symbol("(") {
            let inner = self.or()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        if self.keyword("is_defined") {
            self.expect_symbol("(")?;
            let Operand::Path(path) = self.operand()? else {
                return Err(invalid("IS_DEFINED takes a property path"));
            };
            self.expect_symbol(")")?;
            return Ok(Condition::IsDefined(path));
        }
        let left = self.operand()?;
        if self.keyword("in") {
            self.expect_symbol("[")?;
            let mut values = Vec::new();
            if !self.symbol("]") {
                loop {
                    match self.operand()? {
                        Operand::Literal(value) => values.push(value),
                        Operand::Path(_) => return Err(invalid("IN takes literals")),
                    }
                    if self.symbol("]") {
                        break;
                    }
                    self.expect_symbol(",")?;
                }
            }
            return Ok(Condition::In(left, values));
        }
        let comparison = match self.next() {
            Some(Token::Symbol("=")) => Comparison::Eq,
            Some(Token::Symbol("!=")) => Comparison::Ne,
            Some(Token::Symbol("<")) => Comparison::Lt,
            Some(Token::Symbol("<=")) => Comparison::Le,
            Some(Token::Symbol(">")) => Comparison::Gt,
            Some(Token::Symbol(">=")) => Comparison::Ge,
            other => return Err(invalid(format!("expected a comparison, found {other:?}"))),
        };
        let right = self.operand()?;
        Ok(Condition::Compare(left, comparison, right))
    }

    fn operand(&mut self) -> Result<Operand, ServiceFailure> {
        match self.next() {
            Some(Token::Text(text)) => Ok(Operand::Literal(Value::String(text))),
            Some(Token::Number(n)) => Ok(Operand::Literal(Value::from(n))),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => {
                Ok(Operand::Literal(Value::Bool(true)))
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => {
                Ok(Operand::Literal(Value::Bool(false)))
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => {
                Ok(Operand::Literal(Value::Null))
            }
            Some(Token::Word(w)) => {
                let mut path: Vec<String> = w.split('.').map(str::to_owned).collect();
                // `devices.tags.x` names the same member as `tags.x`.
                if path.len() > 1 && path[0].eq_ignore_ascii_case("devices") {
                    path.remove(0);
                }
                Ok(Operand::Path(path))
            }
            other => Err(invalid(format!(
                "expected a value or a path, found {other:?}"
            ))),
        }
    }
}

fn parse(query: &str) -> Result<Condition, ServiceFailure> {
    Parser {
        tokens: tokenize(query)?,
        at: 0,
    }
    .query()
}

fn resolve<'a>(twin: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(twin, |value, name| value.get(name))
}

fn value_of<'a>(twin: &'a Value, operand: &'a Operand) -> Option<&'a Value> {
    match operand {
        Operand::Path(path) => resolve(twin, path),
        Operand::Literal(value) => Some(value),
    }
}

fn compare(left: &Value, comparison: Comparison, right: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        // Values of different types are never equal, and unordered.
        _ => None,
    };
    match (comparison, order) {
        (Comparison::Eq, Some(o)) => o == Ordering::Equal,
        (Comparison::Ne, Some(o)) => o != Ordering::Equal,
        (Comparison::Ne, None) => true,
        (Comparison::Lt, Some(o)) => o == Ordering::Less,
        (Comparison::Le, Some(o)) => o != Ordering::Greater,
        (Comparison::Gt, Some(o)) => o == Ordering::Greater,
        (Comparison::Ge, Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

fn matches(condition: &Condition, twin: &Value) -> bool {
    match condition {
        Condition::All => true,
        Condition::And(a, b) => matches(a, twin) && matches(b, twin),
        Condition::Or(a, b) => matches(a, twin) || matches(b, twin),
        Condition::Not(inner) => !matches(inner, twin),
        Condition::IsDefined(path) => resolve(twin, path).is_some(),
        Condition::Compare(left, comparison, right) => {
            match (value_of(twin, left), value_of(twin, right)) {
                (Some(l), Some(r)) => compare(l, *comparison, r),
                _ => false,
            }
        }
        Condition::In(operand, values) => value_of(twin, operand)
            .is_some_and(|v| values.iter().any(|c| compare(v, Comparison::Eq, c))),
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub(crate) struct QueryPage {
    pub(crate) twins: Vec<Value>,
    pub(crate) continuation: Option<String>,
}

impl HubRuntime {
    /// `POST /devices/query`: the twins matching `query`, `page_size` at most, after the
    /// device the `continuation` token names.
    pub(crate) fn query_twins(
        &self,
        hub: &str,
        query: &str,
        page_size: Option<usize>,
        continuation: Option<&str>,
    ) -> Result<QueryPage, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let condition = parse(query)?;
        let page_size = page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        // The token is the last device id returned (base64url): stable under inserts and
        // deletes, which an offset would not be.
        let after = continuation
            .map(|token| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| invalid("the continuation token is not valid"))
            })
            .transpose()?;
        self.sync_lifecycle();
        let prefix = StoreData::hub_device_key(&hub, "");
        let start = match &after {
            Some(id) => std::ops::Bound::Excluded(StoreData::hub_device_key(&hub, id)),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let mut twins = Vec::new();
        let mut last = None;
        let mut more = false;
        // Devices are read in chunks so the store's lock is never held while views are built.
        let mut cursor = start;
        'scan: loop {
            let chunk: Vec<_> = self.store.read(|data| {
                data.hub_devices
                    .range((cursor.clone(), std::ops::Bound::Unbounded))
                    .take_while(|(key, _)| key.starts_with(&prefix))
                    .take(256)
                    .map(|(key, device)| (key.clone(), device.clone()))
                    .collect()
            });
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            cursor = std::ops::Bound::Excluded(last_key.clone());
            for (_, device) in &chunk {
                let view = DeviceTwin::of_device(
                    device,
                    &self.live_state(&IdentityKey::device(&hub, &device.device_id)),
                    self.c2d_count(&hub, &device.device_id),
                );
                let twin = serde_json::to_value(&view).unwrap_or(Value::Null);
                if matches(&condition, &twin) {
                    if twins.len() == page_size {
                        more = true;
                        break 'scan;
                    }
                    last = Some(device.device_id.clone());
                    twins.push(twin);
                }
            }
        }
        let continuation = more
            .then_some(last)
            .flatten()
            .map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id));
        Ok(QueryPage {
            twins,
            continuation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(query: &str, twin: &Value) -> bool {
        matches(&parse(query).unwrap(), twin)
    }

    #[test]
    fn the_common_subset_parses_and_evaluates() {
        let twin = json!({
            "deviceId": "dev-1", "status": "enabled", "connectionState": "Disconnected",
            "tags": {"site": "lab", "floor": 3},
            "properties": {"reported": {"fw": "1.2"}, "desired": {}},
            "capabilities": {"iotEdge": false}
        });
        assert!(check("SELECT * FROM devices", &twin));
        assert!(check(
            "select * from devices where tags.site = 'lab'",
            &twin
        ));
        assert!(check(
            "SELECT * FROM devices WHERE devices.tags.floor >= 3",
            &twin
        ));
        assert!(check(
            "SELECT * FROM devices WHERE tags.site = \"lab\" AND NOT (status = 'disabled')",
            &twin
        ));
        assert!(check(
            "SELECT * FROM devices WHERE connectionState = 'Connected' OR properties.reported.fw IN ['1.1', '1.2']",
            &twin
        ));
        assert!(check(
            "SELECT * FROM devices WHERE IS_DEFINED(tags.site)",
            &twin
        ));
        assert!(!check(
            "SELECT * FROM devices WHERE IS_DEFINED(tags.nothing)",
            &twin
        ));
        assert!(!check(
            "SELECT * FROM devices WHERE tags.nothing = 1",
            &twin
        ));
        assert!(!check("SELECT * FROM devices WHERE tags.floor < 3", &twin));
        assert!(check(
            "SELECT * FROM devices WHERE tags.floor <> 'x'",
            &twin
        ));
        assert!(check(
            "SELECT * FROM devices WHERE capabilities.iotEdge = false",
            &twin
        ));
    }

    #[test]
    fn unsupported_or_broken_queries_are_400() {
        for bad in [
            "",
            "SELECT deviceId FROM devices",
            "SELECT * FROM devices.modules",
            "SELECT * FROM devices WHERE",
            "SELECT * FROM devices WHERE tags.a = 'open",
            "SELECT * FROM devices WHERE tags.a ~ 1",
            "SELECT * FROM devices WHERE (tags.a = 1",
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.status, 400, "{bad}");
        }
    }
}

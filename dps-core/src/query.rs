//! `key=value&key2=value2` parameter lists, as found after the `?` of response topics and in
//! property bags.
//!
//! The iterator borrows from the input and yields the raw (still encoded) text, so scanning a topic
//! allocates nothing; call [`percent_decode`](crate::encoding::percent_decode) on the parts you keep.

/// One `key[=value]` item of a parameter list, still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RawParam<'a> {
    /// The key as it appears in the text.
    pub key: &'a str,
    /// The value as it appears in the text; `None` for a bare `key` (a null value in IoT Hub
    /// property bags), `Some("")` for `key=`.
    pub value: Option<&'a str>,
}

/// Iterator over the `&`-separated parameters of a list. Empty items (`a=1&&b=2`) are skipped.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    rest: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// Iterates the parameters of `list` (the text after `?`, without the `?`).
    #[must_use]
    pub const fn new(list: &'a str) -> Self {
        Self { rest: Some(list) }
    }

    /// Value of the first parameter whose raw key equals `key`.
    ///
    /// Returns `Some(None)` when the key is present without a value.
    #[must_use]
    pub fn get(self, key: &str) -> Option<Option<&'a str>> {
        Iterator::find(&mut self.clone(), |p: &RawParam<'a>| p.key == key).map(|p| p.value)
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = RawParam<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest?;
            let (item, tail) = match rest.split_once('&') {
                Some((item, tail)) => (item, Some(tail)),
                None => (rest, None),
            };
            self.rest = tail;
            if item.is_empty() {
                continue;
            }
            return Some(match item.split_once('=') {
                Some((key, value)) => RawParam {
                    key,
                    value: Some(value),
                },
                None => RawParam {
                    key: item,
                    value: None,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn official_find_vectors() {
        // azure-sdk-for-c test_az_iot_common.c (message properties find)
        assert_eq!(
            Params::new("key_one=value_one&key=value_two").get("key"),
            Some(Some("value_two"))
        );
        assert_eq!(
            Params::new("key_one=key&key=value_two").get("key"),
            Some(Some("value_two"))
        );
        for missing in ["key", "one", "value_two", "key_foo"] {
            assert_eq!(
                Params::new("key_one=value_one&key_two=value_two").get(missing),
                None
            );
        }
        assert_eq!(
            Params::new("key_one=value_one&key_two=value_two&key_three=value_three")
                .get("value_three"),
            None
        );
    }

    #[test]
    fn bare_keys_and_empty_values() {
        let params: Vec<_> = Params::new("a&b=&&c=1").collect();
        assert_eq!(
            params,
            [
                RawParam {
                    key: "a",
                    value: None
                },
                RawParam {
                    key: "b",
                    value: Some("")
                },
                RawParam {
                    key: "c",
                    value: Some("1")
                },
            ]
        );
        assert_eq!(Params::new("").count(), 0);
    }

    #[test]
    fn value_may_contain_equals() {
        assert_eq!(Params::new("k=a=b").get("k"), Some(Some("a=b")));
    }
}

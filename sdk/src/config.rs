//! Reading the operator's configuration (`framework deploy --config K=V`)
//! from a [`Registration`].

use std::fmt::Display;
use std::str::FromStr;

use crate::Registration;

impl Registration {
    /// The value configured for `key` (the last one, should it be given
    /// twice).
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value for `key` parsed as a `T`; `Ok(None)` when absent, and an
    /// error naming the key and value when it does not parse.
    pub fn config_parse<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.config(key)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|e| format!("config {key}={v:?}: {e}"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(config: &[(&str, &str)]) -> Registration {
        Registration {
            framework_id: "fw".into(),
            name: "n".into(),
            role: "r".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            reregistered: false,
        }
    }

    #[test]
    fn lookup_and_parse() {
        let i = info(&[("a", "1"), ("b", "x"), ("a", " 2 ")]);
        assert_eq!(i.config("a"), Some(" 2 "));
        assert_eq!(i.config("zzz"), None);
        assert_eq!(i.config_parse::<u64>("a"), Ok(Some(2)));
        assert_eq!(i.config_parse::<u64>("zzz"), Ok(None));
        let err = i.config_parse::<u64>("b").unwrap_err();
        assert!(err.starts_with("config b=\"x\": "), "{err}");
    }
}

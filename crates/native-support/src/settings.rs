//! Settings from the environment, read by one set of rules in every native
//! program: blank means unset, a malformed value names its variable, and
//! durations are seconds or humantime text.

use std::time::Duration;

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads settings through a lookup (the process environment in `main`, a
/// map in tests).
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The trimmed value of `name`; blank counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `default` when unset.
    pub fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// The value of `name`, which must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError {
            name,
            problem: "must be set".into(),
        })
    }

    /// The value of `name` parsed as a `T`, or `default` when unset.
    pub fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|e| ConfigError {
                name,
                problem: format!("is not valid ({e}): {text:?}"),
            }),
        }
    }

    /// The value of `name` as a duration ([`parse_duration`]), or `default`
    /// when unset.
    pub fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => parse_duration(&text).ok_or_else(|| ConfigError {
                name,
                problem: format!("must be seconds or a duration like 30s, 10m or 1h, not {text:?}"),
            }),
        }
    }
}

/// Seconds (`600`) or a humantime duration (`10m`, `1h 30m`, `500ms`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-5"), None);
    }

    #[test]
    fn blank_is_unset_and_bad_values_name_their_variable() {
        let env = Env(|name: &str| match name {
            "BLANK" => Some("  ".to_owned()),
            "PORT" => Some("eighty".to_owned()),
            _ => None,
        });
        assert_eq!(env.or("BLANK", "fallback"), "fallback");
        assert_eq!(env.required("BLANK").unwrap_err().name, "BLANK");
        let bad = env.parsed("PORT", 80u16).unwrap_err();
        assert_eq!(bad.name, "PORT");
        assert!(bad.problem.contains("eighty"), "{}", bad.problem);
    }
}

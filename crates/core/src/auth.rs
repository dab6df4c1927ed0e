//! Who may do what: bearer API keys on writes, and on reads when the
//! operator asks for it.
//!
//! Keys come from the `api_keys` setting (comma-separated). A presented key
//! is compared with every configured key in constant time: both sides are
//! hashed first (so lengths never leak), each comparison is `subtle`'s
//! constant-time equality, and the loop never stops early, so the time a
//! request takes says nothing about how close its key was.

use crate::ApiError;
use crate::config::InvalidSetting;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// What a request does, as far as authorisation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Lists, gets and plays: public unless `read_requires_key` is set.
    Read,
    /// Uploads, completes, aborts and deletes: always keyed.
    Write,
}

/// The configured API keys, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even digests.
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

/// Shortest key accepted: shorter ones are guessable.
pub const MIN_KEY_CHARS: usize = 16;

impl ApiKeys {
    /// Parses `api_keys`: keys separated by commas (spaces around them are
    /// ignored). At least one key is needed, none shorter than
    /// [`MIN_KEY_CHARS`] characters, and only visible ASCII so a key can
    /// travel in a header.
    pub fn parse(text: &str) -> Result<Self, InvalidSetting> {
        let invalid = |problem: String| InvalidSetting {
            name: "api_keys",
            problem,
        };
        let mut digests = Vec::new();
        for (index, key) in text.split(',').map(str::trim).enumerate() {
            if key.is_empty() {
                continue;
            }
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(invalid(format!(
                    "key {} is shorter than {MIN_KEY_CHARS} characters",
                    index + 1
                )));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(format!(
                    "key {} must be visible ASCII characters only",
                    index + 1
                )));
            }
            digests.push(digest(key));
        }
        if digests.is_empty() {
            return Err(invalid("must hold at least one key".into()));
        }
        Ok(Self { digests })
    }

    /// Whether `key` is one of the configured keys, in time independent of
    /// which key (if any) it matches and of how much of it does.
    pub fn contains(&self, key: &str) -> bool {
        let presented = digest(key);
        let mut found = Choice::from(0);
        for stored in &self.digests {
            found |= stored.ct_eq(&presented);
        }
        found.into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header, if the header is
/// well formed (scheme case-insensitive, as RFC 7235 says).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Decides whether a request may proceed: `Ok` when no key is needed or the
/// right one was sent; 401 when a needed key is missing or the header is
/// malformed; 403 when a key was sent but is not one of ours.
pub fn authorize(
    keys: &ApiKeys,
    read_requires_key: bool,
    access: Access,
    authorization: Option<&str>,
) -> Result<(), ApiError> {
    if access == Access::Read && !read_requires_key {
        return Ok(());
    }
    let Some(header) = authorization else {
        return Err(ApiError::unauthorized(
            "send an API key: Authorization: Bearer <key>",
        ));
    };
    let Some(token) = bearer_token(header) else {
        return Err(ApiError::unauthorized(
            "the Authorization header must read `Bearer <key>`",
        ));
    };
    if keys.contains(token) {
        Ok(())
    } else {
        Err(ApiError::forbidden("that API key is not valid here"))
    }
}

/// Parses the `read_requires_key` setting: `true` or `false`.
pub fn parse_read_requires_key(text: &str) -> Result<bool, InvalidSetting> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        other => Err(InvalidSetting {
            name: "read_requires_key",
            problem: format!("must be true or false, not {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-key-0123456789abcdef";
    const OTHER: &str = "other-key-0123456789abcdef";

    fn keys() -> ApiKeys {
        ApiKeys::parse(&format!(" {KEY} , {OTHER},")).unwrap()
    }

    fn status(result: Result<(), ApiError>) -> u16 {
        result.map(|()| 200).unwrap_or_else(|e| e.status)
    }

    #[test]
    fn writes_need_one_of_the_keys() {
        let keys = keys();
        let write = |header: Option<&str>| status(authorize(&keys, false, Access::Write, header));
        assert_eq!(write(Some(&format!("Bearer {KEY}"))), 200);
        assert_eq!(write(Some(&format!("bearer {OTHER}"))), 200);
        assert_eq!(write(None), 401);
        assert_eq!(write(Some(KEY)), 401);
        assert_eq!(write(Some(&format!("Basic {KEY}"))), 401);
        assert_eq!(write(Some("Bearer ")), 401);
        assert_eq!(write(Some("Bearer wrong-key-0123456789abcdef")), 403);
        // A prefix or an extension of a key is not the key.
        assert_eq!(write(Some(&format!("Bearer {}", &KEY[..10]))), 403);
        assert_eq!(write(Some(&format!("Bearer {KEY}x"))), 403);
    }

    #[test]
    fn reads_are_public_unless_configured() {
        let keys = keys();
        assert_eq!(status(authorize(&keys, false, Access::Read, None)), 200);
        assert_eq!(
            status(authorize(&keys, false, Access::Read, Some("Bearer nope"))),
            200
        );
        assert_eq!(status(authorize(&keys, true, Access::Read, None)), 401);
        assert_eq!(
            status(authorize(&keys, true, Access::Read, Some("Bearer nope"))),
            403
        );
        let header = format!("Bearer {KEY}");
        assert_eq!(
            status(authorize(&keys, true, Access::Read, Some(&header))),
            200
        );
    }

    #[test]
    fn refuses_weak_or_missing_keys() {
        assert!(ApiKeys::parse("").is_err());
        assert!(ApiKeys::parse(" , ").is_err());
        assert!(ApiKeys::parse("short").is_err());
        assert!(ApiKeys::parse("has a space in the middle").is_err());
        assert_eq!(ApiKeys::parse(KEY).unwrap().digests.len(), 1);
        assert!(!format!("{:?}", keys()).contains(KEY));
    }

    #[test]
    fn parses_the_read_switch() {
        assert_eq!(parse_read_requires_key("true"), Ok(true));
        assert_eq!(parse_read_requires_key(" TRUE "), Ok(true));
        assert_eq!(parse_read_requires_key("false"), Ok(false));
        assert!(parse_read_requires_key("yes").is_err());
    }
}

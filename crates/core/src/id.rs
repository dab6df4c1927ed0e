//! Video identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A video's identifier: a random (v4) UUID in its lowercase hyphenated form.
///
/// Parsing is strict so that an id taken from a URL can be put into an S3
/// key without any chance of escaping the video's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VideoId(uuid::Uuid);

impl VideoId {
    /// A new random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

/// The text given is not a video id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidVideoId;

impl fmt::Display for InvalidVideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a video id")
    }
}

impl std::error::Error for InvalidVideoId {}

impl FromStr for VideoId {
    type Err = InvalidVideoId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical 36-character form: no braces, URNs or uppercase,
        // so every id has exactly one spelling and one S3 prefix.
        let canonical = s.len() == 36
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
        if !canonical {
            return Err(InvalidVideoId);
        }
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidVideoId)
    }
}

impl TryFrom<String> for VideoId {
    type Error = InvalidVideoId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<VideoId> for String {
    fn from(id: VideoId) -> String {
        id.to_string()
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = VideoId::random();
        assert_eq!(id.to_string().parse::<VideoId>(), Ok(id));
    }

    #[test]
    fn rejects_anything_but_the_canonical_form() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "6f9619ff-8b86-d011-b42d-00c04fc964f/",
        ] {
            assert_eq!(bad.parse::<VideoId>(), Err(InvalidVideoId), "{bad:?}");
        }
        assert!(
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
                .parse::<VideoId>()
                .is_ok()
        );
    }
}

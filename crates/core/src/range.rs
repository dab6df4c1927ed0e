//! HTTP `Range` requests (RFC 9110 §14), for seeking in videos.
//!
//! Only single byte ranges are honoured: that is what players send. Anything
//! else — other units, several ranges, syntax errors — is ignored and the
//! whole object is served, as the RFC allows. Whether a range fits the
//! object is for the store to say (416), since only it knows the size.

/// One byte range a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive).
    FromTo(u64, u64),
    /// `bytes=first-`: from `first` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Reads a `Range` header; `None` means "serve the whole object".
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => number(last).filter(|&n| n > 0).map(ByteRange::Suffix),
            (false, true) => number(first).map(ByteRange::From),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(ByteRange::FromTo(first, last))
            }
            (true, true) => None,
        }
    }

    /// The canonical header value, as sent on to the store.
    pub fn to_header(self) -> String {
        match self {
            ByteRange::FromTo(first, last) => format!("bytes={first}-{last}"),
            ByteRange::From(first) => format!("bytes={first}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_forms_players_send() {
        assert_eq!(
            ByteRange::parse("bytes=0-499"),
            Some(ByteRange::FromTo(0, 499))
        );
        assert_eq!(ByteRange::parse("bytes=500-"), Some(ByteRange::From(500)));
        assert_eq!(ByteRange::parse("bytes=-500"), Some(ByteRange::Suffix(500)));
        assert_eq!(
            ByteRange::parse(" bytes= 1 - 2 "),
            Some(ByteRange::FromTo(1, 2))
        );
    }

    #[test]
    fn ignores_what_it_does_not_honour() {
        for header in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=-0",
            "bytes=0-1,5-6",
            "items=0-5",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(ByteRange::parse(header), None, "{header:?}");
        }
    }

    #[test]
    fn writes_back_what_it_read() {
        for header in ["bytes=0-499", "bytes=500-", "bytes=-500"] {
            assert_eq!(ByteRange::parse(header).unwrap().to_header(), header);
        }
    }
}

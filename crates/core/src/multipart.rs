//! A streaming `multipart/form-data` parser (RFC 7578), sans I/O.
//!
//! Uploads are gigabytes, so the body is pushed through in chunks as it
//! arrives and file data comes out as it is found; the parser never holds
//! more than one chunk plus a delimiter's length of it, except for part
//! headers, which are capped at [`MAX_HEADER_BYTES`].
//!
//! ```text
//! parser.push(chunk);
//! while let Some(event) = parser.next_event()? { ... }   // then push more
//! parser.finish()?;                                      // at end of body
//! ```

use memchr::memmem;

/// Part headers larger than this are refused: real browsers send a few
/// hundred bytes, and anything bigger would have to be buffered.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;

/// What the parser found next in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new part begins; its headers.
    PartStart(PartHeaders),
    /// Bytes of the current part's content, in order.
    Data(Vec<u8>),
    /// The current part's content is complete.
    PartEnd,
    /// The closing delimiter: no more parts.
    End,
}

/// The headers of one part that matter to a form upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// The form field name (`Content-Disposition: form-data; name=...`).
    pub name: String,
    /// The file name, for file fields.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if sent.
    pub content_type: Option<String>,
}

/// Why a body is not valid multipart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The `boundary` parameter is missing or not allowed by RFC 2046.
    InvalidBoundary,
    /// A part's headers are malformed or lack `Content-Disposition: form-data`.
    InvalidPartHeaders(String),
    /// A part's headers exceed [`MAX_HEADER_BYTES`].
    HeadersTooLarge,
    /// Garbage where a delimiter line should end.
    InvalidDelimiter,
    /// The body ended before the closing delimiter.
    Truncated,
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidBoundary => f.write_str("the multipart boundary is missing or invalid"),
            Self::InvalidPartHeaders(why) => write!(f, "a multipart part has bad headers: {why}"),
            Self::HeadersTooLarge => {
                write!(
                    f,
                    "a multipart part's headers exceed {MAX_HEADER_BYTES} bytes"
                )
            }
            Self::InvalidDelimiter => f.write_str("a multipart delimiter line is malformed"),
            Self::Truncated => f.write_str("the multipart body ended before its closing boundary"),
        }
    }
}

impl std::error::Error for MultipartError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter: ignored text.
    Preamble,
    /// Just past a delimiter: `--` ends the body, CRLF starts a part.
    AfterDelimiter,
    Headers,
    Body,
    /// Past the closing delimiter: the epilogue is ignored.
    Done,
}

/// The streaming parser. See the module docs for the calling pattern.
pub struct MultipartParser {
    /// `CRLF--boundary`: what ends every part's content.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
}

impl MultipartParser {
    /// A parser for bodies using `boundary` (from the Content-Type header).
    pub fn new(boundary: &str) -> Result<Self, MultipartError> {
        let valid = !boundary.is_empty()
            && boundary.len() <= MAX_BOUNDARY_LEN
            && boundary.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            && !boundary.ends_with(' ');
        if !valid {
            return Err(MultipartError::InvalidBoundary);
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Ok(Self {
            delimiter,
            // The first delimiter may open the body without a CRLF before
            // it; pretending there was one lets one search find them all.
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
        })
    }

    /// Adds the next bytes of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.state != State::Done {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next event, or `None` when more input is needed (or the body is
    /// complete).
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Preamble => match self.find_delimiter() {
                    Some(at) => {
                        self.consume(at + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        let discard = self.buf.len().saturating_sub(keep);
                        self.consume(discard);
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        self.buf = Vec::new();
                        return Ok(Some(Event::End));
                    }
                    // RFC 2046 allows linear whitespace before the CRLF.
                    let Some(eol) = memmem::find(&self.buf, b"\r\n") else {
                        if self.buf.len() > MAX_BOUNDARY_LEN || !is_padding(&self.buf) {
                            return Err(MultipartError::InvalidDelimiter);
                        }
                        return Ok(None);
                    };
                    if !is_padding(&self.buf[..eol]) {
                        return Err(MultipartError::InvalidDelimiter);
                    }
                    self.consume(eol + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        memmem::find(&self.buf, b"\r\n\r\n").map(|at| at + 2)
                    };
                    let Some(end) = end else {
                        if self.buf.len() > MAX_HEADER_BYTES {
                            return Err(MultipartError::HeadersTooLarge);
                        }
                        return Ok(None);
                    };
                    if end > MAX_HEADER_BYTES {
                        return Err(MultipartError::HeadersTooLarge);
                    }
                    let headers = parse_part_headers(&self.buf[..end])?;
                    self.consume(end + 2);
                    self.state = State::Body;
                    return Ok(Some(Event::PartStart(headers)));
                }
                State::Body => {
                    return Ok(match self.find_delimiter() {
                        Some(0) => {
                            self.consume(self.delimiter.len());
                            self.state = State::AfterDelimiter;
                            Some(Event::PartEnd)
                        }
                        Some(at) => Some(Event::Data(self.take(at))),
                        None => {
                            // The tail could be the start of a delimiter
                            // split across chunks; hold it back.
                            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                            (safe > 0).then(|| Event::Data(self.take(safe)))
                        }
                    });
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// Call at the end of the body: an error unless the closing delimiter
    /// was seen.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(MultipartError::Truncated)
        }
    }

    fn find_delimiter(&self) -> Option<usize> {
        memmem::find(&self.buf, &self.delimiter)
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }
}

fn is_padding(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b' ' || b == b'\t')
}

/// Parses a part's header block (each line ending in CRLF).
fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, MultipartError> {
    let bad = |why: &str| MultipartError::InvalidPartHeaders(why.to_owned());
    let text = std::str::from_utf8(block).map_err(|_| bad("not UTF-8"))?;
    let mut headers = PartHeaders::default();
    let mut saw_disposition = false;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a line has no colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            let mut params = value.split(';');
            let kind = params.next().unwrap_or_default().trim();
            if !kind.eq_ignore_ascii_case("form-data") {
                return Err(bad("Content-Disposition is not form-data"));
            }
            saw_disposition = true;
            for (key, val) in disposition_params(value) {
                match key.to_ascii_lowercase().as_str() {
                    "name" => headers.name = val,
                    "filename" if headers.filename.is_none() => headers.filename = Some(val),
                    // RFC 5987 form (`UTF-8''caf%C3%A9.mp4`) wins over the plain one.
                    "filename*" => {
                        if let Some(decoded) = decode_ext_value(&val) {
                            headers.filename = Some(decoded);
                        }
                    }
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value.to_owned());
        }
    }
    if !saw_disposition {
        return Err(bad("Content-Disposition is missing"));
    }
    Ok(headers)
}

/// The `key=value` parameters after the disposition type, with quoted
/// strings unescaped. Semicolons inside quotes do not split.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = value.chars().peekable();
    // Skip the disposition type.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| c.is_whitespace() || *c == ';')
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    // Browsers do not escape backslashes (old ones send
                    // Windows paths like `C:\clips\cat.mp4`), so only `\"`
                    // and `\\` are escapes; any other backslash is literal.
                    '\\' if matches!(chars.peek(), Some('"' | '\\')) => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
                val.push(c);
            }
        }
        params.push((key.trim().to_owned(), val.trim_end().to_owned()));
    }
    params
}

/// Decodes an RFC 5987 `charset'lang'percent-encoded` value (UTF-8 only).
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a whole body through the parser in chunks of `chunk` bytes and
    /// returns the events, data merged per part.
    fn parse(boundary: &str, body: &[u8], chunk: usize) -> Result<Vec<Event>, MultipartError> {
        let mut parser = MultipartParser::new(boundary)?;
        let mut events: Vec<Event> = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            parser.push(piece);
            while let Some(event) = parser.next_event()? {
                match (events.last_mut(), event) {
                    (Some(Event::Data(acc)), Event::Data(more)) => acc.extend(more),
                    (_, event) => events.push(event),
                }
            }
        }
        parser.finish()?;
        Ok(events)
    }

    fn form(boundary: &str) -> Vec<u8> {
        format!(
            "preamble\r\n--{b}\r\n\
             Content-Disposition: form-data; name=\"title\"\r\n\r\n\
             My cat\r\n\
             --{b}\r\n\
             Content-Disposition: form-data; name=\"video\"; filename=\"c\\\"at;1.mp4\"\r\n\
             Content-Type: video/mp4\r\n\r\n\
             \r\n--XyQ-not-really\r\n\0binary\r\n\
             --{b}--\r\nepilogue",
            b = boundary
        )
        .into_bytes()
    }

    fn expected() -> Vec<Event> {
        vec![
            Event::PartStart(PartHeaders {
                name: "title".into(),
                filename: None,
                content_type: None,
            }),
            Event::Data(b"My cat".to_vec()),
            Event::PartEnd,
            Event::PartStart(PartHeaders {
                name: "video".into(),
                filename: Some("c\"at;1.mp4".into()),
                content_type: Some("video/mp4".into()),
            }),
            Event::Data(b"\r\n--XyQ-not-really\r\n\0binary".to_vec()),
            Event::PartEnd,
            Event::End,
        ]
    }

    #[test]
    fn parses_a_form_whatever_the_chunking() {
        let body = form("XyZ");
        for chunk in [1, 2, 3, 5, 7, 13, 64, body.len()] {
            assert_eq!(
                parse("XyZ", &body, chunk).unwrap(),
                expected(),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn accepts_a_body_that_opens_with_the_delimiter() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--";
        let events = parse("b", body, 4).unwrap();
        assert_eq!(events[1], Event::Data(b"1".to_vec()));
        assert_eq!(events.last(), Some(&Event::End));
    }

    #[test]
    fn reports_a_truncated_body() {
        let body = form("XyZ");
        let cut = &body[..body.len() - 20];
        assert_eq!(parse("XyZ", cut, 8), Err(MultipartError::Truncated));
    }

    #[test]
    fn refuses_oversized_headers_without_buffering_them() {
        let mut body = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES * 2));
        assert_eq!(
            parse("b", &body, 1024),
            Err(MultipartError::HeadersTooLarge)
        );
    }

    #[test]
    fn refuses_parts_that_are_not_form_data() {
        let body = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--";
        assert!(matches!(
            parse("b", body, 3),
            Err(MultipartError::InvalidPartHeaders(_))
        ));
    }

    #[test]
    fn refuses_invalid_boundaries() {
        assert!(MultipartParser::new("").is_err());
        assert!(MultipartParser::new(&"x".repeat(71)).is_err());
        assert!(MultipartParser::new("a\r\nb").is_err());
    }

    #[test]
    fn keeps_backslashes_of_windows_paths() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"video\"; \
                    filename=\"C:\\clips\\a \\\"b\\\".mp4\"\r\n\r\nx\r\n--b--";
        let events = parse("b", body.as_bytes(), 10).unwrap();
        let Event::PartStart(headers) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(headers.filename.as_deref(), Some("C:\\clips\\a \"b\".mp4"));
    }

    #[test]
    fn decodes_extended_filenames() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"cafe.mp4\"; \
                    filename*=UTF-8''caf%C3%A9.mp4\r\n\r\nx\r\n--b--";
        let events = parse("b", body.as_bytes(), 10).unwrap();
        let Event::PartStart(headers) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(headers.filename.as_deref(), Some("café.mp4"));
    }

    #[test]
    fn memory_stays_bounded_while_streaming_a_large_part() {
        let mut parser = MultipartParser::new("b").unwrap();
        parser.push(b"--b\r\nContent-Disposition: form-data; name=\"video\"\r\n\r\n");
        assert!(matches!(
            parser.next_event().unwrap(),
            Some(Event::PartStart(_))
        ));
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0;
        for _ in 0..100 {
            parser.push(&chunk);
            while let Some(Event::Data(d)) = parser.next_event().unwrap() {
                total += d.len();
            }
            assert!(parser.buf.len() < 64, "held {} bytes", parser.buf.len());
        }
        assert!(total > 99 * chunk.len());
    }
}

//! Property tests for every parser the platform owns: whatever bytes a
//! client sends, parsing ends in a value or a 4xx error, never a panic, and
//! what we write we can read back.

use proptest::prelude::*;
use xtream_core::events::VideoUploaded;
use xtream_core::metadata::{ListQuery, decode_cursor, encode_cursor};
use xtream_core::multipart::{Event, MultipartParser};
use xtream_core::range::ByteRange;
use xtream_core::route::{api_route, legacy_route, stream_route};
use xtream_core::upload::{classify, sanitize_filename, title_or_default};
use xtream_core::{VideoId, keys};

const LIMITS: xtream_core::config::UploadLimits =
    xtream_core::config::UploadLimits { max_bytes: 1 << 20 };

/// Feeds `body` in chunks of the given sizes; returns the events or the
/// error.
fn run_parser(boundary: &str, body: &[u8], chunks: &[usize]) -> Result<Vec<Event>, String> {
    let mut parser = MultipartParser::new(boundary).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut rest = body;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        parser.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(event) = parser.next_event().map_err(|e| e.to_string())? {
            events.push(event);
        }
    }
    parser.finish().map_err(|e| e.to_string())?;
    Ok(events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multipart_never_panics_on_garbage(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        chunks in proptest::collection::vec(1usize..300, 1..8),
    ) {
        let _ = run_parser("boundary", &body, &chunks);
    }

    #[test]
    fn multipart_returns_each_file_intact_whatever_the_chunking(
        files in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..4),
        chunks in proptest::collection::vec(1usize..200, 1..8),
    ) {
        let boundary = "XtReAmBoUnDaRy0123456789";
        let mut body = Vec::new();
        for (n, file) in files.iter().enumerate() {
            body.extend_from_slice(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"f{n}\"; filename=\"f{n}.mp4\"\r\n\r\n"
            ).as_bytes());
            body.extend_from_slice(file);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        // Random bytes could contain the delimiter itself; such inputs are
        // not valid forms, so skip them.
        let delimiter = format!("\r\n--{boundary}");
        prop_assume!(!files.iter().any(|f| f.windows(delimiter.len()).any(|w| w == delimiter.as_bytes())));

        let events = run_parser(boundary, &body, &chunks).unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for event in events {
            match event {
                Event::PartStart(_) => got.push(Vec::new()),
                Event::Data(data) => got.last_mut().unwrap().extend(data),
                Event::PartEnd | Event::End => {}
            }
        }
        prop_assert_eq!(got, files);
    }

    #[test]
    fn range_parsing_never_panics_and_round_trips(header in ".{0,40}") {
        if let Some(range) = ByteRange::parse(&header) {
            prop_assert_eq!(ByteRange::parse(&range.to_header()), Some(range));
        }
    }

    #[test]
    fn well_formed_ranges_are_understood(first in 0u64..1 << 40, len in 0u64..1 << 30) {
        let header = format!("bytes={first}-{}", first + len);
        prop_assert_eq!(ByteRange::parse(&header), Some(ByteRange::FromTo(first, first + len)));
    }

    #[test]
    fn cursors_are_opaque_but_checked(text in ".{0,80}") {
        // Anything a client invents is either a cursor we made or a 400.
        if let Err(error) = decode_cursor(&text) {
            prop_assert_eq!(error.status, 400);
        }
        if let Err(error) = ListQuery::from_query(&text) {
            prop_assert_eq!(error.status, 400);
        }
    }

    #[test]
    fn cursors_round_trip(position in 1i64..i64::MAX) {
        prop_assert_eq!(decode_cursor(&encode_cursor(position)).unwrap(), position);
    }

    #[test]
    fn routing_answers_every_path_with_a_route_or_a_4xx(
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "BREW"]),
        path in "(/[a-zA-Z0-9._%~-]{0,40}){0,6}",
    ) {
        for result in [
            api_route(method, &path).map(drop),
            legacy_route(method, &path).map(drop),
            stream_route(method, &path).map(drop),
        ] {
            if let Err(error) = result {
                prop_assert!((400..500).contains(&error.status));
            }
        }
    }

    #[test]
    fn streamed_keys_never_leave_the_video(rest in "[a-z0-9./%_-]{0,60}") {
        let id = VideoId::random();
        if let Ok(object) = stream_route("GET", &format!("/api/videos/{id}/{rest}")) {
            prop_assert!(object.key.starts_with(&keys::video_prefix(id)));
            prop_assert!(!object.key.contains(".."));
            prop_assert!(!object.key.contains("//"));
        }
    }

    #[test]
    fn upload_headers_are_a_form_or_a_4xx(
        content_type in ".{0,60}",
        content_length in "[0-9a-z-]{0,12}",
        query in ".{0,60}",
    ) {
        if let Err(error) = classify(Some(&content_type), Some(&content_length), &query, LIMITS) {
            prop_assert!((400..500).contains(&error.status));
        }
    }

    #[test]
    fn titles_and_file_names_are_safe_or_refused(raw in "\\PC{0,300}", filename in ".{0,300}") {
        let clean = sanitize_filename(&filename);
        prop_assert!(!clean.is_empty() && !clean.contains('/') && !clean.contains('\\'));
        prop_assert!(clean.chars().count() <= 255);
        match title_or_default(Some(&raw), &clean) {
            Ok(title) => prop_assert!(title.chars().count() <= 200 && !title.chars().any(char::is_control)),
            Err(error) => prop_assert_eq!(error.status, 400),
        }
    }

    #[test]
    fn event_payloads_parse_or_fail_cleanly(text in ".{0,200}") {
        let _ = serde_json::from_str::<VideoUploaded>(&text);
    }
}

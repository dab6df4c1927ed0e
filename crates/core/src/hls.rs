//! HLS media playlists as the worker publishes them while ffmpeg writes
//! them: which segments a playlist names, whether it is complete, and the
//! final VOD form it is stored in once the video is ready.
//!
//! ffmpeg writes each rendition as an `EVENT` playlist (segments are only
//! ever appended) and appends `#EXT-X-ENDLIST` when it is done. Players
//! treat an `EVENT` playlist as live and reload it; once the video is
//! ready it is stored as `VOD`, which players and caches may keep as is.

/// The tag that says no segment will be added.
pub const END_LIST: &str = "#EXT-X-ENDLIST";
const PLAYLIST_TYPE: &str = "#EXT-X-PLAYLIST-TYPE:";

/// The segment URIs a media playlist names, in order: every line that is
/// neither blank nor a tag or comment.
pub fn segment_uris(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// Whether the playlist is complete (`#EXT-X-ENDLIST`).
pub fn is_complete(playlist: &str) -> bool {
    playlist.lines().any(|line| line.trim() == END_LIST)
}

/// The playlist as stored once its video is ready: `VOD` type, ended.
/// Everything else, segments and their durations included, is kept.
pub fn finalized(playlist: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut typed = false;
    for line in playlist.lines() {
        if line.trim_start().starts_with(PLAYLIST_TYPE) {
            lines.push(format!("{PLAYLIST_TYPE}VOD"));
            typed = true;
        } else if line.trim() != END_LIST {
            lines.push(line.to_owned());
        }
    }
    if !typed {
        // Right after the header, where ffmpeg puts it.
        let at = usize::from(lines.first().is_some_and(|l| l.trim() == "#EXTM3U"));
        lines.insert(at, format!("{PLAYLIST_TYPE}VOD"));
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.push(END_LIST.to_owned());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROWING: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXTINF:4.000000,\nsegment_000.ts\n#EXTINF:4.000000,\nsegment_001.ts\n";

    #[test]
    fn names_the_segments_in_order() {
        assert_eq!(segment_uris(GROWING), ["segment_000.ts", "segment_001.ts"]);
        assert!(segment_uris("#EXTM3U\n#EXT-X-VERSION:6\n").is_empty());
        assert!(segment_uris("").is_empty());
    }

    #[test]
    fn a_growing_playlist_is_not_complete_until_it_ends() {
        assert!(!is_complete(GROWING));
        assert!(is_complete(&format!("{GROWING}{END_LIST}\n")));
    }

    #[test]
    fn finalizing_makes_a_vod_that_ends_and_keeps_every_segment() {
        let last = finalized(&format!(
            "{GROWING}#EXTINF:1.5,\nsegment_002.ts\n{END_LIST}\n"
        ));
        assert!(last.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{last}");
        assert!(!last.contains("EVENT"), "{last}");
        assert!(last.ends_with("segment_002.ts\n#EXT-X-ENDLIST\n"), "{last}");
        assert_eq!(last.matches(END_LIST).count(), 1);
        assert_eq!(segment_uris(&last).len(), 3);
        assert!(last.contains("#EXTINF:1.5,\n"));
        // Already final: unchanged.
        assert_eq!(finalized(&last), last);
        // Untyped (as ffmpeg writes without -hls_playlist_type): typed VOD.
        let untyped = finalized("#EXTM3U\n#EXTINF:4.0,\na.ts\n");
        assert_eq!(
            untyped,
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\na.ts\n#EXT-X-ENDLIST\n"
        );
    }
}

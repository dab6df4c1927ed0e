//! Generated request bodies.

use bytes::Bytes;
use futures::Stream;
use sha2::Digest;

const CHUNK: usize = 64 * 1024;

/// Deterministic bytes, different per `seed`, without holding them: the
/// same `(len, seed)` always yields the same content.
pub fn patterned(len: u64, seed: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64) as usize;
        left -= n as u64;
        let mut chunk = Vec::with_capacity(n);
        while chunk.len() < n {
            // xorshift64: cheap, and never all zeros.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let word = state.to_le_bytes();
            chunk.extend_from_slice(&word[..(n - chunk.len()).min(8)]);
        }
        Some(Ok(Bytes::from(chunk)))
    }))
}

/// A [`held`] body's controls.
pub struct Hold {
    /// Fires when the body has yielded its first `hold_after` bytes and
    /// waits.
    pub reached: tokio::sync::oneshot::Receiver<()>,
    /// Send (or drop) to let the rest of the body flow.
    pub release: tokio::sync::oneshot::Sender<()>,
}

/// [`patterned`] content that stops after `hold_after` bytes (rounded up
/// to a whole chunk) until released: the test acts while the server is
/// mid-body, at a known point rather than after a guessed sleep.
pub fn held(
    len: u64,
    seed: u64,
    hold_after: u64,
) -> (impl Stream<Item = Result<Bytes, std::io::Error>>, Hold) {
    use futures::StreamExt;
    let (reached_tx, reached) = tokio::sync::oneshot::channel();
    let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
    let inner = Box::pin(patterned(len, seed));
    let stream = futures::stream::unfold(
        (inner, 0u64, Some((reached_tx, release_rx))),
        move |(mut inner, sent, mut gate)| async move {
            if sent >= hold_after
                && let Some((reached_tx, release_rx)) = gate.take()
            {
                let _ = reached_tx.send(());
                let _ = release_rx.await;
            }
            let chunk = inner.next().await?;
            let sent = sent + chunk.as_ref().map_or(0, |c| c.len() as u64);
            Some((chunk, (inner, sent, gate)))
        },
    );
    (stream, Hold { reached, release })
}

/// The whole of [`patterned`], for small bodies.
pub async fn patterned_vec(len: u64, seed: u64) -> Vec<u8> {
    use futures::StreamExt;
    let mut out = Vec::with_capacity(len as usize);
    let mut stream = std::pin::pin!(patterned(len, seed));
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("generated"));
    }
    out
}

/// SHA-256 (hex) of [`patterned`] content.
pub async fn patterned_digest(len: u64, seed: u64) -> String {
    use futures::StreamExt;
    let mut hasher = sha2::Sha256::new();
    let mut stream = std::pin::pin!(patterned(len, seed));
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.expect("generated"));
    }
    crate::s3::hex(&hasher.finalize())
}

/// One part of a multipart form.
pub struct FormPart<'a> {
    /// Field name.
    pub name: &'a str,
    /// File name, for file fields.
    pub filename: Option<&'a str>,
    /// The part's Content-Type, if any.
    pub content_type: Option<&'a str>,
    /// The part's content.
    pub content: &'a [u8],
}

/// The boundary [`form`] uses.
pub const BOUNDARY: &str = "xtream-test-boundary-7f3a";

/// A `multipart/form-data` body and its Content-Type.
pub fn form(parts: &[FormPart<'_>]) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(part_head(part).as_bytes());
        body.extend_from_slice(part.content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(form_tail().as_bytes());
    (body, form_content_type())
}

/// The headers of one part, from its opening delimiter to the blank line.
pub fn part_head(part: &FormPart<'_>) -> String {
    let mut head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"",
        part.name
    );
    if let Some(filename) = part.filename {
        head.push_str(&format!("; filename=\"{filename}\""));
    }
    head.push_str("\r\n");
    if let Some(content_type) = part.content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The closing delimiter.
pub fn form_tail() -> String {
    format!("--{BOUNDARY}--\r\n")
}

/// `multipart/form-data; boundary=...`.
pub fn form_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

"""Schemathesis hooks for Xtream's API contract test (tests/tests/api_contract.rs).

They teach the generator what api/openapi.json can only say in words, so
that data the document calls valid really is valid:

- a raw upload is any non-empty bytes with a video type (the API stores
  them; the worker judges the content later), and schemathesis has no
  serializer of its own for `video/*` bodies;
- a listing cursor (format `xtream-cursor`) is opaque and only the server
  makes one: base64url, unpadded, of `p` and a positive position, as
  `xtream_core::metadata::encode_cursor` writes it;
- a title search (format `xtream-search`) is blank, or has a word: a
  letter or a digit in any script, as Rust's `char::is_alphanumeric` reads
  them (JSON Schema's regular expressions cannot say "a letter in any
  script" the same way in every engine).
"""

import base64

import schemathesis
from hypothesis import strategies as st

for media_type in ("video/mp4", "video/webm", "video/quicktime", "video/x-matroska"):
    schemathesis.openapi.media_type(media_type, st.binary(min_size=1, max_size=4096))


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


schemathesis.openapi.format("xtream-cursor", st.integers(min_value=1, max_value=2**63 - 1).map(_cursor))


_letters_and_digits = st.characters(categories=("Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No"))
_search = st.one_of(
    st.text(alphabet=" \t", max_size=3),
    st.builds(
        lambda before, word, after: before + word + after,
        st.text(max_size=90),
        st.text(alphabet=_letters_and_digits, min_size=1, max_size=20),
        st.text(max_size=90),
    ),
)
schemathesis.openapi.format("xtream-search", _search)

//! Settings the platform reads from its environment (Spin variables in the
//! functions), parsed and checked here so a bad value fails loudly and early.

/// How to reach the object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// Base URL of the S3 API, e.g. `http://minio:9000` (path-style buckets).
    pub endpoint: String,
    /// Bucket holding every object of the platform.
    pub bucket: String,
    /// Region used in request signatures.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The setting's name, as the operator spells it.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setting {} {}", self.name, self.problem)
    }
}

impl std::error::Error for InvalidSetting {}

impl StorageSettings {
    /// Checks the values an operator gave.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, InvalidSetting> {
        let endpoint = endpoint.trim().trim_end_matches('/');
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(InvalidSetting {
                name: "s3_endpoint",
                problem: format!("must be an http:// or https:// URL, not {endpoint:?}"),
            });
        }
        // Requests are signed for path-style URLs under the server's root;
        // a path here would be signed wrong by every S3 call, and Spin's
        // allowed_outbound_hosts (which templates this value) takes a scheme,
        // host and port only.
        let authority = endpoint.split_once("://").map_or("", |(_, rest)| rest);
        if authority.contains(['/', '?', '#']) || authority.is_empty() {
            return Err(InvalidSetting {
                name: "s3_endpoint",
                problem: format!(
                    "must be the S3 server's base URL, scheme, host and port only \
                     (like http://minio:9000; the bucket is s3_bucket), not {endpoint:?}"
                ),
            });
        }
        let required = |name, value: &str| {
            if value.trim().is_empty() {
                Err(InvalidSetting {
                    name,
                    problem: "must not be empty".into(),
                })
            } else {
                Ok(value.trim().to_owned())
            }
        };
        Ok(Self {
            endpoint: endpoint.to_owned(),
            bucket: required("s3_bucket", bucket)?,
            region: required("s3_region", region)?,
            access_key: required("s3_access_key", access_key)?,
            secret_key: required("s3_secret_key", secret_key)?,
        })
    }
}

/// The S3 base URL clients are given in presigned part URLs: `public`
/// (`s3_public_endpoint`) when set, else the internal `endpoint`. Only
/// checked here; the platform never calls it.
pub fn public_endpoint(public: &str, endpoint: &str) -> Result<String, InvalidSetting> {
    let public = public.trim().trim_end_matches('/');
    if public.is_empty() {
        return Ok(endpoint.trim().trim_end_matches('/').to_owned());
    }
    if !(public.starts_with("http://") || public.starts_with("https://")) {
        return Err(InvalidSetting {
            name: "s3_public_endpoint",
            problem: format!("must be an http:// or https:// URL, not {public:?}"),
        });
    }
    Ok(public.to_owned())
}

/// S3 refuses multipart uploads of more parts than this.
const MAX_PARTS: u64 = 10_000;
/// Parts (but the last) must be at least 5 MiB; 8 MiB keeps requests few
/// while holding little in memory.
const MIN_PART_SIZE: u64 = 8 * 1024 * 1024;

/// How large an upload may be, and how it is cut into S3 parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// The largest original accepted, in bytes.
    pub max_bytes: u64,
}

impl UploadLimits {
    /// Parses `max_upload_bytes`: a whole number of bytes, optionally with a
    /// binary suffix (`KiB`, `MiB`, `GiB`, `TiB`).
    pub fn parse(max_upload_bytes: &str) -> Result<Self, InvalidSetting> {
        let text = max_upload_bytes.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => text.split_at(at),
            None => (text, ""),
        };
        let multiplier: u64 = match unit.trim() {
            "" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => 0,
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .filter(|&n| n > 0)
            .map(|max_bytes| Self { max_bytes })
            .ok_or_else(|| InvalidSetting {
                name: "max_upload_bytes",
                problem: format!("must be a positive size like 1073741824 or 10GiB, not {text:?}"),
            })
    }

    /// The part size to cut uploads into: large enough that the largest
    /// allowed upload fits S3's part count, never below [`MIN_PART_SIZE`],
    /// and a whole number of MiB.
    pub fn part_size(&self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        let needed = self.max_bytes.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        needed.max(MIN_PART_SIZE)
    }
}

/// The largest `max_concurrent_uploads` accepted. Taking a slot looks at
/// every slot number up to the limit, so the limit bounds the statement's
/// cost too; a platform receiving more streamed uploads at once than this
/// should send large files as resumable uploads (straight to S3) instead.
pub const MAX_CONCURRENT_UPLOADS_CEILING: u32 = 10_000;

/// Parses `max_concurrent_uploads`: how many streamed uploads (`POST
/// /api/videos`, `POST /upload`) the platform receives at once, across all
/// its instances. Each holds up to one S3 part in memory while it streams,
/// so this bounds the memory uploads take; one more is answered 503 with
/// `Retry-After`.
pub fn parse_max_concurrent_uploads(text: &str) -> Result<u32, InvalidSetting> {
    let text = text.trim();
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_CONCURRENT_UPLOADS_CEILING).contains(n))
        .ok_or_else(|| InvalidSetting {
            name: "max_concurrent_uploads",
            problem: format!(
                "must be a whole number of uploads from 1 to {MAX_CONCURRENT_UPLOADS_CEILING} \
                 (streamed uploads received at once, across every instance), like 64, not {text:?}"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_concurrency_is_a_bounded_positive_count() {
        assert_eq!(parse_max_concurrent_uploads("64"), Ok(64));
        assert_eq!(parse_max_concurrent_uploads(" 2 "), Ok(2));
        assert_eq!(parse_max_concurrent_uploads("10000"), Ok(10_000));
        for bad in ["", "0", "-1", "1.5", "lots", "10001", "99999999999"] {
            let refused = parse_max_concurrent_uploads(bad).unwrap_err();
            assert_eq!(refused.name, "max_concurrent_uploads", "{bad}");
            assert!(refused.problem.contains("from 1 to 10000"), "{refused}");
            assert!(
                refused.problem.contains(&format!("{:?}", bad.trim())),
                "{refused}"
            );
        }
    }

    #[test]
    fn parses_sizes_with_units() {
        assert_eq!(UploadLimits::parse("1024").unwrap().max_bytes, 1024);
        assert_eq!(UploadLimits::parse("10GiB").unwrap().max_bytes, 10 << 30);
        assert_eq!(UploadLimits::parse(" 5 MiB ").unwrap().max_bytes, 5 << 20);
        for bad in ["", "0", "-1", "10GB", "lots", "99999999999999999999TiB"] {
            assert!(UploadLimits::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn part_size_fits_the_largest_upload_in_s3s_part_count() {
        let small = UploadLimits { max_bytes: 1 << 30 };
        assert_eq!(small.part_size(), MIN_PART_SIZE);
        let huge = UploadLimits { max_bytes: 1 << 40 };
        assert!(huge.part_size() * MAX_PARTS >= huge.max_bytes);
        assert_eq!(huge.part_size() % (1024 * 1024), 0);
    }

    #[test]
    fn the_public_endpoint_defaults_to_the_internal_one() {
        assert_eq!(
            public_endpoint("", "http://garage:3900/").unwrap(),
            "http://garage:3900"
        );
        assert_eq!(
            public_endpoint("https://s3.example.com/", "http://garage:3900").unwrap(),
            "https://s3.example.com"
        );
        assert_eq!(
            public_endpoint("s3.example.com", "http://x")
                .unwrap_err()
                .name,
            "s3_public_endpoint"
        );
    }

    #[test]
    fn the_storage_endpoint_has_no_path() {
        for bad in [
            "http://minio:9000/xtream",
            "https://s3.example.com/prefix/",
            "http://minio:9000?x=1",
        ] {
            let refused = StorageSettings::new(bad, "b", "r", "a", "s").unwrap_err();
            assert_eq!(refused.name, "s3_endpoint", "{bad}");
            assert!(refused.problem.contains("base URL"), "{refused}");
        }
    }

    #[test]
    fn storage_settings_refuse_bad_endpoints_and_blanks() {
        assert!(StorageSettings::new("http://127.0.0.1:3900/", "b", "r", "a", "s").is_ok());
        assert_eq!(
            StorageSettings::new("127.0.0.1:3900", "b", "r", "a", "s")
                .unwrap_err()
                .name,
            "s3_endpoint"
        );
        assert_eq!(
            StorageSettings::new("http://x", "b", "r", " ", "s")
                .unwrap_err()
                .name,
            "s3_access_key"
        );
        assert_eq!(
            StorageSettings::new("http://x/", "b", "r", "a", "s")
                .unwrap()
                .endpoint,
            "http://x"
        );
    }
}

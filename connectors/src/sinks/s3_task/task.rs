//! One S3 export task: the JSON of Greengrass' `S3ExportTaskDefinition`, as the SDK writes it
//! (`Util.validate_and_serialize_model_to_json`):
//!
//! ```json
//! {"inputUrl": "file:/data/a.csv", "bucket": "my-bucket", "key": "k/!{timestamp:yyyy}/a.csv",
//!  "userMetadata": {"a": "b"}}
//! ```
//! Checked with the SDK's own rules (bucket and key patterns, Appendix A of the spec), so a task
//! an SDK would refuse is refused here too, with a message naming the field. Unknown keys are
//! ignored, as the SDKs ignore them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The task as written into the stream; echoed in its status messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub input_url: String,
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_metadata: Option<BTreeMap<String, String>>,
}

/// Reads and checks a task message's payload; `Err` says what is wrong, for a Failure status.
pub fn parse(payload: &[u8]) -> Result<TaskDefinition, String> {
    let task: TaskDefinition = serde_json::from_slice(payload)
        .map_err(|e| format!("the message is not an S3ExportTaskDefinition (JSON): {e}"))?;
    check_bucket(&task.bucket)?;
    check_key(&task.key)?;
    for name in task.user_metadata.iter().flat_map(BTreeMap::keys) {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!(
                "userMetadata key {name:?} cannot be an S3 metadata header name"
            ));
        }
    }
    for value in task.user_metadata.iter().flat_map(BTreeMap::values) {
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(format!(
                "userMetadata value {value:?} must be printable ASCII (it is sent as a header)"
            ));
        }
    }
    Ok(task)
}

/// 3–63 characters: dot-separated labels of lower-case letters, digits and inner hyphens, and
/// not an IP address.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ip_like = bucket
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if !(3..=63).contains(&bucket.len()) || !bucket.split('.').all(label_ok) || ip_like {
        return Err(format!("bucket {bucket:?} is not a valid S3 bucket name"));
    }
    Ok(())
}

/// 1–1024 characters; none of space and `\{}%`[]"'><~#^?|` outside `!{name:pattern}`
/// placeholders (name: letters; pattern: letters and `/`).
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 1024 {
        return Err("key must be 1 to 1024 characters".into());
    }
    let mut rest = key;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("!{") {
            let end = after.find('}').ok_or_else(|| unclosed(key))?;
            let (name, pattern) = after[..end].split_once(':').ok_or_else(|| unclosed(key))?;
            let letters = |s: &str, extra: char| {
                !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic() || c == extra)
            };
            if !letters(name, 'a') || !letters(pattern, '/') {
                return Err(unclosed(key));
            }
            rest = &after[end + 1..];
            continue;
        }
        if " \\{}%`[]\"'><~#^?|".contains(c) {
            return Err(format!(
                "key {key:?} holds {c:?}, which S3 keys here must not"
            ));
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(())
}

fn unclosed(key: &str) -> String {
    format!("key {key:?} holds a placeholder that is not !{{name:pattern}}")
}

/// RFC 9110's token characters, which a header name consists of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The local path of a `file:` URL (`file:/a`, `file:///a`, `file://localhost/a`; `%XX`
/// decoded), which must be absolute and, when `input_dirs` are given, lie under one of them
/// (compared after resolving links, so `..` and symlinks cannot lead out).
pub fn input_path(url: &str, input_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let rest = url
        .strip_prefix("file:")
        .ok_or_else(|| format!("inputUrl {url:?} is not a file: URL"))?;
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (host, path) = authority_and_path.split_at(
                authority_and_path
                    .find('/')
                    .unwrap_or(authority_and_path.len()),
            );
            if !host.is_empty() && host != "localhost" {
                return Err(format!("inputUrl {url:?} names another host"));
            }
            path
        }
        None => rest,
    };
    let path = PathBuf::from(percent_decode(path).map_err(|e| format!("inputUrl {url:?}: {e}"))?);
    if !path.is_absolute() {
        return Err(format!("inputUrl {url:?} is not an absolute path"));
    }
    if input_dirs.is_empty() {
        return Ok(path);
    }
    let real = path
        .canonicalize()
        .map_err(|e| format!("input file {}: {e}", path.display()))?;
    let allowed = input_dirs
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .any(|d| real.starts_with(d));
    if !allowed {
        return Err(format!(
            "input file {} is outside the export's input_dirs",
            path.display()
        ));
    }
    Ok(real)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the path is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_task_as_the_sdk_writes_it_is_read_with_its_metadata() {
        let t = parse(br#"{"inputUrl": "file:/tmp/a.csv", "bucket": "my-bucket", "key": "k/!{timestamp:yyyy}/a.csv", "userMetadata": {"a": "b"}}"#).unwrap();
        assert_eq!(t.bucket, "my-bucket");
        assert_eq!(t.user_metadata.unwrap()["a"], "b");
    }

    #[test]
    fn buckets_and_keys_the_sdk_would_refuse_are_refused_naming_the_field() {
        for bucket in ["ab", "My-bucket", "-abc", "192.168.1.1", "a..b"] {
            let json = format!(r#"{{"inputUrl":"file:/a","bucket":"{bucket}","key":"k"}}"#);
            assert!(
                parse(json.as_bytes()).unwrap_err().contains("bucket"),
                "{bucket}"
            );
        }
        for key in [
            "",
            "a b",
            "a#b",
            "!{timestamp}",
            "!{timestamp:yy-MM}",
            "a{b",
        ] {
            let json = format!(r#"{{"inputUrl":"file:/a","bucket":"bkt","key":"{key}"}}"#);
            assert!(parse(json.as_bytes()).unwrap_err().contains("key"), "{key}");
        }
        assert!(parse(b"not json")
            .unwrap_err()
            .contains("S3ExportTaskDefinition"));
    }

    #[test]
    fn file_urls_of_every_spelling_become_absolute_paths() {
        for url in [
            "file:/tmp/a%20b.csv",
            "file:///tmp/a%20b.csv",
            "file://localhost/tmp/a%20b.csv",
        ] {
            assert_eq!(
                input_path(url, &[]).unwrap(),
                Path::new("/tmp/a b.csv"),
                "{url}"
            );
        }
        assert!(input_path("http://x/a", &[]).is_err());
        assert!(input_path("file://other/a", &[]).is_err());
        assert!(input_path("file:a.csv", &[]).is_err());
    }

    #[test]
    fn input_dirs_keep_tasks_inside_them_even_through_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("a"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        let dirs = [inside.clone()];
        let ok = input_path(&format!("file:{}/a", inside.display()), &dirs).unwrap();
        assert!(ok.starts_with(inside.canonicalize().unwrap()));
        let escape = format!("file:{}/../secret", inside.display());
        assert!(input_path(&escape, &dirs).unwrap_err().contains("outside"));
    }
}

//! The SHA-256 of a release asset from GitHub's release API, for projects that publish no
//! checksum file (flanneld).
//!
//! `GET https://api.github.com/repos/OWNER/REPO/releases/tags/TAG` lists the release's assets,
//! each with its `name` and, for assets GitHub hashed at upload (it has done so since June
//! 2025), a `digest` of `"sha256:<hex>"`. The answer comes over TLS from GitHub, the origin of
//! the asset itself: the same trust as a checksum file a project uploads beside its binaries,
//! and never more than that (it is not a signature). A mirror serves the same answer at the
//! same path without the host (`repos/flannel-io/flannel/releases/tags/v0.27.4`).
//!
//! Must not: do I/O (the answer is read like any checksum file, by download.rs).

use serde::Deserialize;

use super::FetchError;
use super::mirror::is_sha256_hex;

/// The part of a release answer kubesup reads; GitHub sends much more (uploader, URLs, sizes).
#[derive(Debug, Deserialize)]
struct Release {
    assets: Vec<Asset>,
}

#[derive(Debug, Deserialize)]
struct Asset {
    name: String,
    /// `null` for assets uploaded before GitHub computed digests.
    #[serde(default)]
    digest: Option<String>,
}

/// The SHA-256 (lowercase hex) that the release answer `text`, read from `url`, shows for the
/// asset `asset`; `artifact` names the download for the error that says to pin one.
pub(crate) fn asset_sha256(
    text: &str,
    url: &str,
    asset: &str,
    artifact: &str,
) -> Result<String, FetchError> {
    let release: Release =
        serde_json::from_str(text).map_err(|source| FetchError::ReleaseAnswer {
            url: url.to_string(),
            source,
        })?;
    let found = release
        .assets
        .iter()
        .find(|a| a.name == asset)
        .ok_or_else(|| FetchError::ReleaseNoAsset {
            url: url.to_string(),
            asset: asset.to_string(),
        })?;
    found
        .digest
        .as_deref()
        .and_then(|d| d.strip_prefix("sha256:"))
        .filter(|hex| is_sha256_hex(hex))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| FetchError::NoReleaseDigest {
            artifact: artifact.to_string(),
            url: url.to_string(),
            asset: asset.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://api.github.com/repos/flannel-io/flannel/releases/tags/v0.27.4";
    const HEX: &str = "fc1233aac3ad2707d14c9ae42016b5402753f755f0d07cc5c41dc4190e95d299";

    /// The shape of a real answer (`GET /repos/flannel-io/flannel/releases/tags/v0.27.4`,
    /// trimmed to three assets): an asset with a digest, one from before GitHub computed
    /// digests (`null`), and one with another algorithm.
    fn sample() -> String {
        format!(
            r#"{{
  "url": "https://api.github.com/repos/flannel-io/flannel/releases/250000000",
  "html_url": "https://github.com/flannel-io/flannel/releases/tag/v0.27.4",
  "id": 250000000,
  "tag_name": "v0.27.4",
  "target_commitish": "master",
  "name": "v0.27.4",
  "draft": false,
  "prerelease": false,
  "created_at": "2025-10-01T09:00:00Z",
  "published_at": "2025-10-01T10:00:00Z",
  "assets": [
    {{
      "url": "https://api.github.com/repos/flannel-io/flannel/releases/assets/300000001",
      "id": 300000001,
      "name": "flanneld-amd64",
      "label": "",
      "uploader": {{"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}},
      "content_type": "application/octet-stream",
      "state": "uploaded",
      "size": 37000000,
      "digest": "sha256:{}",
      "download_count": 1000,
      "created_at": "2025-10-01T10:05:00Z",
      "updated_at": "2025-10-01T10:05:10Z",
      "browser_download_url": "https://github.com/flannel-io/flannel/releases/download/v0.27.4/flanneld-amd64"
    }},
    {{
      "name": "flanneld-arm64",
      "size": 35000000,
      "digest": null,
      "browser_download_url": "https://github.com/flannel-io/flannel/releases/download/v0.27.4/flanneld-arm64"
    }},
    {{
      "name": "flanneld-s390x",
      "digest": "sha512:abcd"
    }}
  ],
  "body": "What changed: ..."
}}"#,
            HEX.to_uppercase()
        )
    }

    #[test]
    fn the_digest_of_the_named_asset_is_its_sha256() {
        let got = asset_sha256(&sample(), URL, "flanneld-amd64", "flanneld").unwrap();
        assert_eq!(got, HEX);
    }

    #[test]
    fn no_digest_another_algorithm_or_no_asset_is_an_error_saying_what_to_do() {
        for asset in ["flanneld-arm64", "flanneld-s390x"] {
            let err = asset_sha256(&sample(), URL, asset, "flanneld").unwrap_err();
            assert!(
                matches!(&err, FetchError::NoReleaseDigest { asset: a, .. } if a == asset),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("fetch.checksums.flanneld"), "{msg}");
            assert!(msg.contains(asset), "{msg}");
        }
        let err = asset_sha256(&sample(), URL, "flanneld-mips", "flanneld").unwrap_err();
        assert!(matches!(err, FetchError::ReleaseNoAsset { .. }), "{err:?}");
        assert!(err.to_string().contains("flanneld-mips"));
    }

    #[test]
    fn an_answer_that_is_not_a_release_is_an_error() {
        for text in ["<html>rate limited</html>", r#"{"message": "Not Found"}"#] {
            let err = asset_sha256(text, URL, "flanneld-amd64", "flanneld").unwrap_err();
            assert!(matches!(err, FetchError::ReleaseAnswer { .. }), "{err:?}");
        }
    }
}

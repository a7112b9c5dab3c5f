//! The web app, embedded in the binary (`crates/strata-server/web/`, via rust-embed) and served
//! at `GET /` with its files under `/app/<version>/…`. `<version>` is a hash of every embedded
//! file, so a file's URL changes whenever any file does and the files can be cached for a year
//! (`immutable`); only `index.html`, which names the version, is revalidated on each load.
//! Files are gzipped once at first use; nothing is fetched from elsewhere at run time.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct Embedded;

/// Where `index.html` names the versioned asset prefix.
const PREFIX_PLACEHOLDER: &str = "{{ASSETS}}";
/// What the page may load: only this origin. Styles may be inline because CodeMirror injects
/// its theme as `<style>` elements; scripts may not.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    plain: Bytes,
    /// Present when gzip makes the file smaller.
    gzip: Option<Bytes>,
    content_type: &'static str,
}

struct WebApp {
    version: String,
    index: Asset,
    files: HashMap<String, Asset>,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn gzipped(data: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).ok()?;
    let out = encoder.finish().ok()?;
    (out.len() < data.len()).then(|| Bytes::from(out))
}

fn asset(path: &str, data: Vec<u8>) -> Asset {
    let compressible = !path.ends_with(".png");
    Asset {
        gzip: if compressible { gzipped(&data) } else { None },
        plain: Bytes::from(data),
        content_type: content_type(path),
    }
}

fn load() -> WebApp {
    let mut names: Vec<String> = Embedded::iter().map(|n| n.into_owned()).collect();
    names.sort();
    let mut hash = Sha256::new();
    let mut raw = Vec::with_capacity(names.len());
    for name in names {
        let Some(file) = Embedded::get(&name) else {
            continue;
        };
        hash.update(name.as_bytes());
        hash.update(file.metadata.sha256_hash());
        raw.push((name, file.data.into_owned()));
    }
    let version = hex::encode(&hash.finalize()[..6]);
    let prefix = format!("/app/{version}");
    let mut index = None;
    let mut files = HashMap::new();
    for (name, data) in raw {
        if name == "index.html" {
            let html = String::from_utf8_lossy(&data).replace(PREFIX_PLACEHOLDER, &prefix);
            index = Some(asset(&name, html.into_bytes()));
        } else {
            files.insert(name.clone(), asset(&name, data));
        }
    }
    let index = index.unwrap_or_else(|| asset("index.html", b"web app missing".to_vec()));
    tracing::debug!(%version, files = files.len(), "web app loaded");
    WebApp {
        version,
        index,
        files,
    }
}

fn app() -> &'static WebApp {
    static APP: OnceLock<WebApp> = OnceLock::new();
    APP.get_or_init(load)
}

fn respond(asset: &Asset, request: &HeaderMap, cache: &'static str) -> Response {
    let accepts_gzip = request
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let body = match (&asset.gzip, accepts_gzip) {
        (Some(gzip), true) => {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip.clone()
        }
        _ => asset.plain.clone(),
    };
    (StatusCode::OK, headers, body).into_response()
}

/// `GET /`: the app's page, revalidated on every load so a new binary's assets are picked up.
pub async fn index(request: HeaderMap) -> Response {
    let mut response = respond(&app().index, &request, "no-cache");
    let headers = response.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /app/{version}/{*path}`: an embedded file. With the current version it is cached for
/// a year; a page of an older binary asking with its old version gets today's file uncached.
pub async fn file(
    Path((version, path)): Path<(String, String)>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let app = app();
    let asset = app
        .files
        .get(&path)
        .ok_or_else(|| ApiError::not_found(format!("no such file in the web app: {path}")))?;
    let cache = if version == app.version {
        IMMUTABLE
    } else {
        "no-cache"
    };
    Ok(respond(asset, &request, cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_versioned_prefix_and_every_file_is_embedded() {
        let app = app();
        let html = String::from_utf8_lossy(&app.index.plain);
        assert!(!html.contains(PREFIX_PLACEHOLDER), "{html}");
        assert!(html.contains(&format!("/app/{}/", app.version)), "{html}");
        for needed in ["js/main.js", "vendor/vendor.js", "app.css"] {
            assert!(app.files.contains_key(needed), "{needed} is not embedded");
        }
        assert!(app.files["vendor/vendor.js"].gzip.is_some());
    }
}

//! Request bodies with explicit size limits and errors that name the problem, always as
//! `{"error": ...}` rather than axum's plain-text rejections. Bodies may be sent with
//! `Content-Encoding: gzip` or `zstd`; the *decoded* size is held to the same limit as a plain
//! body, so a small compressed body cannot expand into unbounded memory.

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// Longest pause between two pieces of a request body. A client that stops sending mid-body
/// holds a connection and a task for as long as it likes otherwise (the header-read timeout
/// ends when the head is complete). 30 s is far beyond any live client's gap between packets.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest zstd window a body may ask for: 2^24 = 16 MiB, the default write body limit. The
/// decoder allocates the window a frame declares (up to 2^27 = 128 MiB by default) before
/// producing a byte; `zstd` levels 1-19 use at most 2^23 (only `--long`/`--ultra` need more).
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The encodings a request body may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The request's `Content-Encoding`: absent or `identity` is a plain body; `gzip` (or its
    /// old alias `x-gzip`) and `zstd` are decoded; anything else, or a stack of two encodings,
    /// is refused with 415 rather than parsed as if it were plain.
    fn of(headers: &HeaderMap) -> Result<Encoding, ApiError> {
        let mut codings = Vec::new();
        for value in headers.get_all(CONTENT_ENCODING) {
            let text = value.to_str().map_err(|_| unsupported("(not ASCII)"))?;
            codings.extend(
                text.split(',')
                    .map(|coding| coding.trim().to_ascii_lowercase())
                    .filter(|coding| !coding.is_empty() && coding != "identity"),
            );
        }
        match codings.as_slice() {
            [] => Ok(Encoding::Identity),
            [one] => match one.as_str() {
                "gzip" | "x-gzip" => Ok(Encoding::Gzip),
                "zstd" => Ok(Encoding::Zstd),
                other => Err(unsupported(other)),
            },
            several => Err(unsupported(&several.join(", "))),
        }
    }
}

fn unsupported(coding: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Content-Encoding {coding} is not supported; send the body plain (identity), \
             gzip or zstd, with one encoding at most"
        ),
    )
}

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("{what} is larger than the limit of {limit} bytes"),
    )
}

/// Reads the whole body, refusing more than `limit` bytes with 413, decoding gzip and zstd
/// bodies (the decoded size is held to `limit` too) and refusing other encodings with 415.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = Encoding::of(req.headers())?;
    let raw = collect(req.into_body(), limit, encoding).await?;
    if encoding == Encoding::Identity {
        return Ok(raw);
    }
    // Decoding 16 MiB takes tens of milliseconds of CPU: off the async workers.
    tokio::task::spawn_blocking(move || decode(encoding, &raw, limit))
        .await
        .map_err(|err| ApiError::internal(format!("decoding the request body failed: {err}")))?
}

/// Collects the body's frames up to `limit` bytes, with [`BODY_IDLE_TIMEOUT`] between frames.
async fn collect(mut body: Body, limit: usize, encoding: Encoding) -> Result<Bytes, ApiError> {
    let mut parts: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                return Err(ApiError::bad_request(format!(
                    "could not read request body: {err}"
                )))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body stalled: nothing arrived for {} s",
                        BODY_IDLE_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we read
        };
        total = total.saturating_add(data.len());
        if total > limit {
            let what = match encoding {
                Encoding::Identity => "request body".to_string(),
                other => format!("{}-encoded request body", other.name()),
            };
            return Err(too_large(limit, &what));
        }
        parts.push(data);
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.swap_remove(0),
        _ => Bytes::from(parts.concat()),
    })
}

/// Decodes a gzip or zstd body, reading at most `limit + 1` decoded bytes: one byte over the
/// limit proves the body too large without decoding the rest of a decompression bomb.
fn decode(encoding: Encoding, raw: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let invalid = |err: std::io::Error| {
        ApiError::bad_request(format!(
            "request body is not valid {}: {err}",
            encoding.name()
        ))
    };
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(Bytes::copy_from_slice(raw)),
        // Multi-member, like `gzip -c a b` concatenated, as gunzip reads it.
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Encoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(raw).map_err(invalid)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(invalid)?;
            Box::new(decoder)
        }
    };
    let mut decoded = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(invalid)?;
    if decoded.len() > limit {
        return Err(too_large(
            limit,
            &format!("decompressed request body ({})", encoding.name()),
        ));
    }
    Ok(Bytes::from(decoded))
}

/// A JSON body for the admin and schema endpoints: limited to `Limits::admin_body_bytes`,
/// unknown keys rejected by the target type's `deny_unknown_fields`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_limited(req, state.limits().admin_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}

/// Query parameters deserialized into `T`; a malformed query string is a 400
/// `{"error": ...}` naming the parameter, like every other error, not axum's plain text.
pub struct JsonQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for JsonQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| JsonQuery(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn request(encoding: Option<&str>, body: Vec<u8>) -> Request {
        let mut builder = Request::builder().method("POST").uri("/api/v1/write");
        if let Some(encoding) = encoding {
            builder = builder.header(CONTENT_ENCODING, encoding);
        }
        builder.body(Body::from(body)).unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[tokio::test]
    async fn plain_gzip_and_zstd_bodies_read_the_same() {
        let text = br#"{"metrictype":"m","v":1}"#.repeat(100);
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        for (encoding, body) in [
            (None, text.clone()),
            (Some("identity"), text.clone()),
            (Some("gzip"), gzip(&text)),
            (Some("GZip"), gzip(&text)),
            (Some("x-gzip"), gzip(&text)),
            (Some("zstd"), zstd.clone()),
            (Some("identity, zstd"), zstd),
        ] {
            let read = read_limited(request(encoding, body), 1 << 20).await;
            assert_eq!(read.unwrap(), text, "{encoding:?}");
        }
    }

    #[tokio::test]
    async fn a_decompression_bomb_stops_at_the_limit_with_413() {
        // 64 MiB of zeros compress to about 64 KiB: far under the limit on the wire.
        let zeros = vec![0u8; 64 << 20];
        for (encoding, body) in [
            ("gzip", gzip(&zeros)),
            ("zstd", zstd::encode_all(&zeros[..], 3).unwrap()),
        ] {
            assert!(body.len() < 1 << 20, "{encoding}: {} bytes", body.len());
            let err = read_limited(request(Some(encoding), body), 1 << 20)
                .await
                .unwrap_err();
            assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", err.message);
            assert!(err.message.contains("decompressed"), "{}", err.message);
        }
    }

    #[tokio::test]
    async fn other_and_stacked_encodings_get_415_and_corrupt_bodies_400() {
        for encoding in ["br", "deflate", "gzip, zstd", "compress"] {
            let err = read_limited(request(Some(encoding), b"{}".to_vec()), 1024)
                .await
                .unwrap_err();
            assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{encoding}");
            assert!(err.message.contains("gzip or zstd"), "{}", err.message);
        }
        for encoding in ["gzip", "zstd"] {
            let err = read_limited(request(Some(encoding), b"{\"a\":1}".to_vec()), 1024)
                .await
                .unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{}", err.message);
            assert!(
                err.message.contains(&format!("not valid {encoding}")),
                "{}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn a_compressed_body_over_the_limit_on_the_wire_is_refused_before_decoding() {
        let err = read_limited(request(Some("gzip"), vec![7u8; 2048]), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(err.message.contains("gzip-encoded"), "{}", err.message);
    }
}

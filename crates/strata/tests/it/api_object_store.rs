//! Issue 5: the cold tier on a real S3-compatible object store (moto's S3 server, from PyPI,
//! installed by `.ci/run`). The same compactor and federated reads as on a local directory,
//! through `--cold-url s3://bucket/prefix` and the usual `AWS_*` variables; a store that cannot
//! be listed stops the server at startup with the reason.
//!
//! moto_server missing skips these tests with a message, unless `STRATA_REQUIRE_CLIENTS=1`
//! (CI), where it fails them.

use crate::cloud;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::cloud::{available, free_port, probe, Peer};

const BUCKET: &str = "strata-cold-test";

/// A moto S3 server on an ephemeral port, stopped on drop.
struct S3Server {
    _peer: Peer,
    endpoint: String,
}

impl S3Server {
    /// `None` (skip) when moto_server is not installed and CI does not require it.
    fn start() -> Option<S3Server> {
        if !available(
            "moto_server (pip install -r crates/strata/tests/clients/requirements.txt)",
            probe(Path::new("moto_server"), &["--help"], None),
        ) {
            return None;
        }
        // moto cannot report an ephemeral port it chose, so take one and hand it over.
        let port = free_port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut command = Command::new("moto_server");
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let peer = Peer::spawn("moto_server", command, &endpoint);
        Some(S3Server {
            _peer: peer,
            endpoint,
        })
    }

    fn create_bucket(&self, bucket: &str) {
        let answer = reqwest::blocking::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .expect("create bucket");
        assert!(answer.status().is_success(), "create bucket: {answer:?}");
    }

    /// Every object key in the bucket (one listing page is enough for these tests).
    fn keys(&self, bucket: &str) -> Vec<String> {
        let mut body = String::new();
        reqwest::blocking::Client::new()
            .get(format!(
                "{}/{bucket}?list-type=2&max-keys=1000",
                self.endpoint
            ))
            .send()
            .expect("list bucket")
            .read_to_string(&mut body)
            .expect("listing body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "strata-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "strata-test-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

#[test]
fn compaction_writes_to_s3_and_queries_read_it_back_exactly_once() {
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket(BUCKET);
    cloud::compaction_round_trip(&format!("s3://{BUCKET}/cold"), "cold", &s3.env(), &|| {
        s3.keys(BUCKET)
    });
}

#[test]
fn a_store_that_cannot_be_listed_stops_startup_with_the_reason() {
    let Some(s3) = S3Server::start() else { return };
    cloud::startup_refuses("s3://no-such-bucket/cold", &s3.env(), "NoSuchBucket");
}

#[test]
fn an_in_memory_cold_store_is_refused() {
    // Compacted rows leave the hot tier, so an in-memory store would lose them at restart.
    let (success, stderr) = cloud::serve_until_exit("memory://", &[]);
    assert!(!success, "started anyway: {stderr}");
    assert!(stderr.contains("lose compacted data"), "{stderr}");
}

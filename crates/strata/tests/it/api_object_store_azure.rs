//! The cold tier on Azure Blob Storage, through Azurite (Microsoft's emulator, the npm package
//! `azurite`, blob service only) on an ephemeral port: `--cold-url az://container/prefix`, with
//! object_store's emulator mode (`AZURE_STORAGE_USE_EMULATOR=true`, the endpoint from
//! `AZURITE_BLOB_STORAGE_URL`) and Shared Key signing with the account's key, which Azurite
//! checks. The container is created, and its blobs listed, by Azure's own Python client
//! (`tests/clients/azure_blob.py`), so the test does not trust strata to see what it wrote.
//!
//! Azurite or the Python client missing skips these tests with a message, unless
//! `STRATA_REQUIRE_CLIENTS=1` (CI), where it fails them. Set up with `bash .ci/run`.

use crate::cloud;

use std::path::PathBuf;
use std::process::Command;

use crate::cloud::{available, clients_dir, free_port, probe, python, Peer};

const CONTAINER: &str = "strata-cold-test";
/// Azurite's fixed development account and key (public; the same on every install).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on an ephemeral port, storing into a temporary directory.
struct Azurite {
    peer: Peer,
    /// `http://127.0.0.1:PORT`: the service root; blobs are under `/devstoreaccount1/...`.
    endpoint: String,
    _location: tempfile::TempDir,
}

fn azurite_blob() -> PathBuf {
    clients_dir().join("node_modules/.bin/azurite-blob")
}

impl Azurite {
    /// `None` (skip) when Azurite or the Python client is not installed and CI does not
    /// require them.
    fn start() -> Option<Azurite> {
        if !available(
            "Azurite (npm ci in crates/strata/tests/clients)",
            probe(&azurite_blob(), &["--version"], None),
        ) || !available(
            "python3 with azure-storage-blob (pip install -r crates/strata/tests/clients/requirements.txt)",
            probe(&python(), &["-c", "import azure.storage.blob"], None),
        ) {
            return None;
        }
        let location = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut command = Command::new(azurite_blob());
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(location.path())
            // The Python SDK may speak a newer REST API version than this Azurite knows;
            // strata's object_store speaks an older one, which Azurite always accepts.
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"]);
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer = Peer::spawn("azurite-blob", command, &endpoint);
        Some(Azurite {
            peer,
            endpoint,
            _location: location,
        })
    }

    /// Runs `azure_blob.py command container` and returns its standard output.
    fn client(&self, command: &str, container: &str) -> String {
        let out = Command::new(python())
            .arg(clients_dir().join("azure_blob.py"))
            .args([command, container])
            .env(
                "STRATA_AZURITE_BLOB_URL",
                format!("{}/{ACCOUNT}", self.endpoint),
            )
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run azure_blob.py");
        assert!(
            out.status.success(),
            "azure_blob.py {command} {container}: {}\nazurite log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.peer.log()
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn create_container(&self, container: &str) {
        self.client("create", container);
    }

    /// Every blob name in the container.
    fn blobs(&self, container: &str) -> Vec<String> {
        serde_json::from_str(&self.client("list", container)).expect("a JSON list of names")
    }

    /// What strata needs to reach this Azurite, with `key` as the account key.
    fn env_with_key(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            // Read by object_store itself (not a builder option) in emulator mode.
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", key.to_string()),
        ]
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        self.env_with_key(ACCOUNT_KEY)
    }
}

#[test]
fn compaction_writes_to_azure_blob_and_queries_read_it_back_exactly_once() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container(CONTAINER);
    cloud::compaction_round_trip(
        &format!("az://{CONTAINER}/cold"),
        "cold",
        &azurite.env(),
        &|| azurite.blobs(CONTAINER),
    );
}

#[test]
fn a_container_that_cannot_be_listed_stops_startup_with_the_reason() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    // No such container.
    cloud::startup_refuses(
        "az://no-such-container/cold",
        &azurite.env(),
        "ContainerNotFound",
    );
    // The container exists but the key is wrong: Azurite rejects the Shared Key signature.
    azurite.create_container(CONTAINER);
    let wrong_key = "V3JvbmcgYWNjb3VudCBrZXkgZm9yIHRoZSBzdHJhdGEgdGVzdHMgb25seSEhISE=";
    cloud::startup_refuses(
        &format!("az://{CONTAINER}/cold"),
        &azurite.env_with_key(wrong_key),
        "AuthorizationFailure",
    );
}

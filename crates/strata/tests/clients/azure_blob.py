"""Azure's own Blob client against Azurite, for crates/strata/tests/it/api_object_store_azure.rs.

    python azure_blob.py create CONTAINER   # creates the container (strata never creates one)
    python azure_blob.py list CONTAINER     # prints every blob name in it, as a JSON array

The endpoint is STRATA_AZURITE_BLOB_URL (http://HOST:PORT/devstoreaccount1). The account and
key are Azurite's fixed, publicly documented development credentials, not a secret.
"""

import json
import os
import sys

from azure.storage.blob import BlobServiceClient

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def main() -> None:
    command, container = sys.argv[1], sys.argv[2]
    endpoint = os.environ["STRATA_AZURITE_BLOB_URL"]
    service = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint={endpoint};"
    )
    if command == "create":
        service.create_container(container)
    elif command == "list":
        names = [blob.name for blob in service.get_container_client(container).list_blobs()]
        print(json.dumps(names))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()

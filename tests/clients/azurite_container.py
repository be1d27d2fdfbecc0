"""Creates a blob container on the Azurite at $AZURITE_BLOB_STORAGE_URL: delta-rs writes into
containers but does not make them, as on Azure itself."""
import os
import sys

from azure.storage.blob import BlobServiceClient

# Azurite's well-known development account (published in its documentation).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

endpoint = f"{os.environ['AZURITE_BLOB_STORAGE_URL']}/{ACCOUNT}"
service = BlobServiceClient.from_connection_string(
    f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};"
)
service.create_container(sys.argv[1])
print(f"created {sys.argv[1]}")

"""Header names and values of the distribution spec, in one place."""

API_VERSION = "Docker-Distribution-API-Version"
API_VERSION_VALUE = "registry/2.0"
CONTENT_DIGEST = "Docker-Content-Digest"
UPLOAD_UUID = "Docker-Upload-UUID"
BLOB_UPLOAD_UUID = "Blob-Upload-UUID"
OCI_SUBJECT = "OCI-Subject"
OCI_TAG = "OCI-Tag"
OCI_FILTERS_APPLIED = "OCI-Filters-Applied"
CHUNK_SIZE = 1024 * 1024

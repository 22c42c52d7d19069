"""The Cloud Storage emulator (gcp-storage-emulator) with GCS's create-only precondition, which it lacks.

GCS refuses an upload carrying `ifGenerationMatch=0` with 412 Precondition Failed when the object already
exists (https://cloud.google.com/storage/docs/request-preconditions); the emulator ignores the parameter
and overwrites. Run as the emulator's own command line: `python tests/gcs_emulator.py start --port=...`.
"""

import sys
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_insert = objects.insert


def _object_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data if isinstance(request.data, dict) else {}
    return data.get("name") or data.get("meta", {}).get("name")


def create_only_insert(request, response, storage, *args, **kwargs):
    if request.query.get("ifGenerationMatch") == ["0"]:
        try:
            storage.get_file_obj(request.params["bucket_name"], _object_name(request))
            response.status = HTTPStatus.PRECONDITION_FAILED
            return None
        except NotFound:
            pass
    return _insert(request, response, storage, *args, **kwargs)


objects.insert = create_only_insert  # before the server module builds its routing table from it

if __name__ == "__main__":
    from gcp_storage_emulator.__main__ import main

    main(sys.argv[1:])

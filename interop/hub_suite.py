#!/usr/bin/env python3
"""IoT Hub interop suite: the unmodified official Python SDKs against the emulator's hub.

Usage: hub_suite.py <path to dps-emulator binary>

Device side: azure-iot-device 2.14 (IoTHubDeviceClient) over MQTT (8883) and MQTT over WebSocket
(443), for devices first provisioned by the emulator's DPS (ProvisioningDeviceClient): telemetry
with properties, twin get / reported patch / desired patch, direct methods, cloud-to-device
messages; a disabled device and a wrong key are refused; an X.509 device of an enrollment group
connects with its certificate. Service side: azure-iot-hub 2.7 (IoTHubRegistryManager) for the
identity registry (with bulk operations and the twin query), import and export jobs through
Azurite (IoTHubJobManager), twin updates and direct methods; the emulator-only REST endpoints for the
events feed and for sending cloud-to-device messages (the SDK sends those over AMQP, which the
emulator does not speak). File upload: the device SDK's get_storage_info_for_blob and
notify_blob_upload_status with azure-storage-blob uploading to the emulator's blob endpoint.
"""
import json
import os
import queue
import sys
import tempfile
import time
import traceback
import uuid

from azure.iot.device import (
    IoTHubDeviceClient,
    Message,
    MethodResponse,
    ProvisioningDeviceClient,
    X509,
)

from certs import Ca
from emulator import Emulator, derive_key, sas_token

TRANSPORTS = [("mqtt", False), ("websocket", True)]
HUB_API = "2021-04-12"
STEP = 10  # seconds any single expected exchange may take
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# ---- the emulator's hub service REST API ----------------------------------------------------------

def hub_rest(emu, method, path, body=None, expect=(200,), headers=None):
    import requests

    token = sas_token(emu.host, emu.key, "iothubowner")
    response = requests.request(
        method,
        f"https://{emu.host}{path}",
        params={"api-version": HUB_API},
        json=body,
        headers={"Authorization": token, **(headers or {})},
        verify=emu.ca_file,
        timeout=30,
    )
    if response.status_code not in expect:
        raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json() if response.content else None


def hub_name(emu):
    return emu.info["linkedHubs"][0]


def events_since(emu, since):
    feed = hub_rest(emu, "GET", f"/emulator/hubs/{hub_name(emu)}/events?since={since}")
    return feed["events"], feed["lastSequenceNumber"]


def last_event(emu):
    return events_since(emu, 0)[1]


def wait_event(emu, since, predicate, what):
    deadline = time.monotonic() + STEP
    while time.monotonic() < deadline:
        events, _ = events_since(emu, since)
        for event in events:
            if predicate(event):
                return event
        time.sleep(0.1)
    raise AssertionError(f"no event: {what}")


def send_c2d(emu, device_id, body, **fields):
    return hub_rest(
        emu, "POST", f"/emulator/hubs/{hub_name(emu)}/devices/{device_id}/c2d", {"body": body, **fields}
    )


# ---- DPS ------------------------------------------------------------------------------------------

def individual_enrollment(emu, registration_id):
    emu.rest(
        "PUT",
        f"/enrollments/{registration_id}",
        {"registrationId": registration_id, "attestation": {"type": "symmetricKey"}},
    )
    attestation = emu.rest("POST", f"/enrollments/{registration_id}/attestationmechanism")
    return attestation["symmetricKey"]["primaryKey"]


def provision_symmetric(emu, registration_id, key, websockets):
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=emu.info["hostname"],
        registration_id=registration_id,
        id_scope=emu.id_scope,
        symmetric_key=key,
        websockets=websockets,
        server_verification_cert=emu.ca_pem,
    )
    result = client.register()
    assert result.status == "assigned", result.status
    return result.registration_state.assigned_hub, result.registration_state.device_id


def hub_client(emu, hub, device_id, key, websockets):
    return IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key,
        hostname=hub,
        device_id=device_id,
        server_verification_cert=emu.ca_pem,
        websockets=websockets,
        connection_retry=False,
    )


def expect_refused(client, what):
    try:
        client.connect()
    except Exception as e:  # the SDK raises its own exception types
        print(f"      {what}: {type(e).__name__}: {e}", flush=True)
        return
    finally:
        client.shutdown()
    raise AssertionError(f"{what}: the connection was accepted")


# ---- a full device session -------------------------------------------------------------------------

def exercise_device(emu, client, device_id):
    """Telemetry, twin, desired patch, direct method and C2D on a connected device client."""
    desired_patches = queue.Queue()
    c2d_messages = queue.Queue()
    method_requests = []

    def on_method(request):
        method_requests.append(request)
        response = MethodResponse.create_from_method_request(
            request, 200, {"echo": request.payload, "method": request.name}
        )
        client.send_method_response(response)

    client.on_twin_desired_properties_patch_received = desired_patches.put
    client.on_method_request_received = on_method
    client.on_message_received = c2d_messages.put
    client.connect()

    # Telemetry with system and application properties.
    since = last_event(emu)
    message = Message('{"temperature": 21.5}', message_id=str(uuid.uuid4()))
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    message.custom_properties["alert"] = "high temp"
    message.custom_properties["level"] = "2"
    client.send_message(message)
    event = wait_event(
        emu,
        since,
        lambda e: e["kind"] == "telemetry" and e["deviceId"] == device_id,
        f"telemetry of {device_id}",
    )
    assert event["properties"] == {"alert": "high temp", "level": "2"}, event["properties"]
    system = event["systemProperties"]
    assert system["messageId"] == message.message_id, system
    assert system["contentType"] == "application/json", system
    assert system["contentEncoding"] == "utf-8", system
    assert event["body"]["text"] == '{"temperature": 21.5}', event["body"]

    # Twin: get, reported patch, and the service sees it.
    twin = client.get_twin()
    assert "$version" in twin["desired"] and "$version" in twin["reported"], twin
    reported_version = twin["reported"]["$version"]
    client.patch_twin_reported_properties({"firmware": "2.0", "sensor": {"unit": "C"}})
    twin = client.get_twin()
    assert twin["reported"]["firmware"] == "2.0", twin
    assert twin["reported"]["$version"] == reported_version + 1, twin
    client.patch_twin_reported_properties({"firmware": None})
    service_twin = hub_rest(emu, "GET", f"/twins/{device_id}")
    assert "firmware" not in service_twin["properties"]["reported"], service_twin
    assert service_twin["properties"]["reported"]["sensor"] == {"unit": "C"}, service_twin

    # Desired patch from the service reaches the handler.
    hub_rest(emu, "PATCH", f"/twins/{device_id}", {"properties": {"desired": {"interval": 30}}})
    patch = desired_patches.get(timeout=STEP)
    assert patch["interval"] == 30 and "$version" in patch, patch

    # Direct method through the service API.
    result = hub_rest(
        emu,
        "POST",
        f"/twins/{device_id}/methods",
        {"methodName": "reboot", "payload": {"delay": 5}, "responseTimeoutInSeconds": 10},
    )
    assert result == {"status": 200, "payload": {"echo": {"delay": 5}, "method": "reboot"}}, result

    # Cloud-to-device message with properties.
    send_c2d(emu, device_id, "turn on", messageId="c2d-" + device_id, correlationId="corr-1",
             properties={"color": "red"})
    received = c2d_messages.get(timeout=STEP)
    assert received.data == b"turn on", received.data
    assert received.message_id == "c2d-" + device_id, received.message_id
    assert received.correlation_id == "corr-1", received.correlation_id
    assert received.custom_properties.get("color") == "red", received.custom_properties
    assert hub_rest(emu, "GET", f"/devices/{device_id}")["connectionState"] == "Connected"

    client.shutdown()


# ---- the cases ------------------------------------------------------------------------------------

@case
def provisioned_devices_connect_to_their_hub(emu, work):
    for name, ws in TRANSPORTS:
        registration_id = f"hub-sym-{name}"
        key = individual_enrollment(emu, registration_id)
        hub, device_id = provision_symmetric(emu, registration_id, key, ws)
        assert hub == hub_name(emu), hub
        exercise_device(emu, hub_client(emu, hub, device_id, key, ws), device_id)


@case
def group_provisioned_devices_connect_with_derived_keys(emu, work):
    group = emu.rest(
        "PUT",
        "/enrollmentGroups/hub-sym-group",
        {"enrollmentGroupId": "hub-sym-group", "attestation": {"type": "symmetricKey"}},
    )
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    for name, ws in TRANSPORTS:
        registration_id = f"hub-group-device-{name}"
        key = derive_key(group_key, registration_id)
        hub, device_id = provision_symmetric(emu, registration_id, key, ws)
        exercise_device(emu, hub_client(emu, hub, device_id, key, ws), device_id)


@case
def lifecycle_notifications_are_on_the_feed(emu, work):
    since = last_event(emu)
    hub_rest(emu, "PUT", "/devices/hub-lifecycle", {"deviceId": "hub-lifecycle"})
    hub_rest(emu, "DELETE", "/devices/hub-lifecycle", headers={"If-Match": "*"}, expect=(204,))
    ops = [
        e["properties"]["opType"]
        for e in events_since(emu, since)[0]
        if e["kind"] == "deviceLifecycle" and e["deviceId"] == "hub-lifecycle"
    ]
    assert ops == ["createDeviceIdentity", "deleteDeviceIdentity"], ops


@case
def disabled_device_and_wrong_key_are_refused(emu, work):
    device = hub_rest(emu, "PUT", "/devices/hub-disabled", {"deviceId": "hub-disabled", "status": "disabled"})
    key = device["authentication"]["symmetricKey"]["primaryKey"]
    hub = hub_name(emu)
    expect_refused(hub_client(emu, hub, "hub-disabled", key, False), "disabled device")
    device = hub_rest(emu, "PUT", "/devices/hub-wrong-key", {"deviceId": "hub-wrong-key"})
    wrong = derive_key("d3Jvbmcga2V5IGZvciB0aGlzIGRldmljZQ==", "hub-wrong-key")
    for name, ws in TRANSPORTS:
        expect_refused(hub_client(emu, hub, "hub-wrong-key", wrong, ws), f"wrong key over {name}")


@case
def service_sdk_drives_registry_twin_and_methods(emu, work):
    from azure.iot.hub import IoTHubRegistryManager
    from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
    from msrest.exceptions import HttpOperationError

    registry = IoTHubRegistryManager.from_connection_string(emu.info["hubConnectionString"])
    device_id = "hub-service-sdk"

    # Registry: create (keys generated), read, list, conditional update.
    created = registry.create_device_with_sas(device_id, None, None, "enabled")
    assert created.device_id == device_id and created.generation_id, created
    key = created.authentication.symmetric_key.primary_key
    assert key, "the service generated keys"
    fetched = registry.get_device(device_id)
    assert fetched.etag == created.etag and fetched.status == "enabled", fetched
    assert device_id in [d.device_id for d in registry.get_devices()]
    try:
        registry.update_device_with_sas(device_id, "AAAAAAAAAAA=", key, None, "disabled")
        raise AssertionError("a stale etag was accepted")
    except HttpOperationError as e:
        assert e.response.status_code == 412, e.response.status_code
    updated = registry.update_device_with_sas(
        device_id, fetched.etag, key, created.authentication.symmetric_key.secondary_key, "enabled"
    )
    assert updated.etag != fetched.etag, "an update changes the etag"

    # A device connected with that key.
    desired_patches = queue.Queue()
    client = hub_client(emu, hub_name(emu), device_id, key, False)
    client.on_twin_desired_properties_patch_received = desired_patches.put
    client.on_method_request_received = lambda request: client.send_method_response(
        MethodResponse.create_from_method_request(request, 201, {"rebooted": request.payload["now"]})
    )
    client.connect()
    client.patch_twin_reported_properties({"battery": 77})

    # Twin: read, then update desired properties with its etag.
    twin = registry.get_twin(device_id)
    assert twin.properties.reported["battery"] == 77, twin.properties.reported
    patched = registry.update_twin(
        device_id, Twin(properties=TwinProperties(desired={"telemetryInterval": 15})), twin.etag
    )
    assert patched.properties.desired["telemetryInterval"] == 15, patched.properties.desired
    patch = desired_patches.get(timeout=STEP)
    assert patch["telemetryInterval"] == 15, patch

    # Direct method.
    result = registry.invoke_device_method(
        device_id,
        CloudToDeviceMethod(method_name="reboot", payload={"now": True}, response_timeout_in_seconds=10),
    )
    assert result.status == 201 and result.payload == {"rebooted": True}, (result.status, result.payload)
    client.shutdown()

    # A device that is not connected: the service reports it.
    try:
        registry.invoke_device_method(device_id, CloudToDeviceMethod(method_name="reboot", payload={}))
        raise AssertionError("a method on an offline device succeeded")
    except HttpOperationError as e:
        assert e.response.status_code == 404, e.response.status_code

    registry.delete_device(device_id)
    try:
        registry.get_device(device_id)
        raise AssertionError("the device is still there")
    except HttpOperationError as e:
        assert e.response.status_code == 404, e.response.status_code


@case
def service_sdk_bulk_operations_and_query(emu, work):
    """#15: bulk create / update / delete with per-device errors, list with top, and the twin
    query with continuation tokens, through IoTHubRegistryManager."""
    from azure.iot.hub import IoTHubRegistryManager
    from azure.iot.hub.models import (
        AuthenticationMechanism,
        ExportImportDevice,
        QuerySpecification,
        SymmetricKey,
        Twin,
    )

    registry = IoTHubRegistryManager.from_connection_string(emu.info["hubConnectionString"])
    ids = [f"bulk-sdk-{i}" for i in range(5)]
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    sas = AuthenticationMechanism(
        type="sas", symmetric_key=SymmetricKey(primary_key=key, secondary_key=key)
    )
    result = registry.bulk_create_or_update_devices(
        [ExportImportDevice(id=i, import_mode="create", authentication=sas) for i in ids]
    )
    assert result.is_successful and not result.errors, result.errors
    assert registry.get_device(ids[0]).authentication.symmetric_key.primary_key == key

    # One duplicate and one stale etag fail alone; the delete goes through.
    result = registry.bulk_create_or_update_devices(
        [
            ExportImportDevice(id=ids[0], import_mode="create"),
            ExportImportDevice(id=ids[1], import_mode="updateIfMatchETag", e_tag="stale", status="disabled"),
            ExportImportDevice(id=ids[4], import_mode="delete"),
        ]
    )
    assert not result.is_successful
    codes = sorted((e.device_id, e.error_code) for e in result.errors)
    assert codes == [(ids[0], "DeviceAlreadyExists"), (ids[1], "PreconditionFailed")], codes
    assert registry.get_device(ids[1]).status == "enabled"
    assert ids[4] not in [d.device_id for d in registry.get_devices(1000)]
    assert len(registry.get_devices(2)) == 2

    # Tags, then the query that finds devices by them, two per page.
    for n, device_id in enumerate(ids[:4]):
        registry.update_twin(device_id, Twin(tags={"site": "lab" if n % 2 == 0 else "field"}), "*")
    spec = QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'lab' OR tags.site = 'field'")
    found, token, pages = [], None, 0
    while True:
        page = registry.query_iot_hub(spec, token, 2)
        assert page.type in ("twin", "Twin"), page.type
        found += [twin.device_id for twin in page.items]
        pages += 1
        token = page.continuation_token
        if not token:
            break
        assert pages < 5, "the pages end"
    assert found == ids[:4] and pages == 2, (found, pages)
    lab = registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE tags.site = 'lab'"))
    assert [t.device_id for t in lab.items] == [ids[0], ids[2]], lab.items
    assert lab.items[0].tags == {"site": "lab"}, lab.items[0].tags


@case
def service_sdk_export_and_import_jobs_through_azurite(emu, work):
    """#15: IoTHubJobManager runs an export and an import job against Azurite."""
    import json

    from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
    from azure.iot.hub.models import JobProperties

    from azurite import Azurite

    registry = IoTHubRegistryManager.from_connection_string(emu.info["hubConnectionString"])
    jobs = IoTHubJobManager.from_connection_string(emu.info["hubConnectionString"])
    storage = Azurite()
    try:
        storage.create_container("exports")
        storage.create_container("imports")
        created = registry.create_device_with_sas("job-sdk-1", None, None, "enabled")

        def run(properties):
            job = jobs.create_import_export_job(properties)
            assert job.status == "enqueued", job.status
            deadline = time.monotonic() + 30
            while job.status in ("enqueued", "running"):
                assert time.monotonic() < deadline, "the job ends in time"
                time.sleep(0.1)
                job = jobs.get_import_export_job(job.job_id)
            assert job.status == "completed", (job.status, job.failure_reason)
            return job

        run(JobProperties(type="export", output_blob_container_uri=storage.container_uri("exports"),
                          exclude_keys_in_export=False))
        exported = [json.loads(line) for line in storage.get_blob("exports", "devices.txt").splitlines()]
        mine = [d for d in exported if d["id"] == "job-sdk-1"]
        assert len(mine) == 1, exported
        assert mine[0]["authentication"]["symmetricKey"]["primaryKey"] == \
            created.authentication.symmetric_key.primary_key

        lines = [
            {"id": "job-sdk-2", "importMode": "create", "tags": {"batch": "interop"}},
            {"id": "job-sdk-1", "importMode": "delete"},
        ]
        storage.put_blob("imports", "devices.txt", "\n".join(json.dumps(l) for l in lines) + "\n")
        run(JobProperties(type="import", input_blob_container_uri=storage.container_uri("imports"),
                          output_blob_container_uri=storage.container_uri("exports")))
        assert registry.get_twin("job-sdk-2").tags == {"batch": "interop"}
        assert "job-sdk-1" not in [d.device_id for d in registry.get_devices()]
        assert len(jobs.get_import_export_jobs()) >= 2
    finally:
        storage.stop()


@case
def x509_group_device_connects_with_its_certificate(emu, work):
    root = Ca("Hub Interop Root CA")
    intermediate = Ca("Hub Interop Intermediate CA", parent=root)
    emu.rest(
        "PUT",
        "/enrollmentGroups/hub-x509-group",
        {
            "enrollmentGroupId": "hub-x509-group",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": intermediate.pem()}}}},
        },
    )
    for name, ws in TRANSPORTS:
        registration_id = f"hub-x509-{name}"
        cert, key = intermediate.issue_device(registration_id, work)
        x509 = X509(cert_file=cert, key_file=key)
        provisioning = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=emu.info["hostname"],
            registration_id=registration_id,
            id_scope=emu.id_scope,
            x509=x509,
            websockets=ws,
            server_verification_cert=emu.ca_pem,
        )
        result = provisioning.register()
        assert result.status == "assigned", result.status
        state = result.registration_state
        client = IoTHubDeviceClient.create_from_x509_certificate(
            x509=X509(cert_file=cert, key_file=key),
            hostname=state.assigned_hub,
            device_id=state.device_id,
            server_verification_cert=emu.ca_pem,
            websockets=ws,
            connection_retry=False,
        )
        client.connect()
        since = last_event(emu)
        client.send_message(Message("x509 hello"))
        event = wait_event(
            emu, since, lambda e: e["kind"] == "telemetry" and e["deviceId"] == state.device_id, "x509 telemetry"
        )
        assert event["systemProperties"]["iothub-connection-auth-method"] == "x509CertificateAuthority", event
        twin = client.get_twin()
        assert "$version" in twin["reported"], twin
        client.shutdown()


@case
def file_upload_with_the_device_sdk_and_the_storage_sdk(emu, work):
    """get_storage_info_for_blob, an upload with azure-storage-blob (one Put Blob, then Put Block
    + Put Block List), notify_blob_upload_status, and the notification on the events feed."""
    from azure.storage.blob import BlobClient

    device = hub_rest(emu, "PUT", "/devices/hub-file-upload", {"deviceId": "hub-file-upload"})
    key = device["authentication"]["symmetricKey"]["primaryKey"]
    client = hub_client(emu, hub_name(emu), "hub-file-upload", key, False)
    client.connect()
    since = last_event(emu)
    payloads = {"small.txt": b"hello from the python sdk", "big.bin": os.urandom(40 * 1024 + 3)}
    for name, data in payloads.items():
        info = client.get_storage_info_for_blob(name)
        assert info["blobName"] == f"hub-file-upload/{name}", info
        assert info["sasToken"].startswith("?"), "a SAS query"
        url = f"https://{info['hostName']}/{info['containerName']}/{info['blobName']}{info['sasToken']}"
        # Small single-put and block sizes make the big payload go in blocks.
        blob = BlobClient.from_blob_url(
            url, connection_verify=emu.ca_file, max_single_put_size=16 * 1024, max_block_size=8 * 1024
        )
        blob.upload_blob(data, overwrite=True)
        assert blob.download_blob().readall() == data, f"{name} read back differs"
        client.notify_blob_upload_status(info["correlationId"], True, 200, f"uploaded {name}")

    for name, data in payloads.items():
        event = wait_event(
            emu,
            since,
            lambda e, n=name: e["kind"] == "fileUpload" and e["body"]["text"] and f"/{n}" in e["body"]["text"],
            f"file upload notification of {name}",
        )
        notification = json.loads(event["body"]["text"])
        assert notification["blobName"] == f"hub-file-upload/{name}", notification
        assert notification["blobSizeInBytes"] == len(data), notification

    # A failed upload is reported too and releases the upload; the eleventh upload in progress
    # is refused (403006).
    info = client.get_storage_info_for_blob("failed.bin")
    client.notify_blob_upload_status(info["correlationId"], False, 500, "the sensor went away")
    for i in range(10):
        client.get_storage_info_for_blob(f"pending-{i}")
    try:
        client.get_storage_info_for_blob("one-too-many")
        raise AssertionError("an eleventh upload in progress was accepted")
    except AssertionError:
        raise
    except Exception as e:  # the SDK raises its own exception types
        print(f"      eleventh upload refused: {type(e).__name__}: {e}", flush=True)
    client.shutdown()


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as work:
        emu = Emulator(binary, data_dir)
        # azure-iot-hub talks REST through requests: trust the emulator's CA.
        os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_file
        failures = 0
        try:
            for fn in CASES:
                started = time.monotonic()
                try:
                    fn(emu, work)
                    print(f"ok    {fn.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
                except Exception:
                    failures += 1
                    print(f"FAIL  {fn.__name__}", flush=True)
                    traceback.print_exc()
        finally:
            emu.stop()
            if failures:
                with open(os.path.join(data_dir, "emulator.log")) as log:
                    print("---- emulator log (last 60 lines) ----")
                    print("".join(log.readlines()[-60:]))
        print(f"{len(CASES) - failures}/{len(CASES)} hub interop cases passed", flush=True)
        # The SDK leaves timer threads behind that print noise at interpreter shutdown.
        os._exit(1 if failures else 0)


if __name__ == "__main__":
    main()

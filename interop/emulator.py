"""Starts the emulator binary and talks to its service REST API."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.parse

import requests


def sas_token(resource, key_b64, policy=None, ttl=3600):
    """A SAS token in the documented form (what the service SDKs send)."""
    expiry = int(time.time()) + ttl
    sr = urllib.parse.quote(resource, safe="")
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key_b64), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    ).decode()
    token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(signature, safe='')}&se={expiry}"
    if policy:
        token += f"&skn={policy}"
    return token


def derive_key(group_key_b64, registration_id):
    return base64.b64encode(
        hmac.new(base64.b64decode(group_key_b64), registration_id.encode(), hashlib.sha256).digest()
    ).decode()


class Emulator:
    """The `dps-emulator` binary on the standard ports (the Python SDK cannot change them)."""

    def __init__(self, binary, data_dir):
        self.process = subprocess.Popen(
            [binary, "--data-dir", data_dir, "--mqtt-port", "8883", "--https-port", "443"],
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(data_dir, "emulator.log"), "w"),
            text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start; see {data_dir}/emulator.log")
        self.info = json.loads(line)
        self.ca_file = self.info["caFile"]
        with open(self.ca_file) as f:
            self.ca_pem = f.read()
        fields = dict(p.split("=", 1) for p in self.info["dpsConnectionString"].split(";"))
        self.host = fields["HostName"]
        self.key = fields["SharedAccessKey"]
        self.id_scope = self.info["idScope"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)

    def rest(self, method, path, body=None, expect=(200,), headers=None):
        token = sas_token(self.host, self.key, "provisioningserviceowner")
        response = requests.request(
            method,
            f"https://{self.host}{path}",
            params={"api-version": "2021-10-01"},
            json=body,
            headers={"Authorization": token, **(headers or {})},
            verify=self.ca_file,
            timeout=10,
        )
        if response.status_code not in expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def set_faults(self, faults):
        self.rest("PUT", "/emulator/faults", faults)

    def faults(self):
        return self.rest("GET", "/emulator/faults")

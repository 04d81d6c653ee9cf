"""Azurite, the Azure Storage emulator (npm `azurite`), for the import/export job cases.

Found at AZURITE_BLOB, else under target/azurite (where .ci/run installs it). Containers are
reached as the hub reaches them: a container URI with an account SAS.
"""
import base64
import hashlib
import hmac
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse

import requests

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def account_sas():
    """An account SAS (blob; service, container, object; racwdl), as `az storage account
    generate-sas` makes one."""
    permissions, expiry, version = "racwdl", "2099-01-01T00:00:00Z", "2019-12-12"
    to_sign = f"{ACCOUNT}\n{permissions}\nb\nsco\n\n{expiry}\n\n\n{version}\n"
    signature = base64.b64encode(
        hmac.new(base64.b64decode(ACCOUNT_KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    return urllib.parse.urlencode(
        {"sv": version, "ss": "b", "srt": "sco", "sp": permissions, "se": expiry, "sig": signature}
    )


class Azurite:
    def __init__(self):
        script = os.environ.get("AZURITE_BLOB") or os.path.join(
            os.path.dirname(__file__), "..", "target", "azurite", "node_modules", ".bin", "azurite-blob"
        )
        if not os.path.exists(script):
            raise RuntimeError("Azurite is needed: npm install --prefix target/azurite azurite")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            [script, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--silent",
             "--skipApiVersionCheck", "--location", self.dir.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.dir.cleanup()

    def base(self, container):
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}/{container}"

    def container_uri(self, container):
        return f"{self.base(container)}?{account_sas()}"

    def create_container(self, container):
        r = requests.put(f"{self.base(container)}?restype=container&{account_sas()}", timeout=10)
        assert r.status_code == 201, r.text

    def put_blob(self, container, name, data):
        r = requests.put(
            f"{self.base(container)}/{name}?{account_sas()}",
            data=data,
            headers={"x-ms-blob-type": "BlockBlob"},
            timeout=10,
        )
        assert r.status_code == 201, r.text

    def get_blob(self, container, name):
        r = requests.get(f"{self.base(container)}/{name}?{account_sas()}", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.text

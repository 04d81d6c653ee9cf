"""Test certificate chains (root -> intermediate -> device), generated on the fly."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _build(subject, issuer_name, issuer_key, public_key, ca, days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Ca:
    """A CA that can issue intermediates and device certificates."""

    def __init__(self, cn, parent=None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        if parent is None:
            self.cert = _build(cn, _name(cn), self.key, self.key.public_key(), ca=True)
            self.chain = []
        else:
            self.cert = _build(cn, parent.cert.subject, parent.key, self.key.public_key(), ca=True)
            self.chain = [self.cert] + parent.chain

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue_device(self, registration_id, directory):
        """Writes `<id>.pem` (leaf + intermediates, leaf first) and `<id>.key`; returns paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _build(registration_id, self.cert.subject, self.key, key.public_key(), ca=False)
        cert_path = f"{directory}/{registration_id}.pem"
        key_path = f"{directory}/{registration_id}.key"
        with open(cert_path, "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM))
            for cert in self.chain:
                f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return cert_path, key_path

"""TLS material: a CA of the emulator's own (DIR/ca.pem, made once and kept),
and a server certificate it signs for every name the emulator answers for
(the --host names, localhost, 127.0.0.1 and ::1), made again whenever that
set of names changes."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .common import write_file
from .crypto import key_pem, load_key_pem, new_rsa_key

IP_NAMES = ("127.0.0.1", "::1")


def _key_usage(**on):
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                 encipher_only=False, decipher_only=False)
    flags.update(on)
    return x509.KeyUsage(**flags)


def _ensure_ca(ca_pem, ca_key_pem, t0):
    if os.path.exists(ca_pem) and os.path.exists(ca_key_pem):
        with open(ca_pem, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(ca_key_pem) as f:
            return ca, load_key_pem(f.read())
    ca_key = new_rsa_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cmk test"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "cmk kv_emulator test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    write_file(ca_key_pem, key_pem(ca_key), 0o600)
    write_file(ca_pem, ca.public_bytes(serialization.Encoding.PEM))
    return ca, ca_key


def _names_of(cert_path):
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(san.get_values_for_type(x509.DNSName))
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None


def ensure_tls(state_dir, dns_names):
    """Returns (certificate chain file, key file) for the given DNS names."""
    ca_pem = os.path.join(state_dir, "ca.pem")
    ca_key_pem = os.path.join(state_dir, "ca-key.pem")
    srv_pem = os.path.join(state_dir, "server.pem")
    srv_key_pem = os.path.join(state_dir, "server-key.pem")
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca, ca_key = _ensure_ca(ca_pem, ca_key_pem, t0)
    if os.path.exists(srv_key_pem) and _names_of(srv_pem) == set(dns_names):
        return srv_pem, srv_key_pem
    srv_key = new_rsa_key()
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    san = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_NAMES]
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[-1])]))
           .issuer_name(ca.subject).public_key(srv_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=825))
           .add_extension(x509.SubjectAlternativeName(san), critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.SubjectKeyIdentifier.from_public_key(srv_key.public_key()), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                          critical=False)
           .sign(ca_key, hashes.SHA256()))
    write_file(srv_key_pem, key_pem(srv_key), 0o600)
    write_file(srv_pem, srv.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    return srv_pem, srv_key_pem

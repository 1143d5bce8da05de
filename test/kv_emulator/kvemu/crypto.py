"""JWT, key and certificate helpers on top of python3-cryptography (Debian
bookworm ships 38.0; newer versions work too)."""

import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .common import b64u, b64u_dec

# JWK curve names: (curve class, coordinate size in bytes)
EC_CURVES = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48), "P-521": (ec.SECP521R1, 66)}


def cert_thumbprints(cert):
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der).digest()
    return {"x5t": b64u(sha1), "x5t#S256": b64u(hashlib.sha256(der).digest()),
            "sha1_hex": sha1.hex().upper()}


def jwt_encode(header, payload, key):
    si = (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
          b64u(json.dumps(payload, separators=(",", ":")).encode()))
    sig = key.sign(si.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return si + "." + b64u(sig)


def jwt_parse(token):
    """Split a compact JWS; returns (header, payload, signing_input, signature)."""
    if not isinstance(token, str) or len(token) > 16384:
        raise ValueError("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("malformed")
    header = json.loads(b64u_dec(parts[0]))
    payload = json.loads(b64u_dec(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("malformed")
    return header, payload, (parts[0] + "." + parts[1]).encode("ascii"), b64u_dec(parts[2])


def jwt_verify(alg, public_key, signing_input, signature):
    try:
        if alg == "RS256":
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            public_key.verify(signature, signing_input,
                              padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                          salt_length=padding.PSS.AUTO), hashes.SHA256())
        else:
            return False
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def new_rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_key_pem(pem):
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)

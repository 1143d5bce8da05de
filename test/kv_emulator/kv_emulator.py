#!/usr/bin/env python3
"""Local emulator of Azure Key Vault (keys) and Microsoft Entra ID for cmk tests.

Written from the public Azure REST reference; it shares no code with cmk's
C++ client, so that each checks the other.  See CONTRACT.md beside this file
for the surface that tests rely on and README.md for how to drive it.

Python 3 standard library + python3-cryptography (Debian bookworm ships 38.0;
newer versions work too).

References used (cited at the places where they matter):
  [KV-REST]   Key Vault REST API 7.4, keys.json and examples in
              github.com/Azure/azure-rest-api-specs
              (specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.4)
  [KV-ERR]    learn.microsoft.com/azure/key-vault/general/rest-error-codes
  [KV-TSG]    Azure SDK "Troubleshooting Azure Key Vault SDK Issues" (403
              KeyOperationForbidden, 401 AKV10032 invalid issuer)
  [KV-KEYS]   learn.microsoft.com/azure/key-vault/keys/about-keys-details
              ("Date-time controlled operations": outside nbf/exp, decrypt,
              unwrap and verify still work; encrypt, wrap and sign are refused)
  [KV-SD]     learn.microsoft.com/azure/key-vault/general/soft-delete-overview
              (retention 7..90 days, default 90; purge protection) and the
              DeletionRecoveryLevel enum of [KV-REST] ("Purgeable",
              "Recoverable+Purgeable", "Recoverable",
              "Recoverable+ProtectedSubscription", "CustomizedRecoverable+Purgeable",
              "CustomizedRecoverable", "CustomizedRecoverable+ProtectedSubscription";
              Customized* when 7 <= retention < 90; recoverableDays is 0 without
              soft-delete).  A purge under purge protection is 403 Forbidden
              'Operation "purge" is not allowed because purge protection is
              enabled for this vault. ...' (the service's message as reported
              in SDK issues).
  [KV-LOG]    learn.microsoft.com/azure/key-vault/general/logging (AuditEvent
              fields and operationName values)
  [AAD-CC]    learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  [AAD-CERT]  learn.microsoft.com/entra/identity-platform/certificate-credentials
  [AAD-ERR]   learn.microsoft.com/entra/identity-platform/reference-error-codes
  [WIF]       learn.microsoft.com/entra/workload-id/workload-identity-federation
  [IMDS]      learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
  [APPSVC]    learn.microsoft.com/azure/app-service/overview-managed-identity
              (and the Container Apps equivalent): IDENTITY_ENDPOINT,
              X-IDENTITY-HEADER, api-version 2019-08-01
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

# python3-cryptography is imported on first use (load_crypto), so that the admin
# CLI, which only talks HTTPS to the running server, starts fast.
x509 = InvalidSignature = hashes = serialization = ec = padding = rsa = None
ExtendedKeyUsageOID = NameOID = None


def load_crypto():
    g = globals()
    if g["rsa"] is not None:
        return
    from cryptography import x509 as _x509
    from cryptography.exceptions import InvalidSignature as _InvalidSignature
    from cryptography.hazmat.primitives import hashes as _hashes, serialization as _serialization
    from cryptography.hazmat.primitives.asymmetric import ec as _ec, padding as _padding, rsa as _rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID as _EKU, NameOID as _NameOID
    g.update(x509=_x509, InvalidSignature=_InvalidSignature, hashes=_hashes, serialization=_serialization,
             ec=_ec, padding=_padding, ExtendedKeyUsageOID=_EKU, NameOID=_NameOID, rsa=_rsa)
    g["EC_CURVES"] = {"P-256": (_ec.SECP256R1, 32), "P-384": (_ec.SECP384R1, 48), "P-521": (_ec.SECP521R1, 66)}

# --------------------------------------------------------------------------
# Limits (everything is bounded)
# --------------------------------------------------------------------------
MAX_BODY = 1 << 20            # request bodies
MAX_CONNECTIONS = 128         # concurrent connections; more are closed at once
IDLE_TIMEOUT = 30             # seconds a kept-alive connection may stay idle
MAX_LATENCY_MS = 60_000       # injected latency cap
MAX_FAULT_COUNT = 10_000
MAX_AUDIT_RETURN = 100_000
SOFT_DELETE_DAYS = 90         # default retention (recoverableDays) of a soft-delete enabled vault
MIN_RETENTION_DAYS = 7        # [KV-SD] retention is 7..90 days
TOKEN_LIFETIME_MAX = 86400

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
WIF_AUDIENCE = "api://AzureADTokenExchange"   # [WIF] default audience
CERT_DOC = ("Review the documentation at "
            "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .")
WIF_DOC = ("Please check your federated identity credential Subject, Audience and Issuer "
           "against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")

# JsonWebKeyOperation values [KV-REST]
KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"]
RSA_DEFAULT_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
EC_DEFAULT_OPS = ["sign", "verify"]
RSA_WRAP_ALGS = ("RSA-OAEP-256", "RSA-OAEP", "RSA1_5")
EC_CURVES = {}   # filled by load_crypto()

# Access-policy key permissions and the RBAC data actions of each operation.
# Operation names follow Key Vault's AuditEvent log [KV-LOG].
OPS = {
    #  op            audit name         permission   RBAC data action
    "get":         ("KeyGet",          "get",       "Microsoft.KeyVault/vaults/keys/read"),
    "list":        ("KeyList",         "list",      "Microsoft.KeyVault/vaults/keys/read"),
    "listversions": ("KeyListVersions", "list",     "Microsoft.KeyVault/vaults/keys/read"),
    "create":      ("KeyCreate",       "create",    "Microsoft.KeyVault/vaults/keys/create/action"),
    "import":      ("KeyImport",       "import",    "Microsoft.KeyVault/vaults/keys/import/action"),
    "update":      ("KeyUpdate",       "update",    "Microsoft.KeyVault/vaults/keys/update/action"),
    "delete":      ("KeyDelete",       "delete",    "Microsoft.KeyVault/vaults/keys/delete"),
    "rotate":      ("KeyRotate",       "rotate",    "Microsoft.KeyVault/vaults/keys/rotate/action"),
    "wrapkey":     ("KeyWrap",         "wrapKey",   "Microsoft.KeyVault/vaults/keys/wrap/action"),
    "unwrapkey":   ("KeyUnwrap",       "unwrapKey", "Microsoft.KeyVault/vaults/keys/unwrap/action"),
    "getdeleted":  ("KeyGetDeleted",   "get",       "Microsoft.KeyVault/vaults/deletedKeys/read/action"),
    "recover":     ("KeyRecover",      "recover",   "Microsoft.KeyVault/vaults/deletedKeys/recover/action"),
    "purge":       ("KeyPurge",        "purge",     "Microsoft.KeyVault/vaults/deletedKeys/delete"),
}
KEY_PERMISSIONS = ["get", "list", "update", "create", "import", "delete", "recover", "backup",
                   "restore", "decrypt", "encrypt", "unwrapKey", "wrapKey", "verify", "sign",
                   "purge", "release", "rotate", "getrotationpolicy", "setrotationpolicy"]
# Built-in RBAC roles (their key data actions, as permissions).
ROLES = {
    "key vault crypto service encryption user": ["get", "list", "wrapKey", "unwrapKey"],
    "key vault crypto user": ["get", "list", "update", "backup", "encrypt", "decrypt",
                              "wrapKey", "unwrapKey", "sign", "verify"],
    "key vault crypto officer": list(KEY_PERMISSIONS),
    "key vault administrator": list(KEY_PERMISSIONS),
    "key vault reader": ["get", "list"],
}
FAULT_OPS = {"any", "token", "imds", "msi", "oidc"} | set(OPS)
TOKEN_OPS = ("token", "imds", "msi")
# DeletionRecoveryLevel values [KV-REST] [KV-SD].  What a level allows follows
# from its name, as the reference says: soft delete when it contains
# "Recoverable", purge by a caller when it contains "Purgeable".
RECOVERY_LEVELS = ["Purgeable", "Recoverable+Purgeable", "Recoverable", "Recoverable+ProtectedSubscription",
                   "CustomizedRecoverable+Purgeable", "CustomizedRecoverable",
                   "CustomizedRecoverable+ProtectedSubscription"]
_RECOVERY_LEVEL_RE = re.compile(r"[A-Za-z+]{1,64}")


def recovery_level_of(soft_delete, purge_protection, days, protected_subscription=False):
    """The recoveryLevel Key Vault reports for a vault's settings [KV-SD]."""
    if not soft_delete:
        return "Purgeable", 0
    level = "Recoverable" if days >= SOFT_DELETE_DAYS else "CustomizedRecoverable"
    if not purge_protection:
        level += "+Purgeable"
    elif protected_subscription:
        level += "+ProtectedSubscription"
    return level, days


def default_recoverable_days(level):
    """recoverableDays that goes with a level when none is given."""
    if "Recoverable" not in level:
        return 0
    return MIN_RETENTION_DAYS if level.startswith("Customized") else SOFT_DELETE_DAYS


def parse_time_arg(v, name):
    """An IntDate from the admin interface: UNIX seconds, "+N"/"-N" seconds from
    now, or None/"none"/"" for no value."""
    if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "")):
        return None
    if isinstance(v, bool):
        raise ValueError("%s: expected UNIX seconds, +N, -N or none" % name)
    if isinstance(v, int):
        return v
    s = str(v).strip()
    try:
        if s[0] in "+-":
            return now_ts() + int(s)
        return int(s)
    except (ValueError, IndexError):
        raise ValueError("%s: expected UNIX seconds, +N, -N or none, not %r" % (name, v))


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64U_RE = re.compile(r"[A-Za-z0-9_\-]*={0,2}")


def b64u_dec(s):
    """Strict base64url decoding (padding tolerated)."""
    if not isinstance(s, str) or not _B64U_RE.fullmatch(s):
        raise ValueError("not base64url")
    s = s.rstrip("=")
    if len(s) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def int_b64u(n, length=None):
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return b64u(n.to_bytes(length, "big"))


def b64u_int(s):
    return int.from_bytes(b64u_dec(s), "big")


def now_ts():
    return int(time.time())


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_of(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def parse_iso(s):
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d


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


def write_file(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# TLS: a CA of our own and a server certificate for localhost / 127.0.0.1
# --------------------------------------------------------------------------
def ensure_tls(state_dir):
    load_crypto()
    ca_pem = os.path.join(state_dir, "ca.pem")
    ca_key_pem = os.path.join(state_dir, "ca-key.pem")
    srv_pem = os.path.join(state_dir, "server.pem")
    srv_key_pem = os.path.join(state_dir, "server-key.pem")
    if all(os.path.exists(p) for p in (ca_pem, ca_key_pem, srv_pem, srv_key_pem)):
        return srv_pem, srv_key_pem
    import ipaddress
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca_key = new_rsa_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cmk test"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "cmk kv_emulator test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    srv_key = new_rsa_key()
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(srv_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=825))
           .add_extension(x509.SubjectAlternativeName([
               x509.DNSName("localhost"),
               x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
               x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
           .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
           .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                        key_encipherment=True, data_encipherment=False,
                                        key_agreement=False, key_cert_sign=False, crl_sign=False,
                                        encipher_only=False, decipher_only=False), critical=True)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.SubjectKeyIdentifier.from_public_key(srv_key.public_key()), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                          critical=False)
           .sign(ca_key, hashes.SHA256()))
    write_file(ca_key_pem, key_pem(ca_key), 0o600)
    write_file(srv_key_pem, key_pem(srv_key), 0o600)
    write_file(srv_pem, srv.public_bytes(serialization.Encoding.PEM) +
               ca.public_bytes(serialization.Encoding.PEM))
    write_file(ca_pem, ca.public_bytes(serialization.Encoding.PEM))
    return srv_pem, srv_key_pem


# --------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------
class Resp:
    def __init__(self, status, body=None, headers=None, drop=False, raw=None):
        self.status = status
        self.headers = list(headers or [])
        self.drop = drop
        if raw is not None:
            self.body = raw
        elif body is None:
            self.body = b""
        else:
            self.body = json.dumps(body).encode("utf-8")
        self.is_json = body is not None or raw is not None


class KVError(Exception):
    """A Key Vault error: {"error": {"code", "message", "innererror"?: {"code"}}} [KV-REST]."""

    def __init__(self, status, code, message, inner=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner
        self.headers = headers or []

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.inner:
            err["innererror"] = {"code": self.inner}
        return {"error": err}

    @property
    def result(self):
        return self.inner or self.code


class AADError(Exception):
    """A Microsoft Entra token endpoint error [AAD-ERR] ("Handling error codes")."""

    def __init__(self, status, error, code, message):
        super().__init__(message)
        self.status, self.error, self.code, self.message = status, error, code, message


class BodyError(Exception):
    pass


def key_not_found(name, version=None):
    ident = name if not version else name + "/" + version
    return KVError(404, "KeyNotFound",
                   "A key with (name/id) %s was not found in this key vault. If you recently deleted "
                   "this key you may be able to recover it using the correct recovery command. For help "
                   "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182" % ident)


def bad_param(message):
    return KVError(400, "BadParameter", message)


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------
class Emulator:
    def __init__(self, state_dir, token_lifetime=3600, tenant=None, verbose=False):
        load_crypto()
        self.dir = os.path.abspath(state_dir)
        self.verbose = verbose
        self.lock = threading.RLock()
        self.port = None
        self.state_path = os.path.join(self.dir, "state.json")
        self.audit_path = os.path.join(self.dir, "audit.jsonl")
        self.faults = []
        self._keycache = {}
        self.admin_secret = self._admin_secret()
        self._load()
        if tenant:
            self.state["vault_tenant"] = tenant
        if token_lifetime is not None:
            self.state["token_lifetime"] = int(token_lifetime)
        self._save()
        self.signing_key = load_key_pem(self.state["signing_key"])
        self.issuer_key = load_key_pem(self.state["issuer_key"])
        self.signing_kid = b64u(hashlib.sha1(self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())
        self.issuer_kid = b64u(hashlib.sha256(self.issuer_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())[:22]

    # ---- persistence ------------------------------------------------------
    def _admin_secret(self):
        path = os.path.join(self.dir, "admin_secret")
        if os.path.exists(path):
            with open(path) as f:
                s = f.read().strip()
            if s:
                return s
        s = secrets.token_urlsafe(32)
        write_file(path, s + "\n", 0o600)
        return s

    def _load(self):
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                self.state = json.load(f)
            return
        self.state = {
            "format": 1,
            "vault_tenant": None,
            "auth_mode": "accessPolicy",
            "token_lifetime": 3600,
            "token_lifetimes": {},
            "soft_delete": True,
            "purge_protection": True,
            "retention_days": SOFT_DELETE_DAYS,
            "protected_subscription": False,
            "identities": {},
            "permissions": {},
            "keys": {},
            "identity_header": secrets.token_hex(16),
            "signing_key": key_pem(new_rsa_key()),
            "issuer_key": key_pem(new_rsa_key()),
        }

    def _save(self):
        write_file(self.state_path, json.dumps(self.state, indent=1, sort_keys=True), 0o600)

    # ---- URLs ------------------------------------------------------------
    @property
    def base(self):
        return "https://localhost:%d" % self.port

    @property
    def vault_name(self):
        return "localhost"

    @property
    def issuer_url(self):
        return self.base + "/oidc"

    def vault_tenant(self):
        return self.state.get("vault_tenant")

    def tenants(self):
        t = {i["tenant"] for i in self.state["identities"].values()}
        if self.vault_tenant():
            t.add(self.vault_tenant())
        return t

    @staticmethod
    def normalize_resource(res):
        res = res.strip()
        if res.endswith("/.default"):
            res = res[: -len("/.default")]
        return res.rstrip("/")

    def known_resource(self, res):
        return res in ("https://localhost", "https://vault.azure.net", "https://127.0.0.1",
                       self.base, "https://127.0.0.1:%d" % self.port)

    # ---- audit -----------------------------------------------------------
    def audit(self, req, operation, caller="", tenant="", key="", version="", result="Success",
              status=200, detail=None):
        rec = {"time": iso_now(), "caller": caller or "", "tenant": tenant or "",
               "operation": operation, "key": key or "", "version": version or "",
               "result": result, "status": status, "requestId": req.rid if req else "",
               "durationMs": int((time.monotonic() - req.t0) * 1000) if req else 0}
        if detail:
            rec["detail"] = detail
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            with open(self.audit_path, "a") as f:
                f.write(line)
                f.flush()
        return rec

    def read_audit(self, since=None, caller=None, operation=None):
        out = []
        if not os.path.exists(self.audit_path):
            return out
        since_d = parse_iso(since) if since else None
        with self.lock:
            with open(self.audit_path) as f:
                lines = f.readlines()
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if since_d and parse_iso(rec["time"]) < since_d:
                continue
            if caller and rec.get("caller") != caller:
                continue
            if operation and rec.get("operation") != operation:
                continue
            out.append(rec)
        return out[-MAX_AUDIT_RETURN:]

    # ---- faults ------------------------------------------------------------
    def take_fault(self, op, req):
        if op in OPS and not req.headers.get("Authorization"):
            # The unauthenticated first request of the bearer-challenge flow
            # (answered 401) does not consume a queued fault.
            return None
        with self.lock:
            for f in self.faults:
                if f["op"] == "any" or f["op"] == op:
                    if f.get("after", 0) > 0:
                        # --after K: the first K matching requests pass untouched.
                        f["after"] -= 1
                        return None
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                    return dict(f)
        return None

    def fault_response(self, op, f, req):
        status = f.get("status")
        headers = []
        if f.get("retry_after") is not None:
            headers.append(("Retry-After", str(f["retry_after"])))
        elif status == 429:
            headers.append(("Retry-After", "1"))
        if f.get("drop"):
            self.audit(req, self.audit_name(op), result="InjectedFault", status=0, detail="dropped")
            return Resp(0, drop=True)
        if f.get("malformed"):
            st = status or 200
            self.audit(req, self.audit_name(op), result="InjectedFault", status=st, detail="malformed")
            return Resp(st, raw=b'{"kid": "' + self.base.encode() + b'/keys/', headers=headers)
        self.audit(req, self.audit_name(op), result="InjectedFault", status=status,
                   detail="status %d" % status)
        if op in TOKEN_OPS or op == "oidc":
            codes = {429: ("AADSTS90055", "TenantThrottlingError - There are too many incoming requests."),
                     503: ("AADSTS90006", "The server is temporarily too busy to handle the request.")}
            code, msg = codes.get(status, ("AADSTS90033", "A transient error has occurred. Please try again."))
            error = "temporarily_unavailable" if status in (429, 503) else "server_error"
            if op == "token":
                return self.aad_response(req, AADError(status, error, code, msg), headers)
            return Resp(status, {"error": error, "error_description": "%s: %s" % (code, msg)}, headers)
        kv = {429: ("Throttled", "Request was not processed because too many requests were received. "
                                 "Reason: VaultRequestTypeLimitReached"),
              500: ("InternalServerError", "An internal server error occurred. Please retry."),
              502: ("BadGateway", "Bad gateway."),
              503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry."),
              504: ("GatewayTimeout", "The gateway timed out.")}
        code, msg = kv.get(status, (http.client.responses.get(status, "Error").replace(" ", ""),
                                    "Injected fault."))
        return Resp(status, KVError(status, code, msg).body(), headers)

    @staticmethod
    def audit_name(op):
        if op in OPS:
            return OPS[op][0]
        if op in TOKEN_OPS:
            return "Authentication"
        return op

    # ---- routing -----------------------------------------------------------
    _NAME = r"([^/]+)"

    def route(self, method, path):
        """Returns (op, function, kwargs) or None."""
        p = path.rstrip("/") or "/"
        m = re.fullmatch(r"/_admin/([a-z\-]+)", p)
        if m:
            return ("admin", self.h_admin, {"command": m.group(1)}) if method == "POST" else None
        m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", p)
        if m and method == "POST":
            return "token", self.h_token, {"tenant": m.group(1)}
        m = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", p)
        if m and method == "GET":
            return "oidc", self.h_tenant_discovery, {"tenant": m.group(1)}
        if p == "/metadata/identity/oauth2/token" and method == "GET":
            return "imds", self.h_imds, {}
        if p == "/msi/token" and method == "GET":
            return "msi", self.h_msi, {}
        if p == "/oidc/.well-known/openid-configuration" and method == "GET":
            return "oidc", self.h_oidc_config, {}
        if p == "/oidc/jwks" and method == "GET":
            return "oidc", self.h_oidc_jwks, {}
        segs = p.strip("/").split("/")
        if segs[0] == "keys":
            n = len(segs)
            if n == 1 and method == "GET":
                return "list", self.kv_list, {}
            if n == 2:
                if method == "GET":
                    return "get", self.kv_get, {"name": segs[1], "version": None}
                if method == "PUT":
                    return "import", self.kv_import, {"name": segs[1]}
                if method == "DELETE":
                    return "delete", self.kv_delete, {"name": segs[1]}
                if method == "PATCH":
                    return "update", self.kv_update, {"name": segs[1], "version": None}
            if n == 3:
                if segs[2] == "create" and method == "POST":
                    return "create", self.kv_create, {"name": segs[1]}
                if segs[2] == "rotate" and method == "POST":
                    return "rotate", self.kv_rotate, {"name": segs[1]}
                if segs[2] == "versions" and method == "GET":
                    return "listversions", self.kv_list_versions, {"name": segs[1]}
                if segs[2] in ("wrapkey", "unwrapkey") and method == "POST":
                    return segs[2], self.kv_crypto, {"name": segs[1], "version": None, "op": segs[2]}
                if method == "GET":
                    return "get", self.kv_get, {"name": segs[1], "version": segs[2]}
                if method == "PATCH":
                    return "update", self.kv_update, {"name": segs[1], "version": segs[2]}
            if n == 4 and segs[3] in ("wrapkey", "unwrapkey") and method == "POST":
                return segs[3], self.kv_crypto, {"name": segs[1], "version": segs[2], "op": segs[3]}
        if segs[0] == "deletedkeys" and len(segs) in (2, 3):
            if len(segs) == 2 and method == "GET":
                return "getdeleted", self.kv_get_deleted, {"name": segs[1]}
            if len(segs) == 2 and method == "DELETE":
                return "purge", self.kv_purge, {"name": segs[1]}
            if len(segs) == 3 and segs[2] == "recover" and method == "POST":
                return "recover", self.kv_recover, {"name": segs[1]}
        return None

    def handle(self, req):
        r = self.route(req.method, req.path)
        if r is None:
            return Resp(404, KVError(404, "NotFound", "The requested resource %s %s was not found."
                                     % (req.method, req.path)).body())
        op, fn, kwargs = r
        if op == "admin":
            return fn(req, **kwargs)
        f = self.take_fault(op, req)
        if f:
            if f.get("latency_ms"):
                time.sleep(min(MAX_LATENCY_MS, f["latency_ms"]) / 1000.0)
            if f.get("drop") or f.get("malformed") or f.get("status"):
                return self.fault_response(op, f, req)
        if op in OPS:
            return self.kv_call(req, op, fn, kwargs)
        return fn(req, **kwargs)

    # ======================================================================
    # Microsoft Entra ID: token endpoint (client credentials) [AAD-CC]
    # ======================================================================
    def aad_response(self, req, e, headers=None):
        # Error body shape of [AAD-ERR] "Handling error codes in your application".
        trace = str(uuid.uuid4())
        corr = req.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        num = int(e.code[len("AADSTS"):])
        body = {"error": e.error,
                "error_description": "%s: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                                     % (e.code, e.message, trace, corr, stamp),
                "error_codes": [num], "timestamp": stamp, "trace_id": trace,
                "correlation_id": corr, "error_uri": "%s/error?code=%d" % (self.base, num)}
        return Resp(e.status, body, headers)

    def token_lifetime(self, ident, flow):
        """Seconds a new token lives: the identity's own setting, else the
        sign-in flow's (token, imds, msi), else the global one."""
        with self.lock:
            per_id = self.state["identities"].get(ident["client_id"], {}).get("token_lifetime")
            per_flow = self.state.get("token_lifetimes", {}).get(flow)
            return int(per_id or per_flow or self.state.get("token_lifetime", 3600))

    def issue_token(self, ident, resource, acr, flow):
        lifetime = self.token_lifetime(ident, flow)
        t = now_ts()
        tid = ident["tenant"]
        claims = {"aud": resource, "iss": "https://sts.windows.net/%s/" % tid, "iat": t, "nbf": t,
                  "exp": t + lifetime, "aio": b64u(secrets.token_bytes(24)), "appid": ident["client_id"],
                  "appidacr": acr, "idp": "https://sts.windows.net/%s/" % tid, "idtyp": "app",
                  "oid": ident["oid"], "rh": "0.emulator.", "sub": ident["oid"], "tid": tid,
                  "uti": b64u(secrets.token_bytes(16)), "ver": "1.0"}
        # Access token header and v1 claims as in [KV-ERR] "The token is expired".
        tok = jwt_encode({"typ": "JWT", "alg": "RS256", "x5t": self.signing_kid, "kid": self.signing_kid},
                         claims, self.signing_key)
        return tok, lifetime, t

    def h_token(self, req, tenant):
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        client_id = form.get("client_id", "")
        try:
            ident, acr = self._token_checks(tenant, form)
            scope = form.get("scope", "").strip()
            scopes = scope.split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise AADError(400, "invalid_scope", "AADSTS1002012",
                               "The provided value for scope %s is not valid. Client credential flows must "
                               "have a scope value with /.default suffixed to the resource identifier "
                               "(application ID URI)." % scope)
            resource = self.normalize_resource(scopes[0])
            if not self.known_resource(resource):
                raise AADError(400, "invalid_resource", "AADSTS500011",
                               "The resource principal named %s was not found in the tenant named %s. This "
                               "can happen if the application has not been installed by the administrator of "
                               "the tenant or consented to by any user in the tenant. You might have sent "
                               "your authentication request to the wrong tenant." % (resource, tenant))
        except AADError as e:
            self.audit(req, "Authentication", caller=client_id, tenant=tenant, result=e.code,
                       status=e.status, detail=e.message[:200])
            return self.aad_response(req, e)
        tok, lifetime, _ = self.issue_token(ident, resource, acr, "token")
        self.audit(req, "Authentication", caller=ident["client_id"], tenant=tenant,
                   detail="client_credentials acr=%s" % acr)
        return Resp(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                          "access_token": tok})

    def _token_checks(self, tenant, form):
        with self.lock:
            if tenant not in self.tenants():
                raise AADError(400, "invalid_request", "AADSTS90002",
                               "Tenant '%s' not found. Check to make sure you have the correct tenant ID and "
                               "are signing into the correct cloud. Check with your subscription "
                               "administrator, this may happen if there are no active subscriptions for the "
                               "tenant." % tenant)
            for p in ("grant_type", "client_id", "scope"):
                if not form.get(p):
                    raise AADError(400, "invalid_request", "AADSTS900144",
                                   "The request body must contain the following parameter: '%s'." % p)
            if form["grant_type"] != "client_credentials":
                raise AADError(400, "unsupported_grant_type", "AADSTS70003",
                               "The app requested an unsupported grant type '%s'." % form["grant_type"])
            cid = form["client_id"]
            ident = self.state["identities"].get(cid)
            if ident is None or ident["tenant"] != tenant:
                raise AADError(400, "unauthorized_client", "AADSTS700016",
                               "Application with identifier '%s' was not found in the directory '%s'. This "
                               "can happen if the application has not been installed by the administrator "
                               "of the tenant or consented to by any user in the tenant. You may have sent "
                               "your authentication request to the wrong tenant." % (cid, tenant))
            ident = dict(ident)
        if "client_secret" in form:
            if not ident.get("secret") or not hmac.compare_digest(
                    ident["secret"].encode(), form["client_secret"].encode()):
                raise AADError(401, "invalid_client", "AADSTS7000215",
                               "Invalid client secret provided. Ensure the secret being sent in the request "
                               "is the client secret value, not the client secret ID, for a secret added to "
                               "app '%s'." % cid)
            return ident, "1"
        if "client_assertion" in form:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise AADError(400, "invalid_request", "AADSTS900144",
                               "The request body must contain the following parameter: "
                               "'client_assertion_type'.")
            self._check_assertion(tenant, ident, form["client_assertion"])
            return ident, "2"
        raise AADError(401, "invalid_client", "AADSTS7000218",
                       "The request body must contain the following parameter: 'client_assertion' or "
                       "'client_secret'.")

    def _assertion_audiences(self, tenant):
        out = set()
        for host in (self.base, "https://127.0.0.1:%d" % self.port):
            out |= {"%s/%s/oauth2/v2.0/token" % (host, tenant), "%s/%s/oauth2/token" % (host, tenant),
                    "%s/%s/v2.0" % (host, tenant), "%s/%s/" % (host, tenant), "%s/%s" % (host, tenant)}
        return out

    @staticmethod
    def _time_range_error(t, nbf, exp):
        return AADError(401, "invalid_client", "AADSTS700024",
                        "Client assertion is not within its valid time range. Current time: %s, assertion "
                        "valid from %s, expiry time of assertion %s. %s"
                        % (iso_of(t), iso_of(nbf) if nbf else "", iso_of(exp) if exp else "", CERT_DOC))

    def _check_assertion(self, tenant, ident, assertion):
        malformed = AADError(400, "invalid_request", "AADSTS50027", "JWT token is invalid or malformed.")
        try:
            header, payload, si, sig = jwt_parse(assertion)
        except (ValueError, UnicodeDecodeError):
            raise malformed
        cid = ident["client_id"]
        t = now_ts()
        try:
            nbf = int(payload["nbf"]) if "nbf" in payload else None
            exp = int(payload["exp"]) if "exp" in payload else None
        except (TypeError, ValueError):
            raise malformed
        if payload.get("iss") != cid:
            return self._check_federated(ident, header, payload, si, sig, t, nbf, exp)
        # --- certificate credential [AAD-CERT]: alg RS256 (or PS256), x5t or x5t#S256,
        # aud = token endpoint, iss = sub = client_id, exp, nbf, jti.
        if header.get("alg") not in ("RS256", "PS256"):
            raise malformed
        thumb = header.get("x5t#S256") or header.get("x5t")
        if not isinstance(thumb, str):
            raise AADError(401, "invalid_client", "AADSTS700027",
                           "Client assertion failed signature validation. [Reason - The key was not found., "
                           "the assertion header carries no x5t or x5t#S256 thumbprint.]")
        cert = None
        for c in ident.get("certs", []):
            if thumb in (c["x5t"], c["x5t#S256"]):
                cert = c
        thumb_hex = thumb
        try:
            thumb_hex = b64u_dec(thumb).hex().upper()
        except ValueError:
            pass
        if cert is None:
            raise AADError(401, "invalid_client", "AADSTS700027",
                           "Client assertion contains an invalid signature. [Reason - The key was not found., "
                           "Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph "
                           "Explorer or directly use MS Graph to see configured keys for app Id '%s'.]"
                           % (thumb_hex, cid))
        pub = x509.load_pem_x509_certificate(cert["pem"].encode()).public_key()
        if not jwt_verify(header.get("alg"), pub, si, sig):
            raise AADError(401, "invalid_client", "AADSTS700027",
                           "Client assertion contains an invalid signature. [Reason - The provided signature "
                           "value did not match the expected signature value., Thumbprint of key used by "
                           "client: '%s', Found key 'Start=%s']" % (thumb_hex, cert.get("added", "")))
        if payload.get("sub") != cid:
            raise AADError(401, "invalid_client", "AADSTS700021",
                           "Client assertion application identifier doesn't match 'client_id' parameter. %s"
                           % CERT_DOC)
        aud = payload.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in self._assertion_audiences(tenant) for a in auds):
            raise AADError(401, "invalid_client", "AADSTS700023",
                           "Client assertion audience claim does not match Realm issuer. %s" % CERT_DOC)
        if exp is None or nbf is None:
            raise AADError(400, "invalid_request", "AADSTS90014",
                           "The required field '%s' is missing from the credential. Ensure that you have "
                           "all the necessary parameters for the login request." % ("exp" if exp is None else "nbf"))
        if t >= exp or t < nbf:
            raise self._time_range_error(t, nbf, exp)
        if not payload.get("jti"):
            raise AADError(400, "invalid_request", "AADSTS90014",
                           "The required field 'jti' is missing from the credential. Ensure that you have all "
                           "the necessary parameters for the login request.")

    def _check_federated(self, ident, header, payload, si, sig, t, nbf, exp):
        # Workload identity federation [WIF]: the assertion is a token of an external
        # issuer (here the emulator's own OIDC issuer) matched against the app's
        # federated identity credentials (issuer, subject, audience).
        iss, sub, aud = payload.get("iss"), payload.get("sub"), payload.get("aud")
        subjects = ident.get("federated_subjects") or []
        if not subjects or iss != self.issuer_url:
            raise AADError(401, "invalid_client", "AADSTS700211",
                           "No matching federated identity record found for presented assertion issuer '%s'. %s"
                           % (iss, WIF_DOC))
        if header.get("alg") != "RS256" or header.get("kid") != self.issuer_kid or \
                not jwt_verify("RS256", self.issuer_key.public_key(), si, sig):
            raise AADError(401, "invalid_client", "AADSTS700027",
                           "Client assertion failed signature validation. [Reason - The key was not found or "
                           "the signature did not verify against the issuer's keys (%s/jwks).]" % self.issuer_url)
        if exp is None or t >= exp or (nbf is not None and t < nbf):
            raise self._time_range_error(t, nbf, exp)
        if sub not in subjects:
            raise AADError(401, "invalid_client", "AADSTS700213",
                           "No matching federated identity record found for presented assertion subject '%s'. %s"
                           % (sub, WIF_DOC))
        auds = aud if isinstance(aud, list) else [aud]
        if WIF_AUDIENCE not in auds:
            raise AADError(401, "invalid_client", "AADSTS700212",
                           "No matching federated identity record found for presented assertion audience '%s'. %s"
                           % (aud, WIF_DOC))

    def h_tenant_discovery(self, req, tenant):
        if tenant not in self.tenants():
            return self.aad_response(req, AADError(400, "invalid_tenant", "AADSTS90002",
                                                   "Tenant '%s' not found." % tenant))
        b = "%s/%s" % (self.base, tenant)
        return Resp(200, {"token_endpoint": b + "/oauth2/v2.0/token",
                          "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                                    "client_secret_basic"],
                          "jwks_uri": b + "/discovery/v2.0/keys", "issuer": "%s/%s/v2.0" % (self.base, tenant),
                          "authorization_endpoint": b + "/oauth2/v2.0/authorize",
                          "tenant_region_scope": "local"})

    # ---- the emulator's own OIDC issuer (for workload identity) ---------------
    def h_oidc_config(self, req):
        return Resp(200, {"issuer": self.issuer_url, "jwks_uri": self.issuer_url + "/jwks",
                          "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                          "id_token_signing_alg_values_supported": ["RS256"]})

    def h_oidc_jwks(self, req):
        nums = self.issuer_key.public_key().public_numbers()
        return Resp(200, {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.issuer_kid,
                                    "n": int_b64u(nums.n), "e": int_b64u(nums.e)}]})

    def mint_federated(self, subject, audience=None, expires_in=3600, issuer=None):
        t = now_ts()
        claims = {"iss": issuer or self.issuer_url, "sub": subject, "aud": [audience or WIF_AUDIENCE],
                  "iat": t, "nbf": min(t, t + expires_in), "exp": t + expires_in, "jti": str(uuid.uuid4())}
        return jwt_encode({"alg": "RS256", "typ": "JWT", "kid": self.issuer_kid}, claims, self.issuer_key)

    # ======================================================================
    # Managed identity endpoints
    # ======================================================================
    def _managed_identity(self, query):
        with self.lock:
            mis = [i for i in self.state["identities"].values() if i.get("managed")]
            cid = query.get("client_id") or query.get("clientid")
            oid = query.get("principal_id") or query.get("object_id")
            if cid:
                mis = [i for i in mis if i["client_id"] == cid]
            elif oid:
                mis = [i for i in mis if i["oid"] == oid]
            else:
                mis.sort(key=lambda i: i.get("created", 0))
            return dict(mis[0]) if mis else None

    def _mi_token(self, req, kind):
        q = req.query
        resource = self.normalize_resource(q.get("resource", ""))
        ident = self._managed_identity(q)
        if ident is None:
            self.audit(req, "Authentication", caller=q.get("client_id", ""), result="IdentityNotFound",
                       status=400, detail=kind)
            return None, Resp(400, {"error": "invalid_request", "error_description": "Identity not found"})
        if not self.known_resource(resource):
            msg = ("AADSTS500011: The resource principal named %s was not found in the tenant named %s."
                   % (resource, ident["tenant"]))
            self.audit(req, "Authentication", caller=ident["client_id"], tenant=ident["tenant"],
                       result="AADSTS500011", status=400, detail=kind)
            return None, Resp(400, {"error": "invalid_resource", "error_description": msg})
        tok, lifetime, t = self.issue_token(ident, resource, "2", kind)
        self.audit(req, "Authentication", caller=ident["client_id"], tenant=ident["tenant"], detail=kind)
        return (ident, tok, lifetime, t, resource), None

    def h_imds(self, req):
        # [IMDS]: GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
        # [&client_id=C], header "Metadata: true"; all numbers in the answer are strings.
        if req.headers.get("Metadata", "").lower() != "true":
            self.audit(req, "Authentication", result="MissingMetadataHeader", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required metadata header not specified"})
        if not req.query.get("api-version"):
            self.audit(req, "Authentication", result="MissingApiVersion", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required query variable 'api-version' is missing"})
        if not req.query.get("resource"):
            self.audit(req, "Authentication", result="MissingResource", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required audience parameter not specified"})
        ok, err = self._mi_token(req, "imds")
        if err:
            return err
        ident, tok, lifetime, t, resource = ok
        return Resp(200, {"access_token": tok, "client_id": ident["client_id"], "expires_in": str(lifetime),
                          "expires_on": str(t + lifetime), "ext_expires_in": str(lifetime),
                          "not_before": str(t), "resource": resource, "token_type": "Bearer",
                          "refresh_token": ""})

    def h_msi(self, req):
        # [APPSVC]: GET {IDENTITY_ENDPOINT}?resource=R&api-version=2019-08-01[&client_id=C]
        # with header X-IDENTITY-HEADER: {IDENTITY_HEADER}.
        hdr = req.headers.get("X-IDENTITY-HEADER", "")
        if not hdr or not hmac.compare_digest(hdr.encode(), self.state["identity_header"].encode()):
            self.audit(req, "Authentication", result="InvalidIdentityHeader", status=401, detail="msi")
            return Resp(401, {"statusCode": 401,
                              "message": "Unauthorized: X-IDENTITY-HEADER is missing or invalid."})
        if req.query.get("api-version", "") < "2019-08-01":
            self.audit(req, "Authentication", result="InvalidApiVersion", status=400, detail="msi")
            return Resp(400, {"statusCode": 400, "message": "api-version 2019-08-01 or later is required."})
        if not req.query.get("resource"):
            self.audit(req, "Authentication", result="MissingResource", status=400, detail="msi")
            return Resp(400, {"statusCode": 400, "message": "The 'resource' query parameter is required."})
        ok, err = self._mi_token(req, "msi")
        if err:
            return err
        ident, tok, lifetime, t, resource = ok
        return Resp(200, {"access_token": tok, "expires_on": str(t + lifetime), "resource": resource,
                          "token_type": "Bearer", "client_id": ident["client_id"]})

    # ======================================================================
    # Key Vault
    # ======================================================================
    def challenge(self):
        # The bearer challenge of [KV-ERR]; the resource is the vault host without
        # port (clients check that the vault host ends with it).
        tenant = self.vault_tenant() or "common"
        return ("WWW-Authenticate", 'Bearer authorization="%s/%s", resource="https://localhost"'
                % (self.base, tenant))

    def unauthorized(self, message):
        return KVError(401, "Unauthorized", message, headers=[self.challenge()])

    def authenticate(self, req):
        h = req.headers.get("Authorization", "")
        if not h.lower().startswith("bearer ") or not h[7:].strip():
            raise self.unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        try:
            header, claims, si, sig = jwt_parse(h[7:].strip())
        except (ValueError, UnicodeDecodeError):
            raise self.unauthorized("[InvalidToken] Error validating token: the token is malformed.")
        if header.get("alg") != "RS256" or not jwt_verify("RS256", self.signing_key.public_key(), si, sig):
            raise self.unauthorized("[SignatureValidationFailed] Error validating token: the signature is "
                                    "not valid.")
        t = now_ts()
        try:
            exp, nbf = int(claims["exp"]), int(claims.get("nbf", 0))
        except (KeyError, TypeError, ValueError):
            raise self.unauthorized("[InvalidToken] Error validating token: the token is malformed.")
        if t >= exp:
            raise self.unauthorized("[TokenExpired] Error validating token: 'S2S12086'.")
        if t < nbf:
            raise self.unauthorized("[TokenNotYetValid] Error validating token: 'S2S12085'.")
        aud = str(claims.get("aud", "")).rstrip("/")
        if aud not in ("https://localhost", "https://vault.azure.net", "https://127.0.0.1"):
            raise self.unauthorized("AKV10022: Invalid audience. Expected https://vault.azure.net, found: %s."
                                    % claims.get("aud"))
        vt = self.vault_tenant()
        if vt and claims.get("tid") != vt:
            raise self.unauthorized("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, "
                                    "found %s." % (vt, claims.get("iss")))
        return claims

    def authorize(self, claims, op, name):
        _, perm, action = OPS[op]
        appid = claims.get("appid", "")
        with self.lock:
            granted = {p.lower() for p in self.state["permissions"].get(appid, [])}
            mode = self.state.get("auth_mode", "accessPolicy")
        if perm.lower() in granted or "all" in granted:
            return
        caller = "appid=%s;oid=%s;iss=%s" % (appid, claims.get("oid"), claims.get("iss"))
        if mode == "rbac":
            raise KVError(403, "Forbidden",
                          "Caller is not authorized to perform action on resource.\r\nIf role assignments, "
                          "deny assignments or role definitions were changed recently, please observe "
                          "propagation time.\r\nCaller: %s\r\nAction: '%s'\r\nResource: "
                          "'/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/providers/"
                          "microsoft.keyvault/vaults/%s/keys/%s'\r\nAssignment: (not found)\r\n"
                          "DenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=local\r\n"
                          % (caller, action, self.vault_name, name or "", self.vault_name), inner="ForbiddenByRbac")
        raise KVError(403, "Forbidden",
                      "The user, group or application '%s' does not have keys %s permission on key vault "
                      "'%s;location=local'. For help resolving this issue, please see "
                      "https://go.microsoft.com/fwlink/?linkid=2125287" % (caller, perm, self.vault_name),
                      inner="ForbiddenByPolicy")

    def kv_call(self, req, op, fn, kwargs):
        audit_op = OPS[op][0]
        name = kwargs.get("name", "")
        version = kwargs.get("version") or ""
        caller = tenant = ""
        headers = [("x-ms-keyvault-service-version", "1.9.2.0"),
                   ("x-ms-keyvault-region", "local"), ("x-ms-keyvault-network-info", "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;")]
        try:
            claims = self.authenticate(req)
            caller, tenant = claims.get("appid", ""), claims.get("tid", "")
            if not req.query.get("api-version"):
                raise bad_param("The api-version query parameter is missing. Specify api-version=7.4.")
            self.authorize(claims, op, name)
            status, body, version = fn(req, **kwargs)
        except KVError as e:
            self.audit(req, audit_op, caller, tenant, name, version, e.result, e.status,
                       detail=e.message[:200])
            return Resp(e.status, e.body(), headers + e.headers)
        self.audit(req, audit_op, caller, tenant, name, version, "Success", status)
        return Resp(status, body, headers)

    # ---- key store -----------------------------------------------------------
    NAME_RE = re.compile(r"[0-9A-Za-z\-]{1,127}")

    def check_name(self, name):
        if not self.NAME_RE.fullmatch(name or ""):
            raise bad_param("The request URI contains an invalid name: %s" % name)

    def _live_key(self, name):
        k = self.state["keys"].get(name)
        if k is None or k.get("deleted"):
            raise key_not_found(name)
        return k

    def _version(self, name, version):
        k = self._live_key(name)
        if not version:
            version = k["order"][-1]
        rec = k["versions"].get(version)
        if rec is None:
            raise key_not_found(name, version)
        return version, rec

    def private_key(self, name, version):
        ck = (name, version)
        key = self._keycache.get(ck)
        if key is None:
            key = load_key_pem(self.state["keys"][name]["versions"][version]["pem"])
            self._keycache[ck] = key
        return key

    def kid(self, name, version=None):
        return "%s/keys/%s" % (self.base, name) + ("/" + version if version else "")

    def vault_recovery(self):
        st = self.state
        return recovery_level_of(st.get("soft_delete", True), st.get("purge_protection", True),
                                 st.get("retention_days", SOFT_DELETE_DAYS), st.get("protected_subscription", False))

    def key_recovery(self, name):
        """(recoveryLevel, recoverableDays) of a key: the vault's, unless the
        admin interface set one on this key (a test hook: Azure has it per vault)."""
        k = self.state["keys"].get(name) or {}
        r = k.get("recovery")
        if r:
            return r["level"], r["days"]
        return self.vault_recovery()

    def attributes(self, name, rec):
        a = {"enabled": rec["enabled"]}
        if rec.get("nbf") is not None:
            a["nbf"] = rec["nbf"]
        if rec.get("exp") is not None:
            a["exp"] = rec["exp"]
        level, days = self.key_recovery(name)
        a.update({"created": rec["created"], "updated": rec["updated"],
                  "recoveryLevel": level, "recoverableDays": days, "exportable": False})
        return a

    def bundle(self, name, version):
        # KeyBundle / JsonWebKey of [KV-REST] (CreateKey-example.json): public parts only.
        rec = self.state["keys"][name]["versions"][version]
        jwk = {"kid": self.kid(name, version), "kty": rec["kty"], "key_ops": list(rec["key_ops"])}
        pub = self.private_key(name, version).public_key()
        if rec["kty"].startswith("RSA"):
            nums = pub.public_numbers()
            jwk["n"] = int_b64u(nums.n)
            jwk["e"] = int_b64u(nums.e)
        else:
            nums = pub.public_numbers()
            size = EC_CURVES[rec["crv"]][1]
            jwk["crv"] = rec["crv"]
            jwk["x"] = int_b64u(nums.x, size)
            jwk["y"] = int_b64u(nums.y, size)
        out = {"key": jwk, "attributes": self.attributes(name, rec)}
        if rec.get("tags"):
            out["tags"] = dict(rec["tags"])
        return out

    def deleted_bundle(self, name):
        k = self.state["keys"][name]
        out = self.bundle(name, k["order"][-1])
        out.update({"recoveryId": "%s/deletedkeys/%s" % (self.base, name),
                    "deletedDate": k["deleted"]["deletedDate"],
                    "scheduledPurgeDate": k["deleted"]["scheduledPurgeDate"]})
        return out

    @staticmethod
    def _parse_ops(ops, kty):
        if ops is None:
            return list(RSA_DEFAULT_OPS if kty.startswith("RSA") else EC_DEFAULT_OPS)
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise bad_param("Property key_ops has invalid value.")
        for o in ops:
            if o not in KEY_OPS:
                raise bad_param("Invalid key operation: '%s'." % o)
        return list(dict.fromkeys(ops))

    @staticmethod
    def _parse_attrs(attrs, rec):
        if attrs is None:
            return
        if not isinstance(attrs, dict):
            raise bad_param("Property attributes has invalid value.")
        if "enabled" in attrs:
            if not isinstance(attrs["enabled"], bool):
                raise bad_param("Property attributes.enabled has invalid value.")
            rec["enabled"] = attrs["enabled"]
        for f in ("exp", "nbf"):
            if f in attrs:
                v = attrs[f]
                if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                    raise bad_param("Property attributes.%s has invalid value." % f)
                rec[f] = v

    @staticmethod
    def _parse_tags(tags):
        if tags is None:
            return None
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()) or len(tags) > 15:
            raise bad_param("Property tags has invalid value.")
        return dict(tags)

    def _generate(self, kty, size=None, crv=None, public_exponent=None):
        if kty in ("RSA", "RSA-HSM"):
            size = 2048 if size is None else size
            if size not in (2048, 3072, 4096):
                raise bad_param("The specified key size %s is not supported. Supported sizes: 2048, 3072, 4096."
                                % size)
            if public_exponent not in (None, 65537):
                raise bad_param("The specified public exponent is not supported.")
            return new_rsa_key(size), {"key_size": size}
        if kty in ("EC", "EC-HSM"):
            crv = crv or "P-256"
            if crv not in EC_CURVES:
                raise bad_param("The specified curve %s is not supported." % crv)
            return ec.generate_private_key(EC_CURVES[crv][0]()), {"crv": crv}
        raise bad_param("The specified key type %s is not supported." % kty)

    def _deleted_key(self, name):
        """The soft-deleted key of that name, or None; a deleted key whose
        scheduledPurgeDate has passed is purged first, as the service does."""
        k = self.state["keys"].get(name)
        if k is None or not k.get("deleted"):
            return None
        if now_ts() >= k["deleted"]["scheduledPurgeDate"]:
            self._forget_key(name)
            self._save()
            return None
        return k

    def _check_not_deleted(self, name):
        with self.lock:
            k = self._deleted_key(name)
            if k is not None and k.get("deleted"):
                raise KVError(409, "Conflict",
                              "Key %s is currently in a deleted but recoverable state, and its name cannot be "
                              "reused; in this state, the key can only be recovered or purged." % name,
                              inner="ObjectIsDeletedButRecoverable")

    def _insert_version(self, name, key, kty, extra, ops, attrs=None, tags=None, admin=False):
        """Adds a new version; returns it.  Caller holds no lock."""
        version = uuid.uuid4().hex
        t = now_ts()
        rec = {"kty": kty, "key_ops": ops, "enabled": True, "nbf": None, "exp": None,
               "created": t, "updated": t, "tags": tags, "pem": key_pem(key)}
        rec.update(extra)
        self._parse_attrs(attrs, rec)
        with self.lock:
            self._check_not_deleted(name)
            k = self.state["keys"].get(name)
            if k is None:
                k = self.state["keys"][name] = {"versions": {}, "order": [], "deleted": None}
            k["versions"][version] = rec
            k["order"].append(version)
            self._keycache[(name, version)] = key
            self._save()
        return version

    @staticmethod
    def json_body(req):
        if not req.body:
            return {}
        try:
            obj = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise bad_param("The request body is not valid JSON.")
        if not isinstance(obj, dict):
            raise bad_param("The request body must be a JSON object.")
        return obj

    def create_key(self, name, body):
        self.check_name(name)
        kty = body.get("kty")
        if not isinstance(kty, str):
            raise bad_param("Property kty is required.")
        size = body.get("key_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise bad_param("Property key_size has invalid value.")
        self._check_not_deleted(name)
        key, extra = self._generate(kty, size, body.get("crv"), body.get("public_exponent"))
        ops = self._parse_ops(body.get("key_ops"), kty)
        tags = self._parse_tags(body.get("tags"))
        return self._insert_version(name, key, kty, extra, ops, body.get("attributes"), tags)

    def import_key(self, name, body):
        # PUT /keys/{name} with {"key": JsonWebKey, "Hsm"?, "attributes"?, "tags"?} [KV-REST]
        self.check_name(name)
        self._check_not_deleted(name)
        jwk = body.get("key")
        if not isinstance(jwk, dict):
            raise bad_param("Property key is required.")
        kty = jwk.get("kty")
        try:
            if kty in ("RSA", "RSA-HSM"):
                if "d" not in jwk:
                    raise bad_param("JSON Web Key: the private key (d) is required for import.")
                n, e, d = b64u_int(jwk["n"]), b64u_int(jwk["e"]), b64u_int(jwk["d"])
                if all(f in jwk for f in ("p", "q")):
                    p, q = b64u_int(jwk["p"]), b64u_int(jwk["q"])
                else:
                    p, q = rsa.rsa_recover_prime_factors(n, e, d)
                nums = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                             rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n))
                key = nums.private_key()
                if key.key_size not in (2048, 3072, 4096):
                    raise bad_param("The key size %d is not supported." % key.key_size)
                extra = {"key_size": key.key_size}
            elif kty in ("EC", "EC-HSM"):
                crv = jwk.get("crv")
                if crv not in EC_CURVES or "d" not in jwk:
                    raise bad_param("JSON Web Key: crv and d are required for EC import.")
                key = ec.derive_private_key(b64u_int(jwk["d"]), EC_CURVES[crv][0]())
                extra = {"crv": crv}
            else:
                raise bad_param("JSON Web Key: unsupported kty %s." % kty)
        except (KeyError, ValueError, TypeError) as e:
            if isinstance(e, KVError):
                raise
            raise bad_param("JSON Web Key: the key material is not valid.")
        if body.get("Hsm") is True and not kty.endswith("-HSM"):
            kty += "-HSM"
        ops = self._parse_ops(jwk.get("key_ops"), kty)
        tags = self._parse_tags(body.get("tags"))
        return self._insert_version(name, key, kty, extra, ops, body.get("attributes"), tags)

    def update_key(self, name, version, body):
        with self.lock:
            version, rec = self._version(name, version)
            new = dict(rec)
            if "key_ops" in body:
                new["key_ops"] = self._parse_ops(body["key_ops"], rec["kty"])
            self._parse_attrs(body.get("attributes"), new)
            if "tags" in body:
                new["tags"] = self._parse_tags(body["tags"])
            new["updated"] = now_ts()
            self.state["keys"][name]["versions"][version] = new
            self._save()
            return version

    def rotate_key(self, name):
        with self.lock:
            version, rec = self._version(name, None)
            rec = dict(rec)
        key, extra = self._generate(rec["kty"], rec.get("key_size"), rec.get("crv"))
        return self._insert_version(name, key, rec["kty"], extra, list(rec["key_ops"]), None, rec.get("tags"))

    def delete_key(self, name):
        with self.lock:
            k = self._live_key(name)
            version = k["order"][-1]
            level, days = self.key_recovery(name)
            if "Recoverable" not in level:
                # No soft delete: the key is gone at once [KV-SD]; the answer is
                # the key as it was, without the recovery fields.
                out = self.bundle(name, version)
                self._forget_key(name)
                self._save()
                return out, version
            t = now_ts()
            k["deleted"] = {"deletedDate": t, "scheduledPurgeDate": t + days * 86400}
            self._save()
            return self.deleted_bundle(name), version

    def _forget_key(self, name):
        del self.state["keys"][name]
        for ck in [c for c in self._keycache if c[0] == name]:
            del self._keycache[ck]

    def recover_key(self, name):
        with self.lock:
            k = self._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            k["deleted"] = None
            self._save()
            return self.bundle(name, k["order"][-1]), k["order"][-1]

    def purge_key(self, name, force=False):
        with self.lock:
            k = self._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            if "Purgeable" not in self.key_recovery(name)[0] and not force:
                raise KVError(403, "Forbidden",
                              'Operation "purge" is not allowed because purge protection is enabled for this '
                              'vault. Key Vault service will automatically purge it after the retention period '
                              'has passed.\r\nVault: %s;location=local' % self.vault_name)
            self._forget_key(name)
            self._save()

    def key_item(self, name, version, with_version=True):
        rec = self.state["keys"][name]["versions"][version]
        item = {"kid": self.kid(name, version if with_version else None), "attributes": self.attributes(name, rec)}
        if rec.get("tags"):
            item["tags"] = dict(rec["tags"])
        return item

    # ---- REST handlers (return (status, body, version)) ---------------------------
    def kv_get(self, req, name, version):
        with self.lock:
            version, rec = self._version(name, version)
            if not rec["enabled"]:
                raise KVError(403, "Forbidden", "Operation get is not allowed on a disabled key.",
                              inner="KeyDisabled")
            return 200, self.bundle(name, version), version

    def kv_list(self, req):
        with self.lock:
            items = [self.key_item(n, k["order"][-1], with_version=False)
                     for n, k in sorted(self.state["keys"].items()) if not k.get("deleted")]
        return 200, {"value": items, "nextLink": None}, ""

    def kv_list_versions(self, req, name):
        with self.lock:
            k = self._live_key(name)
            items = [self.key_item(name, v) for v in k["order"]]
        return 200, {"value": items, "nextLink": None}, ""

    def kv_create(self, req, name):
        version = self.create_key(name, self.json_body(req))
        with self.lock:
            return 200, self.bundle(name, version), version

    def kv_import(self, req, name):
        version = self.import_key(name, self.json_body(req))
        with self.lock:
            return 200, self.bundle(name, version), version

    def kv_update(self, req, name, version):
        version = self.update_key(name, version, self.json_body(req))
        with self.lock:
            return 200, self.bundle(name, version), version

    def kv_delete(self, req, name):
        body, version = self.delete_key(name)
        return 200, body, version

    def kv_rotate(self, req, name):
        version = self.rotate_key(name)
        with self.lock:
            return 200, self.bundle(name, version), version

    def kv_get_deleted(self, req, name):
        with self.lock:
            k = self._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            return 200, self.deleted_bundle(name), k["order"][-1]

    def kv_recover(self, req, name):
        body, version = self.recover_key(name)
        return 200, body, version

    def kv_purge(self, req, name):
        self.purge_key(name)
        return 204, None, ""

    def kv_crypto(self, req, name, version, op):
        # POST /keys/{name}/{version}/wrapkey|unwrapkey with {"alg", "value"} ->
        # KeyOperationResult {"kid", "value"} [KV-REST].
        body = self.json_body(req)
        with self.lock:
            version, rec = self._version(name, version)
            rec = dict(rec)
            key = self.private_key(name, version)
        opname = "wrapKey" if op == "wrapkey" else "unwrapKey"
        if not rec["enabled"]:
            raise KVError(403, "Forbidden", "Operation %s is not allowed on a disabled key." % opname,
                          inner="KeyDisabled")
        if opname not in rec["key_ops"]:
            raise KVError(403, "Forbidden", "Operation %s is not permitted on this key." % opname,
                          inner="KeyOperationForbidden")
        alg, value = body.get("alg"), body.get("value")
        if not isinstance(alg, str) or not alg:
            raise bad_param("Property 'alg' is required.")
        if not isinstance(value, str):
            raise bad_param("Property 'value' is required.")
        if alg not in RSA_WRAP_ALGS:
            raise bad_param("Invalid algorithm: '%s'. Supported: %s." % (alg, ", ".join(RSA_WRAP_ALGS)))
        if not rec["kty"].startswith("RSA"):
            raise bad_param("Algorithm %s is not supported for key type %s." % (alg, rec["kty"]))
        try:
            data = b64u_dec(value)
        except ValueError:
            raise bad_param("Property 'value' is not valid base64url.")
        # [KV-KEYS] Date-time controlled operations: outside [nbf, exp) wrap is
        # refused, unwrap still works (so that data wrapped while the key was
        # valid can be recovered).
        t = now_ts()
        if op == "wrapkey":
            if rec.get("exp") is not None and t >= rec["exp"]:
                raise KVError(403, "Forbidden", "Operation wrapKey is not allowed on an expired key.",
                              inner="KeyExpired")
            if rec.get("nbf") is not None and t < rec["nbf"]:
                raise KVError(403, "Forbidden", "Operation wrapKey is not allowed on a key that is not yet "
                                                "valid.", inner="KeyNotYetValid")
        if alg == "RSA-OAEP-256":
            pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        elif alg == "RSA-OAEP":
            pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        else:
            pad = padding.PKCS1v15()
        if op == "wrapkey":
            if not data:
                raise bad_param("Property 'value' must not be empty.")
            try:
                out = key.public_key().encrypt(data, pad)
            except ValueError:
                raise bad_param("The value is too long to be wrapped with a %d-bit key and %s."
                                % (key.key_size, alg))
        else:
            if len(data) != (key.key_size + 7) // 8:
                raise bad_param("The wrapped value must be %d bytes for this key." % ((key.key_size + 7) // 8))
            try:
                out = key.decrypt(data, pad)
            except ValueError:
                raise bad_param("Unwrap failed: the value could not be decrypted with this key and %s." % alg)
        return 200, {"kid": self.kid(name, version), "value": b64u(out)}, version

    # ======================================================================
    # Admin (POST /_admin/<command>, header X-Admin-Secret)
    # ======================================================================
    def h_admin(self, req, command):
        if not hmac.compare_digest(req.headers.get("X-Admin-Secret", "").encode(), self.admin_secret.encode()):
            return Resp(403, {"error": {"code": "Forbidden", "message": "bad or missing X-Admin-Secret"}})
        fn = getattr(self, "admin_" + command.replace("-", "_"), None)
        if fn is None:
            return Resp(404, {"error": {"code": "UnknownCommand", "message": command}})
        try:
            body = self.json_body(req)
            return Resp(200, fn(req, body))
        except KVError as e:
            return Resp(e.status, e.body())
        except (ValueError, TypeError, KeyError) as e:
            return Resp(400, {"error": {"code": "BadParameter", "message": "%s: %s" % (type(e).__name__, e)}})

    def _admin_audit(self, req, op, name="", version="", result="Success", status=200):
        self.audit(req, op, caller="admin", tenant=self.vault_tenant() or "", key=name, version=version,
                   result=result, status=status)

    def admin_status(self, req, body):
        with self.lock:
            return {"port": self.port, "vault": self.base, "authority": self.base, "issuer": self.issuer_url,
                    "vault_tenant": self.vault_tenant(), "tenants": sorted(self.tenants()),
                    "auth_mode": self.state.get("auth_mode"), "token_lifetime": self.state["token_lifetime"],
                    "token_lifetimes": dict(self.state.get("token_lifetimes", {})),
                    "soft_delete": self.state.get("soft_delete", True),
                    "purge_protection": self.state.get("purge_protection", True),
                    "retention_days": self.state.get("retention_days", SOFT_DELETE_DAYS),
                    "protected_subscription": self.state.get("protected_subscription", False),
                    "recovery_level": self.vault_recovery()[0], "recoverable_days": self.vault_recovery()[1],
                    "identities": sorted(self.state["identities"]), "keys": sorted(self.state["keys"]),
                    "faults": list(self.faults), "pid": os.getpid()}

    def admin_add_identity(self, req, body):
        tenant, cid = body.get("tenant"), body.get("client_id")
        if not tenant or not cid:
            raise ValueError("tenant and client_id are required")
        certs = []
        if body.get("cert_pem"):
            blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", body["cert_pem"], re.S)
            if not blocks:
                raise ValueError("cert_pem holds no certificate")
            for b in blocks:
                c = x509.load_pem_x509_certificate(b.encode())
                tp = cert_thumbprints(c)
                certs.append({"pem": b, "x5t": tp["x5t"], "x5t#S256": tp["x5t#S256"],
                              "sha1_hex": tp["sha1_hex"], "added": iso_now()})
        with self.lock:
            ident = self.state["identities"].get(cid)
            if ident is None:
                ident = {"client_id": cid, "tenant": tenant, "oid": str(uuid.uuid4()), "secret": None,
                         "certs": [], "managed": False, "federated_subjects": [], "created": time.time()}
                self.state["identities"][cid] = ident
            ident["tenant"] = tenant
            if body.get("secret") is not None:
                ident["secret"] = body["secret"]
            known = {c["x5t#S256"] for c in ident["certs"]}
            ident["certs"] += [c for c in certs if c["x5t#S256"] not in known]
            if body.get("managed"):
                ident["managed"] = True
            for s in body.get("federated_subjects") or []:
                if s not in ident["federated_subjects"]:
                    ident["federated_subjects"].append(s)
            if not self.state.get("vault_tenant"):
                self.state["vault_tenant"] = tenant
            self._save()
            return self._identity_view(ident)

    @staticmethod
    def _identity_view(ident):
        return {"client_id": ident["client_id"], "tenant": ident["tenant"], "oid": ident["oid"],
                "has_secret": bool(ident.get("secret")), "managed": ident.get("managed", False),
                "federated_subjects": list(ident.get("federated_subjects", [])),
                "certificates": [{"x5t": c["x5t"], "x5t#S256": c["x5t#S256"], "sha1": c["sha1_hex"]}
                                 for c in ident.get("certs", [])]}

    def admin_remove_identity(self, req, body):
        with self.lock:
            ident = self.state["identities"].pop(body["client_id"], None)
            if ident is None:
                raise KVError(404, "NotFound", "no identity %s" % body["client_id"])
            self._save()
            return self._identity_view(ident)

    def admin_identity_header(self, req, body):
        return {"header": self.state["identity_header"]}

    def admin_mint_federated_token(self, req, body):
        subject = body.get("subject")
        if not subject:
            raise ValueError("subject is required")
        exp_in = int(body.get("expires_in", 3600))
        if abs(exp_in) > 86400 * 365:
            raise ValueError("expires_in out of range")
        return {"token": self.mint_federated(subject, body.get("audience"), exp_in, body.get("issuer")),
                "issuer": self.issuer_url}

    def _set_mode(self, body):
        if body.get("rbac"):
            self.state["auth_mode"] = "rbac"
        elif body.get("access_policy"):
            self.state["auth_mode"] = "accessPolicy"

    def _perm_list(self, body):
        perms = []
        for p in body.get("permissions") or []:
            match = [k for k in KEY_PERMISSIONS + ["all"] if k.lower() == p.lower()]
            if not match:
                raise ValueError("unknown key permission %r (known: %s)" % (p, ", ".join(KEY_PERMISSIONS)))
            perms.append(match[0])
        if body.get("role"):
            role = ROLES.get(body["role"].lower())
            if role is None:
                raise ValueError("unknown role %r (known: %s)" % (body["role"], ", ".join(sorted(ROLES))))
            perms += role
        return perms

    def admin_grant(self, req, body):
        cid = body["client_id"]
        perms = self._perm_list(body)
        with self.lock:
            self._set_mode(body)
            cur = self.state["permissions"].setdefault(cid, [])
            for p in perms:
                if p not in cur:
                    cur.append(p)
            self._save()
            out = {"client_id": cid, "permissions": list(cur), "mode": self.state["auth_mode"]}
        self._admin_audit(req, "VaultPatch")
        return out

    def admin_revoke(self, req, body):
        cid = body["client_id"]
        perms = self._perm_list(body)
        with self.lock:
            self._set_mode(body)
            cur = self.state["permissions"].get(cid, [])
            if perms:
                drop = {p.lower() for p in perms}
                cur = [p for p in cur if p.lower() not in drop]
            else:
                cur = []
            self.state["permissions"][cid] = cur
            self._save()
            out = {"client_id": cid, "permissions": list(cur), "mode": self.state["auth_mode"]}
        self._admin_audit(req, "VaultPatch")
        return out

    def admin_set_vault(self, req, body):
        with self.lock:
            new = {f: self.state.get(f, d) for f, d in (("soft_delete", True), ("purge_protection", True),
                                                       ("retention_days", SOFT_DELETE_DAYS),
                                                       ("protected_subscription", False))}
            for f in ("soft_delete", "purge_protection", "protected_subscription"):
                if body.get(f) is not None:
                    new[f] = bool(body[f])
            if body.get("retention_days") is not None:
                new["retention_days"] = int(body["retention_days"])
            if not MIN_RETENTION_DAYS <= new["retention_days"] <= SOFT_DELETE_DAYS:
                raise ValueError("retention_days must be within %d..%d" % (MIN_RETENTION_DAYS, SOFT_DELETE_DAYS))
            # [KV-SD] purge protection needs soft delete; a protected subscription
            # is a kind of purge protection.
            if new["purge_protection"] and not new["soft_delete"]:
                raise ValueError("purge protection needs soft delete (--soft-delete on)")
            if new["protected_subscription"] and not new["purge_protection"]:
                raise ValueError("a protected subscription needs purge protection (--purge-protection on)")
            if body.get("tenant"):
                self.state["vault_tenant"] = body["tenant"]
            self.state.update(new)
            self._set_mode(body)
            self._save()
        return self.admin_status(req, {})

    def admin_set_token_lifetime(self, req, body):
        secs = int(body["seconds"])
        if not 1 <= secs <= TOKEN_LIFETIME_MAX:
            raise ValueError("seconds must be within 1..%d" % TOKEN_LIFETIME_MAX)
        flow, cid = body.get("flow"), body.get("client_id")
        if flow is not None and flow not in TOKEN_OPS:
            raise ValueError("flow must be one of %s" % ", ".join(TOKEN_OPS))
        with self.lock:
            if cid:
                ident = self.state["identities"].get(cid)
                if ident is None:
                    raise KVError(404, "NotFound", "no identity %s" % cid)
                ident["token_lifetime"] = secs
            elif flow:
                self.state.setdefault("token_lifetimes", {})[flow] = secs
            else:
                # The global setting replaces the per-flow and per-identity ones.
                self.state["token_lifetime"] = secs
                self.state["token_lifetimes"] = {}
                for ident in self.state["identities"].values():
                    ident.pop("token_lifetime", None)
            self._save()
            return {"token_lifetime": self.state["token_lifetime"],
                    "token_lifetimes": dict(self.state["token_lifetimes"]),
                    "identities": {c: i["token_lifetime"] for c, i in self.state["identities"].items()
                                   if i.get("token_lifetime")}}

    def _admin_key_op(self, req, op, name, fn):
        try:
            version = fn()
        except KVError as e:
            self._admin_audit(req, op, name, "", e.result, e.status)
            raise
        self._admin_audit(req, op, name, version)
        with self.lock:
            return self.bundle(name, version)

    def admin_create_key(self, req, body):
        name = body["name"]
        kty = body.get("kty") or "RSA"
        attrs = {"enabled": not body.get("disabled", False)}
        for f in ("exp", "nbf"):
            if body.get(f) is not None:
                attrs[f] = parse_time_arg(body[f], f)
        params = {"kty": kty, "key_ops": body.get("ops"), "attributes": attrs}
        if body.get("size") is not None:
            params["key_size"] = int(body["size"])
        if body.get("crv"):
            params["crv"] = body["crv"]
        recovery = self._recovery_arg(body)

        def create():
            version = self.create_key(name, params)
            if recovery is not None:
                self._set_key_recovery(name, recovery)
            return version
        return self._admin_key_op(req, "KeyCreate", name, create)

    @staticmethod
    def _recovery_arg(body):
        """The key-level recoveryLevel override of create-key/set-key: None (not
        given), False (back to the vault's) or {"level", "days"}."""
        level, days = body.get("recovery_level"), body.get("recoverable_days")
        if level is None:
            if days is not None:
                raise ValueError("--recoverable-days needs --recovery-level")
            return None
        if level == "vault":
            return False
        if not _RECOVERY_LEVEL_RE.fullmatch(level):
            raise ValueError("recovery level %r: letters and '+' only (known: %s)"
                             % (level, ", ".join(RECOVERY_LEVELS)))
        if days is None:
            days = default_recoverable_days(level)
        days = int(days)
        if not 0 <= days <= 3650:
            raise ValueError("recoverable_days must be within 0..3650")
        return {"level": level, "days": days}

    def _set_key_recovery(self, name, recovery):
        with self.lock:
            k = self._live_key(name)
            if recovery:
                k["recovery"] = dict(recovery)
            else:
                k.pop("recovery", None)
            self._save()

    def admin_import_key(self, req, body):
        name = body["name"]
        key = serialization.load_pem_private_key(body["pem"].encode(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            pn = key.private_numbers()
            jwk = {"kty": "RSA", "n": int_b64u(pn.public_numbers.n), "e": int_b64u(pn.public_numbers.e),
                   "d": int_b64u(pn.d), "p": int_b64u(pn.p), "q": int_b64u(pn.q)}
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            crv = {v[0].name: k for k, v in EC_CURVES.items()}.get(key.curve.name)
            jwk = {"kty": "EC", "crv": crv, "d": int_b64u(key.private_numbers().private_value)}
        else:
            raise ValueError("unsupported key type")
        if body.get("ops"):
            jwk["key_ops"] = body["ops"]
        params = {"key": jwk, "Hsm": bool(body.get("hsm"))}
        return self._admin_key_op(req, "KeyImport", name, lambda: self.import_key(name, params))

    def admin_rotate_key(self, req, body):
        name = body["name"]
        return self._admin_key_op(req, "KeyRotate", name, lambda: self.rotate_key(name))

    def admin_set_key(self, req, body):
        name = body["name"]
        patch = {"attributes": {}}
        if body.get("enabled") is not None:
            patch["attributes"]["enabled"] = bool(body["enabled"])
        for f in ("exp", "nbf"):
            if f in body:
                patch["attributes"][f] = parse_time_arg(body[f], f)
        if body.get("ops") is not None:
            patch["key_ops"] = body["ops"]
        recovery = self._recovery_arg(body)

        def update():
            version = self.update_key(name, body.get("version"), patch)
            if recovery is not None:
                self._set_key_recovery(name, recovery)
            return version
        return self._admin_key_op(req, "KeyUpdate", name, update)

    def admin_delete_key(self, req, body):
        name = body["name"]
        try:
            out, version = self.delete_key(name)
        except KVError as e:
            self._admin_audit(req, "KeyDelete", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyDelete", name, version)
        return out

    def admin_recover_key(self, req, body):
        name = body["name"]
        try:
            out, version = self.recover_key(name)
        except KVError as e:
            self._admin_audit(req, "KeyRecover", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyRecover", name, version)
        return out

    def admin_purge_key(self, req, body):
        name = body["name"]
        try:
            self.purge_key(name, force=bool(body.get("force")))
        except KVError as e:
            self._admin_audit(req, "KeyPurge", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyPurge", name)
        return {"purged": name}

    def admin_list_versions(self, req, body):
        name = body["name"]
        with self.lock:
            k = self._live_key(name)
            return {"value": [self.key_item(name, v) for v in k["order"]], "nextLink": None}

    def admin_fault(self, req, body):
        if body.get("clear"):
            with self.lock:
                n = len(self.faults)
                self.faults = []
            return {"cleared": n}
        op = body.get("op")
        if op not in FAULT_OPS:
            raise ValueError("op must be one of %s" % ", ".join(sorted(FAULT_OPS)))
        f = {"op": op, "count": int(body.get("count") or 1), "after": int(body.get("after") or 0),
             "status": body.get("status"),
             "retry_after": body.get("retry_after"), "latency_ms": int(body.get("latency_ms") or 0),
             "drop": bool(body.get("drop")), "malformed": bool(body.get("malformed"))}
        if f["status"] is not None:
            f["status"] = int(f["status"])
            if not 200 <= f["status"] <= 599 or (f["status"] < 400 and not f["malformed"]):
                raise ValueError("status must be within 400..599 (200..599 with --malformed)")
        if f["retry_after"] is not None:
            f["retry_after"] = int(f["retry_after"])
        if not 1 <= f["count"] <= MAX_FAULT_COUNT:
            raise ValueError("count must be within 1..%d" % MAX_FAULT_COUNT)
        if not 0 <= f["after"] <= MAX_FAULT_COUNT:
            raise ValueError("after must be within 0..%d" % MAX_FAULT_COUNT)
        if not 0 <= f["latency_ms"] <= MAX_LATENCY_MS:
            raise ValueError("latency_ms must be within 0..%d" % MAX_LATENCY_MS)
        if not (f["status"] or f["drop"] or f["malformed"] or f["latency_ms"]):
            raise ValueError("a fault needs --status, --drop, --malformed or --latency-ms")
        with self.lock:
            self.faults.append(f)
            return {"queued": dict(f), "faults": list(self.faults)}

    def admin_audit(self, req, body):
        return self.read_audit(body.get("since"), body.get("caller"), body.get("operation"))


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------
class Req:
    def __init__(self, method, path, query, headers, body, rid):
        self.method, self.path, self.query, self.headers, self.body, self.rid = \
            method, path, query, headers, body, rid
        self.t0 = time.monotonic()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # keep-alive
    server_version = "kv-emulator/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def version_string(self):
        return self.server_version

    def setup(self):
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, OSError):
            pass

    def log_message(self, fmt, *args):
        if self.server.emu.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def send_error(self, code, message=None, explain=None):
        # Errors raised by http.server itself (bad request line, unsupported
        # method, ...) also carry x-ms-request-id.
        self.close_connection = True
        self._send(Resp(code, {"error": {"code": "BadRequest" if code < 500 else "InternalServerError",
                                         "message": message or http.client.responses.get(code, "")}}),
                   str(uuid.uuid4()))

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            for _ in range(100000):
                line = self.rfile.readline(1024)
                if not line:
                    raise BodyError("truncated chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(100):      # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise BodyError("body too large")
                out += self.rfile.read(size)
                self.rfile.readline(8)
            raise BodyError("too many chunks")
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            raise BodyError("body too large")
        data = self.rfile.read(n)
        if len(data) != n:
            raise BodyError("truncated body")
        return data

    def _dispatch(self):
        rid = str(uuid.uuid4())
        try:
            body = self._read_body()
        except (BodyError, ValueError) as e:
            self.close_connection = True
            self._send(Resp(413 if "large" in str(e) else 400,
                            {"error": {"code": "BadParameter", "message": "Request body: %s" % e}}), rid)
            return
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        req = Req(self.command, urllib.parse.unquote(url.path), query, self.headers, body, rid)
        emu = self.server.emu
        try:
            resp = emu.handle(req)
        except Exception as e:  # never let a bug kill the connection silently
            if emu.verbose:
                import traceback
                traceback.print_exc()
            resp = Resp(500, {"error": {"code": "InternalServerError", "message": "emulator bug: %r" % e}})
        if resp.drop:
            self.close_connection = True
            try:
                self.wfile.flush()
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(resp, rid, req.headers.get("x-ms-client-request-id"))

    def _send(self, resp, rid, client_rid=None):
        self.send_response(resp.status)
        self.send_header("x-ms-request-id", rid)
        if client_rid:
            self.send_header("x-ms-client-request-id", client_rid)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", "-1")
        if resp.is_json:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, emu, port, sslctx):
        self.emu = emu
        self.sslctx = sslctx
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(("127.0.0.1", port), Handler)   # loopback only

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # headers and body go out at once
        # The TLS handshake runs in the connection's own thread (Handler.setup),
        # so a slow client never blocks accept().
        return self.sslctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        if self.emu.verbose:
            super().handle_error(request, client_address)


def serve(args):
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    for f in ("ready", "port"):
        try:
            os.unlink(os.path.join(state_dir, f))
        except FileNotFoundError:
            pass
    cert, key = ensure_tls(state_dir)
    emu = Emulator(state_dir, args.token_lifetime, args.tenant, args.verbose)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    server = Server(emu, args.port, ctx)
    emu.port = server.server_address[1]
    write_file(os.path.join(state_dir, "pid"), "%d\n" % os.getpid())
    write_file(os.path.join(state_dir, "port"), "%d\n" % emu.port)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_file(os.path.join(state_dir, "ready"), "%s\n" % emu.base)
    if args.verbose:
        sys.stderr.write("kv_emulator listening on %s (state %s)\n" % (emu.base, state_dir))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for f in ("ready", "pid"):
            try:
                os.unlink(os.path.join(state_dir, f))
            except FileNotFoundError:
                pass
    return 0


# --------------------------------------------------------------------------
# Admin CLI: talks to /_admin/ of the running server
# --------------------------------------------------------------------------
def admin_request(state_dir, command, payload, timeout=60):
    state_dir = os.path.abspath(state_dir)
    try:
        with open(os.path.join(state_dir, "port")) as f:
            port = int(f.read().strip())
        with open(os.path.join(state_dir, "admin_secret")) as f:
            secret = f.read().strip()
        if not os.path.exists(os.path.join(state_dir, "ready")):
            raise FileNotFoundError("ready")
    except (OSError, ValueError):
        return 2, {"error": {"code": "NotRunning", "message": "no running emulator in %s" % state_dir}}
    ctx = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.pem"))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=timeout)
    try:
        conn.request("POST", "/_admin/" + command, body=json.dumps(payload).encode(),
                     headers={"Content-Type": "application/json", "X-Admin-Secret": secret})
        r = conn.getresponse()
        data = r.read()
    except OSError as e:
        return 2, {"error": {"code": "ConnectionFailed", "message": str(e)}}
    finally:
        conn.close()
    try:
        out = json.loads(data) if data else {}
    except ValueError:
        out = {"error": {"code": "BadResponse", "message": data.decode("utf-8", "replace")}}
    return (0 if r.status == 200 else 1), out


def _csv(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s is not None else None


def _bool(s):
    if s.lower() in ("true", "1", "yes", "on"):
        return True
    if s.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def build_parser():
    p = argparse.ArgumentParser(prog="kv_emulator.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the emulator")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--token-lifetime", type=int, default=None,
                   help="access token lifetime in seconds (default 3600, kept in state)")
    s.add_argument("--tenant", help="the vault's tenant (default: tenant of the first identity added)")
    s.add_argument("--verbose", action="store_true")

    a = sub.add_parser("admin", help="drive a running emulator")
    a.add_argument("--state-dir", required=True)
    asub = a.add_subparsers(dest="command", required=True)
    c = asub.add_parser("add-identity")
    c.add_argument("--tenant", required=True)
    c.add_argument("--client-id", required=True)
    c.add_argument("--secret")
    c.add_argument("--cert-pem", help="PEM file holding the certificate(s) for client assertions")
    c.add_argument("--managed", action="store_true")
    c.add_argument("--federated-subject", action="append")
    c = asub.add_parser("remove-identity")
    c.add_argument("--client-id", required=True)
    c = asub.add_parser("mint-federated-token")
    c.add_argument("--client-id")
    c.add_argument("--subject", required=True)
    c.add_argument("--audience")
    c.add_argument("--issuer")
    c.add_argument("--expires-in", type=int, default=3600)
    asub.add_parser("identity-header")
    for name in ("grant", "revoke"):
        c = asub.add_parser(name)
        c.add_argument("--client-id", required=True)
        c.add_argument("--permissions")
        c.add_argument("--role", help="built-in RBAC role name, e.g. 'Key Vault Crypto Service Encryption User'")
        c.add_argument("--rbac", action="store_true", help="vault uses RBAC (denials: ForbiddenByRbac)")
        c.add_argument("--access-policy", action="store_true", help="vault uses access policies")
    c = asub.add_parser("set-vault")
    c.add_argument("--tenant")
    c.add_argument("--rbac", action="store_true")
    c.add_argument("--access-policy", action="store_true")
    c.add_argument("--soft-delete", type=_bool, help="on|off (default on)")
    c.add_argument("--purge-protection", type=_bool, help="on|off (default on; needs soft delete)")
    c.add_argument("--retention-days", "--soft-delete-days", type=int,
                   help="soft-delete retention, 7..90 (default 90)")
    c.add_argument("--protected-subscription", type=_bool,
                   help="on|off: the +ProtectedSubscription levels (needs purge protection)")
    c = asub.add_parser("set-token-lifetime")
    c.add_argument("--seconds", type=int, required=True)
    c.add_argument("--flow", choices=list(TOKEN_OPS),
                   help="only tokens of this sign-in flow (token endpoint, IMDS, identity endpoint)")
    c.add_argument("--client-id", help="only tokens of this identity")
    c = asub.add_parser("create-key")
    c.add_argument("--name", required=True)
    c.add_argument("--kty", default="RSA", choices=["RSA", "RSA-HSM", "EC", "EC-HSM"])
    c.add_argument("--size", type=int)
    c.add_argument("--crv")
    c.add_argument("--ops")
    c.add_argument("--exp", help="UNIX time, +N / -N seconds from now")
    c.add_argument("--nbf", help="UNIX time, +N / -N seconds from now")
    c.add_argument("--disabled", action="store_true")
    c.add_argument("--recovery-level", help="this key's recoveryLevel instead of the vault's")
    c.add_argument("--recoverable-days", type=int)
    c = asub.add_parser("import-key")
    c.add_argument("--name", required=True)
    c.add_argument("--pem", required=True, help="PEM file with the private key")
    c.add_argument("--ops")
    c.add_argument("--hsm", action="store_true")
    for name in ("rotate-key", "delete-key", "recover-key", "purge-key", "list-versions"):
        c = asub.add_parser(name)
        c.add_argument("--name", required=True)
        if name == "purge-key":
            c.add_argument("--force", action="store_true",
                           help="purge even under purge protection (what the service does after retention)")
    c = asub.add_parser("set-key")
    c.add_argument("--name", required=True)
    c.add_argument("--version")
    c.add_argument("--enabled", type=_bool)
    c.add_argument("--exp", help="UNIX time, +N / -N seconds from now, or 'none'")
    c.add_argument("--nbf", help="UNIX time, +N / -N seconds from now, or 'none'")
    c.add_argument("--ops")
    c.add_argument("--recovery-level", help="this key's recoveryLevel ('vault': back to the vault's)")
    c.add_argument("--recoverable-days", type=int)
    c = asub.add_parser("fault")
    c.add_argument("--op")
    c.add_argument("--status", type=int)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--after", type=int, default=0, help="let the first K matching requests through first")
    c.add_argument("--retry-after", type=int)
    c.add_argument("--latency-ms", type=int, default=0)
    c.add_argument("--drop", action="store_true")
    c.add_argument("--malformed", action="store_true")
    c.add_argument("--clear", action="store_true")
    c = asub.add_parser("audit")
    c.add_argument("--since")
    c.add_argument("--caller")
    c.add_argument("--operation")
    asub.add_parser("status")
    return p


def admin_payload(a):
    cmd = a.command
    if cmd == "add-identity":
        pem = None
        if a.cert_pem:
            with open(a.cert_pem) as f:
                pem = f.read()
        return {"tenant": a.tenant, "client_id": a.client_id, "secret": a.secret, "cert_pem": pem,
                "managed": a.managed, "federated_subjects": a.federated_subject or []}
    if cmd == "remove-identity":
        return {"client_id": a.client_id}
    if cmd == "mint-federated-token":
        return {"client_id": a.client_id, "subject": a.subject, "audience": a.audience,
                "issuer": a.issuer, "expires_in": a.expires_in}
    if cmd in ("grant", "revoke"):
        return {"client_id": a.client_id, "permissions": _csv(a.permissions) or [], "role": a.role,
                "rbac": a.rbac, "access_policy": a.access_policy}
    if cmd == "set-vault":
        return {"tenant": a.tenant, "rbac": a.rbac, "access_policy": a.access_policy,
                "soft_delete": a.soft_delete, "purge_protection": a.purge_protection,
                "retention_days": a.retention_days, "protected_subscription": a.protected_subscription}
    if cmd == "set-token-lifetime":
        return {"seconds": a.seconds, "flow": a.flow, "client_id": a.client_id}
    if cmd == "create-key":
        return {"name": a.name, "kty": a.kty, "size": a.size, "crv": a.crv, "ops": _csv(a.ops),
                "exp": a.exp, "nbf": a.nbf, "disabled": a.disabled,
                "recovery_level": a.recovery_level, "recoverable_days": a.recoverable_days}
    if cmd == "import-key":
        with open(a.pem) as f:
            pem = f.read()
        return {"name": a.name, "pem": pem, "ops": _csv(a.ops), "hsm": a.hsm}
    if cmd in ("rotate-key", "delete-key", "recover-key", "purge-key", "list-versions"):
        return {"name": a.name, "force": getattr(a, "force", False)}
    if cmd == "set-key":
        out = {"name": a.name, "version": a.version, "enabled": a.enabled, "ops": _csv(a.ops),
               "recovery_level": a.recovery_level, "recoverable_days": a.recoverable_days}
        for f in ("exp", "nbf"):
            v = getattr(a, f)
            if v is not None:
                out[f] = v      # UNIX time, +N/-N or none: resolved by the server's clock
        return out
    if cmd == "fault":
        return {"clear": a.clear, "op": a.op, "status": a.status, "count": a.count, "after": a.after,
                "retry_after": a.retry_after, "latency_ms": a.latency_ms, "drop": a.drop,
                "malformed": a.malformed}
    if cmd == "audit":
        return {"since": a.since, "caller": a.caller, "operation": a.operation}
    return {}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "serve":
        return serve(args)
    try:
        payload = admin_payload(args)
    except (OSError, ValueError) as e:
        print(json.dumps({"error": {"code": "BadArgument", "message": str(e)}}))
        return 2
    rc, out = admin_request(args.state_dir, args.command, payload)
    print(json.dumps(out, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())

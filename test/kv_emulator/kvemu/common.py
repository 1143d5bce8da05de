"""Constants, limits, small helpers, errors and the response type that the
emulator's modules share.  Standard library only (the admin command line
imports it and stays fast); the helpers that need python3-cryptography are in
crypto.py.
"""

import base64
import datetime
import json
import os
import re
import time

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
RECOVERY_LEVEL_RE = re.compile(r"[A-Za-z+]{1,64}")


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


def write_file(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


"""Key Vault's REST front for keys [KV-REST]: routing, the bearer challenge,
token and permission checks (access policies or RBAC), and the operations
(get, list, create, import, update, delete, rotate, wrapkey, unwrapkey,
deleted keys), in the order and with the errors Key Vault uses [KV-ERR]
[KV-TSG] [KV-KEYS]."""

import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .common import OPS, RSA_WRAP_ALGS, KVError, Resp, b64u, b64u_dec, bad_param, now_ts
from .crypto import jwt_parse, jwt_verify
from .hosts import PUBLIC_CLOUD_AUTHORITY, service_domain


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


class KeyVault:
    def __init__(self, store, audit, hosts, entra, keys):
        self.state, self.lock = store.data, store.lock
        self.audit, self.hosts, self.entra, self.keys = audit, hosts, entra, keys

    def route(self, method, path):
        """(op, handler, kwargs) for a Key Vault path, or None."""
        segs = path.strip("/").split("/")
        n = len(segs)
        if segs[0] == "keys":
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
        if segs[0] == "deletedkeys" and n in (2, 3):
            if n == 2 and method == "GET":
                return "getdeleted", self.kv_get_deleted, {"name": segs[1]}
            if n == 2 and method == "DELETE":
                return "purge", self.kv_purge, {"name": segs[1]}
            if n == 3 and segs[2] == "recover" and method == "POST":
                return "recover", self.kv_recover, {"name": segs[1]}
        return None

    def challenge(self, req):
        """The bearer challenge [KV-AUTH]: the authority with the vault's tenant,
        and the resource of the domain the vault was addressed in (clients check
        that the vault's host lies within it).  A vault under an Azure domain names
        the public cloud's authority, as Key Vault does; a loopback-addressed one
        names the emulator itself."""
        tenant = self.entra.vault_tenant() or "common"
        name = req.hostname
        resource = self.hosts.resource_for(name)
        authority = PUBLIC_CLOUD_AUTHORITY if service_domain(name) else req.origin
        return ("WWW-Authenticate", 'Bearer authorization="%s/%s", resource="%s"' % (authority, tenant, resource))

    def unauthorized(self, req, message):
        return KVError(401, "Unauthorized", message, headers=[self.challenge(req)])

    def authenticate(self, req):
        h = req.headers.get("Authorization", "")
        if not h.lower().startswith("bearer ") or not h[7:].strip():
            raise self.unauthorized(req, "AKV10000: Request is missing a Bearer or PoP token.")
        try:
            header, claims, si, sig = jwt_parse(h[7:].strip())
        except (ValueError, UnicodeDecodeError):
            raise self.unauthorized(req, "[InvalidToken] Error validating token: the token is malformed.")
        if header.get("alg") != "RS256" or not jwt_verify("RS256", self.entra.signing_key.public_key(), si, sig):
            raise self.unauthorized(req, "[SignatureValidationFailed] Error validating token: the signature is "
                                    "not valid.")
        t = now_ts()
        try:
            exp, nbf = int(claims["exp"]), int(claims.get("nbf", 0))
        except (KeyError, TypeError, ValueError):
            raise self.unauthorized(req, "[InvalidToken] Error validating token: the token is malformed.")
        if t >= exp:
            raise self.unauthorized(req, "[TokenExpired] Error validating token: 'S2S12086'.")
        if t < nbf:
            raise self.unauthorized(req, "[TokenNotYetValid] Error validating token: 'S2S12085'.")
        aud = str(claims.get("aud", "")).rstrip("/")
        expected = self.hosts.audiences_for(req.hostname)
        if aud not in expected:
            raise self.unauthorized(req, "AKV10022: Invalid audience. Expected %s, found: %s."
                                    % (self.hosts.resource_for(req.hostname), claims.get("aud")))
        vt = self.entra.vault_tenant()
        if vt and claims.get("tid") != vt:
            raise self.unauthorized(req, "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, "
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
                          % (caller, action, self.hosts.vault_name, name or "", self.hosts.vault_name), inner="ForbiddenByRbac")
        raise KVError(403, "Forbidden",
                      "The user, group or application '%s' does not have keys %s permission on key vault "
                      "'%s;location=local'. For help resolving this issue, please see "
                      "https://go.microsoft.com/fwlink/?linkid=2125287" % (caller, perm, self.hosts.vault_name),
                      inner="ForbiddenByPolicy")

    def call(self, req, op, fn, kwargs):
        """Runs one Key Vault operation: token, api-version, permission, then the
        handler; every outcome is one audit entry."""
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
            self.audit.record(req, audit_op, caller, tenant, name, version, e.result, e.status,
                              detail=e.message[:200])
            return Resp(e.status, e.body(), headers + e.headers)
        self.audit.record(req, audit_op, caller, tenant, name, version, "Success", status)
        return Resp(status, body, headers)

    # ---- REST handlers (return (status, body, version)) ---------------------------
    def kv_get(self, req, name, version):
        with self.lock:
            version, rec = self.keys._version(name, version)
            if not rec["enabled"]:
                raise KVError(403, "Forbidden", "Operation get is not allowed on a disabled key.",
                              inner="KeyDisabled")
            return 200, self.keys.bundle(req.origin, name, version), version

    def kv_list(self, req):
        with self.lock:
            items = [self.keys.key_item(req.origin, n, k["order"][-1], with_version=False)
                     for n, k in sorted(self.state["keys"].items()) if not k.get("deleted")]
        return 200, {"value": items, "nextLink": None}, ""

    def kv_list_versions(self, req, name):
        with self.lock:
            k = self.keys._live_key(name)
            items = [self.keys.key_item(req.origin, name, v) for v in k["order"]]
        return 200, {"value": items, "nextLink": None}, ""

    def kv_create(self, req, name):
        version = self.keys.create_key(name, json_body(req))
        with self.lock:
            return 200, self.keys.bundle(req.origin, name, version), version

    def kv_import(self, req, name):
        version = self.keys.import_key(name, json_body(req))
        with self.lock:
            return 200, self.keys.bundle(req.origin, name, version), version

    def kv_update(self, req, name, version):
        version = self.keys.update_key(name, version, json_body(req))
        with self.lock:
            return 200, self.keys.bundle(req.origin, name, version), version

    def kv_delete(self, req, name):
        body, version = self.keys.delete_key(req.origin, name)
        return 200, body, version

    def kv_rotate(self, req, name):
        version = self.keys.rotate_key(name)
        with self.lock:
            return 200, self.keys.bundle(req.origin, name, version), version

    def kv_get_deleted(self, req, name):
        with self.lock:
            k = self.keys._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            return 200, self.keys.deleted_bundle(req.origin, name), k["order"][-1]

    def kv_recover(self, req, name):
        body, version = self.keys.recover_key(req.origin, name)
        return 200, body, version

    def kv_purge(self, req, name):
        self.keys.purge_key(name)
        return 204, None, ""

    def kv_crypto(self, req, name, version, op):
        # POST /keys/{name}/{version}/wrapkey|unwrapkey with {"alg", "value"} ->
        # KeyOperationResult {"kid", "value"} [KV-REST].
        body = json_body(req)
        with self.lock:
            version, rec = self.keys._version(name, version)
            rec = dict(rec)
            key = self.keys.private_key(name, version)
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
        return 200, {"kid": self.keys.kid(req.origin, name, version), "value": b64u(out)}, version

"""The admin interface: POST /_admin/<command> with the state directory's
admin secret (X-Admin-Secret), one method per command of the admin command
line (cli.py).  Changes take effect at once; those that touch keys or
permissions are in the audit log with caller "admin"."""

import hmac
import os
import re
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .common import (KEY_PERMISSIONS, KVError, MIN_RETENTION_DAYS, RECOVERY_LEVEL_RE, RECOVERY_LEVELS, ROLES,
                     SOFT_DELETE_DAYS, TOKEN_LIFETIME_MAX, TOKEN_OPS, Resp, default_recoverable_days, int_b64u,
                     iso_now, parse_time_arg)
from .crypto import EC_CURVES, cert_thumbprints
from .keyvault import json_body


class Admin:
    def __init__(self, store, audit, faults, hosts, entra, keys):
        self.store, self.state, self.lock = store, store.data, store.lock
        self.audit, self.faults, self.hosts, self.entra, self.keys = audit, faults, hosts, entra, keys

    def handle(self, req, command):
        if not hmac.compare_digest(req.headers.get("X-Admin-Secret", "").encode(), self.store.admin_secret.encode()):
            return Resp(403, {"error": {"code": "Forbidden", "message": "bad or missing X-Admin-Secret"}})
        fn = getattr(self, "admin_" + command.replace("-", "_"), None)
        if fn is None:
            return Resp(404, {"error": {"code": "UnknownCommand", "message": command}})
        try:
            body = json_body(req)
            return Resp(200, fn(req, body))
        except KVError as e:
            return Resp(e.status, e.body())
        except (ValueError, TypeError, KeyError) as e:
            return Resp(400, {"error": {"code": "BadParameter", "message": "%s: %s" % (type(e).__name__, e)}})

    def _admin_audit(self, req, op, name="", version="", result="Success", status=200):
        self.audit.record(req, op, caller="admin", tenant=self.entra.vault_tenant() or "", key=name, version=version,
                   result=result, status=status)

    def admin_status(self, req, body):
        with self.lock:
            return {"port": self.hosts.port, "vault": self.hosts.vault_url,
                    "authority": self.hosts.origin(self.hosts.login_host), "issuer": self.entra.issuer_url,
                    "hosts": self.hosts.cert_names(),
                    "vault_tenant": self.entra.vault_tenant(), "tenants": sorted(self.entra.tenants()),
                    "auth_mode": self.state.get("auth_mode"), "token_lifetime": self.state["token_lifetime"],
                    "token_lifetimes": dict(self.state.get("token_lifetimes", {})),
                    "soft_delete": self.state.get("soft_delete", True),
                    "purge_protection": self.state.get("purge_protection", True),
                    "retention_days": self.state.get("retention_days", SOFT_DELETE_DAYS),
                    "protected_subscription": self.state.get("protected_subscription", False),
                    "recovery_level": self.keys.vault_recovery()[0], "recoverable_days": self.keys.vault_recovery()[1],
                    "identities": sorted(self.state["identities"]), "keys": sorted(self.state["keys"]),
                    "faults": self.faults.pending(), "pid": os.getpid()}

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
            self.store.save()
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
            self.store.save()
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
        return {"token": self.entra.mint_federated(subject, body.get("audience"), exp_in, body.get("issuer")),
                "issuer": self.entra.issuer_url}

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
            self.store.save()
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
            self.store.save()
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
            self.store.save()
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
            self.store.save()
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
            return self.keys.bundle(self.hosts.vault_url, name, version)

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
            version = self.keys.create_key(name, params)
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
        if not RECOVERY_LEVEL_RE.fullmatch(level):
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
            k = self.keys._live_key(name)
            if recovery:
                k["recovery"] = dict(recovery)
            else:
                k.pop("recovery", None)
            self.store.save()

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
        return self._admin_key_op(req, "KeyImport", name, lambda: self.keys.import_key(name, params))

    def admin_rotate_key(self, req, body):
        name = body["name"]
        return self._admin_key_op(req, "KeyRotate", name, lambda: self.keys.rotate_key(name))

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
            version = self.keys.update_key(name, body.get("version"), patch)
            if recovery is not None:
                self._set_key_recovery(name, recovery)
            return version
        return self._admin_key_op(req, "KeyUpdate", name, update)

    def admin_delete_key(self, req, body):
        name = body["name"]
        try:
            out, version = self.keys.delete_key(self.hosts.vault_url, name)
        except KVError as e:
            self._admin_audit(req, "KeyDelete", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyDelete", name, version)
        return out

    def admin_recover_key(self, req, body):
        name = body["name"]
        try:
            out, version = self.keys.recover_key(self.hosts.vault_url, name)
        except KVError as e:
            self._admin_audit(req, "KeyRecover", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyRecover", name, version)
        return out

    def admin_purge_key(self, req, body):
        name = body["name"]
        try:
            self.keys.purge_key(name, force=bool(body.get("force")))
        except KVError as e:
            self._admin_audit(req, "KeyPurge", name, "", e.result, e.status)
            raise
        self._admin_audit(req, "KeyPurge", name)
        return {"purged": name}

    def admin_list_versions(self, req, body):
        name = body["name"]
        with self.lock:
            k = self.keys._live_key(name)
            return {"value": [self.keys.key_item(self.hosts.vault_url, name, v) for v in k["order"]], "nextLink": None}

    def admin_fault(self, req, body):
        return self.faults.clear() if body.get("clear") else self.faults.add(body)

    def admin_audit(self, req, body):
        return self.audit.read(body.get("since"), body.get("caller"), body.get("operation"))

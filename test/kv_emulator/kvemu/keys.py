"""The vault's keys: versions with their private halves (as Key Vault holds
them), attributes (enabled, nbf, exp, recoveryLevel, recoverableDays), soft
delete, recovery and purge, and the KeyBundle / KeyItem shapes of the REST
reference [KV-REST] [KV-SD].  The REST front (keyvault.py) and the admin
commands both work through it."""

import re
import uuid

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .common import (EC_DEFAULT_OPS, KEY_OPS, KVError, RSA_DEFAULT_OPS, SOFT_DELETE_DAYS, b64u_int, bad_param,
                     int_b64u, key_not_found, now_ts, recovery_level_of)
from .crypto import EC_CURVES, key_pem, load_key_pem, new_rsa_key


class KeyStore:
    def __init__(self, store, hosts):
        self.store, self.state, self.lock = store, store.data, store.lock
        self.hosts = hosts
        self._keycache = {}

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

    @staticmethod
    def kid(base, name, version=None):
        return "%s/keys/%s" % (base, name) + ("/" + version if version else "")

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

    def bundle(self, base, name, version):
        # KeyBundle / JsonWebKey of [KV-REST] (CreateKey-example.json): public parts only.
        rec = self.state["keys"][name]["versions"][version]
        jwk = {"kid": self.kid(base, name, version), "kty": rec["kty"], "key_ops": list(rec["key_ops"])}
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

    def deleted_bundle(self, base, name):
        k = self.state["keys"][name]
        out = self.bundle(base, name, k["order"][-1])
        out.update({"recoveryId": "%s/deletedkeys/%s" % (base, name),
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
            self.store.save()
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
            self.store.save()
        return version

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
            self.store.save()
            return version

    def rotate_key(self, name):
        with self.lock:
            version, rec = self._version(name, None)
            rec = dict(rec)
        key, extra = self._generate(rec["kty"], rec.get("key_size"), rec.get("crv"))
        return self._insert_version(name, key, rec["kty"], extra, list(rec["key_ops"]), None, rec.get("tags"))

    def delete_key(self, base, name):
        with self.lock:
            k = self._live_key(name)
            version = k["order"][-1]
            level, days = self.key_recovery(name)
            if "Recoverable" not in level:
                # No soft delete: the key is gone at once [KV-SD]; the answer is
                # the key as it was, without the recovery fields.
                out = self.bundle(base, name, version)
                self._forget_key(name)
                self.store.save()
                return out, version
            t = now_ts()
            k["deleted"] = {"deletedDate": t, "scheduledPurgeDate": t + days * 86400}
            self.store.save()
            return self.deleted_bundle(base, name), version

    def _forget_key(self, name):
        del self.state["keys"][name]
        for ck in [c for c in self._keycache if c[0] == name]:
            del self._keycache[ck]

    def recover_key(self, base, name):
        with self.lock:
            k = self._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            k["deleted"] = None
            self.store.save()
            return self.bundle(base, name, k["order"][-1]), k["order"][-1]

    def purge_key(self, name, force=False):
        with self.lock:
            k = self._deleted_key(name)
            if k is None:
                raise KVError(404, "KeyNotFound", "Deleted Key not found: %s" % name)
            if "Purgeable" not in self.key_recovery(name)[0] and not force:
                raise KVError(403, "Forbidden",
                              'Operation "purge" is not allowed because purge protection is enabled for this '
                              'vault. Key Vault service will automatically purge it after the retention period '
                              'has passed.\r\nVault: %s;location=local' % self.hosts.vault_name)
            self._forget_key(name)
            self.store.save()

    def key_item(self, base, name, version, with_version=True):
        rec = self.state["keys"][name]["versions"][version]
        item = {"kid": self.kid(base, name, version if with_version else None), "attributes": self.attributes(name, rec)}
        if rec.get("tags"):
            item["tags"] = dict(rec["tags"])
        return item

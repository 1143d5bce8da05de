"""The emulator's persistent state: DIR/state.json (identities, permissions,
keys with their private halves as Key Vault holds them, vault settings, the
token-signing keys) and DIR/admin_secret, with the one lock that guards them.
The state is written whole (tmp + fsync + rename) after every change."""

import json
import os
import secrets
import threading

from .common import SOFT_DELETE_DAYS, write_file
from .crypto import key_pem, new_rsa_key


class Store:
    def __init__(self, state_dir):
        self.dir = os.path.abspath(state_dir)
        self.path = os.path.join(self.dir, "state.json")
        self.lock = threading.RLock()
        self.admin_secret = self._admin_secret()
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.data = json.load(f)
        else:
            self.data = self._new()

    @staticmethod
    def _new():
        return {
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

    def save(self):
        with self.lock:
            write_file(self.path, json.dumps(self.data, indent=1, sort_keys=True), 0o600)

"""The host names the emulator answers for, and what each name means.

Key Vault and Managed HSM are addressed by DNS names under a service domain
(`<vault>.vault.azure.net`, `<hsm>.managedhsm.azure.net`); the bearer
challenge names the domain's resource (`https://vault.azure.net`), and
clients (Azure SDKs, cmk) check that the vault's host lies within it [KV-AUTH].
Every other name (`localhost`, a sign-in host such as `login.microsoftonline.com`
or a name under the reserved `.test` domain) serves Entra ID and the
managed-identity endpoints; all names serve every path, on one port.
"""

import ipaddress
import re

# Service domains and the resource their challenge announces [KV-AUTH]; the
# sovereign clouds' domains follow the same pattern.
KEY_VAULT_DOMAINS = {
    "vault.azure.net": "https://vault.azure.net",
    "vault.azure.cn": "https://vault.azure.cn",
    "vault.usgovcloudapi.net": "https://vault.usgovcloudapi.net",
    "managedhsm.azure.net": "https://managedhsm.azure.net",
    "managedhsm.azure.cn": "https://managedhsm.azure.cn",
    "managedhsm.usgovcloudapi.net": "https://managedhsm.usgovcloudapi.net",
}
# Entra ID's public-cloud sign-in host and its aliases, as instance discovery
# reports them [AAD-DISC]; MSAL knows them without asking.
PUBLIC_CLOUD_ALIASES = ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"]
PUBLIC_CLOUD_AUTHORITY = "https://login.microsoftonline.com"
# Audiences a vault addressed by a loopback name accepts (the emulator's
# historical surface: resource https://localhost, or Key Vault's own).
LOOPBACK_AUDIENCES = ("https://localhost", "https://vault.azure.net", "https://127.0.0.1")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME_RE = re.compile(r"%s(\.%s)*" % (_LABEL, _LABEL))


def valid_name(name):
    return len(name) <= 253 and bool(_NAME_RE.fullmatch(name))


def split_host(host):
    """'name:port' / '[::1]:port' / 'name' -> (lowercased name, port or None)."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1:]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, int(port) if port.isdigit() else None
    return host, None


def is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def service_domain(name):
    """The Key Vault / Managed HSM domain a name lies in, or None."""
    for domain in KEY_VAULT_DOMAINS:
        if name.endswith("." + domain) and name.count(".") == domain.count(".") + 1:
            return domain
    return None


class Hosts:
    """The names given with --host (plus the loopback names), and the port."""

    def __init__(self, names, port=None):
        self.names = []
        for n in names or []:
            n = n.strip().lower().rstrip(".")
            if not valid_name(n) or is_ip(n):
                raise ValueError("--host %r is not a DNS name" % n)
            if n not in self.names:
                self.names.append(n)
        self.port = port
        self.vault_names = [n for n in self.names if service_domain(n)]
        self.login_names = [n for n in self.names if not service_domain(n)]

    def cert_names(self):
        """DNS names of the server certificate (IP addresses are added apart)."""
        return ["localhost"] + [n for n in self.names if n != "localhost"]

    def origin(self, name):
        """https://name, with the port unless it is 443."""
        return "https://%s" % name if self.port == 443 else "https://%s:%d" % (name, self.port)

    @property
    def vault_host(self):
        """The vault's own name: the first Key Vault / HSM name, else localhost."""
        return self.vault_names[0] if self.vault_names else "localhost"

    @property
    def vault_url(self):
        return self.origin(self.vault_host)

    @property
    def login_host(self):
        """The name the emulator's own sign-in URLs use (issuer of federated tokens)."""
        return self.login_names[0] if self.login_names else "localhost"

    @property
    def vault_name(self):
        """The vault's name as Key Vault's messages spell it ("Vault: name;location=...")."""
        return self.vault_host.split(".")[0]

    @staticmethod
    def resource_for(name):
        """The resource the bearer challenge names for a vault addressed as `name`:
        the service domain's for Key Vault / HSM names, the name itself for other
        DNS names, and https://localhost for addresses (the loopback name)."""
        domain = service_domain(name)
        if domain:
            return KEY_VAULT_DOMAINS[domain]
        if not name or is_ip(name):
            return "https://localhost"
        return "https://" + name

    @classmethod
    def audiences_for(cls, name):
        """Token audiences a vault addressed as `name` accepts."""
        res = cls.resource_for(name)
        if res == "https://localhost" or name == "localhost":
            return set(LOOPBACK_AUDIENCES) | {res}
        return {res}

    def known_resources(self, request_origin=None):
        """Resources Entra issues tokens for (anything else: AADSTS500011)."""
        out = set(LOOPBACK_AUDIENCES) | set(KEY_VAULT_DOMAINS.values())
        for n in self.cert_names() + ["127.0.0.1"]:
            out.add("https://" + n)
            if self.port:
                out.add("https://%s:%d" % (n, self.port))
        if request_origin:
            out.add(request_origin)
        return out

    def is_ours(self, name):
        return name in self.names or name in ("localhost", "127.0.0.1", "::1")

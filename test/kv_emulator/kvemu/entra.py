"""Microsoft Entra ID: the token endpoint (client credentials grant with a
secret, a certificate assertion or a federated token) [AAD-CC] [AAD-CERT]
[WIF], the discovery documents MSAL reads (instance discovery, a tenant's
OpenID configuration and keys) [AAD-DISC], the emulator's own OIDC issuer for
workload identity, and the access tokens Key Vault then accepts."""

import datetime
import hashlib
import hmac
import secrets
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .common import (AADError, CERT_DOC, JWT_BEARER, Resp, WIF_AUDIENCE, WIF_DOC,
                     b64u, b64u_dec, int_b64u, iso_of, now_ts)
from .crypto import jwt_encode, jwt_parse, jwt_verify, load_key_pem
from .hosts import PUBLIC_CLOUD_ALIASES, split_host


def normalize_resource(res):
    """A scope or resource as a resource: without /.default and trailing '/'."""
    res = res.strip()
    if res.endswith("/.default"):
        res = res[: -len("/.default")]
    return res.rstrip("/")


class Entra:
    def __init__(self, store, audit, hosts):
        self.store, self.state, self.lock = store, store.data, store.lock
        self.audit, self.hosts = audit, hosts
        self.signing_key = load_key_pem(self.state["signing_key"])
        self.issuer_key = load_key_pem(self.state["issuer_key"])
        self.signing_kid = b64u(hashlib.sha1(self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())
        self.issuer_kid = b64u(hashlib.sha256(self.issuer_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())[:22]

    @property
    def issuer_url(self):
        """The emulator's own OIDC issuer (federated tokens for workload identity)."""
        return self.hosts.origin(self.hosts.login_host) + "/oidc"

    def vault_tenant(self):
        return self.state.get("vault_tenant")

    def tenants(self):
        with self.lock:
            t = {i["tenant"] for i in self.state["identities"].values()}
        if self.vault_tenant():
            t.add(self.vault_tenant())
        return t

    def known_resource(self, res, req):
        return res in self.hosts.known_resources(req.origin)

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
                "correlation_id": corr, "error_uri": "%s/error?code=%d" % (req.origin, num)}
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
            ident, acr = self._token_checks(tenant, form, req)
            scope = form.get("scope", "").strip()
            scopes = scope.split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise AADError(400, "invalid_scope", "AADSTS1002012",
                               "The provided value for scope %s is not valid. Client credential flows must "
                               "have a scope value with /.default suffixed to the resource identifier "
                               "(application ID URI)." % scope)
            resource = normalize_resource(scopes[0])
            if not self.known_resource(resource, req):
                raise AADError(400, "invalid_resource", "AADSTS500011",
                               "The resource principal named %s was not found in the tenant named %s. This "
                               "can happen if the application has not been installed by the administrator of "
                               "the tenant or consented to by any user in the tenant. You might have sent "
                               "your authentication request to the wrong tenant." % (resource, tenant))
        except AADError as e:
            self.audit.record(req, "Authentication", caller=client_id, tenant=tenant, result=e.code,
                       status=e.status, detail=e.message[:200])
            return self.aad_response(req, e)
        tok, lifetime, _ = self.issue_token(ident, resource, acr, "token")
        self.audit.record(req, "Authentication", caller=ident["client_id"], tenant=tenant,
                   detail="client_credentials acr=%s" % acr)
        return Resp(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                          "access_token": tok})

    def _token_checks(self, tenant, form, req):
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
            self._check_assertion(tenant, ident, form["client_assertion"], req)
            return ident, "2"
        raise AADError(401, "invalid_client", "AADSTS7000218",
                       "The request body must contain the following parameter: 'client_assertion' or "
                       "'client_secret'.")

    def _assertion_audiences(self, tenant, req):
        out = set()
        for host in {self.hosts.origin(n) for n in self.hosts.cert_names() + ["127.0.0.1"]} | {req.origin}:
            out |= {"%s/%s/oauth2/v2.0/token" % (host, tenant), "%s/%s/oauth2/token" % (host, tenant),
                    "%s/%s/v2.0" % (host, tenant), "%s/%s/" % (host, tenant), "%s/%s" % (host, tenant)}
        return out

    @staticmethod
    def _time_range_error(t, nbf, exp):
        return AADError(401, "invalid_client", "AADSTS700024",
                        "Client assertion is not within its valid time range. Current time: %s, assertion "
                        "valid from %s, expiry time of assertion %s. %s"
                        % (iso_of(t), iso_of(nbf) if nbf else "", iso_of(exp) if exp else "", CERT_DOC))

    def _check_assertion(self, tenant, ident, assertion, req):
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
        if not any(isinstance(a, str) and a in self._assertion_audiences(tenant, req) for a in auds):
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

    # ---- discovery [AAD-DISC] ------------------------------------------------
    def h_tenant_discovery(self, req, tenant):
        """GET /{tenant}/v2.0/.well-known/openid-configuration, for the host it
        was asked on (MSAL checks the issuer's origin against the authority's)."""
        if tenant not in self.tenants() and tenant not in ("common", "organizations"):
            return self.aad_response(req, AADError(400, "invalid_tenant", "AADSTS90002",
                                                   "Tenant '%s' not found." % tenant))
        self.audit.record(req, "Discovery", tenant=tenant, detail="openid-configuration")
        b = "%s/%s" % (req.origin, tenant)
        return Resp(200, {"token_endpoint": b + "/oauth2/v2.0/token",
                          "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                                    "client_secret_basic"],
                          "jwks_uri": b + "/discovery/v2.0/keys", "issuer": b + "/v2.0",
                          "authorization_endpoint": b + "/oauth2/v2.0/authorize",
                          "end_session_endpoint": b + "/oauth2/v2.0/logout",
                          "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                          "subject_types_supported": ["pairwise"],
                          "id_token_signing_alg_values_supported": ["RS256"],
                          "tenant_region_scope": "local", "cloud_instance_name": "microsoftonline.com"})

    def h_tenant_keys(self, req, tenant):
        """GET /{tenant}/discovery/v2.0/keys: the keys access tokens are signed with."""
        nums = self.signing_key.public_key().public_numbers()
        return Resp(200, {"keys": [{"kty": "RSA", "use": "sig", "kid": self.signing_kid, "x5t": self.signing_kid,
                                    "n": int_b64u(nums.n), "e": int_b64u(nums.e)}]})

    def h_instance_discovery(self, req, tenant):
        """GET /common/discovery/instance?api-version=1.1&authorization_endpoint=URL:
        the cloud's sign-in hosts and their aliases (MSAL asks it, always at
        login.microsoftonline.com, before it trusts an authority it does not
        know).  An authority that is neither the public cloud's nor one of the
        emulator's names is answered invalid_instance (AADSTS50049)."""
        endpoint = req.query.get("authorization_endpoint", "")
        url = urllib.parse.urlsplit(endpoint)
        host_port = url.netloc.lower()
        name = split_host(host_port)[0]
        known = name in PUBLIC_CLOUD_ALIASES or self.hosts.is_ours(name)
        if url.scheme != "https" or not known or not req.query.get("api-version"):
            self.audit.record(req, "Discovery", result="AADSTS50049", status=400,
                              detail="instance %s" % endpoint[:200])
            e = AADError(400, "invalid_instance", "AADSTS50049", "Unknown or invalid instance.")
            return self.aad_response(req, e)
        self.audit.record(req, "Discovery", detail="instance %s" % endpoint[:200])
        metadata = [{"preferred_network": PUBLIC_CLOUD_ALIASES[0], "preferred_cache": "login.windows.net",
                     "aliases": list(PUBLIC_CLOUD_ALIASES)}]
        if name not in PUBLIC_CLOUD_ALIASES:
            metadata.append({"preferred_network": host_port, "preferred_cache": host_port, "aliases": [host_port]})
        tenant_in_endpoint = (url.path.strip("/").split("/") or ["common"])[0] or "common"
        return Resp(200, {"tenant_discovery_endpoint": "https://%s/%s/v2.0/.well-known/openid-configuration"
                                                       % (host_port, tenant_in_endpoint),
                          "api-version": "1.1", "metadata": metadata})

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
        """A token of the emulator's own OIDC issuer, for workload identity."""
        t = now_ts()
        claims = {"iss": issuer or self.issuer_url, "sub": subject, "aud": [audience or WIF_AUDIENCE],
                  "iat": t, "nbf": min(t, t + expires_in), "exp": t + expires_in, "jti": str(uuid.uuid4())}
        return jwt_encode({"alg": "RS256", "typ": "JWT", "kid": self.issuer_kid}, claims, self.issuer_key)

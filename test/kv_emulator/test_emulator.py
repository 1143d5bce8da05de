"""Self-tests of the Key Vault / Entra ID emulator.

Run: python3 -m unittest discover -s test/kv_emulator -v

One emulator is started for the module in a temporary state directory (plus a
second one for the restart test); every check goes over HTTPS with
http.client/ssl against the emulator's own CA.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.join(HERE, "kv_emulator.py")
sys.path.insert(0, HERE)
from kvemu import cli as kv_emulator  # noqa: E402  (the admin command line, used in-process for speed)
TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "22222222-2222-2222-2222-222222222222"
APP, SECRET = "aaaaaaaa-0000-0000-0000-000000000001", "app-secret-1"
ALL_PERMS = "get,list,create,import,update,delete,rotate,wrapKey,unwrapKey,recover,purge"
OAEP256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
OAEP1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt(header, claims, key, alg="RS256"):
    si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    if alg == "PS256":
        sig = key.sign(si.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
    else:
        sig = key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
    return si + "." + b64u(sig)


def jwt_claims(tok):
    return json.loads(unb64u(tok.split(".")[1]))


def self_signed(cn="client"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    t = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(t - datetime.timedelta(days=1))
            .not_valid_after(t + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert


class Emu:
    """Test harness around one emulator process."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.proc = None

    def start(self, *extra):
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "emulator.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, EMU, "serve", "--state-dir", self.dir, "--port", "0"]
                                     + list(extra), stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "emulator.log")) as f:
                    raise RuntimeError("emulator died: %s" % f.read())
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not become ready")
            time.sleep(0.05)
        with open(os.path.join(self.dir, "port")) as f:
            self.port = int(f.read())
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        self.base = "https://localhost:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    # -- admin ---------------------------------------------------------------
    def cli(self, *args):
        """The admin CLI as a separate process: (exit code, parsed stdout)."""
        p = subprocess.run([sys.executable, EMU, "admin", "--state-dir", self.dir] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return p.returncode, json.loads(p.stdout.decode() or "null")

    def admin_rc(self, *args):
        """The same command line, parsed and sent in-process (same parser and client)."""
        ns = kv_emulator.build_parser().parse_args(["admin", "--state-dir", self.dir] + list(args))
        return kv_emulator.admin_request(self.dir, ns.command, kv_emulator.admin_payload(ns))

    def admin(self, *args):
        rc, out = self.admin_rc(*args)
        if rc != 0:
            raise AssertionError("admin %s failed: %s" % (args, out))
        return out

    # -- HTTP --------------------------------------------------------------
    def conn(self, host="localhost"):
        return http.client.HTTPSConnection(host, self.port, context=self.ctx, timeout=20)

    def request(self, method, path, body=None, headers=None, token=None, form=None, raw=False):
        h = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        js = None
        if payload and not raw:
            js = json.loads(payload)
        return r.status, hdrs, js if not raw else payload

    def kv(self, method, path, body=None, token=None, headers=None):
        sep = "&" if "?" in path else "?"
        return self.request(method, path + sep + "api-version=7.4", body=body, token=token, headers=headers)

    def token_resp(self, client_id, secret=None, tenant=TENANT, scope="https://localhost/.default", **extra):
        form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}
        if secret is not None:
            form["client_secret"] = secret
        form.update(extra)
        return self.request("POST", "/%s/oauth2/v2.0/token" % tenant, form=form)

    def token(self, client_id, secret, tenant=TENANT, scope="https://localhost/.default"):
        st, _, js = self.token_resp(client_id, secret, tenant, scope)
        assert st == 200, js
        return js["access_token"]

    def audit(self, **filters):
        args = []
        for k, v in filters.items():
            args += ["--" + k, v]
        return self.admin("audit", *args)


E = None
TOKEN = None
_TMP = None


def setUpModule():
    global E, TOKEN, _TMP
    _TMP = tempfile.mkdtemp(prefix="kvemu-test-")
    E = Emu(os.path.join(_TMP, "main"))
    E.start()
    E.admin("add-identity", "--tenant", TENANT, "--client-id", APP, "--secret", SECRET)
    E.admin("grant", "--client-id", APP, "--permissions", ALL_PERMS)
    E.admin("create-key", "--name", "kek")
    TOKEN = E.token(APP, SECRET)


def tearDownModule():
    if E:
        E.stop()
    shutil.rmtree(_TMP, ignore_errors=True)


def uniq(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def new_app(perms="get,wrapKey,unwrapKey", tenant=TENANT):
    cid, secret = str(uuid.uuid4()), uuid.uuid4().hex
    E.admin("add-identity", "--tenant", tenant, "--client-id", cid, "--secret", secret)
    if perms:
        E.admin("grant", "--client-id", cid, "--permissions", perms)
    return cid, secret


def wrap(name, data, token=None, alg="RSA-OAEP-256", version=""):
    path = "/keys/%s/%s/wrapkey" % (name, version) if version else "/keys/%s/wrapkey" % name
    return E.kv("POST", path, {"alg": alg, "value": b64u(data)}, token=token or TOKEN)


def unwrap(name, value, token=None, alg="RSA-OAEP-256", version=""):
    path = "/keys/%s/%s/unwrapkey" % (name, version) if version else "/keys/%s/unwrapkey" % name
    return E.kv("POST", path, {"alg": alg, "value": value}, token=token or TOKEN)


def public_key_of(bundle):
    n = int.from_bytes(unb64u(bundle["key"]["n"]), "big")
    e = int.from_bytes(unb64u(bundle["key"]["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


# ==========================================================================
class TestTransport(unittest.TestCase):
    def test_tls_verifies_against_generated_ca_for_localhost_and_ip(self):
        for host in ("localhost", "127.0.0.1"):
            c = E.conn(host)
            c.request("GET", "/oidc/.well-known/openid-configuration")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            c.close()
        # Without the emulator's CA the certificate does not verify.
        c = http.client.HTTPSConnection("localhost", E.port, context=ssl.create_default_context(), timeout=10)
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.request("GET", "/")
        c.close()
        with open(os.path.join(E.dir, "ca.pem"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        self.assertTrue(ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)

    def test_every_response_carries_request_id(self):
        seen = set()
        cases = [
            ("GET", "/keys/kek?api-version=7.4", None, {}),                          # 401
            ("GET", "/keys/kek?api-version=7.4", None, {"Authorization": "Bearer " + TOKEN}),
            ("GET", "/oidc/jwks", None, {}),
            ("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", None, {}),
            ("GET", "/msi/token", None, {}),
            ("POST", "/%s/oauth2/v2.0/token" % TENANT, b"grant_type=client_credentials", {}),
            ("GET", "/no/such/path", None, {}),
            ("POST", "/_admin/status", b"{}", {}),                                  # 403
            ("OPTIONS", "/keys", None, {}),
        ]
        for method, path, body, headers in cases:
            c = E.conn()
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            rid = r.getheader("x-ms-request-id")
            self.assertIsNotNone(rid, (method, path, r.status))
            self.assertRegex(rid, UUID_RE)
            seen.add(rid)
            c.close()
        self.assertEqual(len(seen), len(cases))
        # Even a request http.server itself rejects (bad request line).
        raw = socket.create_connection(("127.0.0.1", E.port), timeout=10)
        s = E.ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"GET / extra HTTP/1.1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertIn(b"x-ms-request-id:", data.lower())

    def test_client_request_id_echoed(self):
        st, h, _ = E.kv("GET", "/keys/kek", token=TOKEN, headers={"x-ms-client-request-id": "abc-123"})
        self.assertEqual(st, 200)
        self.assertEqual(h["x-ms-client-request-id"], "abc-123")

    def test_keep_alive(self):
        c = E.conn()
        socks = []
        for _ in range(3):
            c.request("GET", "/keys/kek?api-version=7.4", headers={"Authorization": "Bearer " + TOKEN})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.version, 11)
            self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
            json.loads(r.read())
            socks.append(c.sock)
        self.assertIs(socks[0], socks[1])
        self.assertIs(socks[1], socks[2])
        c.close()

    def test_listens_on_loopback_only(self):
        if not os.path.exists("/proc/net/tcp"):
            self.skipTest("no /proc/net/tcp")
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.readlines()[1:]]
        listen = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == E.port]
        self.assertEqual(listen, ["0100007F:%04X" % E.port])
        with open("/proc/net/tcp6") as f:
            rows6 = [l.split() for l in f.readlines()[1:]]
        self.assertFalse([r for r in rows6 if r[3] == "0A" and int(r[1].split(":")[1], 16) == E.port])


# ==========================================================================
class TestChallengeAndTokens(unittest.TestCase):
    def test_401_challenge(self):
        st, h, js = E.kv("POST", "/keys/kek/unwrapkey", {"alg": "RSA-OAEP-256", "value": "AA"})
        self.assertEqual(st, 401)
        self.assertEqual(h["www-authenticate"],
                         'Bearer authorization="https://localhost:%d/%s", resource="https://localhost"'
                         % (E.port, TENANT))
        self.assertEqual(js, {"error": {"code": "Unauthorized",
                                        "message": "AKV10000: Request is missing a Bearer or PoP token."}})
        st, h, js = E.kv("GET", "/keys/kek", headers={"Authorization": "Basic abc"})
        self.assertEqual(st, 401)
        self.assertIn("www-authenticate", h)

    def test_bad_tokens_get_401_with_challenge(self):
        st, h, js = E.kv("GET", "/keys/kek", token="not.a.jwt")
        self.assertEqual((st, js["error"]["code"]), (401, "Unauthorized"))
        self.assertIn("www-authenticate", h)
        # A well-formed token signed by someone else.
        claims = jwt_claims(TOKEN)
        forged = jwt({"alg": "RS256", "typ": "JWT"}, claims, rsa.generate_private_key(65537, 2048))
        st, h, js = E.kv("GET", "/keys/kek", token=forged)
        self.assertEqual(st, 401)
        self.assertIn("signature", js["error"]["message"].lower())
        self.assertIn("www-authenticate", h)

    def test_token_from_other_tenant_is_rejected_by_vault(self):
        cid, secret = new_app(tenant=OTHER_TENANT)
        tok = E.token(cid, secret, tenant=OTHER_TENANT)
        self.assertEqual(jwt_claims(tok)["tid"], OTHER_TENANT)
        st, h, js = E.kv("GET", "/keys/kek", token=tok)
        self.assertEqual(st, 401)
        self.assertTrue(js["error"]["message"].startswith("AKV10032: Invalid issuer."), js)

    def test_vault_azure_net_scope_accepted(self):
        tok = E.token(APP, SECRET, scope="https://vault.azure.net/.default")
        self.assertEqual(jwt_claims(tok)["aud"], "https://vault.azure.net")
        st, _, _ = E.kv("GET", "/keys/kek", token=tok)
        self.assertEqual(st, 200)

    def test_access_tokens_expire(self):
        E.admin("set-token-lifetime", "--seconds", "1")
        try:
            st, _, js = E.token_resp(APP, SECRET)
            self.assertEqual(js["expires_in"], 1)
            tok = js["access_token"]
            c = jwt_claims(tok)
            self.assertEqual(c["exp"] - c["iat"], 1)
            while time.time() < c["exp"] + 0.05:
                time.sleep(0.05)
            st, h, js = E.kv("GET", "/keys/kek", token=tok)
            self.assertEqual(st, 401)
            self.assertIn("TokenExpired", js["error"]["message"])
            self.assertIn("www-authenticate", h)
        finally:
            E.admin("set-token-lifetime", "--seconds", "3600")
        self.assertEqual(E.kv("GET", "/keys/kek", token=E.token(APP, SECRET))[0], 200)


# ==========================================================================
class TestEntraTokenEndpoint(unittest.TestCase):
    def assertAAD(self, resp, status, error, code):
        st, h, js = resp
        self.assertEqual(st, status, js)
        self.assertEqual(js["error"], error)
        self.assertTrue(js["error_description"].startswith("AADSTS%d: " % code), js["error_description"])
        self.assertIn("\r\nTrace ID: ", js["error_description"])
        self.assertEqual(js["error_codes"], [code])
        for f in ("timestamp", "trace_id", "correlation_id", "error_uri"):
            self.assertIn(f, js)
        self.assertRegex(h["x-ms-request-id"], UUID_RE)
        return js

    def test_client_secret_success(self):
        st, _, js = E.token_resp(APP, SECRET)
        self.assertEqual(st, 200)
        self.assertEqual(js["token_type"], "Bearer")
        self.assertIsInstance(js["expires_in"], int)
        self.assertIn("ext_expires_in", js)
        c = jwt_claims(js["access_token"])
        self.assertEqual((c["aud"], c["appid"], c["tid"], c["iss"], c["ver"]),
                         ("https://localhost", APP, TENANT, "https://sts.windows.net/%s/" % TENANT, "1.0"))
        hdr = json.loads(unb64u(js["access_token"].split(".")[0]))
        self.assertEqual(hdr["alg"], "RS256")

    def test_wrong_secret(self):
        js = self.assertAAD(E.request("POST", "/%s/oauth2/v2.0/token" % TENANT,
                                      form={"grant_type": "client_credentials", "client_id": APP,
                                            "client_secret": "wrong", "scope": "https://localhost/.default"},
                                      headers={"client-request-id": "corr-1"}),
                            401, "invalid_client", 7000215)
        self.assertEqual(js["correlation_id"], "corr-1")

    def test_unknown_client(self):
        self.assertAAD(E.token_resp("no-such-app", "x"), 400, "unauthorized_client", 700016)

    def test_client_in_other_tenant(self):
        cid, secret = new_app(perms=None, tenant=OTHER_TENANT)
        self.assertAAD(E.token_resp(cid, secret, tenant=TENANT), 400, "unauthorized_client", 700016)

    def test_unknown_tenant(self):
        self.assertAAD(E.token_resp(APP, SECRET, tenant="33333333-3333-3333-3333-333333333333"),
                       400, "invalid_request", 90002)

    def test_request_errors(self):
        self.assertAAD(E.request("POST", "/%s/oauth2/v2.0/token" % TENANT,
                                 form={"client_id": APP, "client_secret": SECRET, "scope": "https://localhost/.default"}),
                       400, "invalid_request", 900144)
        self.assertAAD(E.token_resp(APP, SECRET, grant_type="password"), 400, "unsupported_grant_type", 70003)
        self.assertAAD(E.token_resp(APP), 401, "invalid_client", 7000218)
        self.assertAAD(E.token_resp(APP, SECRET, scope="https://localhost"), 400, "invalid_scope", 1002012)
        self.assertAAD(E.token_resp(APP, SECRET, scope="https://graph.microsoft.com/.default"),
                       400, "invalid_resource", 500011)


class TestClientAssertion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cid = str(uuid.uuid4())
        cls.key, cls.cert = self_signed()
        der = cls.cert.public_bytes(serialization.Encoding.DER)
        cls.x5t = b64u(hashlib.sha1(der).digest())
        cls.x5t256 = b64u(hashlib.sha256(der).digest())
        path = os.path.join(_TMP, "client-cert.pem")
        with open(path, "wb") as f:
            f.write(cls.cert.public_bytes(serialization.Encoding.PEM))
        out = E.admin("add-identity", "--tenant", TENANT, "--client-id", cls.cid, "--cert-pem", path)
        assert out["certificates"][0]["x5t"] == cls.x5t, out
        E.admin("grant", "--client-id", cls.cid, "--permissions", "get")
        cls.aud = "https://localhost:%d/%s/oauth2/v2.0/token" % (E.port, TENANT)

    def claims(self, **over):
        t = int(time.time())
        c = {"aud": self.aud, "iss": self.cid, "sub": self.cid, "jti": str(uuid.uuid4()),
             "nbf": t - 5, "exp": t + 600, "iat": t - 5}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def exchange(self, assertion):
        return E.token_resp(self.cid, client_assertion=assertion,
                            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")

    def expect(self, assertion, status, code):
        st, _, js = self.exchange(assertion)
        self.assertEqual(st, status, js)
        self.assertEqual(js["error_codes"], [code], js)
        return js

    def test_rs256_with_x5t(self):
        a = jwt({"alg": "RS256", "typ": "JWT", "x5t": self.x5t}, self.claims(), self.key)
        st, _, js = self.exchange(a)
        self.assertEqual(st, 200, js)
        c = jwt_claims(js["access_token"])
        self.assertEqual((c["appid"], c["appidacr"]), (self.cid, "2"))
        self.assertEqual(E.kv("GET", "/keys/kek", token=js["access_token"])[0], 200)

    def test_ps256_with_x5t_s256(self):
        a = jwt({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t256}, self.claims(), self.key, alg="PS256")
        self.assertEqual(self.exchange(a)[0], 200)

    def test_bad_signature(self):
        other = rsa.generate_private_key(65537, 2048)
        a = jwt({"alg": "RS256", "typ": "JWT", "x5t": self.x5t}, self.claims(), other)
        js = self.expect(a, 401, 700027)
        self.assertIn("did not match", js["error_description"])

    def test_unregistered_certificate(self):
        key, cert = self_signed("other")
        x5t = b64u(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest())
        js = self.expect(jwt({"alg": "RS256", "typ": "JWT", "x5t": x5t}, self.claims(), key), 401, 700027)
        self.assertIn("The key was not found", js["error_description"])

    def test_expired_and_not_yet_valid(self):
        t = int(time.time())
        h = {"alg": "RS256", "typ": "JWT", "x5t": self.x5t}
        self.expect(jwt(h, self.claims(nbf=t - 1200, exp=t - 600), self.key), 401, 700024)
        self.expect(jwt(h, self.claims(nbf=t + 600, exp=t + 1200), self.key), 401, 700024)

    def test_wrong_audience(self):
        h = {"alg": "RS256", "typ": "JWT", "x5t": self.x5t}
        self.expect(jwt(h, self.claims(aud="https://login.microsoftonline.com/%s/oauth2/v2.0/token" % TENANT),
                        self.key), 401, 700023)
        self.expect(jwt(h, self.claims(aud="https://localhost:%d/%s/oauth2/v2.0/token" % (E.port, OTHER_TENANT)),
                        self.key), 401, 700023)

    def test_sub_must_equal_client_id_and_jti_required(self):
        h = {"alg": "RS256", "typ": "JWT", "x5t": self.x5t}
        self.expect(jwt(h, self.claims(sub="someone-else"), self.key), 401, 700021)
        self.expect(jwt(h, self.claims(jti=None), self.key), 400, 90014)

    def test_malformed_assertion(self):
        self.expect("abc.def", 400, 50027)
        st, _, js = E.token_resp(self.cid, client_assertion="x.y.z", client_assertion_type="bogus")
        self.assertEqual((st, js["error_codes"]), (400, [900144]))


class TestWorkloadIdentity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cid = str(uuid.uuid4())
        cls.sub = "system:serviceaccount:db:postgres"
        E.admin("add-identity", "--tenant", TENANT, "--client-id", cls.cid, "--federated-subject", cls.sub)
        E.admin("grant", "--client-id", cls.cid, "--permissions", "get,unwrapKey")

    def exchange(self, assertion, cid=None):
        return E.token_resp(cid or self.cid, client_assertion=assertion,
                            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")

    def mint(self, *args, subject=None):
        return E.admin("mint-federated-token", "--client-id", self.cid, "--subject", subject or self.sub,
                       *args)["token"]

    def test_federated_token_exchange(self):
        fed = self.mint()
        c = jwt_claims(fed)
        self.assertEqual((c["iss"], c["sub"], c["aud"]),
                         ("https://localhost:%d/oidc" % E.port, self.sub, ["api://AzureADTokenExchange"]))
        # The issuer publishes its keys; the token verifies against them.
        st, _, jwks = E.request("GET", "/oidc/jwks")
        k = jwks["keys"][0]
        pub = rsa.RSAPublicNumbers(int.from_bytes(unb64u(k["e"]), "big"),
                                   int.from_bytes(unb64u(k["n"]), "big")).public_key()
        si, sig = fed.rsplit(".", 1)
        pub.verify(unb64u(sig), si.encode(), padding.PKCS1v15(), hashes.SHA256())
        st, _, js = self.exchange(fed)
        self.assertEqual(st, 200, js)
        self.assertEqual(jwt_claims(js["access_token"])["appid"], self.cid)
        self.assertEqual(E.kv("GET", "/keys/kek", token=js["access_token"])[0], 200)

    def test_federated_errors(self):
        def code(assertion, cid=None):
            st, _, js = self.exchange(assertion, cid)
            self.assertEqual(st, 401, js)
            return js["error_codes"][0]
        fed = self.mint()
        head, payload, sig = fed.split(".")
        tampered = head + "." + b64u(json.dumps(dict(jwt_claims(fed), exp=int(time.time()) + 7200)).encode()) \
            + "." + sig
        self.assertEqual(code(tampered), 700027)
        self.assertEqual(code(self.mint("--expires-in", "-60")), 700024)
        self.assertEqual(code(self.mint(subject="system:serviceaccount:db:other")), 700213)
        self.assertEqual(code(self.mint("--audience", "api://SomethingElse")), 700212)
        self.assertEqual(code(self.mint("--issuer", "https://issuer.example")), 700211)
        cid, _ = new_app(perms=None)   # an app with no federated credential
        self.assertEqual(code(fed, cid), 700211)


# ==========================================================================
class TestManagedIdentity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        st = E.admin("status")
        existing = [c for c in st["identities"]]
        cls.mi1, cls.mi2 = str(uuid.uuid4()), str(uuid.uuid4())
        E.admin("add-identity", "--tenant", TENANT, "--client-id", cls.mi1, "--managed")
        E.admin("add-identity", "--tenant", TENANT, "--client-id", cls.mi2, "--managed")
        E.admin("grant", "--client-id", cls.mi2, "--permissions", "get")
        cls.first_mi = cls.mi1
        assert not any(E.admin("status")["identities"].count(x) > 1 for x in existing)

    def imds(self, query, headers=None):
        return E.request("GET", "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(query),
                         headers=headers)

    def test_imds(self):
        q = {"api-version": "2018-02-01", "resource": "https://localhost"}
        st, _, js = self.imds(q)
        self.assertEqual((st, js), (400, {"error": "invalid_request",
                                          "error_description": "Required metadata header not specified"}))
        st, _, js = self.imds(q, {"Metadata": "true"})
        self.assertEqual(st, 200, js)
        for f in ("expires_in", "expires_on", "not_before", "ext_expires_in"):
            self.assertIsInstance(js[f], str)
            self.assertTrue(js[f].isdigit())
        self.assertEqual((js["token_type"], js["resource"], js["client_id"]),
                         ("Bearer", "https://localhost", self.first_mi))
        st, _, js = self.imds(dict(q, client_id=self.mi2), {"Metadata": "true"})
        self.assertEqual(js["client_id"], self.mi2)
        self.assertEqual(E.kv("GET", "/keys/kek", token=js["access_token"])[0], 200)
        st, _, js = self.imds(dict(q, client_id="nope"), {"Metadata": "true"})
        self.assertEqual((st, js["error_description"]), (400, "Identity not found"))
        st, _, js = self.imds({"api-version": "2018-02-01", "resource": "https://storage.azure.com"},
                              {"Metadata": "true"})
        self.assertEqual((st, js["error"]), (400, "invalid_resource"))

    def test_app_service_identity_endpoint(self):
        header = E.admin("identity-header")["header"]
        q = "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net&client_id=" + self.mi2
        st, _, js = E.request("GET", q, headers={"X-IDENTITY-HEADER": "wrong"})
        self.assertEqual(st, 401)
        st, _, js = E.request("GET", q)
        self.assertEqual(st, 401)
        st, _, js = E.request("GET", q, headers={"X-IDENTITY-HEADER": header})
        self.assertEqual(st, 200, js)
        self.assertEqual((js["resource"], js["token_type"], js["client_id"]),
                         ("https://vault.azure.net", "Bearer", self.mi2))
        self.assertTrue(js["expires_on"].isdigit())
        self.assertEqual(E.kv("GET", "/keys/kek", token=js["access_token"])[0], 200)
        st, _, js = E.request("GET", q.replace("2019-08-01", "2017-09-01"), headers={"X-IDENTITY-HEADER": header})
        self.assertEqual(st, 400)


# ==========================================================================
class TestKeys(unittest.TestCase):
    def create(self, name, **body):
        body.setdefault("kty", "RSA")
        st, _, js = E.kv("POST", "/keys/%s/create" % name, body, token=TOKEN)
        self.assertEqual(st, 200, js)
        return js

    def test_create_get_shapes(self):
        name = uniq("k")
        b = self.create(name, key_size=3072, tags={"purpose": "test"})
        kid = b["key"]["kid"]
        self.assertRegex(kid, r"^https://localhost:%d/keys/%s/[0-9a-f]{32}$" % (E.port, name))
        self.assertEqual(b["key"]["kty"], "RSA")
        self.assertEqual(sorted(b["key"]["key_ops"]),
                         sorted(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]))
        self.assertEqual(len(unb64u(b["key"]["n"])), 384)
        self.assertEqual(b["key"]["e"], "AQAB")
        self.assertNotIn("d", b["key"])
        a = b["attributes"]
        self.assertEqual((a["enabled"], a["recoveryLevel"], a["recoverableDays"]), (True, "Recoverable", 90))
        self.assertIsInstance(a["created"], int)
        self.assertEqual(b["tags"], {"purpose": "test"})
        version = kid.rsplit("/", 1)[1]
        self.assertEqual(E.kv("GET", "/keys/" + name, token=TOKEN)[2], b)
        self.assertEqual(E.kv("GET", "/keys/%s/%s" % (name, version), token=TOKEN)[2], b)
        st, _, js = E.kv("GET", "/keys/%s/%s" % (name, "0" * 32), token=TOKEN)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))
        st, _, js = E.kv("GET", "/keys/" + uniq("missing"), token=TOKEN)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))
        self.assertIn("was not found in this key vault", js["error"]["message"])
        st, _, js = E.kv("GET", "/keys", token=TOKEN)
        self.assertIn("https://localhost:%d/keys/%s" % (E.port, name), [i["kid"] for i in js["value"]])

    def test_wrap_unwrap_all_algorithms(self):
        st, _, bundle = E.kv("GET", "/keys/kek", token=TOKEN)
        pub = public_key_of(bundle)
        for alg, pad in (("RSA-OAEP-256", OAEP256), ("RSA-OAEP", OAEP1), ("RSA1_5", padding.PKCS1v15())):
            dek = os.urandom(32)
            st, _, w = wrap("kek", dek, alg=alg)
            self.assertEqual(st, 200, w)
            self.assertEqual(w["kid"], bundle["key"]["kid"])
            self.assertEqual(len(unb64u(w["value"])), 256)
            st, _, u = unwrap("kek", w["value"], alg=alg)
            self.assertEqual((st, unb64u(u["value"])), (200, dek))
            # Cross-check with the public key: what we encrypt locally the vault unwraps.
            local = b64u(pub.encrypt(dek, pad))
            st, _, u = unwrap("kek", local, alg=alg)
            self.assertEqual((st, unb64u(u["value"])), (200, dek), alg)
        # OAEP is randomized.
        self.assertNotEqual(wrap("kek", b"x" * 32)[2]["value"], wrap("kek", b"x" * 32)[2]["value"])
        # Unwrapping with the wrong padding fails.
        w = wrap("kek", os.urandom(32))[2]["value"]
        self.assertEqual(unwrap("kek", w, alg="RSA-OAEP")[0], 400)

    def test_import_jwk(self):
        name = uniq("imp")
        priv = rsa.generate_private_key(65537, 2048)
        pn = priv.private_numbers()
        i = lambda n: b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))
        jwk = {"kty": "RSA", "n": i(pn.public_numbers.n), "e": i(pn.public_numbers.e), "d": i(pn.d),
               "p": i(pn.p), "q": i(pn.q), "dp": i(pn.dmp1), "dq": i(pn.dmq1), "qi": i(pn.iqmp),
               "key_ops": ["wrapKey", "unwrapKey"]}
        st, _, b = E.kv("PUT", "/keys/" + name, {"key": jwk, "Hsm": True}, token=TOKEN)
        self.assertEqual(st, 200, b)
        self.assertEqual((b["key"]["n"], b["key"]["kty"], b["key"]["key_ops"]),
                         (jwk["n"], "RSA-HSM", ["wrapKey", "unwrapKey"]))
        dek = os.urandom(32)
        st, _, w = wrap(name, dek)
        self.assertEqual(priv.decrypt(unb64u(w["value"]), OAEP256), dek)   # really our key
        st, _, w = wrap(name, dek, alg="RSA1_5")
        self.assertEqual(priv.decrypt(unb64u(w["value"]), padding.PKCS1v15()), dek)
        st, _, js = E.kv("PUT", "/keys/" + uniq("imp"), {"key": {"kty": "RSA", "n": jwk["n"], "e": "AQAB"}},
                         token=TOKEN)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))

    def test_rotate_and_versions(self):
        name = uniq("rot")
        v1 = self.create(name)["key"]["kid"]
        dek = os.urandom(32)
        w1 = wrap(name, dek)[2]
        self.assertEqual(w1["kid"], v1)
        st, _, b2 = E.kv("POST", "/keys/%s/rotate" % name, token=TOKEN)
        self.assertEqual(st, 200, b2)
        v2 = b2["key"]["kid"]
        self.assertNotEqual(v1, v2)
        self.assertEqual(E.kv("GET", "/keys/" + name, token=TOKEN)[2]["key"]["kid"], v2)
        self.assertEqual(wrap(name, dek)[2]["kid"], v2)
        # The old version still unwraps what it wrapped; the new one cannot.
        st, _, u = unwrap(name, w1["value"], version=v1.rsplit("/", 1)[1])
        self.assertEqual((st, unb64u(u["value"]), u["kid"]), (200, dek, v1))
        self.assertEqual(unwrap(name, w1["value"], version=v2.rsplit("/", 1)[1])[0], 400)
        st, _, lst = E.kv("GET", "/keys/%s/versions" % name, token=TOKEN)
        self.assertEqual([i["kid"] for i in lst["value"]], [v1, v2])
        self.assertIn("attributes", lst["value"][0])
        # Via the admin CLI too.
        b3 = E.admin("rotate-key", "--name", name)
        self.assertEqual(len(E.admin("list-versions", "--name", name)["value"]), 3)
        self.assertEqual(E.kv("GET", "/keys/" + name, token=TOKEN)[2]["key"]["kid"], b3["key"]["kid"])

    def test_disabled_key(self):
        name = uniq("dis")
        b = self.create(name)
        version = b["key"]["kid"].rsplit("/", 1)[1]
        dek = os.urandom(32)
        w = wrap(name, dek)[2]["value"]
        st, _, js = E.kv("PATCH", "/keys/%s/%s" % (name, version), {"attributes": {"enabled": False}}, token=TOKEN)
        self.assertEqual((st, js["attributes"]["enabled"]), (200, False))
        for st, _, js in (wrap(name, dek), unwrap(name, w), E.kv("GET", "/keys/" + name, token=TOKEN)):
            self.assertEqual((st, js["error"]["code"], js["error"]["innererror"]["code"]),
                             (403, "Forbidden", "KeyDisabled"))
            self.assertIn("is not allowed on a disabled key", js["error"]["message"])
        st, _, lst = E.kv("GET", "/keys/%s/versions" % name, token=TOKEN)
        self.assertEqual(lst["value"][0]["attributes"]["enabled"], False)
        E.admin("set-key", "--name", name, "--enabled", "true")
        self.assertEqual(unb64u(unwrap(name, w)[2]["value"]), dek)

    def test_expired_and_not_yet_valid_key(self):
        name = uniq("exp")
        self.create(name)
        dek = os.urandom(32)
        w = wrap(name, dek)[2]["value"]
        past, future = int(time.time()) - 60, int(time.time()) + 3600
        st, _, js = E.kv("PATCH", "/keys/" + name, {"attributes": {"exp": past}}, token=TOKEN)
        self.assertEqual((st, js["attributes"]["exp"]), (200, past))
        st, _, js = wrap(name, dek)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "KeyExpired"))
        st, _, js = unwrap(name, w)        # unwrap still works outside nbf/exp
        self.assertEqual((st, unb64u(js["value"])), (200, dek))
        self.assertEqual(E.kv("GET", "/keys/" + name, token=TOKEN)[0], 200)
        E.admin("set-key", "--name", name, "--exp", "none", "--nbf", str(future))
        st, _, js = wrap(name, dek)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "KeyNotYetValid"))
        self.assertEqual(unwrap(name, w)[0], 200)
        b = E.admin("set-key", "--name", name, "--nbf", "none")
        self.assertNotIn("nbf", b["attributes"])
        self.assertNotIn("exp", b["attributes"])
        self.assertEqual(wrap(name, dek)[0], 200)

    def test_key_ops(self):
        name = uniq("ops")
        self.create(name)
        dek = os.urandom(32)
        w = wrap(name, dek)[2]["value"]
        st, _, js = E.kv("PATCH", "/keys/" + name, {"key_ops": ["wrapKey"]}, token=TOKEN)
        self.assertEqual((st, js["key"]["key_ops"]), (200, ["wrapKey"]))
        st, _, js = unwrap(name, w)
        self.assertEqual((st, js["error"]["code"], js["error"]["innererror"]["code"]),
                         (403, "Forbidden", "KeyOperationForbidden"))
        self.assertEqual(js["error"]["message"], "Operation unwrapKey is not permitted on this key.")
        self.assertEqual(wrap(name, dek)[0], 200)
        st, _, js = E.kv("PATCH", "/keys/" + name, {"key_ops": ["fly"]}, token=TOKEN)
        self.assertEqual(st, 400)

    def test_key_type(self):
        name = uniq("ec")
        b = self.create(name, kty="EC", crv="P-256")
        self.assertEqual((b["key"]["kty"], b["key"]["crv"], len(unb64u(b["key"]["x"]))), ("EC", "P-256", 32))
        st, _, js = wrap(name, b"k" * 32)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "KeyOperationForbidden"))
        b = E.admin("create-key", "--name", name + "w", "--kty", "EC", "--ops", "wrapKey,unwrapKey")
        st, _, js = wrap(name + "w", b"k" * 32)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))

    def test_bad_requests(self):
        cases = [
            E.kv("POST", "/keys/kek/wrapkey", {"alg": "A256KW", "value": "AAAA"}, token=TOKEN),
            E.kv("POST", "/keys/kek/wrapkey", {"value": "AAAA"}, token=TOKEN),
            E.kv("POST", "/keys/kek/wrapkey", {"alg": "RSA-OAEP-256", "value": "***"}, token=TOKEN),
            E.kv("POST", "/keys/kek/unwrapkey", {"alg": "RSA-OAEP-256", "value": b64u(b"short")}, token=TOKEN),
            E.kv("POST", "/keys/kek/unwrapkey", {"alg": "RSA-OAEP-256", "value": b64u(os.urandom(256))},
                 token=TOKEN),
            E.kv("POST", "/keys/kek/wrapkey", {"alg": "RSA-OAEP-256", "value": b64u(os.urandom(300))},
                 token=TOKEN),
            E.kv("POST", "/keys/bad_name!/create", {"kty": "RSA"}, token=TOKEN),
            E.kv("POST", "/keys/%s/create" % uniq("k"), {"kty": "RSA", "key_size": 1024}, token=TOKEN),
            E.kv("POST", "/keys/%s/create" % uniq("k"), {"kty": "oct"}, token=TOKEN),
            E.request("GET", "/keys/kek", token=TOKEN),                       # no api-version
        ]
        for st, h, js in cases:
            self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"), js)
            self.assertIn("x-ms-request-id", h)
        self.assertEqual(E.request("POST", "/keys/kek/wrapkey?api-version=7.4", token=TOKEN,
                                   headers={"Content-Type": "application/json"})[0], 400)

    def test_delete_recover_purge(self):
        E.admin("set-vault", "--purge-protection", "off")
        self.addCleanup(E.admin, "set-vault", "--purge-protection", "on")
        name = uniq("del")
        self.create(name)
        dek = os.urandom(32)
        w = wrap(name, dek)[2]["value"]
        st, _, d = E.kv("DELETE", "/keys/" + name, token=TOKEN)
        self.assertEqual(st, 200, d)
        self.assertEqual(d["recoveryId"], "https://localhost:%d/deletedkeys/%s" % (E.port, name))
        self.assertEqual(d["scheduledPurgeDate"] - d["deletedDate"], 90 * 86400)
        self.assertIn("key", d)
        st, _, js = E.kv("GET", "/keys/" + name, token=TOKEN)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))
        self.assertEqual(unwrap(name, w)[0], 404)
        self.assertEqual(E.kv("DELETE", "/keys/" + name, token=TOKEN)[0], 404)
        st, _, js = E.kv("POST", "/keys/%s/create" % name, {"kty": "RSA"}, token=TOKEN)
        self.assertEqual((st, js["error"]["code"], js["error"]["innererror"]["code"]),
                         (409, "Conflict", "ObjectIsDeletedButRecoverable"))
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 200)
        st, _, js = E.kv("POST", "/deletedkeys/%s/recover" % name, token=TOKEN)
        self.assertEqual(st, 200, js)
        self.assertEqual(unb64u(unwrap(name, w)[2]["value"]), dek)
        E.admin("delete-key", "--name", name)
        st, h, body = E.request("DELETE", "/deletedkeys/%s?api-version=7.4" % name, token=TOKEN, raw=True)
        self.assertEqual((st, body), (204, b""))
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 404)
        self.assertEqual(E.kv("POST", "/keys/%s/create" % name, {"kty": "RSA"}, token=TOKEN)[0], 200)

    def test_admin_import_recover_purge(self):
        E.admin("set-vault", "--purge-protection", "off")
        self.addCleanup(E.admin, "set-vault", "--purge-protection", "on")
        name = uniq("aimp")
        priv = rsa.generate_private_key(65537, 2048)
        path = os.path.join(_TMP, name + ".pem")
        with open(path, "wb") as f:
            f.write(priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        b = E.admin("import-key", "--name", name, "--pem", path, "--ops", "wrapKey,unwrapKey")
        self.assertEqual(public_key_of(b).public_numbers(), priv.public_key().public_numbers())
        dek = os.urandom(32)
        self.assertEqual(priv.decrypt(unb64u(wrap(name, dek)[2]["value"]), OAEP256), dek)
        E.admin("delete-key", "--name", name)
        self.assertEqual(E.admin("recover-key", "--name", name)["key"]["kid"], b["key"]["kid"])
        E.admin("delete-key", "--name", name)
        self.assertEqual(E.admin("purge-key", "--name", name), {"purged": name})
        self.assertEqual(E.admin_rc("recover-key", "--name", name)[0], 1)
        ops = [(e["operation"], e["result"]) for e in E.audit(caller="admin") if e["key"] == name]
        self.assertEqual(ops, [("KeyImport", "Success"), ("KeyDelete", "Success"), ("KeyRecover", "Success"),
                               ("KeyDelete", "Success"), ("KeyPurge", "Success"), ("KeyRecover", "KeyNotFound")])

    def test_admin_create_key_options(self):
        name = uniq("adm")
        t = int(time.time())
        b = E.admin("create-key", "--name", name, "--size", "2048", "--ops", "wrapKey,unwrapKey",
                    "--exp", str(t + 3600), "--nbf", str(t - 10), "--disabled")
        self.assertEqual(b["key"]["key_ops"], ["wrapKey", "unwrapKey"])
        self.assertEqual((b["attributes"]["enabled"], b["attributes"]["exp"], b["attributes"]["nbf"]),
                         (False, t + 3600, t - 10))
        self.assertEqual(wrap(name, b"k")[0], 403)
        E.admin("set-key", "--name", name, "--enabled", "true", "--ops", "wrapKey")
        self.assertEqual(wrap(name, b"k")[0], 200)
        rc, out = E.admin_rc("set-key", "--name", uniq("missing"), "--enabled", "true")
        self.assertEqual((rc, out["error"]["code"]), (1, "KeyNotFound"))


# ==========================================================================
class TestRecoveryLevel(unittest.TestCase):
    """recoveryLevel / recoverableDays from the vault's soft-delete and purge
    protection settings (or a key's own), and what delete and purge then do."""

    def tearDown(self):
        E.admin("set-vault", "--soft-delete", "on", "--purge-protection", "on", "--retention-days", "90",
                "--protected-subscription", "off")

    @staticmethod
    def attrs(name):
        st, _, js = E.kv("GET", "/keys/" + name, token=TOKEN)
        assert st == 200, js
        return js["attributes"]["recoveryLevel"], js["attributes"]["recoverableDays"]

    def test_vault_settings_give_each_level(self):
        name = uniq("rl")
        E.admin("create-key", "--name", name)
        self.assertEqual(self.attrs(name), ("Recoverable", 90))       # the emulator's default vault
        cases = [
            (["--purge-protection", "false"], ("Recoverable+Purgeable", 90)),
            (["--soft-delete", "off"], ("Purgeable", 0)),
            (["--soft-delete", "on"], ("Recoverable+Purgeable", 90)),
            (["--purge-protection", "on"], ("Recoverable", 90)),
            (["--protected-subscription", "on"], ("Recoverable+ProtectedSubscription", 90)),
            (["--soft-delete-days", "30"], ("CustomizedRecoverable+ProtectedSubscription", 30)),
            (["--protected-subscription", "off"], ("CustomizedRecoverable", 30)),
            (["--purge-protection", "off"], ("CustomizedRecoverable+Purgeable", 30)),
        ]
        for args, want in cases:
            st = E.admin("set-vault", *args)
            self.assertEqual((st["recovery_level"], st["recoverable_days"]), want, args)
            self.assertEqual(self.attrs(name), want, args)
        st, _, js = E.kv("GET", "/keys/%s/versions" % name, token=TOKEN)
        self.assertEqual(js["value"][0]["attributes"]["recoveryLevel"], "CustomizedRecoverable+Purgeable")
        # Azure refuses these combinations too.
        for args in (["--retention-days", "6"], ["--retention-days", "91"],
                     ["--soft-delete", "off", "--purge-protection", "on"],
                     ["--purge-protection", "off", "--protected-subscription", "on"]):
            rc, out = E.admin_rc("set-vault", *args)
            self.assertEqual((rc, out["error"]["code"]), (1, "BadParameter"), args)
        self.assertEqual(E.admin("status")["recovery_level"], "CustomizedRecoverable+Purgeable")

    def test_purge_protection_refuses_purge(self):
        E.admin("set-vault", "--retention-days", "7")
        name = uniq("pp")
        E.admin("create-key", "--name", name)
        st, _, d = E.kv("DELETE", "/keys/" + name, token=TOKEN)
        self.assertEqual((st, d["attributes"]["recoveryLevel"]), (200, "CustomizedRecoverable"))
        self.assertEqual(d["scheduledPurgeDate"] - d["deletedDate"], 7 * 86400)
        st, _, js = E.kv("DELETE", "/deletedkeys/" + name, token=TOKEN)
        self.assertEqual((st, js["error"]["code"]), (403, "Forbidden"))
        self.assertTrue(js["error"]["message"].startswith(
            'Operation "purge" is not allowed because purge protection is enabled for this vault.'))
        rc, out = E.admin_rc("purge-key", "--name", name)
        self.assertEqual((rc, out["error"]["code"]), (1, "Forbidden"))
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 200)
        self.assertEqual(E.kv("POST", "/deletedkeys/%s/recover" % name, token=TOKEN)[0], 200)
        E.admin("delete-key", "--name", name)
        self.assertEqual(E.admin("purge-key", "--name", name, "--force"), {"purged": name})
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 404)
        results = [e["result"] for e in E.audit(operation="KeyPurge") if e["key"] == name]
        self.assertEqual(results, ["Forbidden", "Forbidden", "Success"])

    def test_without_soft_delete_delete_is_final(self):
        E.admin("set-vault", "--soft-delete", "off", "--purge-protection", "off")
        name = uniq("nosd")
        kid = E.admin("create-key", "--name", name)["key"]["kid"]
        st, _, d = E.kv("DELETE", "/keys/" + name, token=TOKEN)
        self.assertEqual((st, d["key"]["kid"], d["attributes"]["recoveryLevel"]), (200, kid, "Purgeable"))
        for f in ("recoveryId", "deletedDate", "scheduledPurgeDate"):
            self.assertNotIn(f, d)
        self.assertEqual(E.kv("GET", "/keys/" + name, token=TOKEN)[0], 404)
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 404)
        self.assertEqual(E.kv("POST", "/deletedkeys/%s/recover" % name, token=TOKEN)[0], 404)
        st, _, b = E.kv("POST", "/keys/%s/create" % name, {"kty": "RSA"}, token=TOKEN)
        self.assertEqual(st, 200)
        self.assertNotEqual(b["key"]["kid"], kid)

    def test_key_level_override(self):
        name, other = uniq("kl"), uniq("kl")
        E.admin("create-key", "--name", other)
        b = E.admin("create-key", "--name", name, "--recovery-level", "Recoverable")
        self.assertEqual((b["attributes"]["recoveryLevel"], b["attributes"]["recoverableDays"]), ("Recoverable", 90))
        E.admin("rotate-key", "--name", name)
        self.assertEqual(self.attrs(name), ("Recoverable", 90))        # every version of the key
        self.assertEqual(self.attrs(other), ("Recoverable", 90))
        E.admin("set-key", "--name", name, "--recovery-level", "CustomizedRecoverable", "--recoverable-days", "14")
        self.assertEqual(self.attrs(name), ("CustomizedRecoverable", 14))
        # A value the client may not know (the enum is extensible) with explicit days.
        E.admin("set-key", "--name", name, "--recovery-level", "Recoverable+Whatever", "--recoverable-days", "9")
        self.assertEqual(self.attrs(name), ("Recoverable+Whatever", 9))
        E.admin("set-key", "--name", name, "--recovery-level", "Recoverable+Whatever")
        self.assertEqual(self.attrs(name), ("Recoverable+Whatever", 90))
        for args in (["--recovery-level", "bad level"], ["--recoverable-days", "9"],
                     ["--recovery-level", "Purgeable", "--recoverable-days", "-1"]):
            self.assertEqual(E.admin_rc("set-key", "--name", name, *args)[0], 1, args)
        E.admin("set-key", "--name", name, "--recovery-level", "vault")
        self.assertEqual(self.attrs(name), ("Recoverable", 90))
        E.admin("set-key", "--name", name, "--recovery-level", "Purgeable")
        self.assertEqual(self.attrs(name), ("Purgeable", 0))
        E.admin("delete-key", "--name", name)
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 404)
        self.assertEqual(self.attrs(other), ("Recoverable", 90))

    def test_deleted_key_is_purged_at_its_scheduled_date(self):
        name = uniq("sched")
        E.admin("create-key", "--name", name, "--recovery-level", "CustomizedRecoverable+Purgeable",
                "--recoverable-days", "0")
        d = E.admin("delete-key", "--name", name)
        self.assertEqual(d["scheduledPurgeDate"], d["deletedDate"])
        self.assertEqual(E.kv("GET", "/deletedkeys/" + name, token=TOKEN)[0], 404)
        self.assertEqual(E.kv("POST", "/keys/%s/create" % name, {"kty": "RSA"}, token=TOKEN)[0], 200)


class TestKeyDatesAndTokenLifetimes(unittest.TestCase):
    def test_exp_nbf_per_version_and_relative(self):
        name = uniq("ver")
        t = int(time.time())
        b1 = E.admin("create-key", "--name", name, "--exp", "+3600", "--nbf", "-10")
        self.assertLessEqual(abs(b1["attributes"]["exp"] - (t + 3600)), 5)
        self.assertLessEqual(abs(b1["attributes"]["nbf"] - (t - 10)), 5)
        v1 = b1["key"]["kid"].rsplit("/", 1)[1]
        v2 = E.admin("rotate-key", "--name", name)["key"]["kid"].rsplit("/", 1)[1]
        dek = os.urandom(32)
        w1 = wrap(name, dek, version=v1)[2]["value"]
        b = E.admin("set-key", "--name", name, "--version", v1, "--exp", "-1")
        self.assertEqual(b["key"]["kid"].rsplit("/", 1)[1], v1)
        self.assertLess(b["attributes"]["exp"], time.time())
        st, _, js = wrap(name, dek, version=v1)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "KeyExpired"))
        st, _, js = unwrap(name, w1, version=v1)
        self.assertEqual((st, unb64u(js["value"])), (200, dek))
        self.assertEqual(wrap(name, dek)[2]["kid"].rsplit("/", 1)[1], v2)     # the latest is not expired
        E.admin("set-key", "--name", name, "--version", v2, "--nbf", "+600")
        self.assertEqual(wrap(name, dek)[2]["error"]["innererror"]["code"], "KeyNotYetValid")
        self.assertEqual(E.admin_rc("set-key", "--name", name, "--exp", "soon")[0], 1)

    def test_token_lifetime_per_flow_and_identity(self):
        mi = str(uuid.uuid4())
        E.admin("add-identity", "--tenant", TENANT, "--client-id", mi, "--managed")
        E.admin("grant", "--client-id", mi, "--permissions", "get")
        cid, secret = new_app()
        imds = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&client_id="
        header = E.admin("identity-header")["header"]
        msi = "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net&client_id="
        try:
            E.admin("set-token-lifetime", "--flow", "imds", "--seconds", "2")
            E.admin("set-token-lifetime", "--flow", "msi", "--seconds", "5")
            E.admin("set-token-lifetime", "--client-id", cid, "--seconds", "7")
            st, _, js = E.request("GET", imds + mi, headers={"Metadata": "true"})
            self.assertEqual((st, js["expires_in"]), (200, "2"))
            c = jwt_claims(js["access_token"])
            self.assertEqual(c["exp"] - c["iat"], 2)
            tok = js["access_token"]
            st, _, js = E.request("GET", msi + mi, headers={"X-IDENTITY-HEADER": header})
            self.assertEqual(int(js["expires_on"]) - jwt_claims(js["access_token"])["iat"], 5)
            self.assertEqual(E.token_resp(cid, secret)[2]["expires_in"], 7)
            self.assertEqual(E.token_resp(APP, SECRET)[2]["expires_in"], 3600)
            self.assertEqual(E.admin("status")["token_lifetimes"], {"imds": 2, "msi": 5})
            self.assertEqual(E.kv("GET", "/keys/kek", token=tok)[0], 200)
            while time.time() < c["exp"] + 0.05:
                time.sleep(0.05)
            st, _, js = E.kv("GET", "/keys/kek", token=tok)
            self.assertEqual(st, 401)
            self.assertIn("TokenExpired", js["error"]["message"])
            self.assertEqual(E.cli("set-token-lifetime", "--seconds", "5", "--flow", "nope")[0], 2)
            self.assertEqual(E.admin_rc("set-token-lifetime", "--seconds", "5", "--client-id", "nobody")[0], 1)
            self.assertEqual(E.admin_rc("set-token-lifetime", "--seconds", "0")[0], 1)
        finally:
            out = E.admin("set-token-lifetime", "--seconds", "3600")
            E.admin("remove-identity", "--client-id", mi)     # TestManagedIdentity relies on its first one
        self.assertEqual((out["token_lifetimes"], out["identities"]), ({}, {}))
        self.assertEqual(E.token_resp(cid, secret)[2]["expires_in"], 3600)


# ==========================================================================
class TestPermissions(unittest.TestCase):
    def test_access_policy_grant_and_revoke_at_run_time(self):
        cid, secret = new_app("get,wrapKey,unwrapKey")
        tok = E.token(cid, secret)
        dek = os.urandom(32)
        w = wrap("kek", dek, token=tok)[2]["value"]
        self.assertEqual(unb64u(unwrap("kek", w, token=tok)[2]["value"]), dek)
        E.admin("revoke", "--client-id", cid, "--permissions", "unwrapKey")
        st, _, js = unwrap("kek", w, token=tok)
        self.assertEqual((st, js["error"]["code"], js["error"]["innererror"]["code"]),
                         (403, "Forbidden", "ForbiddenByPolicy"))
        self.assertIn("does not have keys unwrapKey permission on key vault", js["error"]["message"])
        self.assertIn("appid=%s" % cid, js["error"]["message"])
        self.assertEqual(wrap("kek", dek, token=tok)[0], 200)
        E.admin("grant", "--client-id", cid, "--permissions", "unwrapKey")
        self.assertEqual(unwrap("kek", w, token=tok)[0], 200)
        E.admin("revoke", "--client-id", cid)
        st, _, js = E.kv("GET", "/keys/" + uniq("nonexistent"), token=tok)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "ForbiddenByPolicy"))

    def test_rbac_flavour(self):
        cid, secret = new_app(perms=None)
        tok = E.token(cid, secret)
        try:
            E.admin("grant", "--client-id", cid, "--rbac", "--role", "Key Vault Crypto Service Encryption User")
            w = wrap("kek", b"secret", token=tok)[2]["value"]
            self.assertEqual(unwrap("kek", w, token=tok)[0], 200)
            st, _, js = E.kv("DELETE", "/keys/kek", token=tok)
            self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "ForbiddenByRbac"))
            E.admin("revoke", "--client-id", cid, "--rbac", "--permissions", "unwrapKey")
            st, _, js = unwrap("kek", w, token=tok)
            self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "ForbiddenByRbac"))
            self.assertIn("Action: 'Microsoft.KeyVault/vaults/keys/unwrap/action'", js["error"]["message"])
        finally:
            E.admin("set-vault", "--access-policy")
        st, _, js = unwrap("kek", w, token=tok)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "ForbiddenByPolicy"))
        rc, out = E.admin_rc("grant", "--client-id", cid, "--permissions", "fly")
        self.assertEqual(rc, 1)


# ==========================================================================
class TestAudit(unittest.TestCase):
    def test_audit_log_records_exactly_the_operations(self):
        since = datetime.datetime.now(datetime.timezone.utc).isoformat()
        cid, secret = new_app("get,wrapKey,unwrapKey")
        kek_version = E.kv("GET", "/keys/kek", token=TOKEN)[2]["key"]["kid"].rsplit("/", 1)[1]
        rids = []

        def rec(resp):
            rids.append(resp[1]["x-ms-request-id"])
            return resp
        tok = rec(E.token_resp(cid, secret))[2]["access_token"]
        rec(E.kv("POST", "/keys/kek/wrapkey", {"alg": "RSA-OAEP-256", "value": "AA"}))    # no token
        w = rec(wrap("kek", b"dek-bytes", token=tok))[2]["value"]
        rec(unwrap("kek", w, token=tok))
        E.admin("revoke", "--client-id", cid, "--permissions", "unwrapKey")
        rec(unwrap("kek", w, token=tok))
        rec(E.kv("GET", "/keys/nosuchkey", token=tok))
        rec(E.token_resp(cid, "wrong"))
        entries = [e for e in E.audit(since=since) if e["requestId"] in rids]
        got = [(e["operation"], e["caller"], e["key"], e["version"], e["result"], e["status"]) for e in entries]
        self.assertEqual(got, [
            ("Authentication", cid, "", "", "Success", 200),
            ("KeyWrap", "", "kek", "", "Unauthorized", 401),
            ("KeyWrap", cid, "kek", kek_version, "Success", 200),
            ("KeyUnwrap", cid, "kek", kek_version, "Success", 200),
            ("KeyUnwrap", cid, "kek", "", "ForbiddenByPolicy", 403),
            ("KeyGet", cid, "nosuchkey", "", "KeyNotFound", 404),
            ("Authentication", cid, "", "", "AADSTS7000215", 401),
        ])
        self.assertEqual([e["requestId"] for e in entries], rids)
        for e in entries:
            self.assertEqual(e["tenant"], TENANT if e["caller"] else "")
            self.assertTrue(e["time"].endswith("Z"))
        # Nothing else was logged for this caller, except the admin's policy change.
        mine = E.audit(caller=cid)
        self.assertEqual(len(mine), 6)
        admin = [e for e in E.audit(since=since, caller="admin") if e["operation"] == "VaultPatch"]
        self.assertGreaterEqual(len(admin), 2)
        # The same records are in audit.jsonl.
        with open(os.path.join(E.dir, "audit.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual([l for l in lines if l["requestId"] in rids], entries)


# ==========================================================================
class TestFaults(unittest.TestCase):
    def tearDown(self):
        E.admin("fault", "--clear")

    def test_429_with_retry_after_then_success(self):
        E.admin("fault", "--op", "wrapkey", "--status", "429", "--count", "2", "--retry-after", "3")
        for _ in range(2):
            st, h, js = wrap("kek", b"x")
            self.assertEqual((st, h["retry-after"], js["error"]["code"]), (429, "3", "Throttled"))
            self.assertRegex(h["x-ms-request-id"], UUID_RE)
        self.assertEqual(wrap("kek", b"x")[0], 200)

    def test_5xx(self):
        E.admin("fault", "--op", "unwrapkey", "--status", "500")
        E.admin("fault", "--op", "unwrapkey", "--status", "503")
        w = wrap("kek", b"x")[2]["value"]
        st, _, js = unwrap("kek", w)
        self.assertEqual((st, js["error"]["code"]), (500, "InternalServerError"))
        st, _, js = unwrap("kek", w)
        self.assertEqual((st, js["error"]["code"]), (503, "ServiceUnavailable"))
        self.assertEqual(unwrap("kek", w)[0], 200)

    def test_latency(self):
        E.admin("fault", "--op", "get", "--latency-ms", "600")
        t0 = time.monotonic()
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.6)
        t0 = time.monotonic()
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)
        self.assertLess(time.monotonic() - t0, 0.6)

    def test_dropped_connection(self):
        E.admin("fault", "--op", "get", "--drop")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            E.kv("GET", "/keys/kek", token=TOKEN)
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)

    def test_malformed_body(self):
        E.admin("fault", "--op", "get", "--malformed")
        st, h, raw = E.request("GET", "/keys/kek?api-version=7.4", token=TOKEN, raw=True)
        self.assertEqual(st, 200)
        self.assertEqual(int(h["content-length"]), len(raw))
        with self.assertRaises(ValueError):
            json.loads(raw)

    def test_token_and_imds_faults(self):
        E.admin("fault", "--op", "token", "--status", "503")
        st, h, js = E.token_resp(APP, SECRET)
        self.assertEqual((st, js["error"], js["error_codes"]), (503, "temporarily_unavailable", [90006]))
        self.assertEqual(E.token_resp(APP, SECRET)[0], 200)
        E.admin("fault", "--op", "imds", "--status", "429")
        st, h, js = E.request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://localhost",
                              headers={"Metadata": "true"})
        self.assertEqual((st, h["retry-after"]), (429, "1"))
        E.admin("fault", "--op", "msi", "--status", "500")
        st, h, js = E.request("GET", "/msi/token?api-version=2019-08-01&resource=https://localhost",
                              headers={"X-IDENTITY-HEADER": E.admin("identity-header")["header"]})
        self.assertEqual((st, js["error"]), (500, "server_error"))
        E.admin("fault", "--op", "token", "--drop")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            E.token_resp(APP, SECRET)
        self.assertEqual(E.token_resp(APP, SECRET)[0], 200)

    def test_challenge_probe_does_not_consume_fault_and_any(self):
        E.admin("fault", "--op", "get", "--status", "503")
        self.assertEqual(E.kv("GET", "/keys/kek")[0], 401)
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 503)
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)
        E.admin("fault", "--op", "any", "--status", "500", "--count", "2")
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 500)
        self.assertEqual(E.token_resp(APP, SECRET)[0], 500)
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)

    def test_after_lets_the_first_requests_through(self):
        out = E.admin("fault", "--op", "unwrapkey", "--after", "2", "--status", "503", "--count", "2")
        self.assertEqual((out["queued"]["after"], out["queued"]["count"]), (2, 2))
        w = wrap("kek", b"k" * 32)[2]["value"]
        self.assertEqual(E.kv("POST", "/keys/kek/unwrapkey", {"alg": "RSA-OAEP-256", "value": w})[0], 401)  # probe
        self.assertEqual([unwrap("kek", w)[0] for _ in range(5)], [200, 200, 503, 503, 200])
        self.assertEqual(wrap("kek", b"k")[0], 200)               # other operations never counted
        self.assertEqual(E.admin_rc("fault", "--op", "get", "--status", "503", "--after", "-1")[0], 1)

    def test_clear_validation_and_audit(self):
        since = datetime.datetime.now(datetime.timezone.utc).isoformat()
        E.admin("fault", "--op", "get", "--status", "503", "--count", "5")
        st, h, _ = E.kv("GET", "/keys/kek", token=TOKEN)
        self.assertEqual(E.admin("fault", "--clear"), {"cleared": 1})
        self.assertEqual(E.kv("GET", "/keys/kek", token=TOKEN)[0], 200)
        faults = [e for e in E.audit(since=since) if e["result"] == "InjectedFault"]
        self.assertEqual([(e["operation"], e["status"], e["requestId"]) for e in faults],
                         [("KeyGet", 503, h["x-ms-request-id"])])
        self.assertEqual(E.admin_rc("fault", "--op", "get", "--status", "200")[0], 1)
        self.assertEqual(E.admin_rc("fault", "--op", "nope", "--status", "500")[0], 1)
        self.assertEqual(E.admin_rc("fault", "--op", "get")[0], 1)


# ==========================================================================
class TestAdmin(unittest.TestCase):
    def test_admin_endpoint_needs_secret(self):
        for hdr in ({}, {"X-Admin-Secret": "wrong"}):
            st, h, js = E.request("POST", "/_admin/status", body={}, headers=hdr)
            self.assertEqual(st, 403)
        with open(os.path.join(E.dir, "admin_secret")) as f:
            secret = f.read().strip()
        st, _, js = E.request("POST", "/_admin/status", body={}, headers={"X-Admin-Secret": secret})
        self.assertEqual((st, js["port"], js["vault_tenant"]), (200, E.port, TENANT))
        self.assertEqual(os.stat(os.path.join(E.dir, "admin_secret")).st_mode & 0o077, 0)

    def test_cli_without_server(self):
        d = os.path.join(_TMP, "empty")
        os.makedirs(d, exist_ok=True)
        rc, out = Emu(d).cli("status")
        self.assertEqual((rc, out["error"]["code"]), (2, "NotRunning"))

    def test_cli_process(self):
        """The command line itself: JSON on stdout, exit status 0 / 1."""
        name = uniq("cli")
        rc, b = E.cli("create-key", "--name", name, "--ops", "wrapKey,unwrapKey")
        self.assertEqual((rc, b["key"]["key_ops"]), (0, ["wrapKey", "unwrapKey"]))
        rc, b = E.cli("set-key", "--name", name, "--enabled", "false", "--exp", "none")
        self.assertEqual((rc, b["attributes"]["enabled"]), (0, False))
        rc, out = E.cli("list-versions", "--name", name)
        self.assertEqual((rc, len(out["value"])), (0, 1))
        rc, out = E.cli("fault", "--op", "get", "--status", "503", "--count", "2")
        self.assertEqual((rc, out["queued"]["count"]), (0, 2))
        self.assertEqual(E.cli("fault", "--clear"), (0, {"cleared": 1}))
        rc, out = E.cli("identity-header")
        self.assertEqual((rc, len(out["header"])), (0, 32))
        rc, out = E.cli("mint-federated-token", "--client-id", APP, "--subject", "s")
        self.assertEqual((rc, jwt_claims(out["token"])["sub"]), (0, "s"))
        rc, out = E.cli("audit", "--operation", "KeyCreate", "--caller", "admin")
        self.assertEqual(rc, 0)
        self.assertIn(name, [e["key"] for e in out])
        rc, out = E.cli("delete-key", "--name", name)
        self.assertEqual((rc, out["recoveryId"].rsplit("/", 1)[1]), (0, name))
        rc, out = E.cli("delete-key", "--name", name)
        self.assertEqual((rc, out["error"]["code"]), (1, "KeyNotFound"))
        p = subprocess.run([sys.executable, EMU, "admin", "--state-dir", E.dir, "grant"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 2)   # argparse: --client-id is required

    def test_remove_identity(self):
        cid, secret = new_app()
        E.admin("remove-identity", "--client-id", cid)
        self.assertEqual(E.token_resp(cid, secret)[2]["error_codes"], [700016])


class NamedConnection(http.client.HTTPSConnection):
    """HTTPS to the emulator's loopback port under a DNS name (SNI, certificate
    check and Host header use the name), without any name resolution."""

    def __init__(self, name, port, context):
        super().__init__(name, port, context=context, timeout=20)

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class TestHostNames(unittest.TestCase):
    """serve --host: the names of a real vault, a Managed HSM and a sign-in host."""
    VAULT, HSM, LOGIN = "cmk-emulator.vault.azure.net", "cmk-emulator.managedhsm.azure.net", "login.emulator.test"

    @classmethod
    def setUpClass(cls):
        cls.e = Emu(os.path.join(_TMP, "hosts"))
        cls.e.start("--tenant", TENANT, "--host", cls.VAULT, "--host", cls.HSM, "--host", cls.LOGIN)
        cls.e.admin("add-identity", "--tenant", TENANT, "--client-id", "h-app", "--secret", "h-secret")
        cls.e.admin("grant", "--client-id", "h-app", "--permissions", "get,create,wrapKey,unwrapKey")

    @classmethod
    def tearDownClass(cls):
        cls.e.stop()

    def req(self, name, method, path, body=None, headers=None, form=None):
        c = NamedConnection(name, self.e.port, self.e.ctx)
        h = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            payload = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(payload) if payload else None
        finally:
            c.close()

    def token(self, name, scope):
        st, _, js = self.req(name, "POST", "/%s/oauth2/v2.0/token" % TENANT,
                             form={"grant_type": "client_credentials", "client_id": "h-app",
                                   "client_secret": "h-secret", "scope": scope})
        self.assertEqual(st, 200, js)
        return js["access_token"]

    def test_certificate_names_and_ready_file(self):
        with open(os.path.join(self.e.dir, "ready")) as f:
            self.assertEqual(f.read().strip(), "https://%s:%d" % (self.VAULT, self.e.port))
        for name in (self.VAULT, self.HSM, self.LOGIN, "localhost"):
            self.assertEqual(self.req(name, "GET", "/oidc/jwks")[0], 200, name)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.req("other.vault.azure.net", "GET", "/oidc/jwks")
        st = self.e.admin("status")
        self.assertEqual((st["vault"], st["authority"]), ("https://%s:%d" % (self.VAULT, self.e.port),
                                                          "https://%s:%d" % (self.LOGIN, self.e.port)))

    def test_challenge_names_the_domain_resource(self):
        cases = [(self.VAULT, "https://login.microsoftonline.com/%s" % TENANT, "https://vault.azure.net"),
                 (self.HSM, "https://login.microsoftonline.com/%s" % TENANT, "https://managedhsm.azure.net"),
                 ("localhost", "https://localhost:%d/%s" % (self.e.port, TENANT), "https://localhost")]
        for name, authority, resource in cases:
            st, h, _ = self.req(name, "GET", "/keys/k?api-version=7.4")
            self.assertEqual(st, 401)
            self.assertEqual(h["www-authenticate"], 'Bearer authorization="%s", resource="%s"' % (authority, resource))

    def test_audiences_and_key_ids_follow_the_host(self):
        vault_tok = self.token(self.LOGIN, "https://vault.azure.net/.default")
        hsm_tok = self.token(self.LOGIN, "https://managedhsm.azure.net/.default")
        local_tok = self.token(self.LOGIN, "https://localhost/.default")
        auth = lambda t: {"Authorization": "Bearer " + t}
        st, _, b = self.req(self.VAULT, "POST", "/keys/hk/create?api-version=7.6", {"kty": "RSA"}, auth(vault_tok))
        self.assertEqual(st, 200, b)
        self.assertRegex(b["key"]["kid"], r"^https://%s:%d/keys/hk/[0-9a-f]{32}$" % (re.escape(self.VAULT), self.e.port))
        st, _, js = self.req(self.VAULT, "GET", "/keys/hk?api-version=7.6", headers=auth(local_tok))
        self.assertEqual(st, 401)
        self.assertIn("AKV10022", js["error"]["message"])
        self.assertIn("Expected https://vault.azure.net", js["error"]["message"])
        self.assertEqual(self.req(self.HSM, "GET", "/keys/hk?api-version=7.6", headers=auth(vault_tok))[0], 401)
        st, _, b = self.req(self.HSM, "GET", "/keys/hk?api-version=7.6", headers=auth(hsm_tok))
        self.assertEqual(st, 200, b)
        self.assertTrue(b["key"]["kid"].startswith("https://%s:%d/keys/hk/" % (self.HSM, self.e.port)))
        # Addressed as localhost: the old surface (resource https://localhost or vault.azure.net).
        st, _, b = self.req("localhost", "GET", "/keys/hk?api-version=7.6", headers=auth(local_tok))
        self.assertEqual(st, 200, b)
        self.assertTrue(b["key"]["kid"].startswith("https://localhost:%d/keys/hk/" % self.e.port))
        # Admin answers name the vault by its own name.
        b = self.e.admin("create-key", "--name", "hk")
        self.assertTrue(b["key"]["kid"].startswith("https://%s:%d/keys/hk/" % (self.VAULT, self.e.port)))

    def test_instance_discovery(self):
        q = "/common/discovery/instance?api-version=1.1&authorization_endpoint="
        st, _, js = self.req("localhost", "GET", q + "https://login.microsoftonline.com/%s/oauth2/v2.0/authorize" % TENANT)
        self.assertEqual(st, 200, js)
        self.assertEqual(js["tenant_discovery_endpoint"],
                         "https://login.microsoftonline.com/%s/v2.0/.well-known/openid-configuration" % TENANT)
        self.assertEqual(js["metadata"][0]["aliases"],
                         ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"])
        mine = "%s:%d" % (self.LOGIN, self.e.port)
        st, _, js = self.req(self.LOGIN, "GET", q + "https://%s/%s/oauth2/v2.0/authorize" % (mine, TENANT))
        self.assertEqual((st, js["metadata"][-1]), (200, {"preferred_network": mine, "preferred_cache": mine,
                                                          "aliases": [mine]}))
        for endpoint in ("https://login.evil.example/t/oauth2/v2.0/authorize", "http://%s/t/x" % mine, ""):
            st, _, js = self.req(self.LOGIN, "GET", q + endpoint)
            self.assertEqual((st, js["error"], js["error_codes"]), (400, "invalid_instance", [50049]), endpoint)
        found = [e for e in self.e.audit(operation="Discovery") if e["detail"].startswith("instance https://%s/" % mine)]
        self.assertEqual([e["result"] for e in found], ["Success"])

    def test_tenant_discovery_on_the_host_asked(self):
        base = "https://%s:%d/%s" % (self.LOGIN, self.e.port, TENANT)
        st, _, js = self.req(self.LOGIN, "GET", "/%s/v2.0/.well-known/openid-configuration" % TENANT)
        self.assertEqual(st, 200, js)
        self.assertEqual((js["issuer"], js["token_endpoint"], js["jwks_uri"]),
                         (base + "/v2.0", base + "/oauth2/v2.0/token", base + "/discovery/v2.0/keys"))
        st, _, keys = self.req(self.LOGIN, "GET", "/%s/discovery/v2.0/keys" % TENANT)
        tok = self.token(self.LOGIN, "https://vault.azure.net/.default")
        header, _, sig = tok.split(".")[0], None, tok.split(".")[2]
        kid = json.loads(unb64u(header))["kid"]
        jwk = [k for k in keys["keys"] if k["kid"] == kid][0]
        pub = rsa.RSAPublicNumbers(int.from_bytes(unb64u(jwk["e"]), "big"),
                                   int.from_bytes(unb64u(jwk["n"]), "big")).public_key()
        pub.verify(unb64u(sig), tok.rsplit(".", 1)[0].encode(), padding.PKCS1v15(), hashes.SHA256())

    def test_new_names_new_certificate_same_ca(self):
        d = os.path.join(_TMP, "hosts2")
        e = Emu(d)
        e.start("--host", "first.vault.azure.net")
        with open(os.path.join(d, "ca.pem"), "rb") as f:
            ca = f.read()
        e.stop()
        e.start("--host", "second.vault.azure.net")
        try:
            with open(os.path.join(d, "ca.pem"), "rb") as f:
                self.assertEqual(f.read(), ca)
            c = NamedConnection("second.vault.azure.net", e.port, e.ctx)
            c.request("GET", "/oidc/jwks")
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            with self.assertRaises(ssl.SSLCertVerificationError):
                c = NamedConnection("first.vault.azure.net", e.port, e.ctx)
                c.request("GET", "/oidc/jwks")
        finally:
            e.stop()
        self.assertEqual(Emu(os.path.join(_TMP, "hosts3")).cli("status")[0], 2)
        p = subprocess.run([sys.executable, EMU, "serve", "--state-dir", os.path.join(_TMP, "hosts4"),
                            "--host", "bad_name!"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)


class TestRestart(unittest.TestCase):
    def test_state_persists_across_restart_and_sigterm_stops(self):
        d = os.path.join(_TMP, "restart")
        e = Emu(d)
        e.start("--tenant", TENANT)
        try:
            e.admin("add-identity", "--tenant", TENANT, "--client-id", "r-app", "--secret", "r-secret")
            e.admin("grant", "--client-id", "r-app", "--permissions", "get,wrapKey,unwrapKey")
            kid = e.admin("create-key", "--name", "kek")["key"]["kid"]
            tok = e.token("r-app", "r-secret")
            dek = os.urandom(32)
            st, _, w = e.kv("POST", "/keys/kek/wrapkey", {"alg": "RSA-OAEP-256", "value": b64u(dek)}, token=tok)
            self.assertEqual(st, 200)
            with open(os.path.join(d, "ca.pem"), "rb") as f:
                ca = f.read()
        finally:
            rc = e.stop()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(os.path.join(d, "ready")))
        e.start()
        try:
            with open(os.path.join(d, "ca.pem"), "rb") as f:
                self.assertEqual(f.read(), ca)
            tok = e.token("r-app", "r-secret")
            st, _, u = e.kv("POST", "/keys/kek/unwrapkey", {"alg": "RSA-OAEP-256", "value": w["value"]}, token=tok)
            self.assertEqual((st, unb64u(u["value"])), (200, dek))
            self.assertEqual(u["kid"].rsplit("/", 1)[1], kid.rsplit("/", 1)[1])
        finally:
            self.assertEqual(e.stop(), 0)


if __name__ == "__main__":
    unittest.main()

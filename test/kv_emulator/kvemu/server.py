"""The server: one HTTPS listener on loopback (HTTP/1.1, keep-alive, TLS
from the emulator's own CA) that answers for every --host name, routes each
request to Entra ID, the managed-identity endpoints, Key Vault or the admin
interface, applies queued faults, and writes DIR/port, DIR/ready, DIR/pid."""

import http.client
import http.server
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from .admin import Admin
from .audit import Audit
from .common import (IDLE_TIMEOUT, MAX_BODY, MAX_CONNECTIONS, OPS, BodyError, KVError, Resp, write_file)
from .entra import Entra
from .faults import Faults
from .hosts import Hosts, split_host
from .keys import KeyStore
from .keyvault import KeyVault
from .managed_identity import ManagedIdentity
from .store import Store
from .tls import ensure_tls

_HOST_HEADER_RE = re.compile(r"[a-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?")


def valid_host_header(host):
    return bool(_HOST_HEADER_RE.fullmatch(host))


class Emulator:
    """The emulator's parts, wired together, and the request router."""

    def __init__(self, state_dir, hosts, token_lifetime=None, tenant=None, verbose=False):
        self.verbose = verbose
        self.hosts = hosts
        self.store = Store(state_dir)
        if tenant:
            self.store.data["vault_tenant"] = tenant
        if token_lifetime is not None:
            self.store.data["token_lifetime"] = int(token_lifetime)
        self.store.save()
        self.audit = Audit(self.store.dir)
        self.faults = Faults(self.audit)
        self.entra = Entra(self.store, self.audit, hosts)
        self.managed_identity = ManagedIdentity(self.store, self.audit, self.entra)
        self.keys = KeyStore(self.store, hosts)
        self.keyvault = KeyVault(self.store, self.audit, hosts, self.entra, self.keys)
        self.admin = Admin(self.store, self.audit, self.faults, hosts, self.entra, self.keys)

    def route(self, method, path):
        """(op, handler, kwargs) or None; op names the operation for faults and audit."""
        p = path.rstrip("/") or "/"
        m = re.fullmatch(r"/_admin/([a-z\-]+)", p)
        if m:
            return ("admin", self.admin.handle, {"command": m.group(1)}) if method == "POST" else None
        if method == "POST":
            m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", p)
            if m:
                return "token", self.entra.h_token, {"tenant": m.group(1)}
        if method == "GET":
            e, mi = self.entra, self.managed_identity
            for pattern, op, fn in (
                    (r"/([^/]+)/v2\.0/\.well-known/openid-configuration", "oidc", e.h_tenant_discovery),
                    (r"/([^/]+)/discovery/v2\.0/keys", "oidc", e.h_tenant_keys),
                    (r"/([^/]+)/discovery/instance", "oidc", e.h_instance_discovery)):
                m = re.fullmatch(pattern, p)
                if m:
                    return op, fn, {"tenant": m.group(1)}
            fixed = {"/metadata/identity/oauth2/token": ("imds", mi.h_imds),
                     "/msi/token": ("msi", mi.h_msi),
                     "/oidc/.well-known/openid-configuration": ("oidc", e.h_oidc_config),
                     "/oidc/jwks": ("oidc", e.h_oidc_jwks)}
            if p in fixed:
                op, fn = fixed[p]
                return op, fn, {}
        return self.keyvault.route(method, p)

    def handle(self, req):
        r = self.route(req.method, req.path)
        if r is None:
            return Resp(404, KVError(404, "NotFound", "The requested resource %s %s was not found."
                                     % (req.method, req.path)).body())
        op, fn, kwargs = r
        if op == "admin":
            return fn(req, **kwargs)
        f = self.faults.take(op, req)
        if f:
            resp = self.faults.apply(op, f, req, self.entra.aad_response)
            if resp is not None:
                return resp
        if op in OPS:
            return self.keyvault.call(req, op, fn, kwargs)
        return fn(req, **kwargs)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------
class Req:
    """One request: method, path, query, headers, body, the request id, and the
    host it was addressed to (Host header; the URLs the answer names use it)."""

    def __init__(self, method, path, query, headers, body, rid, host):
        self.method, self.path, self.query, self.headers, self.body, self.rid = \
            method, path, query, headers, body, rid
        self.host = host                                   # as sent: name[:port]
        self.hostname = split_host(host)[0]
        self.origin = "https://" + host
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
        emu = self.server.emu
        host = (self.headers.get("Host") or "").strip().lower()
        if not host or not valid_host_header(host):
            host = emu.hosts.vault_url[len("https://"):]
        req = Req(self.command, urllib.parse.unquote(url.path), query, self.headers, body, rid, host)
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


def serve(state_dir, port=0, host_names=(), token_lifetime=None, tenant=None, verbose=False):
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, exist_ok=True)
    for f in ("ready", "port"):
        try:
            os.unlink(os.path.join(state_dir, f))
        except FileNotFoundError:
            pass
    hosts = Hosts(host_names)
    cert, key = ensure_tls(state_dir, hosts.cert_names())
    emu = Emulator(state_dir, hosts, token_lifetime, tenant, verbose)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    server = Server(emu, port, ctx)
    hosts.port = server.server_address[1]
    write_file(os.path.join(state_dir, "pid"), "%d\n" % os.getpid())
    write_file(os.path.join(state_dir, "port"), "%d\n" % hosts.port)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_file(os.path.join(state_dir, "ready"), "%s\n" % hosts.vault_url)
    if verbose:
        sys.stderr.write("kv_emulator listening on 127.0.0.1:%d as %s (state %s)\n"
                         % (hosts.port, ", ".join(hosts.cert_names()), state_dir))
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

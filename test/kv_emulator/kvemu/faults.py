"""Injected faults: a queue of faults, each for the next N requests of one
operation (after letting K of them through), answered as the service would
fail (Key Vault's error body and codes, Entra's, the managed-identity
endpoints'), or as a dropped connection, a malformed body, or latency."""

import http.client
import threading
import time

from .audit import operation_name
from .common import (AADError, FAULT_OPS, KVError, MAX_FAULT_COUNT, MAX_LATENCY_MS, OPS, TOKEN_OPS, Resp)

# Key Vault's error codes for the statuses a fault may answer [KV-ERR].
KV_FAULTS = {
    429: ("Throttled", "Request was not processed because too many requests were received. "
                       "Reason: VaultRequestTypeLimitReached"),
    500: ("InternalServerError", "An internal server error occurred. Please retry."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry."),
    504: ("GatewayTimeout", "The gateway timed out."),
}
# Entra's [AAD-ERR].
AAD_FAULTS = {
    429: ("AADSTS90055", "TenantThrottlingError - There are too many incoming requests."),
    503: ("AADSTS90006", "The server is temporarily too busy to handle the request."),
}


class Faults:
    def __init__(self, audit):
        self.audit = audit
        self.lock = threading.Lock()
        self.queue = []

    # ---- admin ------------------------------------------------------------------
    def add(self, body):
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
            self.queue.append(f)
            return {"queued": dict(f), "faults": [dict(x) for x in self.queue]}

    def clear(self):
        with self.lock:
            n = len(self.queue)
            self.queue = []
        return {"cleared": n}

    def pending(self):
        with self.lock:
            return [dict(x) for x in self.queue]

    # ---- requests ---------------------------------------------------------------
    def take(self, op, req):
        """The fault this request gets (first queued first), or None."""
        if op in OPS and not req.headers.get("Authorization"):
            # The unauthenticated first request of the bearer-challenge flow
            # (answered 401) does not consume a queued fault.
            return None
        with self.lock:
            for f in self.queue:
                if f["op"] == "any" or f["op"] == op:
                    if f.get("after", 0) > 0:
                        # --after K: the first K matching requests pass untouched.
                        f["after"] -= 1
                        return None
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.queue.remove(f)
                    return dict(f)
        return None

    def apply(self, op, f, req, aad_response):
        """Waits the fault's latency; returns its response, or None when the
        fault is latency only (the request is then served normally)."""
        if f.get("latency_ms"):
            time.sleep(min(MAX_LATENCY_MS, f["latency_ms"]) / 1000.0)
        if not (f.get("drop") or f.get("malformed") or f.get("status")):
            return None
        name = operation_name(op)
        status = f.get("status")
        headers = []
        if f.get("retry_after") is not None:
            headers.append(("Retry-After", str(f["retry_after"])))
        elif status == 429:
            headers.append(("Retry-After", "1"))
        if f.get("drop"):
            self.audit.record(req, name, result="InjectedFault", status=0, detail="dropped")
            return Resp(0, drop=True)
        if f.get("malformed"):
            st = status or 200
            self.audit.record(req, name, result="InjectedFault", status=st, detail="malformed")
            return Resp(st, raw=b'{"kid": "' + req.origin.encode() + b'/keys/', headers=headers)
        self.audit.record(req, name, result="InjectedFault", status=status, detail="status %d" % status)
        if op in TOKEN_OPS or op == "oidc":
            code, msg = AAD_FAULTS.get(status, ("AADSTS90033", "A transient error has occurred. Please try again."))
            error = "temporarily_unavailable" if status in (429, 503) else "server_error"
            if op == "token":
                return aad_response(req, AADError(status, error, code, msg), headers)
            return Resp(status, {"error": error, "error_description": "%s: %s" % (code, msg)}, headers)
        code, msg = KV_FAULTS.get(status, (http.client.responses.get(status, "Error").replace(" ", ""),
                                           "Injected fault."))
        return Resp(status, KVError(status, code, msg).body(), headers)

"""The audit log: one JSON line per request in DIR/audit.jsonl, in the shape of
Key Vault's AuditEvent log [KV-LOG] (operation names KeyGet, KeyWrap, ...,
Authentication for sign-ins), read back by the admin `audit` command."""

import json
import os
import threading
import time

from .common import MAX_AUDIT_RETURN, OPS, TOKEN_OPS, iso_now, parse_iso


def operation_name(op):
    """The audit name of a routed operation (KeyUnwrap for unwrapkey, ...)."""
    if op in OPS:
        return OPS[op][0]
    if op in TOKEN_OPS:
        return "Authentication"
    return op


class Audit:
    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, "audit.jsonl")
        self.lock = threading.Lock()

    def record(self, req, operation, caller="", tenant="", key="", version="", result="Success",
               status=200, detail=None):
        rec = {"time": iso_now(), "caller": caller or "", "tenant": tenant or "",
               "operation": operation, "key": key or "", "version": version or "",
               "result": result, "status": status, "requestId": req.rid if req else "",
               "durationMs": int((time.monotonic() - req.t0) * 1000) if req else 0}
        if detail:
            rec["detail"] = detail
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
        return rec

    def read(self, since=None, caller=None, operation=None):
        out = []
        if not os.path.exists(self.path):
            return out
        since_d = parse_iso(since) if since else None
        with self.lock:
            with open(self.path) as f:
                lines = f.readlines()
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if since_d and parse_iso(rec["time"]) < since_d:
                continue
            if caller and rec.get("caller") != caller:
                continue
            if operation and rec.get("operation") != operation:
                continue
            out.append(rec)
        return out[-MAX_AUDIT_RETURN:]

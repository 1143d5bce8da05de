"""The emulator's command line: `serve` runs it; every other command talks
to the running server's admin interface (POST /_admin/<command> with the
admin secret from DIR/admin_secret) and prints its JSON answer.  Exit status:
0 done, 1 refused by the emulator, 2 not running or bad arguments.
Standard library only, so that admin commands start fast."""

import argparse
import http.client
import json
import os
import ssl
import sys

from .common import TOKEN_OPS


def admin_request(state_dir, command, payload, timeout=60):
    state_dir = os.path.abspath(state_dir)
    try:
        with open(os.path.join(state_dir, "port")) as f:
            port = int(f.read().strip())
        with open(os.path.join(state_dir, "admin_secret")) as f:
            secret = f.read().strip()
        if not os.path.exists(os.path.join(state_dir, "ready")):
            raise FileNotFoundError("ready")
    except (OSError, ValueError):
        return 2, {"error": {"code": "NotRunning", "message": "no running emulator in %s" % state_dir}}
    ctx = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.pem"))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=timeout)
    try:
        conn.request("POST", "/_admin/" + command, body=json.dumps(payload).encode(),
                     headers={"Content-Type": "application/json", "X-Admin-Secret": secret})
        r = conn.getresponse()
        data = r.read()
    except OSError as e:
        return 2, {"error": {"code": "ConnectionFailed", "message": str(e)}}
    finally:
        conn.close()
    try:
        out = json.loads(data) if data else {}
    except ValueError:
        out = {"error": {"code": "BadResponse", "message": data.decode("utf-8", "replace")}}
    return (0 if r.status == 200 else 1), out


def _csv(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s is not None else None


def _bool(s):
    if s.lower() in ("true", "1", "yes", "on"):
        return True
    if s.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def build_parser():
    p = argparse.ArgumentParser(prog="kv_emulator.py", description="Local Azure Key Vault (keys) and "
                                "Microsoft Entra ID emulator for cmk's tests.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the emulator")
    s.add_argument("--state-dir", required=True)
    s.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one, see DIR/port)")
    s.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="a DNS name to answer for (repeatable): <vault>.vault.azure.net, "
                        "<hsm>.managedhsm.azure.net, a sign-in host; the first vault name is the vault's")
    s.add_argument("--token-lifetime", type=int, default=None,
                   help="access token lifetime in seconds (default 3600, kept in state)")
    s.add_argument("--tenant", help="the vault's tenant (default: tenant of the first identity added)")
    s.add_argument("--verbose", action="store_true")

    a = sub.add_parser("admin", help="drive a running emulator")
    a.add_argument("--state-dir", required=True)
    asub = a.add_subparsers(dest="command", required=True)
    c = asub.add_parser("add-identity")
    c.add_argument("--tenant", required=True)
    c.add_argument("--client-id", required=True)
    c.add_argument("--secret")
    c.add_argument("--cert-pem", help="PEM file holding the certificate(s) for client assertions")
    c.add_argument("--managed", action="store_true")
    c.add_argument("--federated-subject", action="append")
    c = asub.add_parser("remove-identity")
    c.add_argument("--client-id", required=True)
    c = asub.add_parser("mint-federated-token")
    c.add_argument("--client-id")
    c.add_argument("--subject", required=True)
    c.add_argument("--audience")
    c.add_argument("--issuer")
    c.add_argument("--expires-in", type=int, default=3600)
    asub.add_parser("identity-header")
    for name in ("grant", "revoke"):
        c = asub.add_parser(name)
        c.add_argument("--client-id", required=True)
        c.add_argument("--permissions")
        c.add_argument("--role", help="built-in RBAC role name, e.g. 'Key Vault Crypto Service Encryption User'")
        c.add_argument("--rbac", action="store_true", help="vault uses RBAC (denials: ForbiddenByRbac)")
        c.add_argument("--access-policy", action="store_true", help="vault uses access policies")
    c = asub.add_parser("set-vault")
    c.add_argument("--tenant")
    c.add_argument("--rbac", action="store_true")
    c.add_argument("--access-policy", action="store_true")
    c.add_argument("--soft-delete", type=_bool, help="on|off (default on)")
    c.add_argument("--purge-protection", type=_bool, help="on|off (default on; needs soft delete)")
    c.add_argument("--retention-days", "--soft-delete-days", type=int,
                   help="soft-delete retention, 7..90 (default 90)")
    c.add_argument("--protected-subscription", type=_bool,
                   help="on|off: the +ProtectedSubscription levels (needs purge protection)")
    c = asub.add_parser("set-token-lifetime")
    c.add_argument("--seconds", type=int, required=True)
    c.add_argument("--flow", choices=list(TOKEN_OPS),
                   help="only tokens of this sign-in flow (token endpoint, IMDS, identity endpoint)")
    c.add_argument("--client-id", help="only tokens of this identity")
    c = asub.add_parser("create-key")
    c.add_argument("--name", required=True)
    c.add_argument("--kty", default="RSA", choices=["RSA", "RSA-HSM", "EC", "EC-HSM"])
    c.add_argument("--size", type=int)
    c.add_argument("--crv")
    c.add_argument("--ops")
    c.add_argument("--exp", help="UNIX time, +N / -N seconds from now")
    c.add_argument("--nbf", help="UNIX time, +N / -N seconds from now")
    c.add_argument("--disabled", action="store_true")
    c.add_argument("--recovery-level", help="this key's recoveryLevel instead of the vault's")
    c.add_argument("--recoverable-days", type=int)
    c = asub.add_parser("import-key")
    c.add_argument("--name", required=True)
    c.add_argument("--pem", required=True, help="PEM file with the private key")
    c.add_argument("--ops")
    c.add_argument("--hsm", action="store_true")
    for name in ("rotate-key", "delete-key", "recover-key", "purge-key", "list-versions"):
        c = asub.add_parser(name)
        c.add_argument("--name", required=True)
        if name == "purge-key":
            c.add_argument("--force", action="store_true",
                           help="purge even under purge protection (what the service does after retention)")
    c = asub.add_parser("set-key")
    c.add_argument("--name", required=True)
    c.add_argument("--version")
    c.add_argument("--enabled", type=_bool)
    c.add_argument("--exp", help="UNIX time, +N / -N seconds from now, or 'none'")
    c.add_argument("--nbf", help="UNIX time, +N / -N seconds from now, or 'none'")
    c.add_argument("--ops")
    c.add_argument("--recovery-level", help="this key's recoveryLevel ('vault': back to the vault's)")
    c.add_argument("--recoverable-days", type=int)
    c = asub.add_parser("fault")
    c.add_argument("--op")
    c.add_argument("--status", type=int)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--after", type=int, default=0, help="let the first K matching requests through first")
    c.add_argument("--retry-after", type=int)
    c.add_argument("--latency-ms", type=int, default=0)
    c.add_argument("--drop", action="store_true")
    c.add_argument("--malformed", action="store_true")
    c.add_argument("--clear", action="store_true")
    c = asub.add_parser("audit")
    c.add_argument("--since")
    c.add_argument("--caller")
    c.add_argument("--operation")
    asub.add_parser("status")
    return p


def admin_payload(a):
    cmd = a.command
    if cmd == "add-identity":
        pem = None
        if a.cert_pem:
            with open(a.cert_pem) as f:
                pem = f.read()
        return {"tenant": a.tenant, "client_id": a.client_id, "secret": a.secret, "cert_pem": pem,
                "managed": a.managed, "federated_subjects": a.federated_subject or []}
    if cmd == "remove-identity":
        return {"client_id": a.client_id}
    if cmd == "mint-federated-token":
        return {"client_id": a.client_id, "subject": a.subject, "audience": a.audience,
                "issuer": a.issuer, "expires_in": a.expires_in}
    if cmd in ("grant", "revoke"):
        return {"client_id": a.client_id, "permissions": _csv(a.permissions) or [], "role": a.role,
                "rbac": a.rbac, "access_policy": a.access_policy}
    if cmd == "set-vault":
        return {"tenant": a.tenant, "rbac": a.rbac, "access_policy": a.access_policy,
                "soft_delete": a.soft_delete, "purge_protection": a.purge_protection,
                "retention_days": a.retention_days, "protected_subscription": a.protected_subscription}
    if cmd == "set-token-lifetime":
        return {"seconds": a.seconds, "flow": a.flow, "client_id": a.client_id}
    if cmd == "create-key":
        return {"name": a.name, "kty": a.kty, "size": a.size, "crv": a.crv, "ops": _csv(a.ops),
                "exp": a.exp, "nbf": a.nbf, "disabled": a.disabled,
                "recovery_level": a.recovery_level, "recoverable_days": a.recoverable_days}
    if cmd == "import-key":
        with open(a.pem) as f:
            pem = f.read()
        return {"name": a.name, "pem": pem, "ops": _csv(a.ops), "hsm": a.hsm}
    if cmd in ("rotate-key", "delete-key", "recover-key", "purge-key", "list-versions"):
        return {"name": a.name, "force": getattr(a, "force", False)}
    if cmd == "set-key":
        out = {"name": a.name, "version": a.version, "enabled": a.enabled, "ops": _csv(a.ops),
               "recovery_level": a.recovery_level, "recoverable_days": a.recoverable_days}
        for f in ("exp", "nbf"):
            v = getattr(a, f)
            if v is not None:
                out[f] = v      # UNIX time, +N/-N or none: resolved by the server's clock
        return out
    if cmd == "fault":
        return {"clear": a.clear, "op": a.op, "status": a.status, "count": a.count, "after": a.after,
                "retry_after": a.retry_after, "latency_ms": a.latency_ms, "drop": a.drop,
                "malformed": a.malformed}
    if cmd == "audit":
        return {"since": a.since, "caller": a.caller, "operation": a.operation}
    return {}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "serve":
        from .hosts import Hosts
        from .server import serve          # python3-cryptography: only the server needs it
        try:
            Hosts(args.host)
        except ValueError as e:
            print("kv_emulator.py serve: %s" % e, file=sys.stderr)
            return 2
        return serve(args.state_dir, args.port, args.host, args.token_lifetime, args.tenant, args.verbose)
    try:
        payload = admin_payload(args)
    except (OSError, ValueError) as e:
        print(json.dumps({"error": {"code": "BadArgument", "message": str(e)}}))
        return 2
    rc, out = admin_request(args.state_dir, args.command, payload)
    print(json.dumps(out, indent=1))
    return rc


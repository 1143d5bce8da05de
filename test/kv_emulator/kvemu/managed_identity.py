"""Managed identity: the Instance Metadata Service token endpoint [IMDS]
and the App Service / Container Apps identity endpoint [APPSVC]; both issue
Entra access tokens for the identities added with --managed."""

import hmac

from .common import Resp
from .entra import normalize_resource


class ManagedIdentity:
    def __init__(self, store, audit, entra):
        self.state, self.lock = store.data, store.lock
        self.audit, self.entra = audit, entra

    def _managed_identity(self, query):
        with self.lock:
            mis = [i for i in self.state["identities"].values() if i.get("managed")]
            cid = query.get("client_id") or query.get("clientid")
            oid = query.get("principal_id") or query.get("object_id")
            if cid:
                mis = [i for i in mis if i["client_id"] == cid]
            elif oid:
                mis = [i for i in mis if i["oid"] == oid]
            else:
                mis.sort(key=lambda i: i.get("created", 0))
            return dict(mis[0]) if mis else None

    def _mi_token(self, req, kind):
        q = req.query
        resource = normalize_resource(q.get("resource", ""))
        ident = self._managed_identity(q)
        if ident is None:
            self.audit.record(req, "Authentication", caller=q.get("client_id", ""), result="IdentityNotFound",
                       status=400, detail=kind)
            return None, Resp(400, {"error": "invalid_request", "error_description": "Identity not found"})
        if not self.entra.known_resource(resource, req):
            msg = ("AADSTS500011: The resource principal named %s was not found in the tenant named %s."
                   % (resource, ident["tenant"]))
            self.audit.record(req, "Authentication", caller=ident["client_id"], tenant=ident["tenant"],
                       result="AADSTS500011", status=400, detail=kind)
            return None, Resp(400, {"error": "invalid_resource", "error_description": msg})
        tok, lifetime, t = self.entra.issue_token(ident, resource, "2", kind)
        self.audit.record(req, "Authentication", caller=ident["client_id"], tenant=ident["tenant"], detail=kind)
        return (ident, tok, lifetime, t, resource), None

    def h_imds(self, req):
        # [IMDS]: GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
        # [&client_id=C], header "Metadata: true"; all numbers in the answer are strings.
        if req.headers.get("Metadata", "").lower() != "true":
            self.audit.record(req, "Authentication", result="MissingMetadataHeader", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required metadata header not specified"})
        if not req.query.get("api-version"):
            self.audit.record(req, "Authentication", result="MissingApiVersion", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required query variable 'api-version' is missing"})
        if not req.query.get("resource"):
            self.audit.record(req, "Authentication", result="MissingResource", status=400, detail="imds")
            return Resp(400, {"error": "invalid_request",
                              "error_description": "Required audience parameter not specified"})
        ok, err = self._mi_token(req, "imds")
        if err:
            return err
        ident, tok, lifetime, t, resource = ok
        return Resp(200, {"access_token": tok, "client_id": ident["client_id"], "expires_in": str(lifetime),
                          "expires_on": str(t + lifetime), "ext_expires_in": str(lifetime),
                          "not_before": str(t), "resource": resource, "token_type": "Bearer",
                          "refresh_token": ""})

    def h_msi(self, req):
        # [APPSVC]: GET {IDENTITY_ENDPOINT}?resource=R&api-version=2019-08-01[&client_id=C]
        # with header X-IDENTITY-HEADER: {IDENTITY_HEADER}.
        hdr = req.headers.get("X-IDENTITY-HEADER", "")
        if not hdr or not hmac.compare_digest(hdr.encode(), self.state["identity_header"].encode()):
            self.audit.record(req, "Authentication", result="InvalidIdentityHeader", status=401, detail="msi")
            return Resp(401, {"statusCode": 401,
                              "message": "Unauthorized: X-IDENTITY-HEADER is missing or invalid."})
        if req.query.get("api-version", "") < "2019-08-01":
            self.audit.record(req, "Authentication", result="InvalidApiVersion", status=400, detail="msi")
            return Resp(400, {"statusCode": 400, "message": "api-version 2019-08-01 or later is required."})
        if not req.query.get("resource"):
            self.audit.record(req, "Authentication", result="MissingResource", status=400, detail="msi")
            return Resp(400, {"statusCode": 400, "message": "The 'resource' query parameter is required."})
        ok, err = self._mi_token(req, "msi")
        if err:
            return err
        ident, tok, lifetime, t, resource = ok
        return Resp(200, {"access_token": tok, "expires_on": str(t + lifetime), "resource": resource,
                          "token_type": "Bearer", "client_id": ident["client_id"]})

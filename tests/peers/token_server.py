#!/usr/bin/env python3
"""Bearer-token server for the distribution registry's `auth: token` mode, for depot's tests (loopback only).

usage: token_server.py PORTFILE KEY.pem CERT.pem ISSUER USER:PASS LOGFILE [NO_GET_FLAGFILE]

GET  /token?service=&scope=         Basic credentials optional (dockerd's flow)
POST /token  grant_type=password    username/password form (containerd's OAuth2 flow)
POST /token  grant_type=refresh_token  refresh_token issued with offline_token=true (identity tokens)
Anonymous callers get pull on repositories under public/ only. NO_GET_FLAGFILE makes GET answer 404, to prove a client
falls back to the POST form: GET is refused while NO_GET_FLAGFILE exists (so images can be pushed first). Every request is appended to LOGFILE as one JSON line (never the secrets).
"""
import base64, json, os, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

portfile, keyf, certf, issuer, userpass, logf = sys.argv[1:7]
NO_GET_FLAG = sys.argv[7] if len(sys.argv) > 7 else None
key = serialization.load_pem_private_key(open(keyf, "rb").read(), None)
cert_der = x509.load_pem_x509_certificate(open(certf, "rb").read()).public_bytes(serialization.Encoding.DER)
USER, PASS = userpass.split(":", 1)
REFRESH = "refresh-" + uuid.uuid4().hex


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(claims):
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der).decode()]}
    si = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return si + "." + b64(key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256()))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def record(self, **kw):
        with open(logf, "a") as f:
            f.write(json.dumps(kw) + "\n")

    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            user = name if (name, pw) == (USER, PASS) else False
        self.record(method="GET", path=u.path, scope=q.get("scope", []), basic=auth.startswith("Basic "))
        if (NO_GET_FLAG and os.path.exists(NO_GET_FLAG)) or u.path != "/token":
            return self.send(404, {"details": "not here"})
        self.grant(q, user)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        form = parse_qs(self.rfile.read(n).decode())
        grant = form.get("grant_type", [""])[0]
        self.record(method="POST", path=urlsplit(self.path).path, grant_type=grant, scope=form.get("scope", []),
                    client_id=form.get("client_id", [""])[0])
        user = None
        if grant == "password":
            ok = (form.get("username", [""])[0], form.get("password", [""])[0]) == (USER, PASS)
            user = USER if ok else False
        elif grant == "refresh_token":
            user = USER if form.get("refresh_token", [""])[0] == REFRESH else False
        else:
            return self.send(400, {"error": "unsupported_grant_type"})
        self.grant(form, user, offline=True)

    def grant(self, q, user, offline=False):
        if user is False:
            return self.send(401, {"details": "invalid credentials"})
        access = []
        for sc in q.get("scope", []):
            for one in sc.split(" "):
                typ, _, rest = one.partition(":")
                name, _, acts = rest.rpartition(":")
                want = [a for a in acts.split(",") if a]
                got = want if user else (["pull"] if name.startswith("public/") and "pull" in want else [])
                access.append({"type": typ, "name": name, "actions": got})
        now = int(time.time())
        tok = sign({"iss": issuer, "sub": user or "", "aud": q.get("service", [""])[0], "exp": now + 300,
                    "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access})
        body = {"token": tok, "access_token": tok, "expires_in": 300}
        if offline and user:
            body["refresh_token"] = REFRESH
        self.send(200, body)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
with open(os.path.join(os.path.dirname(portfile), "refresh_token"), "w") as f:
    f.write(REFRESH)
srv.serve_forever()

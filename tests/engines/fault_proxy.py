"""A small HTTP proxy that injects faults on a schedule, for testing clients against real servers.

Each request through it gets the next action of ``schedule`` (cycled): ``None`` forwards it,
``"429"`` and ``"500"`` answer with that status (429 with ``Retry-After``), ``"hang"`` holds
the connection for ``hang_s`` without answering, and ``"drop"`` closes the connection
without a response. ``fail_if`` (a substring of the request body) makes every matching
request answer 500, to model a request that keeps failing.
"""

import http.client
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class FaultProxy:
    def __init__(self, upstream: str, schedule: list[str | None], hang_s: float = 3.0, fail_if: str | None = None):
        self.upstream = urlparse(upstream)
        self.schedule = itertools.cycle(schedule or [None])
        self.hang_s, self.fail_if = hang_s, fail_if
        self.requests = 0
        self.forwarded = 0
        self.faults: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _relay(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.requests += 1
                    action = next(proxy.schedule)
                    if proxy.fail_if and proxy.fail_if.encode() in body:
                        action = "500"
                    if action:
                        proxy.faults[action] = proxy.faults.get(action, 0) + 1
                if action in ("429", "500"):
                    payload = b'{"error": {"message": "injected fault"}}'
                    self.send_response(int(action))
                    if action == "429":
                        self.send_header("Retry-After", "0.2")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "hang":
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                    return
                if action == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(method, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                with proxy._lock:
                    proxy.forwarded += 1
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_POST(self):
                self._relay("POST")

            def do_GET(self):
                self._relay("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

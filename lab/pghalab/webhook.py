#!/usr/bin/python3
"""The lab's alert receiver, on the monitoring host's loopback: every notification
Alertmanager posts is appended, one JSON document a line, to LOG (the tests read it).
Shipped as is into the monitoring container by the lab's deploy (pghalab.deploy); standard
library only."""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

LOG = "/var/log/pgha-lab-webhook.jsonl"


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            document = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"received": time.time(), "notification": document}) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()

#!/usr/bin/env python3
"""Serve a documentation site on loopback for search-index tests and benchmarks.

Prints the port it listens on (one line, then flushes) so callers can use --port 0.
Failure injection: --fail-prefix PATH --fail-status CODE answers CODE for every path
starting with PATH (repeatable pairs); --delay SECONDS waits before every answer
(or only for --delay-prefix); --drop-prefix closes the connection without answering.
"""
import argparse
import functools
import http.server
import signal
import socketserver
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    options = None

    def log_message(self, format, *args):  # tests read stdout; keep stderr quiet too
        if self.options.verbose:
            super().log_message(format, *args)

    def _maybe_fail(self):
        o = self.options
        path = self.path.split("?", 1)[0]
        if o.delay and (not o.delay_prefix or any(path.startswith(p) for p in o.delay_prefix)):
            time.sleep(o.delay)
        for prefix in o.drop_prefix or []:
            if path.startswith(prefix):
                self.close_connection = True
                self.connection.close()
                return True
        for prefix, status in zip(o.fail_prefix or [], o.fail_status or []):
            if path.startswith(prefix):
                body = f"injected failure {status}\n".encode()
                self.send_response(int(status))
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True
        return False

    def do_GET(self):
        if not self._maybe_fail():
            super().do_GET()

    def do_HEAD(self):
        if not self._maybe_fail():
            super().do_HEAD()

    def guess_type(self, path):
        kind = super().guess_type(path)
        if kind in ("text/html", "application/json"):
            return kind + "; charset=utf-8"
        return kind


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fail-prefix", action="append", help="path prefix to fail, e.g. /ar/")
    parser.add_argument("--fail-status", action="append", help="status for the matching --fail-prefix")
    parser.add_argument("--drop-prefix", action="append", help="path prefix whose connections are closed unanswered")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    parser.add_argument("--delay-prefix", action="append", help="limit --delay to these path prefixes")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args()
    if len(options.fail_prefix or []) != len(options.fail_status or []):
        parser.error("give one --fail-status per --fail-prefix")

    # A parent such as Foundation's Process may hand us SIGTERM blocked or ignored;
    # restore the defaults so that terminating the server always works.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    Handler.options = options
    handler = functools.partial(Handler, directory=options.root)
    with Server((options.host, options.port), handler) as server:
        print(server.server_address[1], flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())

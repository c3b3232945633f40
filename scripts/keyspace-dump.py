#!/usr/bin/env python3
"""Canonical dump of a Valkey/Redis keyspace, for comparing servers byte for byte.

    scripts/keyspace-dump.py [--host H] --port P [--exclude PREFIX ...] > dump.txt
    scripts/keyspace-dump.py --port P --info      # prints: version, expiretime support

Speaks plain RESP2 on its own socket (no HELLO, no client library), so that it reads every
engine the same way. One line per key and one per element, sorted, tab-separated, with
backslash, tab, newline and other control bytes escaped:

    KEY  type  TYPE  expire  UNIX-SECONDS|persist
    KEY  field  FIELD  VALUE                  (hash, fields sorted)
    KEY  member  SCORE  MEMBER                (zset, in ZRANGE order)
    KEY  value  VALUE                         (string)
    KEY  item  MEMBER                         (set, sorted; list items in order)

Scores are printed as the shortest decimal that round-trips the double (engines format
doubles differently on the wire). The expiry is EXPIRETIME where the engine has it (Redis
7+, Valkey), else TIME + PTTL rounded to the second, which is exact for an expiry set in
whole seconds (EXPIREAT) as long as the two readings are less than half a second apart.
Keys starting with an --exclude prefix are left out (e.g. the run summaries).
"""
import argparse
import socket
import sys


class RESPError(Exception):
    pass


class Connection:
    def __init__(self, host, port, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def pipeline(self, commands):
        out = bytearray()
        for command in commands:
            out += b"*%d\r\n" % len(command)
            for argument in command:
                if isinstance(argument, str):
                    argument = argument.encode()
                out += b"$%d\r\n%s\r\n" % (len(argument), argument)
        self.sock.sendall(out)
        return [self._read() for _ in commands]

    def call(self, *command):
        reply = self.pipeline([command])[0]
        if isinstance(reply, RESPError):
            raise reply
        return reply

    def _read(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed mid-reply")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RESPError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self.file.read(length + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise ConnectionError("unexpected RESP2 reply type %r" % kind)


def escape(data):
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif byte == 0x09:
            out.append("\\t")
        elif byte == 0x0A:
            out.append("\\n")
        elif byte < 0x20 or byte == 0x7F:
            out.append("\\x%02x" % byte)
        else:
            out.append(chr(byte))
    # Bytes >= 0x80 were mapped one to one above: turn them back into bytes and decode as
    # UTF-8 where valid, so that the dump stays readable and still says every byte.
    text = "".join(out)
    raw = text.encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(c if ord(c) < 0x80 else "\\x%02x" % ord(c) for c in text)


def score_text(raw):
    return repr(float(raw.decode()))


def server_info(conn):
    info = conn.call("INFO", "server").decode()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    if "valkey_version" in fields:
        version = "Valkey " + fields["valkey_version"]
    else:
        version = "Redis " + fields.get("redis_version", "?")
    has_expiretime = not isinstance(conn.pipeline([("EXPIRETIME", "keyspace-dump:probe")])[0], RESPError)
    return version, has_expiretime


def all_keys(conn):
    keys, cursor = set(), b"0"
    while True:
        cursor, chunk = conn.call("SCAN", cursor, "COUNT", "1000")
        keys.update(chunk)
        if cursor == b"0":
            return sorted(keys)


def dump(conn, excluded, out):
    _, has_expiretime = server_info(conn)
    keys = [k for k in all_keys(conn) if not any(k.startswith(p) for p in excluded)]
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        probe = []
        for key in chunk:
            probe.append(("TYPE", key))
            probe.append(("EXPIRETIME", key) if has_expiretime else ("PTTL", key))
        if not has_expiretime:
            probe = [("TIME",)] + probe + [("TIME",)]
        replies = conn.pipeline(probe)
        if not has_expiretime:
            before, after = replies[0], replies[-1]
            now_ms = (int(before[0]) * 1000 + int(before[1]) // 1000 + int(after[0]) * 1000 + int(after[1]) // 1000) / 2
            replies = replies[1:-1]
        reads = []
        for offset, key in enumerate(chunk):
            kind = replies[2 * offset].decode()
            reads.append({
                "hash": ("HGETALL", key), "zset": ("ZRANGE", key, "0", "-1", "WITHSCORES"),
                "set": ("SMEMBERS", key), "list": ("LRANGE", key, "0", "-1"), "string": ("GET", key),
            }.get(kind, ("TYPE", key)))
        bodies = conn.pipeline(reads)
        for offset, key in enumerate(chunk):
            kind = replies[2 * offset].decode()
            expiry = replies[2 * offset + 1]
            if isinstance(expiry, RESPError):
                raise expiry
            if expiry == -2:
                continue  # expired or deleted between SCAN and now
            if expiry == -1:
                expire = "persist"
            elif has_expiretime:
                expire = str(expiry)
            else:
                expire = str(round((now_ms + expiry) / 1000))
            name = escape(key)
            out.write("%s\ttype\t%s\texpire\t%s\n" % (name, kind, expire))
            body = bodies[offset]
            if isinstance(body, RESPError):
                raise body
            if kind == "hash":
                pairs = sorted(zip(body[0::2], body[1::2]))
                for field, value in pairs:
                    out.write("%s\tfield\t%s\t%s\n" % (name, escape(field), escape(value)))
            elif kind == "zset":
                for member, score in zip(body[0::2], body[1::2]):
                    out.write("%s\tmember\t%s\t%s\n" % (name, score_text(score), escape(member)))
            elif kind == "set":
                for member in sorted(body):
                    out.write("%s\titem\t%s\n" % (name, escape(member)))
            elif kind == "list":
                for item in body:
                    out.write("%s\titem\t%s\n" % (name, escape(item)))
            elif kind == "string":
                out.write("%s\tvalue\t%s\n" % (name, escape(body)))
            else:
                out.write("%s\tunsupported\n" % name)
    return len(keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exclude", action="append", default=[], help="leave out keys with this prefix")
    parser.add_argument("--info", action="store_true", help="print the engine and version, and whether it has EXPIRETIME")
    args = parser.parse_args()
    conn = Connection(args.host, args.port)
    if args.info:
        version, has_expiretime = server_info(conn)
        print("%s\t%s" % (version, "expiretime" if has_expiretime else "pttl"))
        return
    out = sys.stdout
    count = dump(conn, [p.encode() for p in args.exclude], out)
    print("keyspace-dump: %d keys" % count, file=sys.stderr)


if __name__ == "__main__":
    main()

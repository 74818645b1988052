#!/usr/bin/python3
"""clients_test: proves the client examples (examples/python/claim.py and
examples/node/claim.mjs) against a real voucherd, on free loopback ports:

  press-once      a member presses once: a valid code on stdout, exit 0; a
                  second press prints the same code "already claimed", the
                  first one asked again (its request_id) the code alone; the
                  member holds exactly one voucher (ListMemberVouchers,
                  GetCampaignStats).
  refusals        the reason is read from ErrorInfo.reason: SOLD_OUT (stock
                  1, second member) and CAMPAIGN_NOT_FOUND, exit 1; no token
                  and a wrong token: UNAUTHENTICATED, exit 1, one call and no
                  retry; nobody listening: UNAVAILABLE retried within the
                  attempts and within the budget, then exit 1; bad usage:
                  exit 2 and no call.
  retry           voucherd on a real redis-server that is frozen (SIGSTOP)
                  when two members press: the clients retry (each retry
                  logged, none sooner than RetryInfo asks; UNAVAILABLE with
                  RetryInfo for one, DEADLINE_EXCEEDED of a 1 s deadline for
                  the other), Redis is resumed, each client prints a code and
                  exits 0, and Redis holds exactly one voucher per member,
                  written with that client's request_id.
  service-config  the same frozen Redis, with deploy/grpc/service_config.json
                  on the channel: one call, which gRPC retries itself
                  (voucherd answered more than once), and a code.

  clients_test.py --voucherd BIN --source DIR --client python|node SCENARIO

Uses Debian's python3-grpcio and python3-protobuf (it calls voucherd itself
through the same generated messages as claim.py), redis-server, and for the
Node client examples/node/node_modules (scripts/setup.sh --tests).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

CAMPAIGN = "spring-2025"
APP_TOKEN = "app-token-0123456789abcdef0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789abcdef"
SECRET_HEX = "0123456789abcdef" * 4
# 30 Crockford base32 symbols in six groups of five (docs/architecture.md).
CODE_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){5}$")
RETRY_LINE_RE = re.compile(
    r"^attempt (\d+): ([A-Z_]+) ([A-Z_]+|-) retry_delay (\d+ ms|-); retrying in (\d+) ms$")
STARTUP_S = 20
CLIENT_TIMEOUT_S = 60


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def check_eq(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}: expected {expected!r}, got {actual!r}")


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise Failure(f"timed out after {timeout_s} s waiting for {what}")


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


class Processes:
    """Every process the test starts; all are ended (SIGCONT first) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kwargs):
        p = subprocess.Popen(args, **kwargs)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass


class Redis:
    def __init__(self, procs, tmp):
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir)
        self.port = free_loopback_port()
        conf = os.path.join(self.dir, "redis.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "bind 127.0.0.1", f"port {self.port}", f"dir {self.dir}", 'save ""',
                "appendonly no", "daemonize no", "protected-mode yes", "loglevel warning",
                f"logfile {self.dir}/redis.log", "maxmemory-policy noeviction", ""]))
        self.proc = procs.start(["redis-server", conf], stdout=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", STARTUP_S, "redis-server to answer PING")

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.rstrip("\n")

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


class Voucherd:
    def __init__(self, procs, tmp, binary, campaigns, extra=()):
        self.tmp = tmp
        port_file = os.path.join(tmp, "voucherd.port")
        ops_port_file = os.path.join(tmp, "voucherd.ops-port")
        self.stderr_path = os.path.join(tmp, "voucherd.stderr")
        auth = os.path.join(tmp, "tokens")
        with open(auth, "w") as f:
            for token, role in ((APP_TOKEN, "app"), (ADMIN_TOKEN, "admin")):
                f.write(f"sha256:{hashlib.sha256(token.encode()).hexdigest()} {role}\n")
        secret = os.path.join(tmp, "secret.hex")
        with open(secret, "w") as f:
            f.write(SECRET_HEX + "\n")
        campaigns_file = os.path.join(tmp, "campaigns.json")
        with open(campaigns_file, "w") as f:
            json.dump({"campaigns": campaigns}, f)
        args = [binary, "--listen", "127.0.0.1:0", "--port-file", port_file,
                "--ops-listen", "127.0.0.1:0", "--ops-port-file", ops_port_file,
                "--campaigns", campaigns_file, "--auth-file", auth, "--secret-file", secret,
                "--grpc-threads", "1", *extra]
        with open(self.stderr_path, "w") as err:
            self.proc = procs.start(args, stdout=subprocess.DEVNULL, stderr=err)

        def listening():
            check(self.proc.poll() is None, f"voucherd exited at start:\n{self.stderr()}")
            return os.path.exists(port_file) and open(port_file).read().strip() not in ("", "0")

        wait_until(listening, STARTUP_S, "voucherd to listen")
        self.port = int(open(port_file).read())
        self.ops_port = int(open(ops_port_file).read())
        self.target = f"127.0.0.1:{self.port}"

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def wait_ready(self):
        wait_until(lambda: http_get(self.ops_port, "/readyz")[0] == 200, STARTUP_S,
                   "voucherd /readyz 200")

    def claim_answers(self):
        """voucherd_rpc_responses_total{rpc="Claim"} by code, from /metrics."""
        status, text = http_get(self.ops_port, "/metrics")
        check_eq(status, 200, "GET /metrics")
        out = {}
        for line in text.splitlines():
            m = re.match(r'^voucherd_rpc_responses_total\{(.*)\} (\S+)$', line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("rpc") == "Claim":
                out[labels["code"]] = out.get(labels["code"], 0) + int(float(m.group(2)))
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        check_eq(self.proc.wait(timeout=30), 0, "voucherd's exit status after SIGTERM")


def campaign(campaign_id, stock):
    return {
        "id": campaign_id, "name": f"Test {campaign_id}", "mode": "CAMPAIGN_MODE_FIRST_COME",
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "perMemberLimit": 1,
        "sites": [{"id": "site-1", "name": "Spring", "city": "Qingyuan",
                   "kind": "SKU_KIND_HOT_SPRING"}],
        "skus": [{"id": "sku-0", "siteId": "site-1", "kind": "SKU_KIND_HOT_SPRING",
                  "name": "Spa", "faceValueCents": "19800", "stock": str(stock)}],
    }


class Rpc:
    """The test's own calls to voucherd (not the client under test)."""

    def __init__(self, gen_dir, target):
        sys.path.insert(0, gen_dir)
        import grpc
        from voucher.v1 import voucher_pb2
        self.grpc, self.pb = grpc, voucher_pb2
        self.channel = grpc.insecure_channel(target)

    def _call(self, method, request, response_type, token):
        call = self.channel.unary_unary(
            f"/voucher.v1.{method}", request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString)
        return call(request, timeout=10, metadata=[("authorization", f"Bearer {token}")])

    def member_vouchers(self, member):
        req = self.pb.ListMemberVouchersRequest(member_id=member, campaign_id=CAMPAIGN)
        return list(self._call("VoucherService/ListMemberVouchers", req,
                               self.pb.ListMemberVouchersResponse, APP_TOKEN).vouchers)

    def close(self):
        self.channel.close()

    def stats(self):
        req = self.pb.GetCampaignStatsRequest(campaign_id=CAMPAIGN)
        return self._call("AdminService/GetCampaignStats", req, self.pb.CampaignStats,
                          ADMIN_TOKEN)


class Client:
    """Runs the example under test: examples/python/claim.py or examples/node/claim.mjs."""

    def __init__(self, kind, source, gen_dir, tmp, procs):
        self.kind, self.tmp, self.procs = kind, tmp, procs
        self.env = {k: v for k, v in os.environ.items() if k != "VOUCHERD_TOKEN"}
        if kind == "python":
            self.command = ["/usr/bin/python3", os.path.join(source, "examples/python/claim.py")]
            self.env["VOUCHERD_PYTHON_GEN"] = gen_dir
        else:
            node_dir = os.path.join(source, "examples/node")
            check(os.path.isdir(os.path.join(node_dir, "node_modules/@grpc/grpc-js")),
                  f"{node_dir}/node_modules is missing: run scripts/setup.sh --tests")
            self.command = [shutil.which("node") or "node", os.path.join(node_dir, "claim.mjs")]
        self.token_file = os.path.join(tmp, "app.token")
        with open(self.token_file, "w") as f:
            f.write(APP_TOKEN + "\n")
        self.runs = 0

    def args(self, target, member, campaign_id=CAMPAIGN, token_file="app", extra=()):
        args = ["--target", target, "--campaign", campaign_id, "--member", member]
        if token_file == "app":
            args += ["--token-file", self.token_file]
        elif token_file is not None:
            args += ["--token-file", token_file]
        return args + list(extra)

    def start(self, args):
        """Starts the client; returns (process, stdout path, stderr path)."""
        self.runs += 1
        out = os.path.join(self.tmp, f"client-{self.runs}.stdout")
        err = os.path.join(self.tmp, f"client-{self.runs}.stderr")
        with open(out, "w") as o, open(err, "w") as e:
            p = self.procs.start(self.command + args, stdout=o, stderr=e, env=self.env)
        return p, out, err

    def run(self, args):
        """Runs the client to its end: (exit status, stdout, stderr, seconds)."""
        started = time.monotonic()
        p, out, err = self.start(args)
        status = p.wait(timeout=CLIENT_TIMEOUT_S)
        return status, open(out).read(), open(err).read(), time.monotonic() - started


def retry_lines(stderr):
    """The retry lines the client logged, parsed; fails on any other line."""
    lines = []
    for line in stderr.splitlines():
        m = RETRY_LINE_RE.match(line)
        check(m is not None, f"a stderr line that is not a retry line: {line!r}\n{stderr}")
        delay = None if m.group(4) == "-" else int(m.group(4).split()[0])
        lines.append({"attempt": int(m.group(1)), "code": m.group(2), "reason": m.group(3),
                      "retry_delay_ms": delay, "wait_ms": int(m.group(5))})
    return lines


# --- the scenarios -----------------------------------------------------------------------------


def press_once(ctx):
    v = Voucherd(ctx.procs, ctx.tmp, ctx.voucherd, [campaign(CAMPAIGN, 5)])
    rpc = Rpc(ctx.gen_dir, v.target)
    press = ["--request-id", "press-0001"]
    status, out, err, _ = ctx.client.run(ctx.client.args(v.target, "member-1", extra=press))
    check_eq((status, err), (0, ""), "first press: exit status and stderr")
    code = out.rstrip("\n")
    check(CODE_RE.match(code) and out == code + "\n",
          f"first press: stdout is not one voucher code: {out!r}")

    # A second press (a new request_id): the voucher the member holds.
    status, out, err, _ = ctx.client.run(ctx.client.args(v.target, "member-1"))
    check_eq((status, out, err), (0, f"{code} already claimed\n", ""), "second press")
    # The first press asked again (its request_id): its own voucher, not an old one.
    status, out, err, _ = ctx.client.run(ctx.client.args(v.target, "member-1", extra=press))
    check_eq((status, out, err), (0, f"{code}\n", ""), "the first press asked again")

    vouchers = rpc.member_vouchers("member-1")
    check_eq([(x.code, x.member_id, x.request_id, x.state) for x in vouchers],
             [(code, "member-1", "press-0001", rpc.pb.VOUCHER_STATE_ISSUED)],
             "ListMemberVouchers")
    stats = rpc.stats()
    check_eq((stats.issued, stats.members, stats.remaining), (1, 1, 4), "GetCampaignStats")
    check_eq(v.claim_answers(), {"OK": 3}, "Claim answers voucherd counted")
    rpc.close()
    v.stop()


def refusals(ctx):
    v = Voucherd(ctx.procs, ctx.tmp, ctx.voucherd, [campaign(CAMPAIGN, 1)])
    c = ctx.client
    status, out, err, _ = c.run(c.args(v.target, "member-1"))
    check_eq((status, err), (0, ""), "member-1 takes the only pack")
    check(CODE_RE.match(out.rstrip("\n")), f"member-1: not a code: {out!r}")

    status, out, err, _ = c.run(c.args(v.target, "member-2"))
    check_eq((status, out), (1, ""), "member-2 after the sell-out: exit status and stdout")
    check(re.fullmatch(r"no voucher: SOLD_OUT \(.+\)\n", err), f"member-2: stderr {err!r}")

    status, out, err, _ = c.run(c.args(v.target, "member-2", campaign_id="no-such-campaign"))
    check_eq((status, out), (1, ""), "unknown campaign: exit status and stdout")
    check(re.fullmatch(r"no voucher: CAMPAIGN_NOT_FOUND \(.+\)\n", err),
          f"unknown campaign: stderr {err!r}")

    before = v.claim_answers()
    status, out, err, _ = c.run(c.args(v.target, "member-3", token_file=None))
    check_eq((status, out), (1, ""), "no token: exit status and stdout")
    check(re.fullmatch(r"no voucher: UNAUTHENTICATED \(.+\)\n", err), f"no token: stderr {err!r}")
    wrong = os.path.join(ctx.tmp, "wrong.token")
    with open(wrong, "w") as f:
        f.write("not-a-known-token\n")
    status, out, err, _ = c.run(c.args(v.target, "member-3", token_file=wrong))
    check_eq((status, out), (1, ""), "wrong token: exit status and stdout")
    check(re.fullmatch(r"no voucher: UNAUTHENTICATED \(.+\)\n", err),
          f"wrong token: stderr {err!r}")
    after = v.claim_answers()
    check_eq(after.get("UNAUTHENTICATED", 0) - before.get("UNAUTHENTICATED", 0), 2,
             "UNAUTHENTICATED answers for two presses (one call each, no retry)")

    # Nobody listening: UNAVAILABLE is retried, within the attempts, then
    # within the budget, and the press ends without a voucher.
    closed = f"127.0.0.1:{free_loopback_port()}"
    status, out, err, _ = c.run(c.args(closed, "member-3", extra=["--attempts", "3"]))
    check_eq((status, out), (1, ""), "nobody listening, 3 attempts: exit status and stdout")
    *retries, last = err.splitlines()
    check_eq([(x["attempt"], x["code"], x["reason"]) for x in retry_lines("\n".join(retries))],
             [(1, "UNAVAILABLE", "-"), (2, "UNAVAILABLE", "-")], "retries, nobody listening")
    check(re.fullmatch(r"no voucher: UNAVAILABLE \(.+\); gave up after 3 attempt\(s\)\. "
                       r"The claim may have been written: press again with --request-id "
                       r"\S+ to find out", last), f"nobody listening: last line {last!r}")
    status, out, err, _ = c.run(c.args(closed, "member-3",
                                       extra=["--attempts", "100", "--budget-ms", "300"]))
    check_eq((status, out), (1, ""), "nobody listening, 300 ms: exit status and stdout")
    *retries, last = err.splitlines()
    check(len(retry_lines("\n".join(retries))) < 99, f"the budget did not bound the retries: {err}")
    check(re.fullmatch(r"no voucher: UNAVAILABLE \(.+\); gave up after the 300 ms budget\. .+",
                       last), f"nobody listening: last line {last!r}")

    # Bad usage: exit 2, and nothing reaches voucherd.
    for args in (["--target", v.target, "--campaign", CAMPAIGN],
                 c.args(v.target, "member-3", extra=["--attempts", "0"])):
        status, out, _, _ = c.run(args)
        check_eq((status, out), (2, ""), f"bad usage {args[-2:]}: exit status and stdout")
    check_eq(v.claim_answers(), after, "Claim answers after the bad usages")
    check_eq({k: after.get(k, 0) for k in ("OK", "FAILED_PRECONDITION", "NOT_FOUND")},
             {"OK": 1, "FAILED_PRECONDITION": 1, "NOT_FOUND": 1}, "one answer per refusal")
    v.stop()


def frozen_redis_setup(ctx):
    redis = Redis(ctx.procs, ctx.tmp)
    v = Voucherd(ctx.procs, ctx.tmp, ctx.voucherd, [campaign(CAMPAIGN, 5)],
                 ["--store", "redis", "--redis", redis.url()])
    v.wait_ready()
    return redis, v


def check_vouchers_in_redis(redis, held):
    """Redis holds exactly the vouchers `held` ({member: (code, request_id)}):
    one per member, each record naming its member and the request it was
    issued for."""
    for member, (code, _) in held.items():
        check_eq(redis.cli("GET", f"vd:{{{CAMPAIGN}}}:m:{member}"), code, f"{member}'s code in Redis")
    count = str(len(held))
    check_eq(redis.cli("HGET", f"vd:{{{CAMPAIGN}}}:issued", "_members"), count, "members in Redis")
    check_eq(redis.cli("HGET", f"vd:{{{CAMPAIGN}}}:issued", "sku-0"), count, "issued in Redis")
    keys = sorted(redis.cli("--scan", "--pattern", f"vd:{{{CAMPAIGN}}}:v:*").split())
    check_eq(keys, sorted(f"vd:{{{CAMPAIGN}}}:v:{code}" for code, _ in held.values()),
             "voucher records in Redis")
    for member, (code, request_id) in held.items():
        record = redis.cli("GET", f"vd:{{{CAMPAIGN}}}:v:{code}")
        # The record's fields are <length>:<bytes> (docs/redis.md): member, then request id.
        check(f"{len(member)}:{member}{len(request_id)}:{request_id}" in record,
              f"the voucher record does not name {member} and request {request_id}: {record!r}")


def check_retried_then_claimed(status, out, err, who):
    """The client's retry lines, checked, and the code it printed at the end."""
    check_eq(status, 0, f"{who}: exit status (stderr: {err!r})")
    lines = retry_lines(err)
    check_eq([x["attempt"] for x in lines], list(range(1, len(lines) + 1)),
             f"{who}: attempt numbers")
    for x in lines:
        check(x["code"] in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"),
              f"{who} retried a code it should not have: {x}")
        # RetryInfo's delay, plus jitter of at most min(2000, 100 * 2^(n-1))
        # ms: the examples' backoff.
        asked = x["retry_delay_ms"] or 0
        jitter_max = min(2000, 100 * 2 ** (x["attempt"] - 1))
        check(asked <= x["wait_ms"] <= asked + jitter_max + 1,
              f"{who}: the wait is not RetryInfo's delay plus the backoff's jitter: {x}")
    # Also when an earlier attempt's write landed and the retry found it
    # (already_claimed, with this press's request_id): this press's voucher.
    code = out.rstrip("\n")
    check(CODE_RE.match(code) and out == code + "\n",
          f"{who}: stdout is not one voucher code: {out!r}")
    return lines, code


def retry(ctx):
    """Two members press while Redis is frozen. voucherd holds a claim until
    its Redis timeout (about 2 s; up to about 4.3 s when its keep-alive ping
    was in flight) and then answers UNAVAILABLE, STORE_UNAVAILABLE, with a
    RetryInfo of 200 ms: member-1's 6 s deadline sees that answer; member-2's
    1 s deadline passes first, so it retries DEADLINE_EXCEEDED, with the same
    request_id, while its attempt is still inside voucherd. (An attempt that
    joins a Redis exchange begun before the freeze is answered UNAVAILABLE
    when that exchange's 2 s run out, which may be sooner than 1 s: so Redis
    stays frozen until member-2 has met its deadline at least once.)"""
    redis, v = frozen_redis_setup(ctx)
    presses = {"member-1": ("6000", "press-0001"), "member-2": ("1000", "press-0002")}
    redis.freeze()
    frozen_at = time.monotonic()
    running = {}
    for member, (deadline_ms, request_id) in presses.items():
        running[member] = ctx.client.start(ctx.client.args(
            v.target, member, extra=["--deadline-ms", deadline_ms, "--attempts", "30",
                                     "--budget-ms", "40000", "--request-id", request_id]))
    # Resume Redis once both clients have retried at least once, member-2
    # after its deadline (not before ~1 s).
    wait_until(lambda: all("retrying in" in open(err).read() or p.poll() is not None
                           for p, _, err in running.values()), 30, "both clients to retry")
    member2 = running["member-2"]
    wait_until(lambda: "DEADLINE_EXCEEDED" in open(member2[2]).read() or member2[0].poll() is not None,
               30, "member-2 to retry after its deadline")
    time.sleep(max(0.0, 1.0 - (time.monotonic() - frozen_at)))
    redis.resume()
    resumed_at = time.monotonic()
    held = {}
    for member, (p, out_path, err_path) in running.items():
        status = p.wait(timeout=CLIENT_TIMEOUT_S)
        out, err = open(out_path).read(), open(err_path).read()
        print(f"{member}: done {time.monotonic() - frozen_at:.2f} s after the freeze "
              f"(Redis resumed after {resumed_at - frozen_at:.2f} s); stdout {out!r}; "
              f"stderr:\n{err}")
        lines, code = check_retried_then_claimed(status, out, err, member)
        held[member] = (code, presses[member][1])
        first = lines[0]
        if member == "member-1":
            check_eq((first["code"], first["reason"], first["retry_delay_ms"]),
                     ("UNAVAILABLE", "STORE_UNAVAILABLE", 200), "member-1's first retry")
        else:
            kinds = [(l["code"], l["reason"], l["retry_delay_ms"]) for l in lines]
            check(("DEADLINE_EXCEEDED", "-", None) in kinds,
                  f"member-2 never retried after its 1 s deadline: {kinds}")
            check(all(k in (("DEADLINE_EXCEEDED", "-", None),
                            ("UNAVAILABLE", "STORE_UNAVAILABLE", 200)) for k in kinds),
                  f"member-2's retries: {kinds}")
    check(held["member-1"][0] != held["member-2"][0], f"two members, one code: {held}")
    check_vouchers_in_redis(redis, held)

    # Pressing again (a new request_id) finds the same voucher; Redis is unchanged.
    code = held["member-1"][0]
    status, out, err, _ = ctx.client.run(ctx.client.args(v.target, "member-1"))
    check_eq((status, out, err), (0, f"{code} already claimed\n", ""), "the press after")
    check_vouchers_in_redis(redis, held)
    v.stop()


def service_config(ctx):
    redis, v = frozen_redis_setup(ctx)
    config = os.path.join(ctx.source, "deploy/grpc/service_config.json")
    request_id = "press-0002"
    redis.freeze()
    frozen_at = time.monotonic()
    p, out_path, err_path = ctx.client.start(ctx.client.args(
        v.target, "member-1",
        extra=["--service-config", config, "--budget-ms", "30000", "--request-id", request_id]))
    # Resume Redis once voucherd has refused the call's first attempt.
    wait_until(lambda: sum(n for k, n in v.claim_answers().items() if k != "OK") >= 1
               or p.poll() is not None, 30, "voucherd to answer the first attempt")
    redis.resume()
    status = p.wait(timeout=CLIENT_TIMEOUT_S)
    out, err = open(out_path).read(), open(err_path).read()
    answers = v.claim_answers()
    print(f"client took {time.monotonic() - frozen_at:.2f} s; voucherd answered {answers}")
    check_eq((status, err), (0, ""), "exit status and stderr")
    code = out.rstrip("\n")
    check(CODE_RE.match(code) and out == code + "\n", f"stdout is not one voucher code: {out!r}")
    check_eq(answers.get("OK"), 1, "OK answers")
    check(set(answers) <= {"OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED"},
          f"voucherd answered codes the policy does not retry: {answers}")
    check(sum(answers.values()) >= 2, f"gRPC did not retry the call: {answers}")
    check_vouchers_in_redis(redis, {"member-1": (code, request_id)})
    v.stop()


SCENARIOS = {"press-once": press_once, "refusals": refusals, "retry": retry,
             "service-config": service_config}


class Context:
    pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--voucherd", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--client", choices=("python", "node"), required=True)
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    args = p.parse_args()
    ctx = Context()
    ctx.voucherd, ctx.source = args.voucherd, os.path.abspath(args.source)
    ctx.procs = Processes()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voucherd-clients-") as tmp:
        ctx.tmp = tmp
        try:
            ctx.gen_dir = os.path.join(tmp, "gen")
            subprocess.run([os.path.join(ctx.source, "examples/python/generate.sh"), ctx.gen_dir],
                           check=True)
            ctx.client = Client(args.client, ctx.source, ctx.gen_dir, tmp, ctx.procs)
            SCENARIOS[args.scenario](ctx)
        except Failure as e:
            print(f"FAIL ({args.client} {args.scenario}): {e}")
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".stderr") and name.startswith("voucherd"):
                    print(f"--- {name}:\n{open(os.path.join(tmp, name)).read()[-4000:]}")
            return 1
        except Exception:  # a bug in the test, or a process that would not start
            traceback.print_exc()
            return 1
        finally:
            ctx.procs.close()
    print(f"OK ({args.client} {args.scenario}) in {time.monotonic() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

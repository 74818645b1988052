#!/usr/bin/python3
"""claim.py: one member presses "claim" once; an app backend's call to voucherd.

An example to copy. It sends VoucherService.Claim with a bearer token, a
deadline per attempt, and one request_id kept for every attempt, and retries
only what is worth retrying:

  UNAVAILABLE          always (the transport failed, or voucherd's claim log
                       did not confirm the write: STORE_UNAVAILABLE);
  RESOURCE_EXHAUSTED   when it carries a google.rpc.RetryInfo (voucherd shed
                       the load: OVERLOADED, TOO_MANY_PRESSES, STOCK_REFILLING);
                       without one (DAILY_DRAW_LIMIT, or gRPC's own limits) a
                       retry now would get the same answer;
  DEADLINE_EXCEEDED    when an attempt's deadline passed and the overall
                       budget has time left. Safe only because Claim is
                       idempotent and every attempt carries the same
                       request_id: a claim the lost attempt did write is
                       found, not issued twice.

The wait before attempt n+1 is the RetryInfo.retry_delay voucherd asked for
(0 without one) plus exponential backoff with full jitter,
uniform(0, min(max_backoff, initial * 2**(n-1))). Attempts are bounded (--attempts)
and so is the whole press (--budget-ms). Everything else is final: the
reason is read from the google.rpc.ErrorInfo in the grpc-status-details-bin
trailer (a google.rpc.Status); its `reason` is a value name of the proto enum
voucher.v1.ErrorReason.

  claim.py --target HOST:PORT --campaign ID --member ID [--token-file F]
           [--deadline-ms N] [--attempts N] [--budget-ms N] [--request-id R]
           [--service-config FILE]

The token is the first line of --token-file, else $VOUCHERD_TOKEN; with
neither, no authorization is sent (a voucherd without --auth-file).
--service-config hands the retries to gRPC itself instead (a service config
such as deploy/grpc/service_config.json): one call, whose deadline is
--budget-ms; gRPC's retries do not read RetryInfo.

Prints the voucher code on stdout ("<code> already claimed" when the member
held it from an earlier press, i.e. one with another request_id) and exits 0; or prints why there is none on stderr
("no voucher: SOLD_OUT (...)") and exits 1; exits 2 on bad usage. Each retry
logs one line on stderr.

Needs Debian's python3-grpcio and python3-protobuf, and the message classes
that generate.sh makes (in ./gen, or in $VOUCHERD_PYTHON_GEN).
"""

import argparse
import os
import random
import sys
import time
import uuid

import grpc

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("VOUCHERD_PYTHON_GEN") or os.path.join(_HERE, "gen"))
try:
    from google.rpc import error_details_pb2, status_pb2
    from voucher.v1 import voucher_pb2
except ImportError as e:  # pragma: no cover - a setup mistake, said plainly
    sys.stderr.write(f"claim.py: {e}: run examples/python/generate.sh first\n")
    sys.exit(2)

EXIT_VOUCHER = 0
EXIT_NO_VOUCHER = 1
EXIT_USAGE = 2

ERROR_DOMAIN = "voucherd"
# Backoff between attempts (the same figures as deploy/grpc/service_config.json).
INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
BACKOFF_MULTIPLIER = 2.0

CLAIM_METHOD = "/voucher.v1.VoucherService/Claim"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="claim.py", description="Claim one voucher for a member from voucherd.")
    p.add_argument("--target", required=True, help="voucherd's gRPC address, HOST:PORT")
    p.add_argument("--campaign", required=True, help="campaign id")
    p.add_argument("--member", required=True, help="member id")
    p.add_argument("--token-file", help="file whose first line is the bearer token "
                   "(default: $VOUCHERD_TOKEN)")
    p.add_argument("--deadline-ms", type=int, help="deadline of each attempt (default 2000)")
    p.add_argument("--attempts", type=int, help="attempts at most (default 5)")
    p.add_argument("--budget-ms", type=int, default=10000,
                   help="time for the whole press, retries included (default 10000)")
    p.add_argument("--request-id", help="idempotency key (default: a new uuid4); "
                   "pass the same one to ask again about the same press")
    p.add_argument("--service-config", help="a gRPC service config (JSON) whose retry "
                   "policy gRPC applies instead of this program's own")
    args = p.parse_args(argv)
    if args.service_config and (args.attempts is not None or args.deadline_ms is not None):
        p.error("--service-config hands retries to gRPC: "
                "--attempts and --deadline-ms do not apply (use --budget-ms)")
    if args.attempts is None:
        args.attempts = 5
    if args.deadline_ms is None:
        args.deadline_ms = 2000
    if args.attempts < 1 or args.deadline_ms < 1 or args.budget_ms < 1:
        p.error("--attempts, --deadline-ms and --budget-ms must be positive")
    return args, p


def read_token(args, parser):
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except OSError as e:
            parser.error(f"--token-file: {e}")
        if not token:
            parser.error(f"--token-file {args.token_file}: the first line is empty")
        return token
    return os.environ.get("VOUCHERD_TOKEN", "").strip() or None


def error_details(err):
    """(reason, retry_delay_s) from the grpc-status-details-bin trailer.

    reason is ErrorInfo.reason when voucherd sent one (domain "voucherd"),
    else None; retry_delay_s is RetryInfo.retry_delay in seconds, else None.
    """
    reason, retry_delay = None, None
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == ERROR_DOMAIN:
                    reason = info.reason
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return reason, retry_delay


def worth_retrying(code, retry_delay):
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return retry_delay is not None
    # Only with the same request_id on every attempt (see the module comment).
    return code == grpc.StatusCode.DEADLINE_EXCEEDED


def print_voucher(response, request_id):
    # already_claimed with this press's own request_id: an earlier attempt of
    # this press was written after all (its answer was lost), and the retry
    # found it. For the member that is this press's voucher, not an old one.
    if response.already_claimed and response.voucher.request_id != request_id:
        print(f"{response.voucher.code} already claimed")
    else:
        print(response.voucher.code)
    return EXIT_VOUCHER


def refusal(err, reason):
    return f"{reason or err.code().name} ({err.details()})"


def main(argv):
    args, parser = parse_args(argv)
    token = read_token(args, parser)
    request_id = args.request_id or str(uuid.uuid4())
    metadata = [("authorization", f"Bearer {token}")] if token else []
    request = voucher_pb2.ClaimRequest(
        campaign_id=args.campaign, member_id=args.member, request_id=request_id)

    options = []
    if args.service_config:
        try:
            with open(args.service_config, encoding="utf-8") as f:
                options.append(("grpc.service_config", f.read()))
        except OSError as e:
            parser.error(f"--service-config: {e}")
    # Plaintext: this example talks to loopback. Anywhere else, use TLS:
    # grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem)).
    with grpc.insecure_channel(args.target, options=options) as channel:
        claim = channel.unary_unary(
            CLAIM_METHOD,
            request_serializer=voucher_pb2.ClaimRequest.SerializeToString,
            response_deserializer=voucher_pb2.ClaimResponse.FromString)

        if args.service_config:
            # gRPC retries inside this one call, within its deadline.
            try:
                return print_voucher(
                    claim(request, timeout=args.budget_ms / 1000, metadata=metadata), request_id)
            except grpc.RpcError as err:
                reason, _ = error_details(err)
                sys.stderr.write(f"no voucher: {refusal(err, reason)}\n")
                return EXIT_NO_VOUCHER

        budget_end = time.monotonic() + args.budget_ms / 1000
        for attempt in range(1, args.attempts + 1):
            timeout = min(args.deadline_ms / 1000, budget_end - time.monotonic())
            try:
                return print_voucher(claim(request, timeout=timeout, metadata=metadata),
                                     request_id)
            except grpc.RpcError as err:
                reason, retry_delay = error_details(err)
                if not worth_retrying(err.code(), retry_delay):
                    sys.stderr.write(f"no voucher: {refusal(err, reason)}\n")
                    return EXIT_NO_VOUCHER
                backoff_cap = min(MAX_BACKOFF_S,
                                  INITIAL_BACKOFF_S * BACKOFF_MULTIPLIER ** (attempt - 1))
                # Never sooner than voucherd asked, and jittered on top of it:
                # a crowd told "200 ms" must not come back in step.
                wait = (retry_delay or 0) + random.uniform(0, backoff_cap)
                if attempt == args.attempts or time.monotonic() + wait >= budget_end:
                    why = (f"{attempt} attempt(s)" if attempt == args.attempts
                           else f"the {args.budget_ms} ms budget")
                    sys.stderr.write(
                        f"no voucher: {refusal(err, reason)}; gave up after {why}. "
                        f"The claim may have been written: press again with "
                        f"--request-id {request_id} to find out\n")
                    return EXIT_NO_VOUCHER
                asked = f"{retry_delay * 1000:.0f} ms" if retry_delay is not None else "-"
                sys.stderr.write(
                    f"attempt {attempt}: {err.code().name} {reason or '-'} "
                    f"retry_delay {asked}; retrying in {wait * 1000:.0f} ms\n")
                time.sleep(wait)
    return EXIT_NO_VOUCHER  # not reached: the loop returns on its last attempt


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

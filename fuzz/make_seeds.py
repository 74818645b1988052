#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from
real inputs: the sample campaigns in deploy/campaigns, codes voucherd issued,
records and draw log lines in the formats records.h and lottery_log.h
describe, the README's config file. Run from anywhere; needs protoc (Debian's
protobuf-compiler). The corpora are kept in the repository: run this only to
change them, and keep each to a few dozen small files.
"""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def encode(message_type, text):
    """A voucher.v1 message from protobuf text format, as wire bytes."""
    return subprocess.run(
        ["protoc", "-I", os.path.join(ROOT, "proto"), "-I", "/usr/include",
         "--encode=voucher.v1." + message_type, "voucher/v1/voucher.proto"],
        input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


def load_campaign(path, sites=None, skus=None):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        doc = json.load(f)
    c = doc["campaigns"][0] if "campaigns" in doc else doc
    if sites is not None:
        c["sites"] = c["sites"][:sites]
        kept = {s["id"] for s in c["sites"]}
        c["skus"] = [s for s in c["skus"] if s["siteId"] in kept][:skus]
        if "lottery" in c and "skuWeights" in c["lottery"]:
            ids = {s["id"] for s in c["skus"]}
            c["lottery"]["skuWeights"] = [w for w in c["lottery"]["skuWeights"] if w["skuId"] in ids]
    return c


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def text_format(value, indent=""):
    """Protobuf JSON (as the campaign files hold it) to text format."""
    out = []
    for key, v in value.items():
        field = snake(key)
        items = v if isinstance(v, list) else [v]
        for item in items:
            if isinstance(item, dict):
                out.append(f"{indent}{field} {{\n{text_format(item, indent + '  ')}{indent}}}\n")
            elif isinstance(item, bool):
                out.append(f"{indent}{field}: {'true' if item else 'false'}\n")
            elif isinstance(item, (int, float)):
                out.append(f"{indent}{field}: {item}\n")
            elif field in ("starts_at", "ends_at"):
                t = datetime.datetime.strptime(item, "%Y-%m-%dT%H:%M:%SZ")
                seconds = int(t.replace(tzinfo=datetime.timezone.utc).timestamp())
                out.append(f"{indent}{field} {{ seconds: {seconds} }}\n")
            elif re.fullmatch(r"[A-Z_0-9]+", item) and field in (
                    "mode", "kind", "sku_choice", "release"):
                out.append(f"{indent}{field}: {item}\n")
            elif re.fullmatch(r"-?[0-9]+", item):
                out.append(f"{indent}{field}: {item}\n")
            else:
                out.append(f"{indent}{field}: {json.dumps(item, ensure_ascii=False)}\n")
    return "".join(out)


# Codes voucherd issued (the voucher_code target's engine, and records_test).
CODES = ["AK00H-D8M2Z-M4CVM-2QCDM-R8TME-5K5QJ", "AK00D-B3333-50000-00000-J6WMT-H9D52",
         "AK003-GTEA2-HSY0T-P4PB4-W7NYR-DQ3E4", "AK00Y-HWJH6-BG3K3-EGN40-0HN31-N354T",
         "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB"]


def voucher_code():
    for i, code in enumerate(CODES):
        write("voucher_code", f"issued-{i}", code)
    write("voucher_code", "lower-no-dashes", CODES[0].lower().replace("-", ""))
    write("voucher_code", "spaces", CODES[1].replace("-", " "))
    write("voucher_code", "aliases", CODES[2].replace("0", "O").replace("1", "l"))
    write("voucher_code", "mistyped", CODES[3][:-1] + ("A" if CODES[3][-1] != "A" else "B"))
    write("voucher_code", "swapped", CODES[4][1] + CODES[4][0] + CODES[4][2:])
    write("voucher_code", "short", CODES[0][:20])
    write("voucher_code", "long", CODES[0] + "-" + CODES[1])
    write("voucher_code", "forbidden-letter", CODES[0].replace("A", "U", 1))


# The request target's order of RPCs (kRpcs in request_checks_fuzzer.cc).
RPCS = ["ClaimRequest", "ClaimBatchRequest", "DrawRequest", "GetVoucherRequest", "RedeemRequest",
        "ListMemberVouchersRequest", "CreateCampaignRequest", "GetCampaignRequest",
        "ListCampaignsRequest", "GetCampaignStatsRequest", "ReconcileCampaignRequest",
        "CancelVoucherRequest", "ExportRedemptionsRequest", "RevealSeedRequest",
        "ExportDrawsRequest", "ListReplicasRequest", "ApplyRequest", "GetApplicationRequest",
        "ExportApplicationsRequest"]


def request(name, rpc, text):
    write("request_checks", name, bytes([RPCS.index(rpc)]) + encode(rpc, text))


def request_checks():
    request("claim", "ClaimRequest",
            'campaign_id: "guangdong-2024" member_id: "m-000123" request_id: "press-1"')
    request("claim-sku", "ClaimRequest",
            'campaign_id: "guangdong-2024" member_id: "m-7" sku_id: "sku-001-a"')
    request("claim-control", "ClaimRequest", 'campaign_id: "gd" member_id: "m\\n1"')
    request("claim-long", "ClaimRequest",
            'campaign_id: "gd" member_id: "' + "m" * 129 + '"')
    request("claim-batch", "ClaimBatchRequest",
            'claims { campaign_id: "guangdong-2024" member_id: "m-1" } '
            'claims { campaign_id: "guangdong-2024" member_id: "" } '
            'claims { campaign_id: "guangdong-2024" member_id: "m-3" sku_id: "sku-002-b" }')
    request("claim-batch-empty", "ClaimBatchRequest", "")
    request("draw", "DrawRequest",
            'campaign_id: "city-lottery-2026" member_id: "m-42" request_id: "draw-1"')
    request("draw-no-request-id", "DrawRequest",
            'campaign_id: "city-lottery-2026" member_id: "m-42"')
    request("get-voucher", "GetVoucherRequest", f'code: "{CODES[0]}"')
    request("redeem", "RedeemRequest",
            f'code: "{CODES[1].lower()}" site_id: "site-001" request_id: "till-7"')
    request("redeem-no-site", "RedeemRequest", f'code: "{CODES[1]}"')
    request("list-member", "ListMemberVouchersRequest",
            'member_id: "m-000123" campaign_id: "guangdong-2024"')
    request("get-campaign", "GetCampaignRequest", 'campaign_id: "guangdong-2024"')
    request("list-campaigns", "ListCampaignsRequest", 'page_size: 2 page_token: "c1.67642d32303234"')
    request("list-campaigns-bad", "ListCampaignsRequest", 'page_size: -1 page_token: "c1.zz"')
    request("stats", "GetCampaignStatsRequest", 'campaign_id: "guangdong-2024"')
    request("reconcile", "ReconcileCampaignRequest", 'campaign_id: "guangdong-2024"')
    request("cancel", "CancelVoucherRequest", f'code: "{CODES[2]}"')
    request("export-redemptions", "ExportRedemptionsRequest",
            'campaign_id: "guangdong-2024" site_id: "site-001"')
    request("reveal-seed", "RevealSeedRequest", 'campaign_id: "city-lottery-2026"')
    request("export-draws", "ExportDrawsRequest", 'campaign_id: "city-lottery-2026"')
    request("list-replicas", "ListReplicasRequest", "")
    request("apply", "ApplyRequest",
            'campaign_id: "gd-2026-apply" member_id: "m-42" request_id: "apply-1" '
            'preferred_sku_ids: "spa" preferred_sku_ids: "room"')
    request("apply-any", "ApplyRequest",
            'campaign_id: "gd-2026-apply" member_id: "m-7" request_id: "apply-1"')
    request("apply-twice", "ApplyRequest",
            'campaign_id: "gd-2026-apply" member_id: "m-42" request_id: "apply-2" '
            'preferred_sku_ids: "spa" preferred_sku_ids: "spa"')
    request("get-application", "GetApplicationRequest",
            'campaign_id: "gd-2026-apply" member_id: "m-42"')
    request("export-applications", "ExportApplicationsRequest",
            'campaign_id: "gd-2026-apply"')
    gd = text_format(load_campaign("deploy/campaigns/guangdong-2024.json", sites=3, skus=5))
    request("create-guangdong", "CreateCampaignRequest", "campaign {\n" + gd + "}\n")
    lot = text_format(load_campaign("deploy/campaigns/city-lottery.json", sites=3, skus=4))
    request("create-lottery", "CreateCampaignRequest",
            "campaign {\n" + lot + "}\nreplace_before_open: true\n")
    request("create-empty", "CreateCampaignRequest", "")
    # The fuzzer's first finding (a refusal that echoed control characters).
    request("create-control-weights", "CreateCampaignRequest",
            'campaign { id: "lot-1" mode: CAMPAIGN_MODE_LOTTERY lottery { win_probability: 0.5 '
            'sku_weights { sku_id: "\\x0c\\x0c" } } }')
    # The long run's finding: a NaN win probability is refused, and the
    # refused campaign is compared by bits (NaN is not equal to itself).
    request("create-nan-probability", "CreateCampaignRequest",
            'campaign { id: "lot-1" mode: CAMPAIGN_MODE_LOTTERY lottery { win_probability: nan } }')


def campaign_loader():
    for name, path, sites, skus in [("guangdong", "deploy/campaigns/guangdong-2024.json", 4, 6),
                                    ("lottery", "deploy/campaigns/city-lottery.json", None, None),
                                    ("apply", "deploy/campaigns/guangdong-apply-2024.json", 3, 5)]:
        c = load_campaign(path, sites, skus)
        write("campaign_loader", name + "-set.json",
              json.dumps({"campaigns": [c]}, ensure_ascii=False, indent=1))
        write("campaign_loader", name + "-one.json", json.dumps(c, ensure_ascii=False))
    c = load_campaign("deploy/campaigns/guangdong-2024.json", 2, 2)
    c["skus"][1]["siteId"] = "no-such-site"
    write("campaign_loader", "unknown-site.json", json.dumps(c))
    c = load_campaign("deploy/campaigns/guangdong-2024.json", 2, 2)
    c["lottery"] = {"winProbability": 0.5}
    write("campaign_loader", "first-come-with-rules.json", json.dumps(c))
    c = load_campaign("deploy/campaigns/city-lottery.json", 2, 2)
    c["lottery"]["timeZone"] = "Mars/Olympus_Mons"
    write("campaign_loader", "bad-zone.json", json.dumps(c))
    write("campaign_loader", "misspelt.json", '{"campaigns": [{"idd": "x"}]}')
    write("campaign_loader", "empty-set.json", '{"campaigns": []}')


def config():
    write("config", "readme.conf", """# /etc/voucherd/voucherd.conf
listen = 0.0.0.0:50051
ops-listen = 0.0.0.0:9464
store = redis
redis = redis://10.0.0.5:6379
secret-file = /etc/hostname
log-level = info
""")
    write("config", "memory.conf", "listen = 127.0.0.1:0\nops_listen = '127.0.0.1:0'\n"
          "grpc-threads = 4\nrehearse = true\nredeem-failure-budget = 50\n")
    write("config", "sentinel.conf", "store = redis\nredis-sentinel = 10.0.0.1:26379,10.0.0.2:26379\n"
          "redis-master = voucherd\nsecret-file = /etc/hostname\nredis-min-replicas = 1\n"
          "redis-replica-wait-ms = 200\nlease-timeout-ms = 3000\nreplica-id = replica-a\n"
          "allocation-lease-ms = 10000\nallocation-batch-max = 64\n")
    write("config", "cluster.conf", "store = redis\nredis-cluster = 10.0.0.1:7000\n"
          "secret-file = /etc/hostname\n--replace-campaigns = true\n")
    write("config", "tls.conf", 'tls-cert = "/etc/hostname"\n# no key\n')
    write("config", "twice.conf", "listen = a:1\nlisten = b:2\n")
    write("config", "unknown.conf", "listne = 127.0.0.1:1\n")
    write("config", "no-equals.conf", "store redis\n")
    write("config", "bad-value.conf", "grpc_threads = 0\n")
    write("config", "replica-bar.conf", "store = redis\nredis = redis://h:1\n"
          "secret-file = /etc/hostname\nreplica-id = a|b\n")


def field(s):
    b = s.encode()
    return str(len(b)).encode() + b":" + b


def record(state, sku, site, member, request_id, kind, face, issued, expires, redemption=None):
    out = str(state).encode()
    for f in (sku, site, member, request_id, str(kind), str(face), str(issued), str(expires)):
        out += field(f)
    if redemption:
        for f in redemption:
            out += field(f)
    return out


def redis_records():
    issued = 1_718_676_000_123_456
    expires = issued + 180 * 86_400_000_000
    write("redis_records", "issued", record(1, "sku-001-a", "site-001", "m-000123", "", 3, 15800,
                                            issued, expires))
    write("redis_records", "issued-request", record(1, "sku:12|a", "site-3", "13:member", "press-1",
                                                    2, 29800, issued, expires))
    write("redis_records", "redeemed", record(2, "sku-001-a", "site-001", "m-7", "", 3, 15800,
                                              issued, expires,
                                              ("site-001", str(issued + 5_000_000), "till-7")))
    write("redis_records", "cancelled", record(4, "sku-002-b", "site-002", "m-8", "r", 1, 0,
                                               issued, expires))
    write("redis_records", "expired", record(3, "s", "t", "u", "", 4, 1, 0, 1))
    write("redis_records", "holders", b"+" + field("m-1") + b"+" + field("m-2"))
    write("redis_records", "holders-cancel", b"-" + field("m-1") + field(CODES[0]) + b"1")
    # A reply: array, integer status 0, then the record as a string
    # (reply_reader.h: kind byte % 8; 7 is an array, 5 a small integer, 1 a string).
    rec = record(2, "sku", "site", "m", "", 1, 1, 1, 2, ("site", "3", ""))
    write("redis_records", "reply-redeemed", bytes([7, 2, 5, 0, 1, len(rec)]) + rec)
    # A listed reply: status 0, the code in display form, then its record.
    listed = record(1, "sku-001-a", "site-001", "m-000123", "", 3, 15800, issued, expires)
    write("redis_records", "reply-listed", bytes([7, 3, 5, 0, 1, len(CODES[0])]) +
          CODES[0].encode() + bytes([1, len(listed)]) + listed)
    # Stored applications (server/redis/apply_log.h), and a turn as
    # alloc_take.lua answers it: {2, "r-1", 1, 0, 3, 5, 5, 5}.
    write("redis_records", "application", b"1718676000123\x1fpress-1\x1f2,0")
    write("redis_records", "application-any", b"1718676000123\x1fr\x1f")
    write("redis_records", "reply-turn", bytes([7, 8, 5, 2, 1, 3]) + b"r-1" +
          bytes([5, 1, 5, 0, 5, 3, 5, 5, 5, 5, 5, 5]))


def draw_line(member, n, at_ms, letter, sku, released, remaining):
    return f"{field(member).decode()}\t{n}\t{at_ms}\t{letter}\t{sku}\t{released}\t{remaining}\n"


def draw_log():
    lines = (draw_line("alice", 1, 250, "W", 0, 3, 3) + draw_line("b\tc\td e", 2, -40, "G", -1, 3, 0)
             + draw_line("m-42", 1, 86_400_000, "U", -1, 10, 9) + draw_line("m-42", 2, 86_400_500,
                                                                             "P", -1, 10, 9)
             + draw_line("m-43", 3, 172_800_000, "A", -1, 20, 8))
    for choice in (0, 3, 10):  # campaign: window and SKU count (draw_log_fuzzer.cc)
        write("draw_log", f"lines-{choice}", bytes([choice]) + lines.encode())
    write("draw_log", "unterminated", bytes([0]) + b"5:alice\t1\t0\tU\t-1\t3\t3")
    write("draw_log", "wrong-sku", bytes([0]) + b"5:alice\t1\t0\tW\t7\t3\t3\n")
    # The fuzzer's finding: a time that overflowed when turned into µs.
    write("draw_log", "overflow-time",
          bytes([0]) + draw_line("alice", 1, 25372036854775800, "G", -1, 3, 0).encode())
    write("draw_log", "unicode-member", bytes([1]) + draw_line("\u5f20\u4e09", 1, 0, "W", 0, 1, 1).encode())


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    voucher_code()
    request_checks()
    campaign_loader()
    config()
    redis_records()
    draw_log()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))), "files")


if __name__ == "__main__":
    sys.exit(main())

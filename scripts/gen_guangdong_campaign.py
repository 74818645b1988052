#!/usr/bin/env python3
"""Generate deploy/campaigns/guangdong-2024.json, a sample voucherd campaign.

The campaign imitates the giveaway described in the news: the Guangdong
provincial trade union gives its members 59,000 rural-holiday gift packs worth
more than 9.8 million yuan, donated by 139 certified recuperation sites (rural
hotels, homestays, hot springs and scenic spots) across all 21 prefecture-level
cities of Guangdong. It gives voucherd a realistically sized campaign to load,
demo and benchmark against.

The site names are illustrative, composed from real place names; they are not
the official list of donors. Stock and face values are invented but plausible:
the stock sums to exactly 59,000 packs and the face values to a little over
9.8 million yuan.

The output is the proto3 JSON form of voucher.v1.CampaignSet (lowerCamelCase
field names, int64 as strings, RFC 3339 timestamps), as read by
`voucherd --campaigns`. Generation is deterministic (random.Random(2024)):
running the script twice gives a byte-identical file.

With --mode apply it writes deploy/campaigns/guangdong-apply-2024.json
instead: the same sites, SKUs and stock as an APPLY_THEN_DRAW campaign
("报名 + 抽签"), members applying during a 7-day window and the packs
allocated 2 hours after it closes.

Usage: scripts/gen_guangdong_campaign.py [--mode first-come|apply] [OUTPUT]
  OUTPUT defaults to deploy/campaigns/guangdong-2024.json (first-come) or
  deploy/campaigns/guangdong-apply-2024.json (apply) under the repo root.
"""

import argparse
import json
import random
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "deploy" / "campaigns" / "guangdong-2024.json"
DEFAULT_APPLY_OUTPUT = REPO_ROOT / "deploy" / "campaigns" / "guangdong-apply-2024.json"

SEED = 2024
TOTAL_PACKS = 59_000
MIN_TOTAL_CENTS = 980_000_000  # 9.8 million yuan
STOCK_UNIT = 10  # stock is handed out in round tens

HOTEL, HOMESTAY, HOT_SPRING, SCENIC = "SKU_KIND_HOTEL", "SKU_KIND_HOMESTAY", "SKU_KIND_HOT_SPRING", "SKU_KIND_SCENIC"
KINDS = (HOTEL, HOMESTAY, HOT_SPRING, SCENIC)

# The 21 prefecture-level cities and their sites: (English name, Chinese name, kind).
# Bigger and more touristic cities have more sites; every city has at least 3.
CITIES = [
    ("Guangzhou", [
        ("Conghua Hot Spring Resort", "从化温泉度假村", HOT_SPRING),
        ("Conghua Liangkou Hot Spring Village", "从化良口温泉山庄", HOT_SPRING),
        ("Zengcheng Paitan Rural Hotel", "增城派潭乡村酒店", HOTEL),
        ("Huadu Hongshan Village Homestay", "花都红山村民宿", HOMESTAY),
        ("Conghua Xihe Village Homestay", "从化西和村民宿", HOMESTAY),
        ("Baiyun Mountain Scenic Area", "白云山风景区", SCENIC),
        ("Panyu Shawan Ancient Town", "番禺沙湾古镇", SCENIC),
        ("Nansha Wetland Park", "南沙湿地公园", SCENIC),
        ("Zengcheng Xiaolou Farmstay Hotel", "增城小楼农家酒店", HOTEL),
        ("Huadu Tanbu Orchard Homestay", "花都炭步果园民宿", HOMESTAY),
    ]),
    ("Shenzhen", [
        ("Dapeng Fortress Ancient Town", "大鹏所城", SCENIC),
        ("Xichong Beach Homestay", "西涌海滨民宿", HOMESTAY),
        ("Jiaochangwei Seaside Homestay", "较场尾海边民宿", HOMESTAY),
        ("Guanlan Ancient Market Hotel", "观澜古墟酒店", HOTEL),
        ("Wutong Mountain Scenic Area", "梧桐山风景区", SCENIC),
        ("Yantian Meisha Beach Hotel", "盐田梅沙海滨酒店", HOTEL),
        ("Guangming Farm Eco Hotel", "光明农场生态酒店", HOTEL),
        ("Nan'ao Fishing Village Homestay", "南澳渔村民宿", HOMESTAY),
    ]),
    ("Zhuhai", [
        ("Zhuhai Imperial Hot Spring Resort", "珠海御温泉度假村", HOT_SPRING),
        ("Haiquan Bay Hot Spring", "海泉湾温泉", HOT_SPRING),
        ("Doumen Ancient Street Homestay", "斗门古街民宿", HOMESTAY),
        ("Qi'ao Island Mangrove Park", "淇澳岛红树林公园", SCENIC),
        ("Dong'ao Island Seaview Hotel", "东澳岛海景酒店", HOTEL),
        ("Wailingding Island Homestay", "外伶仃岛民宿", HOMESTAY),
    ]),
    ("Shantou", [
        ("Nan'ao Island Seaside Homestay", "南澳岛海边民宿", HOMESTAY),
        ("Chaoyang Rural Hotel", "潮阳乡村酒店", HOTEL),
        ("Queshi Scenic Area", "礐石风景区", SCENIC),
        ("Chenghai Qianmei Village Homestay", "澄海前美村民宿", HOMESTAY),
        ("Nan'ao Qing'ao Bay Hotel", "南澳青澳湾酒店", HOTEL),
    ]),
    ("Foshan", [
        ("Shunde Fengjian Water Village Homestay", "顺德逢简水乡民宿", HOMESTAY),
        ("Nanhai Xiqiao Mountain Scenic Area", "南海西樵山风景区", SCENIC),
        ("Sanshui Hot Spring Resort", "三水温泉度假村", HOT_SPRING),
        ("Gaoming Rural Hotel", "高明乡村酒店", HOTEL),
        ("Sanshui Lotus World Rural Hotel", "三水荷花世界乡村酒店", HOTEL),
        ("Nanhai Songtang Ancient Village", "南海松塘古村", SCENIC),
        ("Shunde Bijiang Homestay", "顺德碧江民宿", HOMESTAY),
    ]),
    ("Shaoguan", [
        ("Danxia Mountain Scenic Area", "丹霞山风景区", SCENIC),
        ("Danxia Mountain Homestay", "丹霞山民宿", HOMESTAY),
        ("Nanling National Forest Park", "南岭国家森林公园", SCENIC),
        ("Ruyuan Yao Village Homestay", "乳源瑶寨民宿", HOMESTAY),
        ("Renhua Hot Spring Resort", "仁化温泉度假村", HOT_SPRING),
        ("Shixing Hakka Walled Village Hotel", "始兴客家围楼酒店", HOTEL),
        ("Wengyuan Tea Garden Homestay", "翁源茶园民宿", HOMESTAY),
        ("Ruyuan Yunmen Mountain Scenic Area", "乳源云门山景区", SCENIC),
        ("Xinfeng Yuntianhai Hot Spring", "新丰云天海温泉", HOT_SPRING),
    ]),
    ("Heyuan", [
        ("Wanlü Lake Scenic Area", "万绿湖风景区", SCENIC),
        ("Yuancheng Hot Spring Resort", "源城温泉度假村", HOT_SPRING),
        ("Lianping Hot Spring Village", "连平温泉山庄", HOT_SPRING),
        ("Heping Linzhai Hakka Homestay", "和平林寨客家民宿", HOMESTAY),
        ("Zijin Rural Hotel", "紫金乡村酒店", HOTEL),
        ("Longchuan Tuocheng Ancient Town", "龙川佗城", SCENIC),
        ("Dongyuan Sujiawei Homestay", "东源苏家围民宿", HOMESTAY),
        ("Wanlü Lake Lakeside Hotel", "万绿湖湖畔酒店", HOTEL),
    ]),
    ("Meizhou", [
        ("Meixian Yanyang Hakka Homestay", "梅县雁洋客家民宿", HOMESTAY),
        ("Yannanfei Tea Field Scenic Area", "雁南飞茶田景区", SCENIC),
        ("Fengshun Hot Spring Resort", "丰顺温泉度假村", HOT_SPRING),
        ("Dabu Hakka Tulou Homestay", "大埔客家土楼民宿", HOMESTAY),
        ("Jiaoling Changtan Scenic Area", "蕉岭长潭景区", SCENIC),
        ("Wuhua Rural Hotel", "五华乡村酒店", HOTEL),
        ("Xingning Tea Garden Homestay", "兴宁茶园民宿", HOMESTAY),
        ("Meixian Qiaoxiang Village", "梅县侨乡村", SCENIC),
        ("Pingyuan Hakka Rural Hotel", "平远客家乡村酒店", HOTEL),
    ]),
    ("Huizhou", [
        ("Longmen Hot Spring Resort", "龙门温泉度假村", HOT_SPRING),
        ("Luofu Mountain Scenic Area", "罗浮山风景区", SCENIC),
        ("Xunliao Bay Seaview Hotel", "巽寮湾海景酒店", HOTEL),
        ("Shuangyue Bay Homestay", "双月湾民宿", HOMESTAY),
        ("Boluo Hot Spring Village", "博罗温泉山庄", HOT_SPRING),
        ("Longmen Peasant Painting Village Homestay", "龙门农民画村民宿", HOMESTAY),
        ("Huidong Rural Hotel", "惠东乡村酒店", HOTEL),
        ("Huidong Gaotan Homestay", "惠东高潭民宿", HOMESTAY),
    ]),
    ("Shanwei", [
        ("Honghai Bay Seaside Homestay", "红海湾海边民宿", HOMESTAY),
        ("Lufeng Xuanwu Mountain Scenic Area", "陆丰玄武山景区", SCENIC),
        ("Haifeng Lianhua Mountain Hot Spring", "海丰莲花山温泉", HOT_SPRING),
        ("Jinxiang Beach Hotel", "金厢滩酒店", HOTEL),
        ("Luhe Green Plum Village Homestay", "陆河青梅村民宿", HOMESTAY),
    ]),
    ("Dongguan", [
        ("Qingxi Rural Hotel", "清溪乡村酒店", HOTEL),
        ("Guanyin Mountain Forest Park", "观音山森林公园", SCENIC),
        ("Nanshe Ancient Village", "南社古村", SCENIC),
        ("Xiegang Yinping Mountain Homestay", "谢岗银瓶山民宿", HOMESTAY),
        ("Fenggang Rural Hotel", "凤岗乡村酒店", HOTEL),
    ]),
    ("Zhongshan", [
        ("Zhongshan Hot Spring Resort", "中山温泉度假村", HOT_SPRING),
        ("Cuiheng Village Scenic Area", "翠亨村景区", SCENIC),
        ("Wuguishan Homestay", "五桂山民宿", HOMESTAY),
        ("Shenwan Rural Hotel", "神湾乡村酒店", HOTEL),
    ]),
    ("Jiangmen", [
        ("Enping Jinshan Hot Spring", "恩平金山温泉", HOT_SPRING),
        ("Taishan Hot Spring Resort", "台山温泉度假村", HOT_SPRING),
        ("Kaiping Diaolou Scenic Area", "开平碉楼景区", SCENIC),
        ("Chikan Ancient Town Homestay", "赤坎古镇民宿", HOMESTAY),
        ("Xinhui Tangerine Peel Village Homestay", "新会陈皮村民宿", HOMESTAY),
        ("Shangchuan Island Seaview Hotel", "上川岛海景酒店", HOTEL),
        ("Heshan Gulao Water Village Homestay", "鹤山古劳水乡民宿", HOMESTAY),
        ("Taishan Rural Hotel", "台山乡村酒店", HOTEL),
    ]),
    ("Yangjiang", [
        ("Hailing Island Seaview Hotel", "海陵岛海景酒店", HOTEL),
        ("Hailing Island Homestay", "海陵岛民宿", HOMESTAY),
        ("Yangdong Hot Spring Resort", "阳东温泉度假村", HOT_SPRING),
        ("Yangchun Lingxiao Cave Scenic Area", "阳春凌霄岩景区", SCENIC),
        ("Yangchun Hot Spring Village", "阳春温泉山庄", HOT_SPRING),
        ("Yangxi Shapa Bay Homestay", "阳西沙扒湾民宿", HOMESTAY),
    ]),
    ("Zhanjiang", [
        ("Huguangyan Scenic Area", "湖光岩景区", SCENIC),
        ("Donghai Island Seaview Hotel", "东海岛海景酒店", HOTEL),
        ("Naozhou Island Homestay", "硇洲岛民宿", HOMESTAY),
        ("Xuwen Coral Coast Homestay", "徐闻珊瑚海岸民宿", HOMESTAY),
        ("Leizhou Rural Hotel", "雷州乡村酒店", HOTEL),
        ("Xuwen Pineapple Sea Scenic Area", "徐闻菠萝的海景区", SCENIC),
    ]),
    ("Maoming", [
        ("Fangji Island Homestay", "放鸡岛民宿", HOMESTAY),
        ("Xinyi Hot Spring Resort", "信宜温泉度假村", HOT_SPRING),
        ("Gaozhou Lychee Tribute Garden", "高州荔枝贡园", SCENIC),
        ("Dianbai Seaview Hotel", "电白海景酒店", HOTEL),
        ("Huazhou Orchard Homestay", "化州果园民宿", HOMESTAY),
    ]),
    ("Zhaoqing", [
        ("Dinghu Mountain Scenic Area", "鼎湖山风景区", SCENIC),
        ("Seven Star Crags Scenic Area", "七星岩风景区", SCENIC),
        ("Deqing Hot Spring Resort", "德庆温泉度假村", HOT_SPRING),
        ("Guangning Bamboo Sea Homestay", "广宁竹海民宿", HOMESTAY),
        ("Fengkai Rural Hotel", "封开乡村酒店", HOTEL),
        ("Gaoyao Huilong Village Homestay", "高要回龙村民宿", HOMESTAY),
        ("Sihui Rural Hotel", "四会乡村酒店", HOTEL),
        ("Huaiji Yanyan Homestay", "怀集燕岩民宿", HOMESTAY),
    ]),
    ("Qingyuan", [
        ("Qingxin Hot Spring Resort", "清新温泉度假村", HOT_SPRING),
        ("Fogang Hot Spring Village", "佛冈温泉山庄", HOT_SPRING),
        ("Gulong Gorge Scenic Area", "古龙峡景区", SCENIC),
        ("Liannan Yao Village Homestay", "连南瑶寨民宿", HOMESTAY),
        ("Yingde Tea Garden Homestay", "英德茶园民宿", HOMESTAY),
        ("Lianzhou Underground River Scenic Area", "连州地下河景区", SCENIC),
        ("Yangshan Rural Hotel", "阳山乡村酒店", HOTEL),
        ("Yingde Hot Spring Resort", "英德温泉度假村", HOT_SPRING),
        ("Qingcheng Rural Hotel", "清城乡村酒店", HOTEL),
    ]),
    ("Chaozhou", [
        ("Chaozhou Ancient City Homestay", "潮州古城民宿", HOMESTAY),
        ("Fenghuang Mountain Tea Garden Homestay", "凤凰山茶园民宿", HOMESTAY),
        ("Raoping Seaview Hotel", "饶平海景酒店", HOTEL),
        ("Longhu Ancient Village", "龙湖古寨", SCENIC),
        ("Xiangqiao Rural Hotel", "湘桥乡村酒店", HOTEL),
    ]),
    ("Jieyang", [
        ("Jiexi Hot Spring Resort", "揭西温泉度假村", HOT_SPRING),
        ("Huangmanzhai Waterfall Scenic Area", "黄满寨瀑布景区", SCENIC),
        ("Puning Rural Hotel", "普宁乡村酒店", HOTEL),
        ("Huilai Seaside Homestay", "惠来海边民宿", HOMESTAY),
    ]),
    ("Yunfu", [
        ("Luoding Rural Hotel", "罗定乡村酒店", HOTEL),
        ("Xinxing Hot Spring Resort", "新兴温泉度假村", HOT_SPRING),
        ("Yunan Lanzhai Homestay", "郁南兰寨民宿", HOMESTAY),
        ("Xinxing Sixth Patriarch Hometown Scenic Area", "新兴六祖故里景区", SCENIC),
    ]),
]

# SKU templates per kind, in order: a site with n SKUs offers the first n.
# Each: (id suffix, name, face values in cents to choose from, stock weight).
SKU_TEMPLATES = {
    HOTEL: [
        ("a", "Standard room, 1 night", (28800, 32800, 36800, 39800), 3),
        ("b", "Family room, 1 night", (45800, 49800, 52800, 56800), 2),
        ("c", "Deluxe room with breakfast for 2, 1 night", (58800, 62800, 68800), 1),
    ],
    HOMESTAY: [
        ("a", "Double room, 1 night", (19800, 22800, 25800, 28800), 3),
        ("b", "Courtyard suite, 1 night", (32800, 36800, 39800), 2),
        ("c", "Family suite with dinner for 3, 1 night", (42800, 45800, 48800), 1),
    ],
    HOT_SPRING: [
        ("a", "2 adult tickets", (9800, 12800, 15800, 16800), 3),
        ("b", "2 adult tickets with buffet lunch", (18800, 19800, 22800), 2),
        ("c", "Private pool for 2, 2 hours", (25800, 26800, 29800), 1),
    ],
    SCENIC: [
        ("a", "Day ticket for 2", (6000, 6800, 7800, 8800, 9800), 3),
        ("b", "Family day ticket (2 adults, 1 child)", (11800, 12800, 13800), 2),
        ("c", "Day ticket for 2 with guided tour and lunch", (16800, 17800, 19800), 1),
    ],
}
SKU_COUNT_CHOICES = (1, 2, 2, 2, 3, 3)

# Packs per kind: the cheaper day tickets make up most of the 59,000 packs,
# room nights fewer, which puts the total a little above 9.8 million yuan.
PACKS_PER_KIND = {HOTEL: 5_000, HOMESTAY: 7_500, HOT_SPRING: 14_500, SCENIC: 32_000}

CAMPAIGN = {
    "id": "guangdong-2024",
    "name": "Guangdong trade union rural-holiday gift packs 2024 (广东省总工会乡村休闲疗休养大礼包)",
    "mode": "CAMPAIGN_MODE_FIRST_COME",
    "startsAt": "2024-06-18T02:00:00Z",  # 10:00 Beijing time
    "endsAt": "2024-12-31T16:00:00Z",  # 2025-01-01 00:00 Beijing time
    "perMemberLimit": 1,
    "voucherValidDays": 180,
}

# The same packs, applied for and then allocated by a verifiable draw.
APPLY_CAMPAIGN = {
    "id": "guangdong-apply-2024",
    "name": "Guangdong trade union rural-holiday gift packs 2024, by application "
            "(广东省总工会乡村休闲疗休养大礼包 报名抽签)",
    "mode": "CAMPAIGN_MODE_APPLY_THEN_DRAW",
    "startsAt": "2024-06-18T02:00:00Z",  # 10:00 Beijing time
    "endsAt": "2024-06-25T02:00:00Z",  # a week later
    "allocationAt": "2024-06-25T04:00:00Z",  # 12:00 Beijing time, 2 hours after
    "perMemberLimit": 1,
    "voucherValidDays": 180,
}


def split_units(total_units, weights):
    """Splits total_units over weights (largest remainder), at least 1 each."""
    n = len(weights)
    assert total_units >= n
    spare = total_units - n
    wsum = sum(weights)
    exact = [spare * w / wsum for w in weights]
    units = [int(x) for x in exact]
    by_remainder = sorted(range(n), key=lambda i: (-(exact[i] - units[i]), i))
    for i in by_remainder[: spare - sum(units)]:
        units[i] += 1
    return [u + 1 for u in units]


def build():
    rng = random.Random(SEED)
    sites = []
    skus = []
    sku_weights = []
    for city, entries in CITIES:
        for en, zh, kind in entries:
            site_id = f"site-{len(sites) + 1:03d}"
            sites.append({"id": site_id, "name": f"{en} ({zh})", "city": city, "kind": kind})
            n = rng.choice(SKU_COUNT_CHOICES)
            site_scale = rng.uniform(0.6, 1.6)  # popular sites donate more
            for suffix, name, prices, weight in SKU_TEMPLATES[kind][:n]:
                skus.append({
                    "id": f"sku-{site_id[5:]}-{suffix}",
                    "siteId": site_id,
                    "kind": kind,
                    "name": name,
                    "faceValueCents": rng.choice(prices),
                    "stock": 0,
                })
                sku_weights.append(weight * site_scale)

    for kind in KINDS:
        idx = [i for i, s in enumerate(skus) if s["kind"] == kind]
        assert PACKS_PER_KIND[kind] % STOCK_UNIT == 0
        units = split_units(PACKS_PER_KIND[kind] // STOCK_UNIT, [sku_weights[i] for i in idx])
        for i, u in zip(idx, units):
            skus[i]["stock"] = u * STOCK_UNIT

    return sites, skus


def check(sites, skus):
    """Asserts the invariants the campaign promises; returns (packs, cents)."""
    assert len(sites) == 139, len(sites)
    per_city = Counter(s["city"] for s in sites)
    assert len(per_city) == 21, sorted(per_city)
    assert min(per_city.values()) >= 3, per_city
    site_ids = [s["id"] for s in sites]
    sku_ids = [s["id"] for s in skus]
    assert len(set(site_ids)) == len(site_ids), "duplicate site id"
    assert len(set(sku_ids)) == len(sku_ids), "duplicate SKU id"
    assert 1 <= len(skus) <= 1024, len(skus)
    kind_of = {s["id"]: s["kind"] for s in sites}
    for s in sites:
        assert s["kind"] in KINDS, s
        assert s["id"].isascii() and len(s["id"]) <= 128, s
        assert len(s["name"].encode("utf-8")) <= 256, s
    per_site = Counter(k["siteId"] for k in skus)
    assert all(1 <= per_site[i] <= 3 for i in site_ids), per_site
    for k in skus:
        assert k["siteId"] in kind_of, k
        assert k["kind"] == kind_of[k["siteId"]], k
        assert k["id"].isascii() and len(k["id"]) <= 128, k
        assert len(k["name"].encode("utf-8")) <= 256, k
        assert k["stock"] > 0, k
    packs = sum(k["stock"] for k in skus)
    cents = sum(k["stock"] * k["faceValueCents"] for k in skus)
    assert packs == TOTAL_PACKS, packs
    assert cents >= MIN_TOTAL_CENTS, cents
    return packs, cents


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["first-come", "apply"], default="first-come",
                        help="FIRST_COME (default) or APPLY_THEN_DRAW")
    parser.add_argument("output", nargs="?", type=Path, default=None,
                        help=f"output file (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}, "
                             f"or {DEFAULT_APPLY_OUTPUT.relative_to(REPO_ROOT)} with --mode apply)")
    args = parser.parse_args()
    apply = args.mode == "apply"
    if args.output is None:
        args.output = DEFAULT_APPLY_OUTPUT if apply else DEFAULT_OUTPUT

    sites, skus = build()
    packs, cents = check(sites, skus)
    kinds = Counter(s["kind"] for s in sites)

    # proto3 JSON: int64 fields as strings.
    campaign = dict(APPLY_CAMPAIGN if apply else CAMPAIGN)
    campaign["sites"] = sites
    campaign["skus"] = [
        {**k, "faceValueCents": str(k["faceValueCents"]), "stock": str(k["stock"])} for k in skus
    ]
    # Field order as in the proto.
    order = ["id", "name", "mode", "startsAt", "endsAt", "perMemberLimit", "sites", "skus",
             "voucherValidDays"] + (["allocationAt"] if apply else [])
    campaign = {key: campaign[key] for key in order}

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        json.dump({"campaigns": [campaign]}, f, ensure_ascii=False, indent=2, sort_keys=False)
        f.write("\n")

    print(f"{args.output}: {len(sites)} sites in {len({s['city'] for s in sites})} cities "
          f"({', '.join(f'{kinds[k]} {k}' for k in KINDS)}), {len(skus)} skus, "
          f"{packs} packs, {cents / 100:,.2f} yuan")


if __name__ == "__main__":
    main()

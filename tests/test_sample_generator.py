"""The synthetic sample generator: files, mess, ground truth and the design it promises.

Everything runs on small firm counts (firm_scale=0.02) except where only the latent data
are needed; the latent data and the index do not depend on firm_scale.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from warehouse.paths import REFERENCE_SEEDS_DIR
from warehouse.sample import write_sample
from warehouse.sample.generate import DEFAULT_SEED, simulate
from warehouse.sample.mess import COLUMNS

SMALL = 0.02
PANEL_YEARS = list(range(2012, 2024))
# Data-generating process must keep these untouched by the policy (regression controls).
CONTROL_VARS = ("gdp", "pop_total", "land_area", "road_area", "fiscal_expenditure", "fdi", "avg_wage")


def _ref(name: str) -> list[dict[str, str]]:
    with open(REFERENCE_SEEDS_DIR / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


CITIES = _ref("ref_cities.csv")
ALIASES = _ref("ref_city_aliases.csv")
PROVINCES_ZH = {r["province_name_zh"] for r in CITIES}
CODE_OF_NAME = {r["city_name_zh"]: r["city_code"] for r in CITIES}


def _covers(a: dict[str, str], year: int) -> bool:
    lo, hi = a["valid_from_year"], a["valid_to_year"]
    return (not lo or int(lo) <= year) and (not hi or year <= int(hi))


def resolve_zh(year: int) -> dict[str, str]:
    kinds = {"canonical_name", "short_name_no_suffix", "traditional_chars", "renamed", "prefecture_to_city",
             "county_city_upgraded"}  # fmt: skip
    out: dict[str, str] = {}
    for a in ALIASES:
        if a["alias_name_zh"] and a["change_type"] in kinds and _covers(a, year):
            assert out.setdefault(a["alias_name_zh"], a["maps_to_city_code"]) == a["maps_to_city_code"]
    return out


def sha_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_sheet(path: Path) -> list[list[str]]:
    """An independent reader: decode the file however it was delivered, return text cells."""
    if path.suffix == ".xlsx":
        ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        return [["" if v is None else (f"{v}" if isinstance(v, str) else repr(float(v))) for v in row]
                for row in ws.iter_rows(values_only=True)]  # fmt: skip
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gbk")
    return list(csv.reader(io.StringIO(text)))


def data_rows(rows: list[list[str]]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(header, city rows, province subtotal rows) of a yearbook sheet."""
    h = next(i for i, r in enumerate(rows) if r and r[0] == "城市")
    body = [r for r in rows[h + 1 :] if r and r[0] and not r[0].startswith(("注：", "资料来源："))]
    subtotals = [r for r in body if r[0] in PROVINCES_ZH and r[0] not in {"北京市", "天津市", "上海市", "重庆市",
                                                                            "北京", "天津", "上海", "重庆"}]
    cities = [r for r in body if r not in subtotals]
    return rows[h], cities, subtotals


def yearbook_path(root: Path, year: int) -> Path:
    (path,) = (root / "city_yearbook").glob(f"中国城市统计年鉴_{year}.*")
    return path


@pytest.fixture(scope="module")
def sample():
    return simulate(DEFAULT_SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_a")
    summary = write_sample(root, seed=DEFAULT_SEED, firm_scale=SMALL)
    return root, summary


@pytest.fixture(scope="module")
def parsed(written):
    root, _ = written
    out = {}
    for year in range(2011, 2024):
        header, cities, subtotals = data_rows(read_sheet(yearbook_path(root, year)))
        names = resolve_zh(year)
        codes = [names[r[0]] for r in cities]  # every printed name must resolve for its year
        out[year] = {"header": header, "rows": cities, "subtotals": subtotals, "codes": codes}
    return out


# ---------------------------------------------------------------- determinism, layout


def test_summary_and_folders(written):
    root, summary = written
    assert Path(summary["out_dir"]) == root
    assert summary["ground_truth"] == str(root / "ground_truth.json")
    assert summary["seconds"] > 0
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert summary["files"] == on_disk
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["README.txt", "ground_truth.json", "city_yearbook", "national", "patents", "enterprises", "historical",
         "digital_finance"]
    )
    assert len(list((root / "city_yearbook").iterdir())) == 13
    assert "SYNTHETIC" in (root / "README.txt").read_text(encoding="utf-8")
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["synthetic"] is True and truth["seed"] == DEFAULT_SEED


def test_same_seed_is_byte_identical_and_other_seed_differs(written, tmp_path):
    root, _ = written
    again = tmp_path / "again"
    write_sample(again, seed=DEFAULT_SEED, firm_scale=SMALL)
    first, second = sha_tree(root), sha_tree(again)
    assert first == second  # XLSX included
    other = tmp_path / "other"
    write_sample(other, seed=DEFAULT_SEED + 1, firm_scale=SMALL)
    third = sha_tree(other)
    assert set(third) == set(first)
    differing = {k for k in first if first[k] != third[k]}
    # national series are fixed; everything generated from the seed must change
    assert differing >= {k for k in first if not k.startswith("national/")}


def test_rewrite_replaces_only_owned_files(tmp_path):
    foreign = tmp_path / "city_yearbook" / "my_real_file.csv"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("keep me", encoding="utf-8")
    write_sample(tmp_path, seed=3, start_year=2014, end_year=2016, firm_scale=SMALL)
    write_sample(tmp_path, seed=3, start_year=2015, end_year=2016, firm_scale=SMALL)
    assert foreign.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in (tmp_path / "city_yearbook").iterdir()) == [
        "my_real_file.csv", "中国城市统计年鉴_2015.csv", "中国城市统计年鉴_2016.csv"]  # fmt: skip


# ---------------------------------------------------------------- yearbook mess


def test_formats_and_encodings(written):
    root, _ = written
    for year in range(2011, 2024):
        path = yearbook_path(root, year)
        raw = path.read_bytes()
        if year in (2013, 2019):
            assert path.suffix == ".xlsx" and raw[:2] == b"PK"
            continue
        assert path.suffix == ".csv"
        if year in (2012, 2017):
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            assert raw.decode("gbk").splitlines()[0].startswith(f"{year}年")
        else:
            assert raw.startswith(b"\xef\xbb\xbf") == (year % 2 == 0)
            assert raw.decode("utf-8-sig").startswith(f"{year}年")


def test_sheet_layout(written):
    root, _ = written
    for year in range(2011, 2024):
        rows = read_sheet(yearbook_path(root, year))
        assert rows[0][0] == f"{year}年 地级及以上城市主要统计指标（合成样本数据）"
        h = 2 if year % 2 == 1 else 1
        assert not any(rows[1]) if h == 2 else rows[1][0] == "城市"
        assert rows[h][0] == "城市" and len(rows[h]) == 1 + len(COLUMNS)
        assert all(c.endswith(")") and "(" in c for c in rows[h][1:])
        assert rows[-2][0].startswith("注：") and rows[-1][0].startswith("资料来源：")


def test_units_and_header_rename(parsed, sample):
    for year, p in parsed.items():
        header = p["header"]
        unit = "亿元" if year == 2015 else "万元"
        assert header[4:7] == [f"地区生产总值({unit})", f"第二产业增加值({unit})", f"第三产业增加值({unit})"]
        if year <= 2012:
            assert header[23:25] == ["信息传输、计算机服务和软件业从业人员(万人)", "科学研究、技术服务和地质勘查业从业人员(万人)"]
        else:
            assert header[23:25] == ["信息传输、软件和信息技术服务业从业人员(万人)", "科学研究和技术服务业从业人员(万人)"]
    # the 亿元 numbers really are 亿元: Beijing's printed GDP x 1e4 is the latent 万元 value
    c = sample.cities
    bj, t = c.idx["110000"], 2015 - 2011
    row = parsed[2015]["rows"][parsed[2015]["codes"].index("110000")]
    assert float(row[4]) * 1e4 == pytest.approx(sample.latent.factual["gdp"][bj, t], rel=1e-6)
    row14 = parsed[2014]["rows"][parsed[2014]["codes"].index("110000")]
    assert float(row14[4]) == pytest.approx(sample.latent.factual["gdp"][bj, t - 1], abs=0.5)


def test_cities_follow_reference_history(parsed):
    present = {year: set(p["codes"]) for year, p in parsed.items()}
    for year, codes in present.items():
        assert len(codes) == len(parsed[year]["codes"])  # no duplicates
        assert "460300" not in codes  # Sansha never
    assert "371200" in present[2018] and "371200" not in present[2019]  # Laiwu
    assert "630200" not in present[2012] and "630200" in present[2013]  # Haidong
    assert "650500" not in present[2015] and "650500" in present[2016]  # Hami
    assert "650400" not in present[2014] and "650400" in present[2015]  # Turpan
    assert {"520500", "520600"} <= present[2011]  # Bijie, Tongren
    expected = {
        year: {r["city_code"] for r in CITIES
               if r["city_code"] != "460300"
               and (not r["became_prefecture_city_year"] or int(r["became_prefecture_city_year"]) <= year)
               and (not r["valid_to_year"] or year <= int(r["valid_to_year"]))}
        for year in present
    }  # fmt: skip
    assert present == expected
    assert len(present[2023]) == 296


def test_name_variants(parsed):
    names = {year: [r[0] for r in p["rows"]] for year, p in parsed.items()}
    assert "石家庄市" in names[2011] and "石家庄" in names[2016] and "石家庄" in names[2020]
    assert sum(n.endswith("市") for n in names[2016]) == 0
    canonical = set(CODE_OF_NAME)
    traditional = [n for n in names[2014] if n not in canonical]
    assert 3 <= len(traditional) <= 10
    for y in (2011, 2012, 2013, 2015, 2017, 2018, 2019, 2021, 2022, 2023):
        assert set(names[y]) <= canonical


def test_missing_cells_are_interpolable_gaps(parsed, sample):
    panel = {r["city_code"] for r in CITIES if r["balanced_2011_2023"] == "1"}
    miss: dict[tuple[str, int], list[int]] = {}
    cells = gaps = 0
    for year, p in parsed.items():
        for code, row in zip(p["codes"], p["rows"]):
            for j, cell in enumerate(row[1:]):
                if code in panel:
                    cells += 1
                if cell.strip() in ("", "—", "..."):
                    assert cell in ("", "—", "...")
                    miss.setdefault((code, j), []).append(year)
                    gaps += code in panel
    assert 0.002 < gaps / cells < 0.01
    markers = {row[j + 1] for (code, j), ys in miss.items() for y in ys
               for row in [parsed[y]["rows"][parsed[y]["codes"].index(code)]]}  # fmt: skip
    assert markers == {"", "—", "..."} or markers >= {"—"}
    for (code, _j), ys in miss.items():
        if code in panel:
            assert 2011 not in ys and 2023 not in ys
            assert all(b - a > 1 for a, b in zip(ys, ys[1:]))


def test_subtotal_rows_sum_additive_columns(parsed):
    p = parsed[2018]
    header = p["header"]
    wage = header.index("在岗职工平均工资(元)")
    gdp = header.index("地区生产总值(万元)")
    codes_by_prov = {}
    for code, row in zip(p["codes"], p["rows"]):
        prov = next(r["province_name_zh"] for r in CITIES if r["city_code"] == code)
        codes_by_prov.setdefault(prov, []).append(row)
    assert {r[0] for r in p["subtotals"]} == {k for k in codes_by_prov if k not in {"北京市", "天津市", "上海市", "重庆市"}}
    for sub in p["subtotals"]:
        members = codes_by_prov[sub[0]]
        assert sub[wage] == ""
        printed = [float(r[gdp]) for r in members if r[gdp] not in ("", "—", "...")]
        if len(printed) == len(members):
            assert float(sub[gdp]) == pytest.approx(sum(printed), abs=len(members))


def test_jinan_absorbs_laiwu_in_2019(sample):
    f, c = sample.latent.factual, sample.cities
    j, lw = c.idx["370100"], c.idx["371200"]
    t18, t19 = 2018 - 2011, 2019 - 2011
    assert np.isnan(f["pop_total"][lw, t19]) and not np.isnan(f["pop_total"][lw, t18])
    assert f["land_area"][j, t19] == pytest.approx(f["land_area"][j, t18] + f["land_area"][lw, t18])
    jump = f["pop_total"][j, t19] / f["pop_total"][j, t18]
    assert jump == pytest.approx(1 + f["pop_total"][lw, t18] / f["pop_total"][j, t18], rel=0.02)


# ---------------------------------------------------------------- other deliveries


def test_national_files(written):
    root, _ = written
    rates = {}
    for year in range(2011, 2024):
        rows = list(csv.reader(io.StringIO((root / "national" / f"national_{year}.csv").read_text(encoding="utf-8"))))
        assert rows[0] == ["指标", "数值"]
        d = dict(rows[1:])
        assert set(d) == {"人均国内生产总值(元)", "互联网上网人数(万人)", "人民币对美元汇率(年平均价)(元/美元)", "居民消费价格指数(上年=100)"}
        rates[year] = float(d["人民币对美元汇率(年平均价)(元/美元)"])
        assert 51000 <= float(d["互联网上网人数(万人)"]) <= 110000
    assert all(6.1 <= r <= 7.05 for r in rates.values())
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    assert {int(k): v for k, v in truth["index"]["usd_cny"].items()} == rates


def test_patent_names_resolve_with_province(written, sample):
    root, _ = written
    by_code = {r["city_code"]: r for r in CITIES}
    en_kinds = {"pinyin", "pinyin_ascii", "en_conventional", "en_disambiguated", "historical_en", "en_spelling"}
    lookup: dict[tuple[str, str], set[str]] = {}
    for a in ALIASES:
        if a["alias_name_en"] and a["change_type"] in en_kinds:
            prov = by_code[a["maps_to_city_code"]]["province_name_en"]
            lookup.setdefault((prov, a["alias_name_en"]), set()).add(a["maps_to_city_code"])
    seen_unique = seen_hist = False
    for year in range(2011, 2024):
        df = pd.read_csv(root / "patents" / f"patents_{year}.csv", dtype={"city": str, "province": str})
        assert list(df.columns) == ["year", "province", "city", "patents_granted", "invention_patents_granted",
                                    "green_patent_applications", "digital_economy_patent_applications"]  # fmt: skip
        codes = [lookup[(p, n)] for p, n in zip(df.province, df.city)]
        assert all(len(s) == 1 for s in codes)
        codes = [next(iter(s)) for s in codes]
        assert len(set(codes)) == len(codes) and "460300" not in codes
        assert (df.invention_patents_granted <= df.patents_granted).all()
        seen_unique |= df.city.str.contains(r"\(").any()
        seen_hist |= df.city.isin(["Peking", "Canton", "Tsingtao"]).any()
        t = year - 2011
        for code, granted in zip(codes, df.patents_granted):
            assert granted == round(sample.latent.factual["patents_granted"][sample.cities.idx[code], t])
    assert seen_unique and seen_hist


def test_enterprise_records(written):
    root, _ = written
    s = simulate(DEFAULT_SEED, firm_scale=SMALL)
    c = s.cities
    panel_rows = np.flatnonzero(c.balanced)
    ids = set()
    for t, year in enumerate(range(2011, 2024)):
        df = pd.read_csv(root / "enterprises" / f"registrations_{year}.csv", dtype=str)
        assert list(df.columns) == ["企业ID", "所在城市", "成立日期", "行业代码", "注册资本(万元)"]
        assert df["成立日期"].str.startswith(f"{year}-").all()
        assert df["行业代码"].str.fullmatch(r"[A-T]\d{4}").all()
        assert (df["注册资本(万元)"].astype(float) > 0).all()
        ids |= set(df["企业ID"])
        digital = df["行业代码"].str.match(r"I6[345]")
        per_city = df[digital].groupby("所在城市").size()
        counts = np.array([per_city.get(c.name_zh[i], 0) for i in range(c.n)])
        assert (counts == s.firms.digital[:, t]).all()
        assert (counts[panel_rows] >= 1).all()
    assert len(ids) == sum(len(pd.read_csv(root / "enterprises" / f"registrations_{y}.csv", usecols=[0]))
                           for y in range(2011, 2024))  # fmt: skip
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["firm_scale"] == SMALL
    assert truth["att"]["mechanisms"]["log_new_digital_firms"] == pytest.approx(
        s.truth["att"]["mechanisms"]["log_new_digital_firms"], rel=1e-9)


def _records_one_by_one(s, t: int, rng) -> bytes:
    """The record file written the plain way (a line per record with an f-string): the oracle
    of the column-wise, chunked writer. Same draws in the same order."""
    from warehouse.sample.firms import DIGITAL_CLASSES, HEADER, MONTH_WEIGHTS, OTHER_CLASSES

    c, year = s.cities, int(s.years[t])
    digital, other = s.firms.digital[:, t], s.firms.other[:, t]
    n_d, n_o = int(digital.sum()), int(other.sum())
    city = np.concatenate([np.repeat(np.arange(c.n), digital), np.repeat(np.arange(c.n), other)])
    d_codes, d_w = np.array([k for k, _ in DIGITAL_CLASSES]), np.array([w for _, w in DIGITAL_CLASSES])
    o_codes, o_w = np.array([k for k, _ in OTHER_CLASSES]), np.array([w for _, w in OTHER_CLASSES])
    industry = np.concatenate([d_codes[rng.choice(len(d_codes), n_d, p=d_w / d_w.sum())],
                               o_codes[rng.choice(len(o_codes), n_o, p=o_w / o_w.sum())]])
    capital = np.concatenate([rng.lognormal(np.log(100.0), 1.3, n_d), rng.lognormal(np.log(80.0), 1.4, n_o)])
    capital = np.maximum(np.round(capital, 2), 0.01)
    days = np.arange(np.datetime64(f"{year}-01-01"), np.datetime64(f"{year + 1}-01-01"))
    months = days.astype("datetime64[M]").astype(int) % 12
    day = rng.choice(len(days), n_d + n_o, p=MONTH_WEIGHTS[months] / MONTH_WEIGHTS[months].sum())
    order = np.lexsort((rng.random(n_d + n_o), day, city))
    city, day, industry, capital = city[order], day[order], industry[order], capital[order]
    serial = np.zeros(len(city), dtype=np.int64)
    for i in range(len(city)):
        serial[i] = 1 if i == 0 or city[i] != city[i - 1] else serial[i - 1] + 1
    lines = [HEADER]
    for i in np.lexsort((serial, city, day)):
        lines.append(f"91{c.code[city[i]]}{year % 100:02d}{serial[i]:07d}0,{c.name_zh[city[i]]},{days[day[i]]},"
                     f"{industry[i]},{capital[i]:.2f}")
    return ("\n".join(lines) + "\n").encode("utf-8")


@pytest.mark.parametrize("chunk_rows", [1, 997, 10**7])
def test_record_files_are_written_in_chunks_with_the_same_bytes(tmp_path, chunk_rows):
    from warehouse.sample.firms import write_registrations

    s = simulate(DEFAULT_SEED, firm_scale=SMALL)
    t = 2
    expected = _records_one_by_one(s, t, np.random.default_rng(11))
    path = tmp_path / "registrations_2013.csv"
    rows = write_registrations(path, s.cities, 2013, s.firms.digital[:, t], s.firms.other[:, t],
                               np.random.default_rng(11), chunk_rows=chunk_rows)
    assert rows == int(s.firms.digital[:, t].sum() + s.firms.other[:, t].sum()) > 1000
    assert path.read_bytes() == expected


def test_default_firm_volume(sample):
    per_year = sample.firms.digital.sum(axis=0) + sample.firms.other.sum(axis=0)
    assert 100_000 <= per_year.min() and per_year.max() <= 300_000
    share = sample.firms.digital.sum() / per_year.sum()
    assert 0.02 < share < 0.2


def test_historical_tables(written, sample):
    root, _ = written
    phones = pd.read_csv(root / "historical" / "telephones_1984.csv", dtype={"城市": str})
    assert list(phones.columns) == ["城市", "每百人固定电话数(部)"]
    # keyed by today's cities: no Sansha, no Laiwu (abolished 2019)
    assert len(phones) == 296 and not {"三沙市", "莱芜市"} & set(phones["城市"])
    core = pd.read_csv(root / "historical" / "urban_population_2014.csv", dtype={"城市": str})
    assert list(core.columns) == ["城市", "城区常住人口(万人)"]
    exist_2014 = {r["city_name_zh"] for r in CITIES if r["city_code"] not in ("460300", "371200")
                  and (not r["became_prefecture_city_year"] or int(r["became_prefecture_city_year"]) <= 2014)
                  and (not r["valid_to_year"] or 2014 <= int(r["valid_to_year"]))}  # fmt: skip
    assert set(core["城市"]) == exist_2014
    v = core.set_index("城市")["城区常住人口(万人)"]
    mega = set(v[v >= 1000].index)
    assert {"北京市", "上海市", "广州市", "深圳市", "重庆市", "天津市"} <= mega and len(mega) <= 9
    assert 8 <= ((v >= 500) & (v < 1000)).sum() <= 20
    assert 60 <= (v < 100).sum() and 60 <= ((v >= 100) & (v < 300)).sum()
    # the truth's tiers are these tiers
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    mega_codes = {CODE_OF_NAME[n] for n in mega} & set(truth["panel"]["city_codes"])
    assert set(truth["city_size_tiers"]["megacity"]) == mega_codes


# ---------------------------------------------------------------- DGP and truth


def test_magnitudes(sample):
    f, c = sample.latent.factual, sample.cities
    rows = np.flatnonzero(c.balanced)
    pop = f["pop_total"][rows]
    assert 15 <= pop.min() and pop.max() <= 3400
    assert c.code[rows][np.argmax(pop[:, -1])] == "500000"  # Chongqing is the largest
    gdppc = (f["gdp"] / f["pop_total"])[rows]
    assert 5_000 < np.median(gdppc[:, 0]) < 60_000 and np.median(gdppc[:, -1]) > np.median(gdppc[:, 0])
    top = {c.code[rows][i] for i in np.argsort(-gdppc[:, -1])[:40]}
    assert {"440300", "110000", "310000", "440100"} <= top  # the right tail has the right names
    tech = ((f["emp_it"] + f["emp_research"]) / f["emp_total"])[rows]
    assert 0.01 < np.median(tech) < 0.06
    urb = (f["pop_urban"] / f["pop_total"])[rows]
    assert 0.1 < urb.min() and urb.max() <= 1.0


def test_realism_bound_on_index(sample):
    s = sample.truth["index"]["summary"]
    assert 0.04 <= s["mean"] <= 0.12
    assert s["max"] >= 5 * s["mean"]
    assert s["p50"] < s["mean"]  # right-skewed
    assert sample.truth["panel"]["n_city_years"] == 287 * 12 == 3444


def test_controls_do_not_respond_to_policy(sample):
    f, cf = sample.latent.factual, sample.latent.counterfactual
    for v in CONTROL_VARS:
        assert np.array_equal(f[v], cf[v], equal_nan=True), v
    treated = sample.design.treated
    for v in ("patents_granted", "college_students", "unemp_insured", "deposits", "sci_expenditure", "emp_it"):
        assert (f[v][treated, -1] > cf[v][treated, -1]).all(), v
    # total expenditure is fixed, so science spending crowds out other items
    assert np.allclose(f["fiscal_expenditure"], cf["fiscal_expenditure"], equal_nan=True)


def test_truth_att_signs_and_pre_periods(sample):
    att = sample.truth["att"]
    assert att["resilience_index"] > 0
    for series in ("resilience_index", "tech_talent_share", "log_new_digital_firms"):
        ev = att["by_event_time"][series]
        assert sorted(map(int, ev)) == list(range(-5, 8))
        assert all(ev[str(e)] == 0.0 for e in range(-5, 0)), series
        assert all(ev[str(e)] > 0 for e in range(0, 8)), series
    ev = att["by_event_time"]["resilience_index"]
    assert all(ev[str(e + 1)] > ev[str(e)] for e in range(0, 7))  # the effect builds up
    assert att["mechanisms"]["tech_talent_share"] > 0 and att["mechanisms"]["log_new_digital_firms"] > 0
    tiers = att["by_tier"]
    assert tiers["megacity"]["att"] > tiers["large_II"]["att"] > 0
    assert 0 < att["spillover"]["resilience_index"] < 0.3 * att["resilience_index"]
    for name in ("gdp_per_capita", "trade_dependency", "gdp_growth", "savings_per_capita", "urbanisation_rate"):
        assert att["indicators"][name] == 0.0
    for name in ("patents_granted", "human_capital", "industrial_advancement", "financial_development"):
        assert att["indicators"][name] > 0
    post = [ev[str(e)] for e in range(0, 8)]
    assert att["resilience_index"] == pytest.approx(np.mean(post), rel=1e-9)  # balanced: mean of years


def _independent_index(sample) -> tuple[pd.DataFrame, pd.Series]:
    """Recompute indicators, weights and index with pandas from the latent data."""
    c, years = sample.cities, sample.years
    truth = sample.truth
    frames = []
    for which, data in (("f", sample.latent.factual), ("c", sample.latent.counterfactual)):
        long = pd.DataFrame({
            v: data[v].reshape(-1) for v in data
        })  # fmt: skip
        long["city"] = np.repeat(c.code, len(years))
        long["year"] = np.tile(years, c.n)
        long["which"] = which
        frames.append(long)
    df = pd.concat(frames)
    df = df[df.city.isin(truth["panel"]["city_codes"])].sort_values(["which", "city", "year"])
    fx = df.year.map({int(k): v for k, v in truth["index"]["usd_cny"].items()})
    ind = pd.DataFrame({
        "gdp_per_capita": df.gdp / df.pop_total,
        "trade_dependency": df.trade_total * fx / df.gdp,
        "unemp_insurance_coverage": df.unemp_insured / (df.pop_total * 1e4),
        "savings_per_capita": df.savings / df.pop_total,
        "urbanisation_rate": df.pop_urban / df.pop_total,
        "consumption_capacity": df.retail_sales / df.gdp,
        "gdp_growth": df.gdp / df.groupby(["which", "city"]).gdp.shift(1) - 1,
        "fiscal_self_sufficiency": df.fiscal_revenue / df.fiscal_expenditure,
        "financial_development": (df.deposits + df.loans) / df.gdp,
        "hospital_beds_per_10k": df.hospital_beds / df.pop_total,
        "edu_sci_expenditure_share": (df.edu_expenditure + df.sci_expenditure) / df.gdp,
        "industrial_advancement": df.va_tertiary / df.va_secondary,
        "human_capital": df.college_students / (df.pop_total * 1e4) * 1e5,
        "patents_granted": df.patents_granted,
    })  # fmt: skip
    ind[["which", "city", "year"]] = df[["which", "city", "year"]]
    ind = ind[ind.year >= 2012]
    fact = ind[ind.which == "f"].drop(columns=["which", "city", "year"])
    lo, hi = fact.min(), fact.max()
    norm = (fact - lo) / (hi - lo)
    p = norm / norm.sum()
    plogp = (p * np.log(p.where(p > 0, 1.0))).where(p > 0, 0.0)
    e = -plogp.sum() / math.log(len(fact))
    w = (1 - e) / (1 - e).sum()
    cols = list(w.index)
    scored = ind.copy()
    scored["index"] = ((ind[cols] - lo) / (hi - lo) * w).sum(axis=1)
    return scored, w


def test_index_matches_independent_recomputation(sample):
    scored, w = _independent_index(sample)
    truth = sample.truth
    for name, weight in w.items():
        assert truth["index"]["weights"][name] == pytest.approx(weight, rel=1e-8)
    fact = scored[scored.which == "f"].pivot(index="city", columns="year", values="index")
    cf = scored[scored.which == "c"].pivot(index="city", columns="year", values="index")
    by = truth["index"]["by_city_year"]
    np.testing.assert_allclose(fact.loc[by["city_codes"], by["years"]].to_numpy(), np.array(by["factual"]), rtol=1e-8)
    np.testing.assert_allclose(cf.loc[by["city_codes"], by["years"]].to_numpy(), np.array(by["counterfactual"]),
                               rtol=1e-8)  # fmt: skip
    treated = fact.index.isin(truth["policy"]["treated_city_codes"])
    post = [y for y in fact.columns if y >= 2016]
    att = (fact.loc[treated, post] - cf.loc[treated, post]).to_numpy().mean()
    assert truth["att"]["resilience_index"] == pytest.approx(att, rel=1e-8)
    assert fact.to_numpy().mean() == pytest.approx(truth["index"]["summary"]["mean"], rel=1e-8)


def test_twfe_did_covers_true_att(sample):
    """Plain two-way FE DID with controls on the latent panel must cover the true ATT."""
    c, f = sample.cities, sample.latent.factual
    rows = np.flatnonzero(c.balanced)
    by = sample.truth["index"]["by_city_year"]
    assert by["city_codes"] == c.code[rows].tolist()
    y = np.array(by["factual"])  # (city, year)
    n, T = y.shape

    def sel(v):
        return f[v][rows][:, 1:]

    controls = np.stack([
        np.log(sel("gdp") / sel("land_area")), sel("road_area") / sel("land_area"),
        sel("fiscal_expenditure") / sel("gdp"), np.log(sel("fdi")), np.log(sel("avg_wage")),
    ], axis=-1).reshape(n * T, -1)  # fmt: skip
    treated = sample.design.treated[rows]
    did = (treated[:, None] & (np.array(by["years"]) >= 2016)[None, :]).astype(float).reshape(-1)
    city = np.repeat(np.arange(n), T)
    year = np.tile(np.arange(T), n)
    dummies = np.zeros((n * T, n + T - 1))
    dummies[np.arange(n * T), city] = 1.0
    dummies[year > 0, n + year[year > 0] - 1] = 1.0
    X = np.column_stack([did, controls, dummies])
    beta, *_ = np.linalg.lstsq(X, y.reshape(-1), rcond=None)
    u = y.reshape(-1) - X @ beta
    bread = np.linalg.pinv(X.T @ X)
    meat = np.zeros((X.shape[1], X.shape[1]))
    for g in range(n):
        s = X[city == g].T @ u[city == g]
        meat += np.outer(s, s)
    k = 1 + controls.shape[1] + (T - 1)  # city effects are nested in the clusters
    V = bread @ meat @ bread * n / (n - 1) * (n * T - 1) / (n * T - k)
    se = math.sqrt(V[0, 0])
    t_crit = 1.9684  # t(0.975, df = 286 clusters - 1)
    att = sample.truth["att"]["resilience_index"]
    assert beta[0] - t_crit * se <= att <= beta[0] + t_crit * se, (beta[0], se, att)
    assert beta[0] - t_crit * se > 0  # and the design has the power to see it


def test_every_seed_stays_within_the_gates_plausible_ranges():
    """The product's own gate must not refuse its own sample: every variable of seeds 1-30 (and
    the default) lies within raw.plausible_range, factual and counterfactual alike."""
    from expectations.config import PLAUSIBLE_RANGES

    outside = []
    for seed in [*range(1, 31), DEFAULT_SEED]:
        s = simulate(seed)
        for world in ("factual", "counterfactual"):
            values = getattr(s.latent, world)
            for variable, (low, high) in PLAUSIBLE_RANGES.items():
                if variable in values:
                    x = values[variable]
                    if np.nanmin(x) < low or np.nanmax(x) > high:
                        outside.append((seed, world, variable, float(np.nanmin(x)), float(np.nanmax(x))))
    assert outside == []

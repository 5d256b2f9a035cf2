"""One side of a fixed-effects benchmark in its own process: `python -m tests.benchmarks.sides`.

    --generate PATH --case C --rows N [--balanced]   write a panel to a Parquet file
    --side S --data PATH --case C                    fit it; the last stdout line is JSON
                                                     (wall time incl. reading the file, peak RSS,
                                                     coefficients, SEs and their convention)

Sides: cityres (``ours``, ``ours-1gb``), pyfixest (default, numba MAP, within LSMR), linearmodels
(``PanelOLS``, ``AbsorbingLS``), duckreg (``DuckMundlak``) and statsmodels OLS with dummies.
Only the two-way case (unit + year) has the linearmodels, duckreg and statsmodels sides.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings

TWFE_X = ["did", "x1", "x2", "x3", "x4", "x5"]
# model and cluster of each case
CASES = {
    "twfe": ("y ~ did + x1 + x2 + x3 + x4 + x5 | unit + year", "unit"),
    "fe3": ("y ~ x1 + x2 | unit + year + sector", "unit"),
    "akm": ("y ~ x1 + x2 | worker + firm + year", "worker"),
}
SIDES = ["ours", "ours-1gb", "pyfixest", "pyfixest-numba", "pyfixest-within", "linearmodels-panelols",
         "linearmodels-absorbing", "duckreg-mundlak", "statsmodels-dummies"]
TWFE_ONLY = {"linearmodels-panelols", "linearmodels-absorbing", "duckreg-mundlak", "statsmodels-dummies"}


def generate(path: str, case: str, rows: int, balanced: bool = False) -> None:
    from tests.panels import akm_panel, did_panel, multi_fe_panel

    if case == "twfe":  # units x 10 years, 10% of rows deleted at random unless balanced
        did_panel(max(rows // 10, 2), 10, 42, n_controls=5, drop=0.0 if balanced else 0.1,
                  cohorts=(2014, 2016, 2018)).to_parquet(path)
    elif case == "fe3":  # units x 8 years, 200 sectors and 50 sources drawn per row
        multi_fe_panel(42, n_units=rows // 8, n_periods=8, n_sectors=200, n_sources=50).to_parquet(path)
    else:  # workers x 10 years, firms in regions of 10 (the AKM-like hard design)
        akm_panel(rows // 10, rows // 100, 10, seed=42).to_parquet(path)


def fit_ours(side: str, path: str, fml: str, cluster: str) -> dict:
    import duckdb

    from estimation import feols

    con = duckdb.connect()
    if side == "ours-1gb":  # DuckDB spills to its temp directory beyond this
        con.execute("SET memory_limit = '1GB'")
    literal = "'" + path.replace("'", "''") + "'"
    r = feols(con, f"read_parquet({literal})", fml, vcov={"CRV1": cluster})
    return {"coef": r.coef.tolist(), "se": r.se.tolist(), "nobs": int(r.nobs), "ssc_factor": float(r.ssc_factor),
            "method": r.demean_method, "iterations": r.demean_iterations}


def fit_pyfixest(side: str, df, fml: str, cluster: str) -> dict:
    import pyfixest as pf

    demeaner = {"pyfixest": None, "pyfixest-numba": pf.MapDemeaner(backend="numba"),
                "pyfixest-within": pf.LsmrDemeaner(backend="within")}[side]
    kw = {} if demeaner is None else {"demeaner": demeaner}
    m = pf.feols(fml, df, vcov={"CRV1": cluster}, **kw)
    # pyfixest's default small-sample correction is cityres's
    return {"coef": m.coef().tolist(), "se": m.se().tolist(), "nobs": int(m._N), "se_scale": "cityres"}


def fit_panelols(df) -> dict:
    from linearmodels import PanelOLS

    d = df.set_index(["unit", "year"])
    # no small-sample factor at all: the raw cluster sandwich, compared with cityres's divided by its factor
    m = PanelOLS(d["y"], d[TWFE_X], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", cluster_entity=True, debiased=False, group_debias=False, auto_df=False,
        count_effects=False)
    return {"coef": m.params.tolist(), "se": m.std_errors.tolist(), "nobs": int(m.nobs), "se_scale": "raw"}


def fit_absorbing(df) -> dict:
    import pandas as pd
    from linearmodels import AbsorbingLS

    absorb = pd.DataFrame({"unit": pd.Categorical(df["unit"]), "year": pd.Categorical(df["year"])})
    m = AbsorbingLS(df["y"], df[TWFE_X], absorb=absorb).fit(cov_type="clustered", clusters=df["unit"],
                                                             debiased=False)
    return {"coef": m.params.tolist(), "se": m.std_errors.tolist(), "nobs": int(m.nobs), "se_scale": "raw"}


def fit_duckreg(path: str) -> dict:
    """Mundlak's regression of y on X, the unit means and the year means of X, compressed in DuckDB.

    Its X coefficients are the two-way within estimator only on a balanced panel; its SEs are
    bootstrap only (none asked for here), so only the coefficients can be compared.
    """
    from duckreg.estimators import DuckMundlak

    literal = "'" + path.replace("'", "''") + "'"
    m = DuckMundlak(db_name=":memory:", table_name=f"read_parquet({literal})", outcome_var="y", covariates=TWFE_X,
                    unit_col="unit", time_col="year", seed=1, n_bootstraps=0)
    m.fit()
    beta = [float(b) for b in m.point_estimate.ravel()[1:1 + len(TWFE_X)]]
    nobs = int(m.df_compressed["count"].sum())
    return {"coef": beta, "se": None, "nobs": nobs, "compressed_rows": int(len(m.df_compressed))}


def fit_statsmodels(df) -> dict:
    import pandas as pd
    import statsmodels.api as sm

    dummies = pd.get_dummies(df[["unit", "year"]].astype("category"), drop_first=True, dtype=float)
    design = pd.concat([df[TWFE_X], dummies], axis=1)
    design.insert(0, "const", 1.0)
    m = sm.OLS(df["y"], design).fit(cov_type="cluster", cov_kwds={"groups": df["unit"], "use_correction": False})
    return {"coef": m.params[TWFE_X].tolist(), "se": m.bse[TWFE_X].tolist(), "nobs": int(m.nobs),
            "se_scale": "raw", "design_columns": int(design.shape[1])}


def fit(side: str, path: str, case: str) -> dict:
    fml, cluster = CASES[case]
    if side in TWFE_ONLY and case != "twfe":
        raise ValueError(f"{side} runs only the two-way case")
    if side.startswith("ours"):
        return fit_ours(side, path, fml, cluster)
    if side == "duckreg-mundlak":
        return fit_duckreg(path)
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    load = {"load_s": time.perf_counter() - t0}
    if side.startswith("pyfixest"):
        return {**fit_pyfixest(side, df, fml, cluster), **load}
    if side == "linearmodels-panelols":
        return {**fit_panelols(df), **load}
    if side == "linearmodels-absorbing":
        return {**fit_absorbing(df), **load}
    return {**fit_statsmodels(df), **load}


def worker(side: str, path: str, case: str) -> dict:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fit(side, path, case)
    except Exception as exc:  # e.g. pyfixest's "Demeaning failed after N iterations": a figure, not a crash
        out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    wall = time.perf_counter() - t0
    return {"side": side, "wall_s": wall, "peak_bytes": peak_rss(), **out}


def peak_rss() -> int:
    """This process's peak resident set size in bytes.

    VmHWM belongs to the process image: ru_maxrss would also carry the high-water mark of the
    process this one was forked from (Linux keeps it across fork and exec), so a side started by a
    driver that had grown to 0.5 GiB could never report less.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=SIDES)
    ap.add_argument("--data")
    ap.add_argument("--case", choices=sorted(CASES), default="twfe")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--balanced", action="store_true")
    ap.add_argument("--generate", metavar="PATH")
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.case, args.rows, args.balanced)
        print(json.dumps({"generated": args.generate}))
        return
    print(json.dumps(worker(args.side, args.data, args.case)))


if __name__ == "__main__":
    main()

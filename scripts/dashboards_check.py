"""Runs every query of every panel of Grafana dashboards against a Prometheus and fails on
any that returns no data: no series, or only NaN, over the time range given.

    python3 dashboards_check.py --prometheus http://127.0.0.1:9090 --start S --end E a.json ...

Template variables are replaced the way Grafana would for "All" over a short range:
$namespace (and any other query variable) by .*, $__rate_interval by 10s, $__interval by 2s,
$__range by the whole range. Each query runs as a range query with a 1 s step. Prints one line
per failing query and a count of dashboards, panels and queries; exits 1 on a failure or when
nothing was checked. Standard library only.
"""

import argparse
import json
import math
import re
import sys
import urllib.parse
import urllib.request


def panels(dash):
    for p in dash.get("panels", []):
        if p.get("type") != "row":
            yield p
        for q in p.get("panels", []):
            if q.get("type") != "row":
                yield q


def substitute(expr, variables, range_s):
    expr = expr.replace("$__rate_interval", "10s").replace("$__interval", "2s")
    expr = expr.replace("$__range", f"{range_s}s")
    for name in variables:
        expr = re.sub(r"\$\{?" + re.escape(name) + r"\}?(?![A-Za-z0-9_])", ".*", expr)
    return expr


def query_range(base, expr, start, end):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1"})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", body))
    return body["data"]["result"]


def has_data(result):
    for series in result:
        for _, v in series.get("values", []):
            f = float(v)
            if not math.isnan(f):
                return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--start", type=int, required=True)
    ap.add_argument("--end", type=int, required=True)
    ap.add_argument("dashboards", nargs="+")
    args = ap.parse_args()
    n_dash = n_panels = n_queries = 0
    failures = []
    for path in args.dashboards:
        dash = json.load(open(path))
        n_dash += 1
        variables = [v["name"] for v in dash.get("templating", {}).get("list", [])
                     if v.get("type") != "datasource"]
        for p in panels(dash):
            n_panels += 1
            for t in p.get("targets", []):
                n_queries += 1
                expr = substitute(t["expr"], variables, args.end - args.start)
                try:
                    result = query_range(args.prometheus, expr, args.start, args.end)
                except Exception as e:  # a query Prometheus refuses is a failure too
                    failures.append(f"{dash['uid']} / {p['title']}: {expr}: error: {e}")
                    continue
                if not has_data(result):
                    what = "only NaN" if result else "no series"
                    failures.append(f"{dash['uid']} / {p['title']}: {expr}: {what}")
    for f in failures:
        print(f"NO DATA {f}")
    print(f"dashboards: {n_dash} dashboards, {n_panels} panels, {n_queries} queries; "
          f"{n_queries - len(failures)} with data, {len(failures)} without")
    if n_queries == 0:
        print("dashboards: no query was checked")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Holds the Grafana provisioning and dashboard to a running Prometheus, where no Grafana runs.

    check_dashboard.py PROMETHEUS_URL [--chart OUT.png [--seconds WINDOW]]

Checks that the provisioned datasource is the one every panel names, that the dashboard provider
reads the folder the dashboard is in, and that every panel's every query answers with data from
the real Prometheus of the compose stack. With --chart, draws each panel's queries over the last
minutes as Prometheus answers them, as the dashboard would show them.
"""

import argparse
import json
import pathlib
import sys
import time
import urllib.parse
import urllib.request

import yaml

HERE = pathlib.Path(__file__).parent
DASHBOARD = HERE / "grafana/dashboards/tickets.json"
DATASOURCES = HERE / "grafana/provisioning/datasources/prometheus.yml"
PROVIDERS = HERE / "grafana/provisioning/dashboards/tickets.yml"
# Where docker-compose.yml mounts the dashboards folder in the Grafana container.
MOUNTED_AT = "/var/lib/grafana/dashboards"


def query(prometheus, path, **params):
    url = f"{prometheus}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def check_provisioning(dashboard):
    problems = []
    datasources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    uids = {source["uid"] for source in datasources}
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    if not any(p["options"]["path"] == MOUNTED_AT for p in providers):
        problems.append(f"no dashboard provider reads {MOUNTED_AT}")
    for panel in dashboard["panels"]:
        if panel["datasource"]["uid"] not in uids:
            problems.append(f"panel {panel['title']!r} names an unprovisioned datasource")
        if not panel.get("targets"):
            problems.append(f"panel {panel['title']!r} has no query")
    return problems


def check_queries(prometheus, dashboard):
    problems = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            result = query(prometheus, "/api/v1/query", query=target["expr"])
            if not result:
                problems.append(f"panel {panel['title']!r}: no data for {target['expr']}")
    return problems


# Series named in one chart's legend; a panel by shard has more lines than a legend can hold.
LEGEND_ENTRIES = 6


def chart(prometheus, dashboard, out, seconds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(13, 2.2 * rows), squeeze=False)
    end = time.time()
    for axis, panel in zip(axes.flat, panels):
        for target in panel["targets"]:
            series = query(prometheus, "/api/v1/query_range", query=target["expr"],
                           start=end - seconds, end=end, step=max(seconds // 120, 1))
            for line in series:
                label = target["legendFormat"]
                for name, value in line["metric"].items():
                    label = label.replace("{{" + name + "}}", value)
                label = label.replace("{{", "").replace("}}", "")
                points = [(float(t) - end, float(v)) for t, v in line["values"]]
                axis.plot([p[0] for p in points], [p[1] for p in points], label=label[:32])
        axis.set_title(panel["title"], fontsize=9)
        axis.set_xlim(-seconds, 0)
        axis.tick_params(labelsize=7)
        handles, labels = axis.get_legend_handles_labels()
        if handles:
            hidden = len(handles) - LEGEND_ENTRIES
            if hidden > 0:
                handles = handles[:LEGEND_ENTRIES]
                labels = labels[:LEGEND_ENTRIES - 1] + [f"... {hidden + 1} more"]
            axis.legend(handles, labels, fontsize=6, loc="upper left")
    for axis in axes.flat[len(panels):]:
        axis.axis("off")
    figure.supxlabel("seconds ago", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=80)


def main():
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("prometheus")
    arguments.add_argument("--chart")
    arguments.add_argument("--seconds", type=int, default=120, help="the chart's window")
    args = arguments.parse_args()
    dashboard = json.loads(DASHBOARD.read_text())
    problems = check_provisioning(dashboard) + check_queries(args.prometheus, dashboard)
    for problem in problems:
        print(f"dashboard: {problem}")
    if args.chart:
        chart(args.prometheus, dashboard, args.chart, args.seconds)
    queries = sum(len(panel["targets"]) for panel in dashboard["panels"])
    print(f"dashboard: {len(dashboard['panels'])} panels, {queries} queries, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

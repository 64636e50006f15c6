"""Writes k8s/base/prometheus-rules.yaml, the Prometheus operator's PrometheusRule, from
monitoring/alerts.yml, so the compose stack and the cluster alert on one set of rules.

    prometheus_rules.py          # write it
    prometheus_rules.py --check  # exit 1 if it differs from what monitoring/alerts.yml makes
"""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "monitoring/alerts.yml"
TARGET = ROOT / "k8s/base/prometheus-rules.yaml"
HEADER = "# Made by k8s/prometheus_rules.py from monitoring/alerts.yml: edit that, then run it.\n"


def render():
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "tickets"},
        "spec": {"groups": yaml.safe_load(SOURCE.read_text())["groups"]},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=1000)


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python3 k8s/prometheus_rules.py")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

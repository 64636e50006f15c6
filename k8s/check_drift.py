"""Holds the rendered manifests to the product they deploy, so the two cannot drift apart:
images (the compose file's names, the binary's crate version), environment variables (each one a
binary reads), ports (the addresses the ConfigMap gives, the Dockerfile's EXPOSE), probe paths
(routes the binaries answer) and metric names (the HPA's, KEDA's, prometheus-adapter's and every
alert rule's, each one a binary exports).

    check_drift.py RENDERED.yaml...
"""

import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The crates that read the environment, define metrics or serve the probes.
CRATES = ("domain", "lua", "migrations", "runtime", "gateway", "settler")
SOURCES = "\n".join(
    path.read_text() for crate in CRATES for path in (ROOT / crate / "src").rglob("*.rs")
)
METRIC = re.compile(r"\b((?:gateway|settler)_[a-z_]+)")
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def exported(name):
    """A metric the binaries define (`const X: &str = "name"`), a histogram's series included."""
    return f'"{HISTOGRAM_SERIES.sub("", name)}"' in SOURCES or f'"{name}"' in SOURCES


def main(paths):
    documents = [d for path in paths for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    problems = []
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    compose_images = {service.get("image") for service in compose["services"].values()}
    dockerfile = (ROOT / "Dockerfile").read_text()
    config = {}
    for document in documents:
        if document["kind"] == "ConfigMap" and document["metadata"]["name"].startswith("tickets-config"):
            config.update(document["data"])
    # The gateway's routes are its handlers' OpenAPI operations (`path = "..."`), which its
    # route table takes the templates from; the settler's are matched in its http.rs.
    gateway_sources = "\n".join(path.read_text() for path in (ROOT / "gateway/src").rglob("*.rs"))
    routes = {
        "gateway": set(re.findall(r'#\[utoipa::path\(\w+, path = "([^"]+)"', gateway_sources)),
        "settler": set(re.findall(r'"(/[^"]*)"', (ROOT / "settler/src/http.rs").read_text())),
    }
    address = {"gateway": "GATEWAY_ADDR", "settler": "SETTLER_METRICS_ADDR"}

    for document in documents:
        if document["kind"] != "Deployment" or document["metadata"]["name"] not in routes:
            continue
        binary = document["metadata"]["name"]
        container = document["spec"]["template"]["spec"]["containers"][0]
        image, _, tag = container["image"].partition(":")
        version = tomllib.loads((ROOT / binary / "Cargo.toml").read_text())["package"]["version"]
        if image not in compose_images:
            problems.append(f"{binary}: image {image} is not one docker-compose.yml builds")
        if tag != version:
            problems.append(f"{binary}: image tag {tag!r} is not the crate version {version}")
        names = [env["name"] for env in container.get("env", [])] + list(config)
        for name in names:
            if f'"{name}"' not in SOURCES:
                problems.append(f"{binary}: {name} is read by neither binary")
        port = container["ports"][0]["containerPort"]
        if not config.get(address[binary], "").endswith(f":{port}"):
            problems.append(f"{binary}: port {port} is not where {address[binary]} listens")
        if f"EXPOSE {port}" not in dockerfile:
            problems.append(f"{binary}: the Dockerfile exposes no {port}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            if path not in routes[binary]:
                problems.append(f"{binary}: {probe} path {path} is not a route it answers")

    queries = []
    for document in documents:
        kind, spec = document["kind"], document.get("spec", {})
        if kind == "HorizontalPodAutoscaler":
            queries += [m["pods"]["metric"]["name"] for m in spec["metrics"] if m["type"] == "Pods"]
        elif kind == "ScaledObject":
            queries += [t["metadata"]["query"] for t in spec["triggers"]]
        elif kind == "ConfigMap" and document["metadata"]["name"] == "prometheus-adapter-tickets":
            queries += [r["seriesQuery"] for r in yaml.safe_load(document["data"]["config.yaml"])["rules"]]
        elif kind == "PrometheusRule":
            queries += [r["expr"] for group in spec["groups"] for r in group["rules"]]
    metrics = {name for query in queries for name in METRIC.findall(str(query))}
    for name in sorted(metrics):
        if not exported(name):
            problems.append(f"metric {name} is exported by neither binary")

    for problem in problems:
        print(f"drift: {problem}")
    print(f"drift: {len(documents)} objects, {len(metrics)} metrics, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

// Validates the custom resources of rendered manifests (stdin, or the files named) against the
// CRD schemas of KEDA and the Prometheus operator: required fields and types. Exits 1 on any
// failure, or if a custom resource is of a kind it has no schema for. `--self-test` first
// checks that a broken ScaledObject and a broken ServiceMonitor are refused.
import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import {
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};
const core = /^(v1|apps\/v1|autoscaling\/v2|policy\/v1|networking\.k8s\.io\/v1)$/;

function problem(document) {
  const Model = models[`${document.apiVersion}/${document.kind}`];
  if (!Model) return `no schema for ${document.apiVersion} ${document.kind}`;
  try {
    new Model(document).validate();
    return null;
  } catch (error) {
    return error.message;
  }
}

let failed = 0;
if (process.argv.includes("--self-test")) {
  const broken = [
    { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "broken" },
      spec: { scaleTargetRef: {}, minReplicaCount: "two", triggers: [] } },
    { apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", metadata: { name: "broken" },
      spec: { endpoints: [{ port: 8000 }] } },
  ];
  for (const document of broken) {
    if (problem(document) === null) {
      console.log(`crds: a broken ${document.kind} passed`);
      failed += 1;
    }
  }
}
const files = process.argv.slice(2).filter((argument) => !argument.startsWith("--"));
const texts = files.length ? files.map((file) => readFileSync(file, "utf8")) : [readFileSync(0, "utf8")];
let checked = 0;
for (const document of texts.flatMap((text) => yaml.loadAll(text)).filter(Boolean)) {
  if (core.test(document.apiVersion)) continue;
  checked += 1;
  const found = problem(document);
  if (found) {
    console.log(`crds: ${document.kind} ${document.metadata?.name}: ${found}`);
    failed += 1;
  }
}
console.log(`crds: ${checked} custom resources checked, ${failed} problems`);
process.exit(failed ? 1 : 0);

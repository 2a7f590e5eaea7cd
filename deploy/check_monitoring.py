"""Static checks of the monitoring component (k8s/monitoring/), run by deploy/check.sh:

- its kustomization is a Component listing every manifest beside it, and generates the
  dashboard's ConfigMap from dashboard.json with the grafana_dashboard label;
- each PodMonitor selects the pods of a Deployment of k8s/ (or components/events) and scrapes a
  named port those pods have;
- each alert of the PrometheusRule has a severity (critical or warning), a summary, a
  description and a runbook_url to a section of docs/operations.md that exists; alert names
  are unique; every metric a rule or a panel names carries a binary's prefix;
- the dashboard is valid JSON with a uid, and every panel queries the `datasource` variable;
- no code, manifest or doc names voucher-events' metrics by the API's prefix (`voucher_api_`
  then `events`): they are `voucher_events_*`; the README's changes section alone may.

Usage: check_monitoring.py --root DIR. Prints one line per problem; exits 1 if any.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

SEVERITIES = {"critical", "warning"}
PREFIXES = ("voucher_api_", "voucher_events_", "voucher_etl_", "voucher:")
OLD_PREFIX = "voucher_api_" + "events"  # spelt apart so that this file does not name it


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


class Checker:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def load(self, path: Path) -> list[dict]:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]

    def anchors(self) -> set[str]:
        text = (self.root / "docs/operations.md").read_text()
        return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}

    def check_kustomization(self, directory: Path) -> None:
        where = str(directory.relative_to(self.root) / "kustomization.yaml")
        k = yaml.safe_load((directory / "kustomization.yaml").read_text())
        if k.get("kind") != "Component":
            self.fail(where, "is not a kustomize Component (kind: Component)")
        listed = set(k.get("resources", []))
        present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
        for name in sorted(listed - present):
            self.fail(where, f"lists {name}, which does not exist")
        for name in sorted(present - listed):
            self.fail(where, f"does not list {name}")
        generators = [g for g in k.get("configMapGenerator", [])
                      if any(str(f).split("=")[-1] == "dashboard.json" for f in g.get("files", []))]
        if not generators:
            self.fail(where, "generates no ConfigMap from dashboard.json")
        for g in generators:
            labels = (g.get("options") or {}).get("labels") or {}
            if "grafana_dashboard" not in labels:
                self.fail(where, f"ConfigMap {g.get('name')}: no grafana_dashboard label")

    def pod_templates(self) -> list[tuple[str, dict]]:
        """(where, pod template) of every Deployment of k8s/ and its events component."""
        found = []
        for path in sorted([*(self.root / "k8s").glob("*.yaml"),
                            *(self.root / "k8s/components/events").glob("*.yaml")]):
            for doc in self.load(path):
                if doc.get("kind") == "Deployment":
                    found.append((f"{path.name} {doc['metadata']['name']}", doc["spec"]["template"]))
        return found

    def check_podmonitor(self, where: str, doc: dict) -> None:
        wanted = ((doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not wanted:
            self.fail(where, "selects no pods (spec.selector.matchLabels)")
            return
        pods = [(w, t) for w, t in self.pod_templates()
                if wanted.items() <= ((t.get("metadata") or {}).get("labels") or {}).items()]
        if not pods:
            self.fail(where, f"selector {wanted} matches no Deployment's pods")
        for endpoint in doc["spec"].get("podMetricsEndpoints") or []:
            port = endpoint.get("port")
            for pod_where, template in pods:
                names = {p.get("name") for c in template["spec"]["containers"]
                         for p in c.get("ports", [])}
                if port not in names:
                    self.fail(where, f"scrapes port {port!r}, which {pod_where} does not name "
                                     f"(ports: {sorted(n for n in names if n)})")
            if endpoint.get("path", "/metrics") != "/metrics":
                self.fail(where, f"scrapes {endpoint.get('path')}, not /metrics")

    def check_rules(self, where: str, doc: dict, anchors: set[str]) -> None:
        seen = set()
        for group in (doc.get("spec") or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                self.check_names(f"{where} {rule.get('alert') or rule.get('record')}",
                                 str(rule.get("expr", "")))
                name = rule.get("alert")
                if not name:
                    continue
                at = f"{where} alert {name}"
                if name in seen:
                    self.fail(at, "defined twice")
                seen.add(name)
                severity = (rule.get("labels") or {}).get("severity")
                if severity not in SEVERITIES:
                    self.fail(at, f"severity {severity!r}, not one of {sorted(SEVERITIES)}")
                notes = rule.get("annotations") or {}
                for key in ("summary", "description", "runbook_url"):
                    if not str(notes.get(key, "")).strip():
                        self.fail(at, f"no {key} annotation")
                url = str(notes.get("runbook_url", ""))
                page, _, anchor = url.partition("#")
                if url and (page != "docs/operations.md" or anchor not in anchors):
                    self.fail(at, f"runbook_url {url} is not a section of docs/operations.md")
        if not seen:
            self.fail(where, "has no alert")

    def check_names(self, where: str, expr: str) -> None:
        for name in re.findall(r"\b(voucher[\w:]*)", re.sub(r'"[^"]*"', "", expr)):
            if not name.startswith(PREFIXES) or name.startswith(OLD_PREFIX):
                self.fail(where, f"names {name}, without a binary's prefix ({', '.join(PREFIXES)})")

    def check_dashboard(self, path: Path) -> None:
        where = str(path.relative_to(self.root))
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            self.fail(where, f"not JSON: {e}")
            return
        if not dashboard.get("uid"):
            self.fail(where, "no uid")
        panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
        if not panels:
            self.fail(where, "no panels")
        for panel in panels:
            at = f"{where} panel {panel.get('title')!r}"
            if (panel.get("datasource") or {}).get("uid") != "${datasource}":
                self.fail(at, "does not query the ${datasource} variable")
            if not panel.get("targets"):
                self.fail(at, "has no query")
            for target in panel.get("targets", []):
                self.check_names(at, target.get("expr", ""))

    def check_old_prefix(self) -> None:
        for top in ("k8s", "docs", "deploy", "kind", "events", "serve", "api", "bench"):
            base = self.root / top
            if not base.is_dir():
                continue
            for path in base.rglob("*"):
                if {".venv", "broken", "node_modules"} & set(path.parts):
                    continue
                if path.is_file() and path.suffix in {".rs", ".md", ".yaml", ".yml", ".json", ".py", ".sh"}:
                    if OLD_PREFIX in path.read_text(errors="replace"):
                        self.fail(str(path.relative_to(self.root)),
                                  f"names {OLD_PREFIX}_*: voucher-events' metrics are voucher_events_*")

    def run(self) -> int:
        directory = self.root / "k8s/monitoring"
        self.check_kustomization(directory)
        anchors = self.anchors()
        for path in sorted(directory.glob("*.yaml")):
            for doc in self.load(path):
                where = f"{path.name} {doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
                if doc.get("kind") == "PodMonitor":
                    self.check_podmonitor(where, doc)
                elif doc.get("kind") == "PrometheusRule":
                    self.check_rules(where, doc, anchors)
        self.check_dashboard(directory / "dashboard.json")
        self.check_old_prefix()
        for problem in self.problems:
            print(problem)
        return 1 if self.problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    return Checker(parser.parse_args().root.resolve()).run()


if __name__ == "__main__":
    sys.exit(main())

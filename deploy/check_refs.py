#!/usr/bin/env python3
"""Cross-reference check of the deployment files: what schema validators cannot see.

Kubernetes (k8s/ and its kustomization):
- every manifest is listed in kustomization.yaml and every listed file exists;
- every PersistentVolumeClaim, ConfigMap, Secret and ServiceAccount a pod uses exists (volumes,
  envFrom, env valueFrom with its key), and every volumeMount names a declared volume;
- each Service's selector matches a Deployment's pod labels and its targetPorts are ports of
  that Deployment's containers;
- each HPA targets an existing Deployment; each PodDisruptionBudget and NetworkPolicy selects
  some workload's pods;
- every image is pinned (a tag other than `latest`, or a digest), in manifests and Dockerfiles;
- probes and the prometheus.io annotations point at real routes (read from the API binary's
  `voucher-api routes`, so never from a copy of its source) that no token guards, on a real
  container port;
- the optional custom-segments component: its ConfigMap holds segments voucher-etl accepts,
  and its patch names the ETL CronJob and container of k8s/;
- the optional Kafka consumer component (k8s/components/events/) is checked with the objects
  of k8s/ it joins;
- the sharded-run Jobs (k8s/sharded/): the same pod checks against k8s/'s objects; the tally
  Job is Indexed and each pod writes its own tally (the path holds $(JOB_COMPLETION_INDEX));
  the merge Job reads the directory the tallies are written to, on the same volume; every
  flag they pass is one `voucher-etl <command> --help` lists.
Docker: each builder copies the sources of every workspace crate its binary is built from
(read from the Cargo manifests); the Dockerfiles' HEALTHCHECK routes are real routes on the
image's own port, and EXPOSE lists the ports of its binary (the API's HTTP and gRPC ports, the consumer's health
port); docker-compose.yml's named volumes are declared, the API's healthcheck route is real and
it publishes the API port.

Usage: check_refs.py [--root DIR]   (prints each problem; exit 1 if any)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

API_PORT = 8000
GRPC_PORT = 50051
EVENTS_PORT = 8001
# Each image's ports (what EXPOSE must list) and the port its HEALTHCHECK asks; the routes of
# both binaries' health endpoints are the API's (one module serves them in both).
IMAGE_PORTS = {
    "Dockerfile.api": ({API_PORT: "HTTP", GRPC_PORT: "gRPC"}, API_PORT),
    "Dockerfile.etl": ({}, None),
    "Dockerfile.events": ({EVENTS_PORT: "health"}, EVENTS_PORT),
}
# The services whose status voucher-api's grpc.health.v1 reports ("" is the server as a whole).
GRPC_HEALTH_SERVICES = {"", "voucher.v1.VoucherService"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


class Checker:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []
        self.routes = self.read_routes()

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # --- sources of truth -------------------------------------------------------------------
    def read_routes(self) -> set[str]:
        """The GET routes a probe or scraper may use: fixed paths that no token guards."""
        binary = os.environ.get("VOUCHER_API_BIN")
        if not binary:
            self.fail("VOUCHER_API_BIN", "not set: the routes are read from `voucher-api routes`")
            return set()
        try:
            out = subprocess.run([binary, "routes"], check=True, capture_output=True, text=True).stdout
            table = json.loads(out)
        except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
            self.fail(f"{binary} routes", f"cannot read the route table: {e}")
            return set()
        return {
            r["path"] for r in table
            if r["method"] == "GET" and not r["token"] and "{" not in r["path"]
        }

    # --- Kubernetes ---------------------------------------------------------------------------
    def load_k8s(self, directory: Path) -> list[tuple[str, dict]]:
        kustomization = directory / "kustomization.yaml"
        k = yaml.safe_load(kustomization.read_text())
        namespace = k.get("namespace")
        listed = k.get("resources", [])
        files = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
        for name in listed:
            if not (directory / name).is_file():
                self.fail(str(kustomization), f"lists {name}, which does not exist")
        for name in files:
            if name not in listed:
                self.fail(str(kustomization), f"does not list {name}")
        docs = []
        for name in files:
            path = directory / name
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                meta = doc.setdefault("metadata", {})
                if doc.get("kind") != "Namespace" and namespace:
                    meta.setdefault("namespace", namespace)
                docs.append((f"{path.relative_to(self.root)} {doc.get('kind')}/{meta.get('name')}", doc))
        return docs

    def check_k8s(self, *directories: Path) -> None:
        """Checks the objects of these kustomizations together (an overlay with its base)."""
        docs = [doc for directory in directories for doc in self.load_k8s(directory)]
        by_kind: dict[tuple[str, str], dict[str, dict]] = {}
        for _, doc in docs:
            meta = doc["metadata"]
            by_kind.setdefault((doc["kind"], meta.get("namespace", "")), {})[meta["name"]] = doc

        def exists(kind: str, ns: str, name: str) -> dict | None:
            return by_kind.get((kind, ns), {}).get(name)

        workloads = []  # (where, kind, name, ns, pod template)
        for where, doc in docs:
            kind = doc["kind"]
            if kind not in WORKLOAD_KINDS:
                continue
            spec = doc.get("spec", {})
            if kind == "CronJob":
                template = spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
            elif kind == "Pod":
                template = doc
            else:
                template = spec.get("template", {})
            workloads.append((where, kind, doc["metadata"]["name"], doc["metadata"].get("namespace", ""), template))

        for where, kind, name, ns, template in workloads:
            self.check_pod(where, ns, template, exists)

        deployments = [(n, ns, t) for _, k, n, ns, t in workloads if k == "Deployment"]

        def matching(selector: dict, ns: str, pool) -> list:
            return [
                (n, t)
                for n, wns, t in pool
                if wns == ns and selector and all(
                    t.get("metadata", {}).get("labels", {}).get(k) == v for k, v in selector.items()
                )
            ]

        all_pods = [(n, ns, t) for _, _, n, ns, t in workloads]
        for where, doc in docs:
            kind, ns, spec = doc["kind"], doc["metadata"].get("namespace", ""), doc.get("spec", {})
            if kind == "Service":
                targets = matching(spec.get("selector", {}), ns, deployments)
                if not targets:
                    self.fail(where, f"selector {spec.get('selector')} matches no Deployment's pods")
                    continue
                for port in spec.get("ports", []):
                    target = port.get("targetPort", port.get("port"))
                    for dname, template in targets:
                        if not container_port(template, target):
                            self.fail(where, f"targetPort {target!r} is no container port of Deployment/{dname}")
            elif kind == "HorizontalPodAutoscaler":
                ref = spec.get("scaleTargetRef", {})
                if not exists(ref.get("kind", ""), ns, ref.get("name", "")):
                    self.fail(where, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} does not exist")
                elif ref.get("kind") == "Deployment" and ref.get("apiVersion") != "apps/v1":
                    self.fail(where, f"scaleTargetRef apiVersion {ref.get('apiVersion')!r} is not apps/v1")
            elif kind == "PodDisruptionBudget":
                if not matching(spec.get("selector", {}).get("matchLabels", {}), ns, all_pods):
                    self.fail(where, "selector matches no workload's pods")
            elif kind == "NetworkPolicy":
                labels = spec.get("podSelector", {}).get("matchLabels", {})
                if labels and not matching(labels, ns, all_pods):
                    self.fail(where, f"podSelector {labels} matches no workload's pods")

    def check_sharded(self, directory: Path, k8s: Path) -> None:
        """The Indexed tally Job and the merge Job of a sharded run."""
        base = self.load_k8s(k8s)
        known = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
                 for _, d in base}

        def exists(kind: str, ns: str, name: str) -> dict | None:
            return known.get((kind, ns, name))

        jobs = {}
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                where = f"{path.relative_to(self.root)} {doc.get('kind')}/{doc['metadata'].get('name')}"
                if doc.get("kind") != "Job":
                    self.fail(where, "only Jobs belong in k8s/sharded/")
                    continue
                ns = doc["metadata"].get("namespace", "")
                template = doc.get("spec", {}).get("template", {})
                self.check_pod(where, ns, template, exists)
                container = (template.get("spec", {}).get("containers") or [{}])[0]
                args = [str(a) for a in container.get("args", [])]
                command = args[0] if args else ""
                self.check_flags(where, command, args[1:])
                jobs[command] = (where, doc, container, args)
        tally, merge = jobs.get("tally"), jobs.get("run")
        if not tally or not merge:
            self.fail(str(directory.relative_to(self.root)), "needs a `tally` Job and a `run --from-tallies` Job")
            return
        where, doc, container, args = tally
        if doc["spec"].get("completionMode") != "Indexed":
            self.fail(where, "completionMode is not Indexed, so pods get no JOB_COMPLETION_INDEX")
        output = flag_value(args, "--output") or ""
        if "$(JOB_COMPLETION_INDEX)" not in output:
            self.fail(where, f"--output {output!r} is the same for every shard (use $(JOB_COMPLETION_INDEX))")
        mwhere, mdoc, mcontainer, margs = merge
        source = flag_value(margs, "--from-tallies") or ""
        written = tally_dir(doc, container, output)
        read = tally_dir(mdoc, mcontainer, source.rstrip("/") + "/part.json")
        if not source:
            self.fail(mwhere, "does not merge tallies (--from-tallies)")
        elif written is None or read != written:
            self.fail(mwhere, f"--from-tallies {source} is not where the tally Job writes ({output})")

    def check_flags(self, where: str, command: str, args: list[str]) -> None:
        binary = os.environ.get("VOUCHER_ETL_BIN")
        if not binary:
            self.fail("VOUCHER_ETL_BIN", "not set: Job flags are checked with `voucher-etl <command> --help`")
            return
        help_text = subprocess.run([binary, command, "--help"], capture_output=True, text=True)
        if help_text.returncode != 0:
            self.fail(where, f"`voucher-etl {command}` is no command: {help_text.stderr.strip()}")
            return
        accepted = set(re.findall(r"--[a-z][a-z-]*", help_text.stdout))
        for arg in args:
            if arg.startswith("--") and arg.split("=")[0] not in accepted:
                self.fail(where, f"voucher-etl {command} has no flag {arg}")

    def check_segments_component(self, directory: Path, k8s: Path) -> None:
        where = str(directory.relative_to(self.root))
        configmap = yaml.safe_load((directory / "configmap-segments.yaml").read_text())
        text = configmap.get("data", {}).get("segments.toml", "")
        binary = os.environ.get("VOUCHER_ETL_BIN")
        if not binary:
            self.fail("VOUCHER_ETL_BIN", "not set: segments are checked with `voucher-etl generate`")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                segments = Path(tmp) / "segments.toml"
                segments.write_text(text)
                run = subprocess.run(
                    [binary, "generate", "--rows", "10", "--segments", str(segments),
                     "--output", str(Path(tmp) / "history.parquet")],
                    capture_output=True, text=True)
                if run.returncode != 0:
                    self.fail(f"{where}/configmap-segments.yaml",
                              f"segments.toml is not valid segments: {run.stderr.strip()}")
        patch = yaml.safe_load((directory / "cronjob-segments.yaml").read_text())
        cronjob = next((d for d in yaml.safe_load_all((k8s / "cronjob-etl.yaml").read_text())
                        if d and d.get("kind") == "CronJob"), {})
        if patch["metadata"]["name"] != cronjob.get("metadata", {}).get("name"):
            self.fail(f"{where}/cronjob-segments.yaml", "patches no CronJob of k8s/cronjob-etl.yaml")
        containers = cronjob.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get(
            "template", {}).get("spec", {}).get("containers", [])
        for c in patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
            if c["name"] not in {k["name"] for k in containers}:
                self.fail(f"{where}/cronjob-segments.yaml", f"container {c['name']} is not in the CronJob")

    def check_pod(self, where: str, ns: str, template: dict, exists) -> None:
        meta = template.get("metadata", {})
        spec = template.get("spec", {})
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        sa = spec.get("serviceAccountName")
        if sa and sa != "default" and not exists("ServiceAccount", ns, sa):
            self.fail(where, f"serviceAccountName {sa} does not exist")
        for vname, volume in volumes.items():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"].get("claimName")
                if not exists("PersistentVolumeClaim", ns, claim):
                    self.fail(where, f"volume {vname}: PersistentVolumeClaim {claim} does not exist")
            if "configMap" in volume:
                self.need(where, exists, "ConfigMap", ns, volume["configMap"], f"volume {vname}")
            if "secret" in volume:
                ref = dict(volume["secret"], name=volume["secret"].get("secretName"))
                self.need(where, exists, "Secret", ns, ref, f"volume {vname}")
            for source in volume.get("projected", {}).get("sources", []):
                for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                    if key in source:
                        self.need(where, exists, kind, ns, source[key], f"volume {vname}")
        annotations = meta.get("annotations", {})
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        if annotations.get("prometheus.io/scrape") == "true":
            path = annotations.get("prometheus.io/path", "/metrics")
            if path not in self.routes:
                self.fail(where, f"prometheus.io/path {path} is no API route")
            port = annotations.get("prometheus.io/port")
            if not port or not container_port(template, int(port)):
                self.fail(where, f"prometheus.io/port {port!r} is no container port")
        for c in containers:
            cwhere = f"{where} container {c.get('name')}"
            image = c.get("image", "")
            if not pinned(image):
                self.fail(cwhere, f"image {image!r} is not pinned (a tag other than latest, or a digest)")
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    self.fail(cwhere, f"volumeMount {mount['name']} names no volume of the pod")
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    self.need(cwhere, exists, "ConfigMap", ns, source["configMapRef"], "envFrom")
                if "secretRef" in source:
                    self.need(cwhere, exists, "Secret", ns, source["secretRef"], "envFrom")
            for env in c.get("env", []):
                value_from = env.get("valueFrom", {})
                if "configMapKeyRef" in value_from:
                    self.need(cwhere, exists, "ConfigMap", ns, value_from["configMapKeyRef"], f"env {env['name']}")
                if "secretKeyRef" in value_from:
                    self.need(cwhere, exists, "Secret", ns, value_from["secretKeyRef"], f"env {env['name']}")
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name)
                if not probe:
                    continue
                grpc = probe.get("grpc")
                if grpc:
                    if not port_of_container(c, grpc.get("port")):
                        self.fail(cwhere, f"{probe_name} gRPC port {grpc.get('port')!r} is no port of the container")
                    if grpc.get("service", "") not in GRPC_HEALTH_SERVICES:
                        self.fail(cwhere, f"{probe_name} gRPC service {grpc.get('service')!r} is not one the API reports ({sorted(GRPC_HEALTH_SERVICES)})")
                http = probe.get("httpGet")
                if http:
                    if http.get("path", "/") not in self.routes:
                        self.fail(cwhere, f"{probe_name} path {http.get('path')} is no API route ({sorted(self.routes)})")
                    if not port_of_container(c, http.get("port")):
                        self.fail(cwhere, f"{probe_name} port {http.get('port')!r} is no port of the container")

    def need(self, where, exists, kind, ns, ref: dict, what: str) -> None:
        if ref.get("optional"):
            return
        doc = exists(kind, ns, ref.get("name"))
        if not doc:
            self.fail(where, f"{what}: {kind} {ref.get('name')} does not exist")
            return
        key = ref.get("key")
        data = {**doc.get("data", {}), **doc.get("stringData", {}), **doc.get("binaryData", {})}
        if key and key not in data:
            self.fail(where, f"{what}: {kind} {ref.get('name')} has no key {key}")
        for item in ref.get("items", []):
            if item.get("key") not in data:
                self.fail(where, f"{what}: {kind} {ref.get('name')} has no key {item.get('key')}")

    # --- Docker ---------------------------------------------------------------------------------
    def check_dockerfile(self, path: Path) -> None:
        text = path.read_text().replace("\\\n", " ")
        where = str(path.relative_to(self.root))
        ports, health_port = IMAGE_PORTS[path.name]
        stages = set()
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            instruction = words[0].upper()
            if instruction == "FROM":
                image = [w for w in words[1:] if not w.startswith("--")][0]
                if image not in stages and image != "scratch" and not pinned(image):
                    self.fail(where, f"FROM {image} is not pinned (a tag other than latest, or a digest)")
                if len(words) >= 4 and words[-2].upper() == "AS":
                    stages.add(words[-1])
            elif instruction == "HEALTHCHECK" and len(words) > 1 and words[1].upper() != "NONE":
                self.check_health_command(where, line, health_port)
            elif instruction == "EXPOSE":
                exposed = [w.split("/")[0] for w in words[1:]]
                for port, what in ports.items():
                    if str(port) not in exposed:
                        self.fail(where, f"EXPOSE {' '.join(words[1:])} lacks the {what} port {port}")
        if health_port and "HEALTHCHECK" not in text:
            self.fail(where, "no HEALTHCHECK")
        self.check_dockerfile_sources(where, text)

    def check_dockerfile_sources(self, where: str, text: str) -> None:
        """The builder copies the sources of every workspace crate its binary is built from.

        The dependency layer builds against empty stubs of every crate, so a crate whose sources
        are never copied in still compiles there and only fails in the last step, inside the
        image build.
        """
        built = re.findall(r"cargo build\b[^&;]*?(?:-p|--package)[ =](\S+)", text)
        if not built:
            self.fail(where, "no `cargo build -p <package>` in the builder stage")
            return
        crates = workspace_crates(self.root)
        copied = set(re.findall(r"^COPY\s+(\S+)/src\s+\1/src\s*$", text, re.MULTILINE))
        for package in sorted(set(built)):
            if package not in crates:
                self.fail(where, f"builds {package}, which is no workspace crate")
                continue
            for name in sorted(crate_closure(crates, package)):
                directory = crates[name][0]
                if directory not in copied:
                    self.fail(where, f"builds {package}, which uses {name}, but never copies "
                                     f"its sources (COPY {directory}/src {directory}/src)")

    def check_health_command(self, where: str, command: str, port: int | None = API_PORT) -> None:
        paths = re.findall(r"(?:GET |https?://[^/\s]+)(/[A-Za-z0-9_./-]*)", command)
        if not paths:
            self.fail(where, f"healthcheck requests no route: {command.strip()}")
        for p in paths:
            if p not in self.routes:
                self.fail(where, f"healthcheck route {p} is no API route")
        asked = re.findall(r"/dev/tcp/[^/]+/(\d+)|:(\d+)/", command)
        for found in (a or b for a, b in asked):
            if int(found) != port:
                self.fail(where, f"healthcheck port {found} is not the server's port {port}")

    def check_compose(self, path: Path) -> None:
        where = str(path.relative_to(self.root))
        doc = yaml.safe_load(path.read_text())
        declared = set((doc.get("volumes") or {}).keys())
        services = doc.get("services") or {}
        for name, service in services.items():
            image = service.get("image", "")
            if image and not pinned(image):
                self.fail(where, f"service {name}: image {image!r} is not pinned")
            build = service.get("build") or {}
            dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
            if dockerfile and not (self.root / build.get("context", ".") / dockerfile).is_file():
                self.fail(where, f"service {name}: build dockerfile {dockerfile} does not exist")
            for volume in service.get("volumes", []):
                source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
                if source and not source.startswith((".", "/", "~")) and source not in declared:
                    self.fail(where, f"service {name}: volume {source} is not declared under volumes")
            for dep in service.get("depends_on", []) or []:
                if dep not in services:
                    self.fail(where, f"service {name}: depends_on {dep}, which is no service")
        api = services.get("api")
        if not api:
            self.fail(where, "no api service")
            return
        if not any(str(p).split(":")[-1] == str(API_PORT) for p in api.get("ports", [])):
            self.fail(where, f"the api service does not publish port {API_PORT}")
        test = (api.get("healthcheck") or {}).get("test")
        if test:
            self.check_health_command(where, " ".join(test) if isinstance(test, list) else test)


def flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def tally_dir(job: dict, container: dict, path: str) -> tuple[str, str, str] | None:
    """(claim, subPath, directory inside it) of a file `path` in the container, or None."""
    mounts = [m for m in container.get("volumeMounts", [])
              if path.startswith(m["mountPath"].rstrip("/") + "/")]
    if not mounts:
        return None
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"].get("volumes", [])}
    claim = volumes.get(mount["name"], {}).get("persistentVolumeClaim", {}).get("claimName", "")
    inside = path[len(mount["mountPath"].rstrip("/")) + 1:]
    return claim, mount.get("subPath", ""), str(Path(inside).parent)


def workspace_crates(root: Path) -> dict[str, tuple[str, set[str]]]:
    """Each workspace crate: its directory and the workspace crates it builds with."""
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    local = {name for name, spec in workspace.get("dependencies", {}).items()
             if isinstance(spec, dict) and "path" in spec}
    crates = {}
    for member in workspace["members"]:
        manifest = tomllib.loads((root / member / "Cargo.toml").read_text())
        uses = set()
        for table in ("dependencies", "build-dependencies"):
            for name, spec in manifest.get(table, {}).items():
                if name in local or (isinstance(spec, dict) and "path" in spec):
                    uses.add(name)
        crates[manifest["package"]["name"]] = (member, uses)
    return crates


def crate_closure(crates: dict[str, tuple[str, set[str]]], package: str) -> set[str]:
    seen, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name in seen or name not in crates:
            continue
        seen.add(name)
        todo.extend(crates[name][1])
    return seen


def pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def port_of_container(container: dict, port) -> bool:
    for p in container.get("ports", []):
        if port in (p.get("name"), p.get("containerPort")):
            return True
    return False


def container_port(template: dict, port) -> bool:
    return any(port_of_container(c, port) for c in template.get("spec", {}).get("containers", []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    root = args.root.resolve()
    checker = Checker(root)
    checker.check_k8s(root / "k8s")
    checker.check_k8s(root / "k8s", root / "k8s/components/events")
    checker.check_segments_component(root / "k8s/components/custom-segments", root / "k8s")
    checker.check_sharded(root / "k8s/sharded", root / "k8s")
    for dockerfile in IMAGE_PORTS:
        checker.check_dockerfile(root / dockerfile)
    checker.check_compose(root / "docker-compose.yml")
    for problem in checker.problems:
        print(problem)
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())

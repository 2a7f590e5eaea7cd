"""Turns the rendered kustomization (k8s/) into what `podman kube play` can run, for
deploy/kube_play_test.sh, and says what it left out.

Podman 4.3 plays Pods, Deployments, PersistentVolumeClaims and ConfigMaps. The manifests are
taken as rendered, with only what running them on one machine needs changed:
  - the images: the ones the image check built (podman must not pull: imagePullPolicy IfNotPresent);
  - the API's ports: published on 127.0.0.1 (hostIP/hostPort), as a Service would route to them,
    from one replica (podman plays them all, and they would bind the same host ports);
  - the tables claim: renamed, so that the test's volume is its own;
  - the ETL CronJob: its pod template, as a Pod that runs once (what a Job of it would run).
Every other object is listed, with why podman cannot play it; `make deploy-check` checks them.

Usage: kube_play_prepare.py RENDERED OUT --api-image I --etl-image I --http-port N
           --grpc-port N --claim NAME
Prints one line per object: "play KIND/NAME: how" or "skip KIND/NAME: why".
       kube_play_prepare.py --render DIR   prints DIR's kustomization rendered, where kubectl
           is missing: only the fields k8s/kustomization.yaml uses (resources, namespace, images)
"""

import argparse
import sys

import yaml

ETL_POD = "voucher-etl-once"

WHY_NOT = {
    "Namespace": "podman has no namespaces (metadata.namespace is ignored)",
    "ServiceAccount": "no Kubernetes API to authenticate to (and no token is mounted anyway)",
    "Service": "no cluster network or kube-proxy; the test publishes the API's ports itself (hostPort)",
    "HorizontalPodAutoscaler": "no controller or metrics-server to scale by",
    "PodDisruptionBudget": "no eviction API",
    "NetworkPolicy": "podman's networks enforce no policies",
}


class Unplayable(Exception):
    """The rendered manifests lack what the play needs."""


RENDERED_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images"}


def containers_of(doc: dict) -> list[dict]:
    """The containers of a workload's pod template (a Pod's own, a CronJob's job's)."""
    spec = doc.get("spec") or {}
    spec = spec.get("jobTemplate", {}).get("spec", spec)
    spec = spec.get("template", {}).get("spec", spec)
    return spec.get("containers", []) + spec.get("initContainers", [])


def render(directory: str) -> list[dict]:
    """DIR/kustomization.yaml rendered as `kubectl kustomize` would, for the fields it has."""
    with open(f"{directory}/kustomization.yaml") as f:
        kustomization = yaml.safe_load(f)
    unknown = sorted(set(kustomization) - RENDERED_FIELDS)
    if unknown:
        raise Unplayable(f"kustomization fields {unknown} need kubectl kustomize (this renders {sorted(RENDERED_FIELDS)})")
    tags = {i["name"]: i for i in kustomization.get("images", [])}
    docs = []
    for resource in kustomization.get("resources", []):
        with open(f"{directory}/{resource}") as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        if "namespace" in kustomization and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kustomization["namespace"]
        for container in containers_of(doc):
            name = container["image"].split(":")[0]
            if name in tags:
                image = tags[name]
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', 'latest')}"
    return docs


def use_image(pod_spec: dict, image: str, claim: str, rename_from: str) -> None:
    """Points the pod's containers at IMAGE (no pull) and its claim RENAME_FROM at CLAIM."""
    for container in pod_spec.get("containers", []):
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"
    for volume in pod_spec.get("volumes", []):
        pvc = volume.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName") == rename_from:
            pvc["claimName"] = claim


def publish(pod_spec: dict, ports: dict[int, int]) -> None:
    """Publishes the containers' ports found in PORTS (container port -> host port) on 127.0.0.1."""
    for container in pod_spec.get("containers", []):
        for port in container.get("ports", []):
            if port.get("containerPort") in ports:
                port["hostIP"] = "127.0.0.1"
                port["hostPort"] = ports[port["containerPort"]]


def prepare(docs: list[dict], args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """(the objects to play, in order, and one report line per rendered object)."""
    claim_of_tables = "voucher-tables"
    volumes, configmaps, pods, report = [], [], [], []
    for doc in docs:
        kind, name = doc.get("kind", "?"), doc.get("metadata", {}).get("name", "?")
        what = f"{kind}/{name}"
        if kind == "PersistentVolumeClaim" and name == claim_of_tables:
            doc["metadata"]["name"] = args.claim
            volumes.append(doc)
            report.append(f"play {what}: as the podman volume {args.claim}")
        elif kind == "ConfigMap":
            configmaps.append(doc)
            report.append(f"play {what}: its data as the environment of the pods that use it")
        elif kind == "Deployment" and name == "voucher-api":
            spec = doc["spec"]["template"]["spec"]
            use_image(spec, args.api_image, args.claim, claim_of_tables)
            publish(spec, {8000: args.http_port, 50051: args.grpc_port})
            # Podman plays every replica, each binding the same host ports: one here.
            replicas = doc["spec"].get("replicas", 1)
            doc["spec"]["replicas"] = 1
            report.append(
                f"play {what}: 1 pod of its {replicas} replicas (the others would bind the same host "
                f"ports), HTTP and gRPC on 127.0.0.1:{args.http_port} and :{args.grpc_port}; podman "
                "runs no readiness probe: the test makes its gRPC health check itself"
            )
            pods.append(doc)
        elif kind == "CronJob" and name == "voucher-etl":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
            spec = template["spec"]
            use_image(spec, args.etl_image, args.claim, claim_of_tables)
            labels = template.get("metadata", {}).get("labels", {})
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": ETL_POD, "labels": labels}, "spec": spec})
            report.append(
                f"skip {what}: podman has no scheduler or Job controller; its pod template is "
                f"played once as Pod/{ETL_POD} (restartPolicy {spec.get('restartPolicy')})"
            )
        else:
            why = WHY_NOT.get(kind, "podman kube play does not support this kind")
            report.append(f"skip {what}: {why}")
    missing = [w for w, found in (("PersistentVolumeClaim/voucher-tables", volumes),
                                  ("Deployment/voucher-api", any(p["kind"] == "Deployment" for p in pods)),
                                  ("CronJob/voucher-etl", any(p["kind"] == "Pod" for p in pods)))
               if not found]
    if missing:
        raise Unplayable(f"the rendered manifests have no {', '.join(missing)}")
    # Volumes and ConfigMaps before the pods that use them; the ETL's pod before the API's.
    pods.sort(key=lambda p: p["kind"] != "Pod")
    return volumes + configmaps + pods, report


ERRORS = (OSError, yaml.YAMLError, KeyError, TypeError, Unplayable)


def failed(where: str, e: Exception) -> int:
    detail = f"no field {e}" if isinstance(e, KeyError) else str(e)
    print(f"kube_play_prepare.py: {where}: {detail[:300]}", file=sys.stderr)
    return 1


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        try:
            yaml.safe_dump_all(render(sys.argv[2]), sys.stdout, sort_keys=False)
        except ERRORS as e:
            return failed(sys.argv[2], e)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered")
    parser.add_argument("out")
    parser.add_argument("--api-image", required=True)
    parser.add_argument("--etl-image", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--claim", required=True)
    args = parser.parse_args()
    try:
        with open(args.rendered) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        play, report = prepare(docs, args)
    except ERRORS as e:
        return failed(args.rendered, e)
    with open(args.out, "w") as f:
        yaml.safe_dump_all(play, f, sort_keys=False)
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

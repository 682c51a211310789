"""A recording stand-in for ``kubectl``, installed by the ``kubectl`` fixture as ``<tmp>/bin/kubectl``.

It understands exactly the calls orkes-provision makes and fails loudly (exit 2) on anything
else, so an unexpected argument shows up as a test failure. Every call is appended to
``calls.jsonl`` beside the script (argv, stdin, whether a Conductor credential leaked into its
environment). Objects live in ``state.json`` beside it, so ``apply`` then ``get`` works.
Manifests given to ``apply`` are validated strictly against the Kubernetes 1.30 schemas first.

Pods are not stored: ``get pods -l SELECTOR`` lists, for each Deployment whose pod template
carries the selector's labels, ``replicas`` pods named ``<deployment>-<hash of the template>-<i>``,
as a ReplicaSet names them, so a rollout (a changed template) replaces every pod at once.

``state.json`` knobs for tests: ``namespaces`` (a list: others are NotFound), ``fail`` (verb ->
stderr line, the call exits 1), ``echo_stdin_on_fail`` (put the stdin in the error, as a
careless kubectl plugin might), ``stuck`` (Deployment names whose rollout times out),
``terminating`` (pod names still listed, as pods that take their time to stop).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATE = HERE / "state.json"
CALLS = HERE / "calls.jsonl"
KINDS = {"secret": "Secret", "secrets": "Secret", "configmap": "ConfigMap", "configmaps": "ConfigMap",
         "deployment": "Deployment", "deployments": "Deployment", "deployment.apps": "Deployment",
         "pod": "Pod", "pods": "Pod"}
REFS = {"Secret": "secret", "ConfigMap": "configmap", "Deployment": "deployment.apps"}


def load_state() -> dict[str, Any]:
    if STATE.exists():
        return dict(json.loads(STATE.read_text()))
    return {}


def save_state(state: dict[str, Any]) -> None:
    STATE.write_text(json.dumps(state, indent=2, sort_keys=True))


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def positional(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-n", "--namespace", "-o", "-p", "-f", "--type", "-l"):
            skip = True
            continue
        if arg.startswith("-"):
            continue
        out.append(arg)
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def main() -> int:
    args = sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    leaked = sorted(n for n in ("CONDUCTOR_AUTH_SECRET", "CONDUCTOR_AUTH_KEY") if n in os.environ)
    with CALLS.open("a") as handle:
        handle.write(json.dumps({"argv": args, "stdin": stdin, "leaked_env": leaked}) + "\n")
    state = load_state()
    verb = args[0] if args else ""
    if verb in state.get("fail", {}):
        detail = state["fail"][verb]
        if state.get("echo_stdin_on_fail"):
            detail += " " + stdin.replace("\n", " ")
        return fail(detail)
    handler = {"get": get, "apply": apply, "patch": patch, "delete": delete, "rollout": rollout}.get(verb)
    if handler is None:
        return fail(f"fake kubectl: unsupported command {args!r}", 2)
    code = handler(args[1:], stdin, state)
    save_state(state)
    return code


def namespace_of(args: list[str]) -> str | None:
    return option(args, "-n") or option(args, "--namespace")


def check_namespace(state: dict[str, Any], namespace: str) -> str | None:
    known = state.get("namespaces")
    if known is not None and namespace not in known:
        return f'Error from server (NotFound): namespaces "{namespace}" not found'
    return None


def get(args: list[str], stdin: str, state: dict[str, Any]) -> int:
    namespace = namespace_of(args)
    if namespace is None or option(args, "-o") != "json":
        return fail(f"fake kubectl: get needs -n and -o json: {args!r}", 2)
    names = positional(args)
    kind = KINDS.get(names[0]) if names else None
    if kind is None:
        return fail(f"fake kubectl: get of unknown kind {args!r}", 2)
    objects = state.setdefault("objects", {})
    if kind == "Pod":
        return list_pods(namespace, option(args, "-l"), state)
    if len(names) == 1:
        items = [o for k, o in sorted(objects.items()) if k.startswith(f"{kind}/{namespace}/")]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        return 0
    if len(names) != 2 or "--ignore-not-found" not in args:
        return fail(f"fake kubectl: get NAME needs --ignore-not-found: {args!r}", 2)
    found = objects.get(key(kind, namespace, names[1]))
    if found is not None:
        print(json.dumps(found))
    return 0


def list_pods(namespace: str, selector: str | None, state: dict[str, Any]) -> int:
    if not selector or names_of_pods_needed(selector):
        return fail(f"fake kubectl: get pods needs -l k=v[,k=v]: {selector!r}", 2)
    wanted = dict(part.split("=", 1) for part in selector.split(","))
    pods = set(state.get("terminating", []))
    for k, deployment in sorted(state.get("objects", {}).items()):
        if not k.startswith(f"Deployment/{namespace}/"):
            continue
        template = deployment.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        if all(labels.get(name) == value for name, value in wanted.items()):
            digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            name = deployment["metadata"]["name"]
            pods.update(f"{name}-{digest}-{i}" for i in range(int(deployment["spec"].get("replicas", 1))))
    items = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": namespace}} for n in sorted(pods)]
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return 0


def names_of_pods_needed(selector: str) -> bool:
    """True when the selector is not a plain ``k=v[,k=v]`` list (the only form this tool sends)."""
    return any("=" not in part or "!" in part for part in selector.split(","))


def apply(args: list[str], stdin: str, state: dict[str, Any]) -> int:
    import kubernetes_validate
    import yaml

    expected = ["--server-side", "--field-manager=orkes-provision", "--force-conflicts", "-f", "-"]
    if args != expected:
        return fail(f"fake kubectl: apply arguments {args!r} are not {expected!r}", 2)
    try:
        documents = [d for d in yaml.safe_load_all(stdin) if d]
    except yaml.YAMLError as err:
        return fail(f"error: error parsing STDIN: {err}")
    objects = state.setdefault("objects", {})
    for document in documents:
        try:
            kubernetes_validate.validate(document, "1.30", strict=True)
        except Exception as err:
            return fail(f"error: invalid manifest: {getattr(err, 'message', err)}")
        kind, meta = document["kind"], document["metadata"]
        problem = check_namespace(state, meta["namespace"])
        if problem:
            return fail(problem)
        k = key(kind, meta["namespace"], meta["name"])
        current = objects.get(k)
        if current is None:
            document.setdefault("metadata", {})["generation"] = 1
            objects[k] = document
        else:
            merged = dict(current)
            for field in ("labels", "annotations"):
                merged["metadata"].setdefault(field, {}).update(meta.get(field, {}))
            if "data" in document:
                merged["data"] = {**current.get("data", {}), **document["data"]}
            if "spec" in document and document["spec"] != current.get("spec"):
                merged["spec"] = document["spec"]
                merged["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            objects[k] = merged
        print(f"{REFS[kind]}/{meta['name']} serverside-applied")
    return 0


def patch(args: list[str], stdin: str, state: dict[str, Any]) -> int:
    namespace, body, kind_type = namespace_of(args), option(args, "-p"), option(args, "--type")
    names = positional(args)
    if namespace is None or body is None or len(names) != 2 or names[0] not in KINDS:
        return fail(f"fake kubectl: patch arguments {args!r}", 2)
    kind = KINDS[names[0]]
    objects = state.setdefault("objects", {})
    k = key(kind, namespace, names[1])
    if k not in objects:
        plural = {"Deployment": "deployments.apps", "Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        return fail(f'Error from server (NotFound): {plural} "{names[1]}" not found')
    before = objects[k]
    if kind_type == "merge":
        after = merge_patch(before, json.loads(body))
    elif kind_type == "json":
        after = copy.deepcopy(before)
        for op in json.loads(body):
            parts = op["path"].strip("/").split("/")
            if op["op"] != "remove" or len(parts) != 2:
                return fail(f"fake kubectl: json patch op {op!r}", 2)
            after[parts[0]].pop(parts[1])
    else:
        return fail(f"fake kubectl: patch --type {kind_type!r}", 2)
    if after == before:
        print(f"{REFS[kind]}/{names[1]} patched (no change)")
        return 0
    if after.get("spec") != before.get("spec"):
        after["metadata"]["generation"] = before["metadata"].get("generation", 1) + 1
    objects[k] = after
    print(f"{REFS[kind]}/{names[1]} patched")
    return 0


def delete(args: list[str], stdin: str, state: dict[str, Any]) -> int:
    namespace, names = namespace_of(args), positional(args)
    if namespace is None or len(names) != 2 or names[0] not in KINDS or "--ignore-not-found" not in args:
        return fail(f"fake kubectl: delete arguments {args!r}", 2)
    removed = state.setdefault("objects", {}).pop(key(KINDS[names[0]], namespace, names[1]), None)
    if removed is not None:
        print(f'{REFS[KINDS[names[0]]]} "{names[1]}" deleted')
    return 0


def rollout(args: list[str], stdin: str, state: dict[str, Any]) -> int:
    namespace, names = namespace_of(args), positional(args)
    timeout = option(args, "--timeout")
    if (namespace is None or names[:1] != ["status"] or len(names) != 2 or not names[1].startswith("deployment/")
            or timeout is None or not timeout.endswith("s")):
        return fail(f"fake kubectl: rollout arguments {args!r}", 2)
    name = names[1].split("/", 1)[1]
    if key("Deployment", namespace, name) not in state.get("objects", {}):
        return fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
    if name in state.get("stuck", []):
        print(f'Waiting for deployment "{name}" rollout to finish: 1 old replicas are pending termination...')
        return fail("error: timed out waiting for the condition")
    state.setdefault("rolled", []).append(name)
    print(f'deployment "{name}" successfully rolled out')
    return 0


if __name__ == "__main__":
    sys.exit(main())

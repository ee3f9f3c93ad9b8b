#!/usr/bin/env python3
"""Render the zdr Helm chart offline, like `helm template`, and lint it like `helm lint --strict`.

Uses the Helm v4 Go library through helm-python-sdk (PyPI: `pip install helm-python-sdk`,
module `helm_python`): no helm binary, no cluster, no network.

    hack/helm-render.py                                   # default values
    hack/helm-render.py --set watchNamespace=apps --set replicas=2
    hack/helm-render.py -f my-values.yaml --include-crds

Manifests go to stdout as one multi-document YAML stream, in template order, each document
headed by `# Source: <template>`. Lint findings go to stderr.

Exit codes: 0 rendered and lint clean; 1 lint errors (or warnings: lint is strict);
2 bad usage or values, or a template failed to render; 3 helm_python is not importable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_LINT = 1
EXIT_RENDER = 2
EXIT_NO_SDK = 3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base` as Helm merges repeated --set flags: maps recursively."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", default=os.path.join(ROOT, "charts", "zdr"))
    parser.add_argument("--release", default="zdr", help="release name (default zdr)")
    parser.add_argument("--namespace", default="zdr-system", help="release namespace")
    parser.add_argument("-f", "--values", action="append", default=[], metavar="FILE")
    parser.add_argument("--set", action="append", default=[], metavar="K=V")
    parser.add_argument("--set-string", action="append", default=[], metavar="K=V")
    parser.add_argument("--include-crds", action="store_true", help="also print crds/")
    parser.add_argument("--notes", action="store_true", help="print the rendered NOTES.txt to stderr")
    parser.add_argument("--no-lint", action="store_true", help="render only")
    parser.add_argument("--kube-version", default="v1.33.0", help="Kubernetes version for lint")
    args = parser.parse_args()

    try:
        import helm_python as helm
    except ImportError as e:  # the SDK is optional on developer machines
        print(
            f"helm-render: cannot import helm_python ({e}); install it with "
            "`pip install helm-python-sdk`",
            file=sys.stderr,
        )
        return EXIT_NO_SDK

    try:
        values: dict[str, Any] = {}
        for path in args.values:
            with open(path, encoding="utf-8") as f:
                values = deep_merge(values, helm.values_from_yaml(f.read()))
        for expr in args.set:
            values = deep_merge(values, helm.parse_set_string(expr))
        for expr in args.set_string:
            values = deep_merge(values, helm.parse_set_string_values(expr))

        with helm.Chart.load(args.chart) as chart:
            chart.validate_schema(chart.merge_values(values))
            rendered = chart.render(
                values, name=args.release, namespace=args.namespace, is_install=True
            )
            crds = chart.crds if args.include_crds else []
    except (OSError, helm.HelmError) as e:
        print(f"helm-render: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_RENDER

    out = sys.stdout

    def emit(path: str, body: str) -> None:
        # A file may hold several documents; drop the empty ones (disabled templates, comments).
        for doc in ("\n" + body.strip()).split("\n---"):
            doc = doc.strip()
            if any(line.strip() and not line.lstrip().startswith("#") for line in doc.splitlines()):
                out.write(f"---\n# Source: {path}\n{doc}\n")

    for crd in crds:
        emit(crd["filename"], crd["data"])
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            if args.notes:
                print(rendered[path].strip(), file=sys.stderr)
            continue
        emit(path, rendered[path])
    out.flush()

    if args.no_lint:
        return 0
    try:
        report = helm.lint(
            args.chart,
            values,
            strict=True,
            namespace=args.namespace,
            kube_version=args.kube_version,
        )
    except helm.HelmError as e:
        print(f"helm-render: lint failed to run: {e}", file=sys.stderr)
        return EXIT_LINT
    failed = False
    for msg in report.get("messages", []):
        severity = int(msg.get("severity", 0))
        print(
            f"lint [{SEVERITY.get(severity, severity)}] {msg.get('path')}: {msg.get('error')}",
            file=sys.stderr,
        )
        failed |= severity >= 2
    for err in report.get("errors", []):
        print(f"lint [ERROR] {err}", file=sys.stderr)
        failed = True
    return EXIT_LINT if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Translate infra/template.yaml (AWS SAM) to plain CloudFormation JSON, offline.

    python3 scripts/infra/sam_translate.py [TEMPLATE] [-o OUT.json] [--bucket NAME]

What makes the transform work without AWS (it is the same library `sam build`/`sam deploy`
and CloudFormation's transform use, aws-sam-translator from PyPI):
* AWS_DEFAULT_REGION is set (us-east-1 unless already set): the translator needs a region for
  ARNs and partition lookups, nothing is contacted;
* every function's CodeUri (a local crate directory for `sam build`) becomes
  s3://<bucket>/<LogicalId>.zip, the form `sam package` produces and the translator accepts;
* the managed-policy loader is a stub answering an empty map: the template gives each function
  its own role, so no managed policy name has to be resolved (a name the template used would be
  reported by the translator as an error rather than looked up in IAM).

The output is the transformed template as JSON (stdout, or OUT.json). Exit 1 with the
translator's messages when the template is invalid, 2 on usage errors or a missing package.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
DEFAULT_BUCKET = "wf-sam-artifacts"


class StubManagedPolicyLoader:
    """Stands in for the loader that lists AWS managed policies through IAM (never called
    when no function names a managed policy)."""

    def load(self) -> dict[str, str]:
        return {}


def code_key(logical_id: str) -> str:
    return f"{logical_id}.zip"


def load_template(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text(encoding="utf-8"))


def with_s3_code(template: dict, bucket: str) -> dict:
    """A copy of `template` whose functions' code lives at s3://bucket/<LogicalId>.zip."""
    out = copy.deepcopy(template)
    globals_fn = out.get("Globals", {}).get("Function", {})
    globals_fn.pop("CodeUri", None)
    for logical_id, resource in out.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = resource.setdefault("Properties", {})
            if props.get("PackageType") == "Image":
                continue
            props["CodeUri"] = f"s3://{bucket}/{code_key(logical_id)}"
            props.pop("InlineCode", None)
    return out


def translate(template: dict, bucket: str = DEFAULT_BUCKET, parameters: dict | None = None) -> dict:
    """The CloudFormation template SAM makes of `template` (raises on an invalid template)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    return transform(with_s3_code(template, bucket), dict(parameters or {}), StubManagedPolicyLoader())


def translate_file(path: Path, bucket: str = DEFAULT_BUCKET) -> dict:
    return translate(load_template(path), bucket)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("-o", "--output", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help="S3 bucket named in CodeUri")
    args = parser.parse_args(argv)
    try:
        import samtranslator  # noqa: F401
    except ImportError:
        print(
            "sam_translate: aws-sam-translator is not installed "
            "(python3 -m pip install aws-sam-translator)",
            file=sys.stderr,
        )
        return 2
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        transformed = translate_file(args.template, args.bucket)
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"sam_translate: {cause.message}", file=sys.stderr)
        return 1
    text = json.dumps(transformed, indent=2, sort_keys=False) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        resources = transformed.get("Resources", {})
        print(
            f"sam_translate: {args.template} -> {args.output} ({len(resources)} resources)",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Create the stack of infra/template.yaml on moto_server's CloudFormation and print its outputs.

    python3 scripts/infra/moto_stack.py [--template T] [--endpoint URL] [--stack-name NAME]...
                                        [--parameter KEY=VALUE]... [--emit-template OUT.json]

* The template is a SAM template (transformed offline by sam_translate.py) or an already
  transformed CloudFormation JSON.
* moto_server: --endpoint, else $WF_MOTO_URL, else one started here on a free 127.0.0.1 port
  (`python3 -m moto.server`) and stopped on exit. Nothing but that loopback endpoint is ever
  contacted; credentials are fake.
* moto's CloudFormation does not implement every resource type. Resources of these types are
  removed before CreateStack (and reported under "skipped"):
    AWS::Lambda::Url, AWS::SQS::QueuePolicy, AWS::Scheduler::Schedule (moto skips them, and an
    Output reading a skipped resource fails the whole stack), AWS::CloudWatch::Alarm and
    AWS::Scheduler::ScheduleGroup (moto's CloudFormation has no model for them). A schedule
    group is then created through moto's Scheduler API after CREATE_COMPLETE, with the name the
    template gives it (reported under "applied"), so the functions' schedules have their group.
  (A type moto silently ignores and this list misses shows up after CreateStack: every resource
  without a Condition must be in the stack, or the run fails naming it under "not_created".)
  Then, transitively, every resource that refers to a removed one (Ref, Fn::GetAtt, Fn::Sub),
  and every Output that does. Two exceptions keep more of the stack under test:
    - a Lambda function's environment variable that reads a removed resource (the api's
      WF_WEBHOOK_BASE_URL reads the webhook's function URL) gets the placeholder
      "moto-skipped:<LogicalId>" instead of the function being removed;
    - a DependsOn on a removed resource is dropped.
* Lambda functions ARE created: their code (s3://<bucket>/<LogicalId>.zip, see sam_translate.py)
  is uploaded to moto's S3 first as a small zip holding a placeholder `bootstrap`; moto never runs
  it (invoking would need Docker).
* A list item `Fn::If [Cond, X, Ref AWS::NoValue]` (the executions table's filter indexes) is
  resolved with the parameters ("adjusted"): moto keeps AWS::NoValue in a list as null.
* The SQS event source mapping is created disabled ("adjusted"): moto's mapping invokes the
  function inside SendMessage itself, which would consume every task the tests send.
* moto's CloudFormation ignores a table's TimeToLiveSpecification and
  PointInTimeRecoverySpecification. After CREATE_COMPLETE they are applied from the template
  through the DynamoDB API (reported under "applied"), so the tables look as AWS would make them.
  Likewise it stores a role's inline policies as a Python repr, which its own IAM enforcement
  cannot read: they are put again as JSON documents (also under "applied").

Output (stdout, JSON):
  {"endpoint", "region",
   "stacks": [{"name", "status", "outputs": {OutputKey: value}, "resources": {LogicalId: physical id},
               "functions": {LogicalId: {name, arn, runtime, handler, timeout, memory, role,
                             reserved_concurrency, environment, policy_statements}},
               "roles": {LogicalId: {name, arn, policies: {PolicyName: document},
                                     attached_policies: [PolicyArn]}},
               "event_source_mappings": [{function, event_source_arn, batch_size,
                                          function_response_types, maximum_concurrency, state}]}],
   "skipped": {LogicalId: reason}, "adjusted": [...], "applied": [...]}
Exit 0 when every stack reached CREATE_COMPLETE, 1 otherwise (stack events on stderr), 2 on
usage errors or missing packages.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_TEMPLATE = HERE.parents[1] / "infra" / "template.yaml"
REGION = "us-east-1"

# Types moto's CloudFormation skips, plus the ones it has no model for at all.
SKIPPED_TYPES = {
    "AWS::Lambda::Url": "moto's CloudFormation skips AWS::Lambda::Url",
    "AWS::SQS::QueuePolicy": "moto's CloudFormation skips AWS::SQS::QueuePolicy",
    "AWS::Scheduler::Schedule": "moto's CloudFormation skips AWS::Scheduler::Schedule",
    "AWS::CloudWatch::Alarm": "moto's CloudFormation has no AWS::CloudWatch::Alarm",
    "AWS::Scheduler::ScheduleGroup": "moto's CloudFormation has no AWS::Scheduler::ScheduleGroup "
    "(created through the Scheduler API instead)",
}


def log(message: str) -> None:
    print(f"moto_stack: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Template preparation


def references(node, ids: set[str]) -> set[str]:
    """Logical ids of `ids` that `node` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()

    def walk(n) -> None:
        if isinstance(n, dict):
            for key, value in n.items():
                if key == "Ref" and isinstance(value, str) and value in ids:
                    found.add(value)
                elif key == "Fn::GetAtt":
                    target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                    if target in ids:
                        found.add(target)
                elif key == "Fn::Sub":
                    text = value[0] if isinstance(value, list) else value
                    if isinstance(text, str):
                        for ident in ids:
                            if "${" + ident + "}" in text or "${" + ident + "." in text:
                                found.add(ident)
                    if isinstance(value, list) and len(value) > 1:
                        walk(value[1])
                    continue
                walk(value)
        elif isinstance(n, list):
            for item in n:
                walk(item)

    walk(node)
    return found


def condition_value(template: dict, parameters: dict[str, str], node):
    """The value of a condition expression with the stack's parameters (defaults otherwise);
    None when it uses something this does not evaluate."""
    if isinstance(node, (str, int, float, bool)):
        return str(node)
    if not isinstance(node, dict) or len(node) != 1:
        return None
    (fn, arg), = node.items()
    value = lambda n: condition_value(template, parameters, n)  # noqa: E731
    if fn == "Ref":
        if arg in parameters:
            return str(parameters[arg])
        default = template.get("Parameters", {}).get(arg, {}).get("Default")
        return None if default is None else str(default)
    if fn == "Condition":
        return value(template.get("Conditions", {}).get(arg))
    if fn == "Fn::Equals":
        a, b = value(arg[0]), value(arg[1])
        return None if a is None or b is None else a == b
    if fn == "Fn::Not":
        v = value(arg[0])
        return None if v is None else not v
    if fn in ("Fn::And", "Fn::Or"):
        vs = [value(a) for a in arg]
        if any(v is None for v in vs):
            return None
        return all(vs) if fn == "Fn::And" else any(vs)
    return None


def drop_novalue_list_items(template: dict, parameters: dict[str, str], node) -> int:
    """Resolve, in every list under `node`, the items `Fn::If [cond, x, Ref AWS::NoValue]`:
    moto keeps an AWS::NoValue list item as null (a table's AttributeDefinitions then fail),
    CloudFormation drops it. Returns how many were resolved."""
    n = 0
    if isinstance(node, dict):
        for v in node.values():
            n += drop_novalue_list_items(template, parameters, v)
    elif isinstance(node, list):
        kept = []
        for item in node:
            branch = item.get("Fn::If") if isinstance(item, dict) and len(item) == 1 else None
            novalue = {"Ref": "AWS::NoValue"}
            if isinstance(branch, list) and len(branch) == 3 and novalue in branch[1:]:
                chosen = condition_value(template, parameters, {"Condition": branch[0]})
                if chosen is not None:
                    n += 1
                    item = branch[1] if chosen else branch[2]
                    if item == novalue:
                        continue
            kept.append(item)
            n += drop_novalue_list_items(template, parameters, item)
        node[:] = kept
    return n


def prepare_for_moto(template: dict, parameters: dict[str, str] | None = None) -> tuple[dict, dict, list]:
    """A copy of `template` that moto's CloudFormation creates completely; what was removed
    (LogicalId -> reason) and what was changed."""
    out = copy.deepcopy(template)
    resources: dict = out.get("Resources", {})
    skipped: dict[str, str] = {}
    adjusted: list[str] = []
    resolved = drop_novalue_list_items(out, parameters or {}, resources)
    if resolved:
        adjusted.append(
            f"{resolved} list items Fn::If -> AWS::NoValue resolved with the parameters "
            "(moto keeps AWS::NoValue in a list as null)"
        )
    for logical_id, resource in resources.items():
        rtype = resource.get("Type", "")
        if rtype in SKIPPED_TYPES:
            skipped[logical_id] = SKIPPED_TYPES[rtype]
    # Environment variables that read a removed resource get a placeholder; anything else that
    # refers to one is removed with it, until nothing changes.
    changed = True
    while changed:
        changed = False
        gone = set(skipped)
        for logical_id, resource in resources.items():
            if logical_id in skipped:
                continue
            props = resource.get("Properties", {})
            if resource.get("Type") == "AWS::Lambda::Function":
                variables = props.get("Environment", {}).get("Variables", {})
                for name, value in list(variables.items()):
                    hit = references(value, gone)
                    if hit:
                        variables[name] = "moto-skipped:" + ",".join(sorted(hit))
                        adjusted.append(
                            f"{logical_id}: environment variable {name} reads skipped "
                            f"{', '.join(sorted(hit))}: placeholder value"
                        )
            hit = references(resource, gone)
            if hit:
                skipped[logical_id] = f"refers to skipped {', '.join(sorted(hit))}"
                changed = True
    for logical_id in skipped:
        resources.pop(logical_id, None)
    for logical_id, resource in resources.items():
        depends = resource.get("DependsOn")
        if depends is None:
            continue
        listed = [depends] if isinstance(depends, str) else list(depends)
        kept = [d for d in listed if d not in skipped]
        if len(kept) != len(listed):
            adjusted.append(f"{logical_id}: DependsOn on skipped resources dropped")
            if kept:
                resource["DependsOn"] = kept
            else:
                resource.pop("DependsOn")
    outputs: dict = out.get("Outputs", {})
    for key in list(outputs):
        hit = references(outputs[key], set(skipped))
        if hit:
            skipped[f"Outputs.{key}"] = f"reads skipped {', '.join(sorted(hit))}"
            outputs.pop(key)
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            resource.setdefault("Properties", {})["Enabled"] = False
            adjusted.append(
                f"{logical_id}: created disabled (moto's mapping would invoke the function "
                "inside SendMessage and consume the queue)"
            )
    return out, skipped, adjusted


# ---------------------------------------------------------------------------------------------
# moto_server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/", timeout=2) as r:
            return 200 <= r.status < 300
    except Exception:  # noqa: BLE001
        return False


def start_moto() -> tuple[subprocess.Popen, str]:
    last = "moto_server did not start"
    for _ in range(3):
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last = f"moto_server exited with {proc.returncode}"
                break
            if answers(endpoint):
                return proc, endpoint
            time.sleep(0.1)
        else:
            last = "moto_server did not answer within 30 s"
        stop(proc)
    raise RuntimeError(last)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# The stack


def client(service: str, endpoint: str, region: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token=None,
    )


def created(template: dict, resources: dict[str, str], rtype: str):
    """The template's resources of type `rtype` that the stack created: (logical id, physical
    id, resource) each."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == rtype and logical_id in resources:
            yield logical_id, resources[logical_id], resource


def placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'placeholder: moto never runs this' >&2\nexit 1\n")
    return buf.getvalue()


def upload_code(template: dict, endpoint: str, region: str) -> None:
    """Put a placeholder object wherever a function's Code points (moto's Lambda checks it)."""
    s3 = client("s3", endpoint, region)
    body = placeholder_zip()
    made: set[str] = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        code = resource.get("Properties", {}).get("Code", {})
        bucket, key = code.get("S3Bucket"), code.get("S3Key")
        if not (isinstance(bucket, str) and isinstance(key, str)):
            continue
        if bucket not in made:
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            made.add(bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def create_stack(cfn, name: str, body: str, parameters: dict[str, str], timeout: float) -> dict:
    cfn.create_stack(
        StackName=name,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            return stack
        time.sleep(0.2)


def stack_resources(cfn, name: str) -> dict[str, str]:
    out = {}
    for r in cfn.describe_stack_resources(StackName=name)["StackResources"]:
        # moto lists a resource whose Condition is false as an entry without ids: skip those.
        if "LogicalResourceId" in r:
            out[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
    return out


def policy_document(doc) -> dict:
    """A role's inline policy as moto returns it: JSON, or a Python repr when the resolved
    template held a None (what moto makes of an AWS::NoValue list item); None items dropped."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError:
            doc = ast.literal_eval(doc)
    statements = doc.get("Statement", [])
    if isinstance(statements, list):
        doc["Statement"] = [st for st in statements if st is not None]
    return doc


def describe_functions_and_roles(template: dict, resources: dict[str, str], endpoint: str, region: str) -> dict:
    """What the stack's functions and roles look like on moto: configuration, environment,
    resource policy, event source mappings, inline role policies (ARNs resolved)."""
    lam = client("lambda", endpoint, region)
    iam = client("iam", endpoint, region)
    functions, roles, mappings = {}, {}, []
    for logical_id, resource in template.get("Resources", {}).items():
        rtype = resource.get("Type")
        physical = resources.get(logical_id)
        if not physical:
            continue
        if rtype == "AWS::Lambda::Function":
            conf = lam.get_function_configuration(FunctionName=physical)
            try:
                policy = json.loads(lam.get_policy(FunctionName=physical)["Policy"])
            except lam.exceptions.ResourceNotFoundException:
                policy = {"Statement": []}
            reserved = lam.get_function_concurrency(FunctionName=physical).get("ReservedConcurrentExecutions")
            functions[logical_id] = {
                "name": conf["FunctionName"],
                "arn": conf["FunctionArn"],
                "runtime": conf.get("Runtime"),
                "handler": conf.get("Handler"),
                "timeout": conf.get("Timeout"),
                "memory": conf.get("MemorySize"),
                "role": conf.get("Role"),
                "reserved_concurrency": reserved,
                # moto keeps numbers from Number parameters as numbers: Lambda has strings.
                "environment": {k: str(v) for k, v in conf.get("Environment", {}).get("Variables", {}).items()},
                "policy_statements": policy.get("Statement", []),
            }
            for m in lam.list_event_source_mappings(FunctionName=physical)["EventSourceMappings"]:
                mappings.append({
                    "function": logical_id,
                    "event_source_arn": m.get("EventSourceArn"),
                    "batch_size": m.get("BatchSize"),
                    "function_response_types": m.get("FunctionResponseTypes", []),
                    "maximum_concurrency": m.get("ScalingConfig", {}).get("MaximumConcurrency"),
                    "state": m.get("State"),
                })
        elif rtype == "AWS::IAM::Role":
            names = iam.list_role_policies(RoleName=physical)["PolicyNames"]
            attached = iam.list_attached_role_policies(RoleName=physical)["AttachedPolicies"]
            roles[logical_id] = {
                "name": physical,
                "arn": iam.get_role(RoleName=physical)["Role"]["Arn"],
                "policies": {
                    n: policy_document(iam.get_role_policy(RoleName=physical, PolicyName=n)["PolicyDocument"])
                    for n in names
                },
                "attached_policies": [a["PolicyArn"] for a in attached],
            }
    return {"functions": functions, "roles": roles, "event_source_mappings": mappings}


def store_role_policies_as_json(template: dict, resources: dict[str, str], endpoint: str, region: str) -> list[str]:
    """Inline role policies as JSON documents. moto's CloudFormation stores them as a Python
    repr (single quotes, None for an AWS::NoValue list item), which moto's own IAM enforcement
    cannot parse (every request of such a role would fail with a 500): each one is put again,
    unchanged but for the None items dropped, as IAM would hold it."""
    iam = client("iam", endpoint, region)
    applied = []
    for logical_id, role, _ in created(template, resources, "AWS::IAM::Role"):
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            stored = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            if not isinstance(stored, str):
                continue
            try:
                json.loads(stored)
                continue
            except json.JSONDecodeError:
                pass
            iam.put_role_policy(RoleName=role, PolicyName=name,
                                PolicyDocument=json.dumps(policy_document(stored)))
            applied.append(f"{logical_id}: inline policy {name!r} stored as JSON")
    return applied


def apply_table_settings(template: dict, resources: dict[str, str], endpoint: str, region: str) -> list[str]:
    """TTL and point-in-time recovery as the template declares them (moto's CloudFormation
    drops both)."""
    ddb = client("dynamodb", endpoint, region)
    applied = []
    for logical_id, table, resource in created(template, resources, "AWS::DynamoDB::Table"):
        props = resource.get("Properties", {})
        ttl = props.get("TimeToLiveSpecification")
        if isinstance(ttl, dict) and ttl.get("Enabled") in (True, "true"):
            current = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") != "ENABLED":
                ddb.update_time_to_live(
                    TableName=table,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            applied.append(f"{logical_id}: TTL on {ttl['AttributeName']!r}")
        pitr = props.get("PointInTimeRecoverySpecification")
        if isinstance(pitr, dict) and pitr.get("PointInTimeRecoveryEnabled") in (True, "true"):
            ddb.update_continuous_backups(
                TableName=table,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            applied.append(f"{logical_id}: point-in-time recovery")
    return applied


def create_schedule_groups(template: dict, stack_name: str, endpoint: str, region: str) -> list[str]:
    """The template's schedule groups (skipped: moto's CloudFormation has no model for them),
    created through the Scheduler API. A name is a string or an Fn::Sub of pseudo parameters."""
    scheduler = client("scheduler", endpoint, region)
    applied = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Scheduler::ScheduleGroup" or "Condition" in resource:
            continue
        name = resource.get("Properties", {}).get("Name")
        if isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str):
            name = (name["Fn::Sub"].replace("${AWS::StackName}", stack_name)
                    .replace("${AWS::Region}", region))
        if not isinstance(name, str) or "${" in name:
            raise RuntimeError(f"{logical_id}: cannot resolve the schedule group's name {name!r}")
        scheduler.create_schedule_group(Name=name)
        applied.append(f"{logical_id}: schedule group {name!r} created through the Scheduler API")
    return applied


def print_failure(cfn, name: str) -> None:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except Exception as e:  # noqa: BLE001
        log(f"{name}: no stack events ({e})")
        return
    for ev in reversed(events):
        reason = ev.get("ResourceStatusReason") or ""
        log(f"{name}: {ev['LogicalResourceId']} {ev['ResourceStatus']} {reason}".rstrip())


# ---------------------------------------------------------------------------------------------


def load(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        template = json.loads(text)
    else:
        from samtranslator.yaml_helper import yaml_parse

        template = yaml_parse(text)
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    if "AWS::Serverless-2016-10-31" in transforms:
        import sam_translate

        template = sam_translate.translate(template)
    return template


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--endpoint", default=os.environ.get("WF_MOTO_URL") or None,
                        help="moto_server URL (default: $WF_MOTO_URL, else start one)")
    parser.add_argument("--stack-name", action="append", dest="stacks",
                        help="stack to create (repeat for several; default wf-infra-check)")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--region", default=REGION)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per stack")
    parser.add_argument("--emit-template", type=Path,
                        help="also write the template given to moto (after removals) here")
    args = parser.parse_args(argv)

    if args.endpoint and not args.endpoint.startswith(("http://127.", "http://localhost", "http://[::1]")):
        log(f"refusing endpoint {args.endpoint}: only a loopback moto_server is allowed")
        return 2
    parameters = {}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            log(f"--parameter {item!r}: expected KEY=VALUE")
            return 2
        parameters[key] = value
    try:
        import boto3  # noqa: F401
    except ImportError:
        log("boto3 is missing (python3 -m pip install 'moto[server]' brings it)")
        return 2

    # Never reach AWS: fake credentials, no instance metadata, no shared config profile.
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": args.region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)

    try:
        template = load(args.template)
    except ImportError as e:
        log(f"{e} (python3 -m pip install aws-sam-translator)")
        return 2
    except Exception as e:  # noqa: BLE001 - the translator's own messages say what is wrong
        causes = getattr(e, "causes", None)
        for cause in causes or [e]:
            log(f"transform failed: {getattr(cause, 'message', cause)}")
        return 1
    prepared, skipped, adjusted = prepare_for_moto(template, parameters)
    if args.emit_template:
        args.emit_template.write_text(json.dumps(prepared, indent=2) + "\n", encoding="utf-8")

    proc = None
    endpoint = args.endpoint
    try:
        if not endpoint:
            proc, endpoint = start_moto()
            log(f"started moto_server at {endpoint}")
        upload_code(prepared, endpoint, args.region)
        cfn = client("cloudformation", endpoint, args.region)
        body = json.dumps(prepared)
        stacks = []
        applied: list[str] = []
        ok = True
        for name in args.stacks or ["wf-infra-check"]:
            stack = create_stack(cfn, name, body, parameters, args.timeout)
            status = stack["StackStatus"]
            entry = {"name": name, "status": status, "outputs": {}, "resources": {}}
            if status != "CREATE_COMPLETE":
                ok = False
                log(f"{name}: {status} {stack.get('StackStatusReason', '')}".rstrip())
                print_failure(cfn, name)
            else:
                entry["outputs"] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
                entry["resources"] = stack_resources(cfn, name)
                # moto quietly ignores types it has no model for: a resource without a Condition
                # that is not in the stack is one of those.
                absent = sorted(
                    f"{logical_id} ({r.get('Type')})"
                    for logical_id, r in prepared.get("Resources", {}).items()
                    if "Condition" not in r and logical_id not in entry["resources"]
                )
                if absent:
                    ok = False
                    entry["not_created"] = absent
                    log(f"{name}: moto did not create {', '.join(absent)}: add the type to SKIPPED_TYPES")
                applied += [f"{name}/{a}" for a in apply_table_settings(prepared, entry["resources"], endpoint, args.region)]
                applied += [f"{name}/{a}" for a in create_schedule_groups(template, name, endpoint, args.region)]
                applied += [f"{name}/{a}" for a in store_role_policies_as_json(prepared, entry["resources"], endpoint, args.region)]
                entry.update(describe_functions_and_roles(prepared, entry["resources"], endpoint, args.region))
            stacks.append(entry)
        print(json.dumps({
            "endpoint": endpoint,
            "region": args.region,
            "stacks": stacks,
            "skipped": skipped,
            "adjusted": adjusted,
            "applied": applied,
        }, indent=2))
        return 0 if ok else 1
    except RuntimeError as e:
        log(str(e))
        return 1
    finally:
        if proc is not None:
            stop(proc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

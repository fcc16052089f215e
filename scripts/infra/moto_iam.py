"""moto's IAM enforcement, completed for the services wf uses (DynamoDB, SQS, EventBridge, SSM,
EventBridge Scheduler).

Loaded before scripts/moto-server.py by `Moto::start_with_iam` (tests/src/moto.rs prepends this
file to the launcher); enforcement starts when the test posts `0` to `/moto-api/reset-auth`
(moto's INITIAL_NO_AUTH_ACTION_COUNT: requests after that many are authorized against the
caller's IAM policies; the stack is created and the roles assumed before, with moto's
unchecked default credentials).

What moto 5 does on its own once enforcement is on: it authenticates the caller (an IAM user's
access key, or the keys of an STS AssumeRole session: then the assumed role's inline and attached
policies apply), checks the SigV4 signature, and evaluates Allow/Deny statements by action and
resource with `*` wildcards. What it lacks for our services, and what this file adds:

* Resources. moto resolves a request's resource ARN only for SQS (the queue) and IAM/STS; every
  DynamoDB, EventBridge and SSM request is checked against "*", so a grant scoped to a table, an
  index, a bus, a rule or a parameter never matches and everything is refused. Here each request
  is checked against the ARNs IAM uses: `table/T` (`table/T/index/I` for a Query or Scan of an
  index), `event-bus/B`, `rule/N` (default bus) or `rule/B/N`, `parameter/P`, and for
  EventBridge Scheduler (a REST protocol: the name is in the path, the group in the body or the
  query) `schedule/G/N` (ListSchedules has no resource: "*").
* Actions IAM does not have. A DynamoDB transaction is authorized per item (PutItem, UpdateItem,
  DeleteItem, ConditionCheckItem; GetItem for TransactGetItems) on each item's table, a batch on
  each table it names; SQS's SendMessageBatch / DeleteMessageBatch /
  ChangeMessageVisibilityBatch need SendMessage / DeleteMessage / ChangeMessageVisibility.
  moto checked the operation name itself (`dynamodb:TransactWriteItems`), which no policy names.
* The error shape. moto answers a refusal as XML, which JSON-protocol SDKs (all four services
  here) cannot read: a refusal is answered as AWS does, HTTP 400 with
  `{"__type": "AccessDeniedException", "message": "User: <arn> is not authorized to perform:
  <action> on resource: <arn>"}` (UnrecognizedClientException, InvalidSignatureException for
  the authentication failures); Scheduler's (REST JSON) the same body with HTTP 403.

Not enforced by moto at all: `iam:PassRole` (the scheduler role a CreateSchedule passes, with
its `iam:PassedToService` condition); the test's evaluator checks it on the recorded calls.

Still not evaluated by moto (the test's own evaluator checks these on the recorded calls):
condition keys other than StringEquals in trust policies, so `dynamodb:LeadingKeys` and any
`ForAllValues:`/`ForAnyValue:` condition count as met; resource-based policies (queue
policies, Lambda permissions); permission boundaries and SCPs.
"""

import json
from urllib.parse import urlparse

from moto import settings as _moto_settings
from moto.core.authorization import ActionAuthenticatorMixin as _Auth
from moto.core.exceptions import JsonRESTError as _JsonRESTError
from moto.iam.access_control import IAMRequest as _IAMRequest
from moto.utilities.utils import get_partition as _partition


def _signing_service(headers) -> str:
    """The service of the request's SigV4 credential scope (`<key>/<date>/<region>/<service>/aws4_request`)."""
    auth = headers.get("Authorization") or ""
    scope = auth.partition("Credential=")[2].partition(",")[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def _dynamodb(op, body, region, account, resource):
    arn = f"arn:{_partition(region)}:dynamodb:{region}:{account}:table/"

    def table(name, index=None):
        base = name if name.startswith("arn:") else arn + name
        return f"{base}/index/{index}" if index else base

    if op == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem"}
        return [(kinds[k], table(v["TableName"]))
                for item in body.get("TransactItems", []) for k, v in item.items() if k in kinds]
    if op == "TransactGetItems":
        return [("GetItem", table(item["Get"]["TableName"]))
                for item in body.get("TransactItems", []) if "Get" in item]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(op, table(name)) for name in body.get("RequestItems", {})]
    if isinstance(body.get("TableName"), str):
        return [(op, table(body["TableName"], body.get("IndexName")))]
    return [(op, resource)]


def _events(op, body, region, account, resource):
    base = f"arn:{_partition(region)}:events:{region}:{account}"

    def bus_name(bus):
        if not bus:
            return "default"
        return bus.split(":event-bus/", 1)[1] if bus.startswith("arn:") else bus

    def bus_arn(bus):
        return f"{base}:event-bus/{bus_name(bus)}"

    def rule_arn(name, bus):
        b = bus_name(bus)
        return f"{base}:rule/{name}" if b == "default" else f"{base}:rule/{b}/{name}"

    if op == "PutEvents":
        buses = sorted({bus_arn(e.get("EventBusName")) for e in body.get("Entries", [])})
        return [(op, b) for b in buses] or [(op, bus_arn(None))]
    if op in ("PutRule", "DeleteRule", "DescribeRule", "EnableRule", "DisableRule"):
        return [(op, rule_arn(body.get("Name", ""), body.get("EventBusName")))]
    if op in ("PutTargets", "RemoveTargets", "ListTargetsByRule"):
        return [(op, rule_arn(body.get("Rule", ""), body.get("EventBusName")))]
    if op in ("DescribeEventBus", "DeleteEventBus"):
        return [(op, bus_arn(body.get("Name")))]
    return [(op, resource)]


def _ssm(op, body, region, account, resource):
    base = f"arn:{_partition(region)}:ssm:{region}:{account}:parameter"

    def param(name):
        if name.startswith("arn:"):
            return name
        return base + (name if name.startswith("/") else "/" + name)

    if op == "GetParametersByPath":
        return [(op, param(body.get("Path", "/")))]
    if op in ("GetParameters", "DeleteParameters"):
        return [(op, param(n)) for n in body.get("Names", [])]
    if isinstance(body.get("Name"), str):
        return [(op, param(body["Name"]))]
    return [(op, resource)]


_SQS_BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs(op, body, region, account, resource):
    # moto resolved the queue's ARN already (SQSResponse._determine_resource).
    return [(_SQS_BATCHES.get(op, op), resource)]


def _scheduler(op, body, region, account, resource, request):
    """`schedule/<group>/<name>`: the name is the last path segment (`/schedules/<name>`), the
    group is `GroupName` in the body (create, update) or `groupName` in the query (get, delete),
    Scheduler's `default` when absent."""
    if op not in ("CreateSchedule", "UpdateSchedule", "GetSchedule", "DeleteSchedule"):
        return [(op, resource)]
    name = urlparse(request.uri).path.rstrip("/").rsplit("/", 1)[-1]
    group = body.get("GroupName") or (request.querystring.get("groupName") or [None])[0] or "default"
    return [(op, f"arn:{_partition(region)}:scheduler:{region}:{account}:schedule/{group}/{name}")]


_RESOLVERS = {"dynamodb": _dynamodb, "events": _events, "ssm": _ssm, "sqs": _sqs,
              "scheduler": _scheduler}

# moto's error code -> the JSON protocols' exception name.
_JSON_CODES = {
    "AccessDenied": "AccessDeniedException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}

_original_authorize = _Auth._authenticate_and_authorize_normal_action


def _authorize(self, resource="*"):
    service = _signing_service(self.headers)
    resolver = _RESOLVERS.get(service)
    enforcing = _Auth.request_count >= _moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    if resolver is None or not enforcing:
        return _original_authorize(self, resource)
    try:
        try:
            body = json.loads(self.raw_body or b"{}")
        except (TypeError, ValueError):
            body = {}
        if not isinstance(body, dict):
            body = {}
        extra = (self,) if service == "scheduler" else ()
        pairs = resolver(self._get_action(), body, self.region, self.current_account, resource, *extra)
        parsed = urlparse(self.uri)
        path = parsed.path + ("?" + parsed.query if parsed.query else "")
        for action, arn in pairs:
            request = _IAMRequest(
                account_id=self.current_account,
                method=self.method,
                path=path,
                # A REST GET has no body: moto's `data` is then the parsed query, which would be
                # signed as a form body.
                data="" if service == "scheduler" else self.data,
                body=self.raw_body,
                headers=self.headers,
                action=action,
            )
            request.check_signature()
            try:
                request.check_action_permitted(arn)
            except Exception as e:  # noqa: BLE001 - moto's AccessDeniedError, re-raised with the resource
                if getattr(e, "error_type", None) == "AccessDenied":
                    e.message = f"{e.message} on resource: {arn}"
                raise
    except Exception as e:  # noqa: BLE001
        code = getattr(e, "error_type", None)
        if code in _JSON_CODES and (self.headers.get("X-Amz-Target") or service == "scheduler"):
            error = _JsonRESTError(_JSON_CODES[code], e.message)
            error.code = 403 if service == "scheduler" else 400
            raise error from e
        raise


_Auth._authenticate_and_authorize_normal_action = _authorize

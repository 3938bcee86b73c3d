"""The request and response models of the API, written once.

The same classes validate the traffic (requests always; responses when VALIDATE_RESPONSES is on, which the
tests and the default configuration keep on) and generate the OpenAPI document (web/api/openapi.py), so the
document cannot drift from what the server accepts and answers.

Requests forbid unknown members: a misspelt optional field (`asof`) is a 422 naming it, not a silent default.
Responses allow extra members: a later version may add fields without breaking a strict client's schema.
Numbers in decisions are `int | float`, never `float`: the engine prints whole amounts as integers
(48000000, not 48000000.0) and a model must not turn one into the other.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from web.services.customers import EARLIEST_DATE, MAX_DAYS_PAST_DUE, latest_business_date

Number = int | float
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=500)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Outcome = Literal["approve", "refer", "decline"]
Severity = Literal["low", "medium", "high", "critical"]
CreditEventKind = Literal["repayment", "past_due", "default", "restructuring"]
AlertStatus = Literal["open", "acknowledged", "resolved"]

IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,200}$"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- errors ---------------------------------------------------------------------------------------------------


class ErrorProblem(Answer):
    path: str = Field(description="JSONPath of the offending member of the request, `$` for the request itself")
    code: str
    message: str


class ErrorBody(Answer):
    code: str = Field(description="a stable, machine-readable code")
    message: str
    problems: list[ErrorProblem]


class ErrorResponse(BaseModel):
    """The one shape of every answer that is not a success."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorBody


# --- decisions --------------------------------------------------------------------------------------------------


# A complete case (examples/corporate-approve.json): the docs show it, and schema-driven tests start from it.
EXAMPLE_CASE: dict[str, Any] = {
    "application": {"amount": 45000000, "tenor_months": 60, "product": "term_loan", "purpose": "New stamping lines"},
    "borrower": {
        "name": "Example Precision Stamping Co., Ltd.",
        "registered_capital": 80000000,
        "industry": "manufacturing",
        "region": "Zhejiang",
        "years_in_business": 15,
        "lifecycle_stage": "maturity",
    },
    "financials": {
        "total_assets": 500000000,
        "total_liabilities": 260000000,
        "current_assets": 180000000,
        "current_liabilities": 100000000,
        "revenue": 432000000,
        "ebitda": 70000000,
        "net_income": 28000000,
        "operating_cash_flow": 52000000,
        "debt_service": 40000000,
        "audited": True,
        "audit_opinion": "unqualified",
    },
    "financials_prev": {"total_assets": 480000000, "total_liabilities": 260000000, "revenue": 400000000},
    "credit": {"max_dpd_12m": 0, "defaults_5y": 0, "restructurings_5y": 0, "existing_exposure": 10000000},
}


class DecisionRequest(Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy": "corporate-term-loan",
                    "case": EXAMPLE_CASE,
                    "as_of": "2026-06-30",
                    "application_id": "APP-2026-0001",
                }
            ]
        },
    )
    policy: Name = Field(description="the policy to decide under, e.g. `project-finance`")
    case: dict[str, Any] = Field(
        description="the facts: an object of fact objects, as the policy's fact declarations describe "
        "(`application`, `borrower`, `financials`, ...)",
    )
    as_of: dt.date | None = Field(None, description="business date that picks the versions in force (default today)")
    application_id: Identifier | None = Field(None, description="the caller's application number, for its status")


class Reason(Answer):
    code: str
    text: str
    rule: str | None


class Alert(Answer):
    code: str
    severity: str
    message: str


class VersionRef(Answer):
    name: str
    version: int | None
    digest: str


class Because(Answer):
    test: str
    values: dict[str, Any]


class Fired(Answer):
    rule: str
    ruleset: str
    outputs: dict[str, Any]
    because: list[Because]


class EvaluationFailure(Answer):
    code: str
    message: str


class Decision(Answer):
    """The Decision of design section 7, plus the id under which the audit trail recorded it."""

    decision_id: str
    outcome: Outcome
    tier: str | None
    score: Number | None
    pd: Number | None
    limit: Number | None
    rate: Number | None
    reasons: list[Reason]
    conditions: list[str]
    alerts: list[Alert]
    policy: VersionRef
    rulesets: list[VersionRef]
    scorecard: VersionRef | None
    as_of: dt.date
    engine: str
    fired: list[Fired]
    outputs: dict[str, Any] | None = None
    error: EvaluationFailure | None = Field(None, description="present when evaluation failed and on_error applied")


class ReviewRequest(Request):
    outcome: Literal["approve", "decline"] = Field(description="the underwriter's decision")
    reason: Text = Field(description="why: kept in the audit trail with the override")
    limit: Annotated[float, Field(ge=0, le=1e15)] | None = None
    rate: Annotated[float, Field(ge=0, le=1)] | None = None
    conditions: Annotated[list[ShortText], Field(max_length=50)] | None = None


class Review(Answer):
    review_id: str | None = Field(
        description="the override's record in the decision chain; null while it awaits confirmation"
    )
    decision_id: str
    status: Literal["effective", "awaiting-confirmation"]
    outcome_from: Outcome
    outcome_to: Literal["approve", "decline"]
    limit_from: Number | None
    limit_to: Number | None
    rate_from: Number | None
    rate_to: Number | None
    conditions: list[str]
    reason: str
    by: str = Field(description="the underwriter who proposed the override")
    confirmed_by: str | None = Field(description="the second underwriter, when the override needs one")
    needs_confirmation: bool
    application_status: ApplicationStatus | None = None


class ReplayRequest(Request):
    against: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}@[0-9]{1,9}$")] | None = Field(
        None,
        description="NAME@N: replay with this stored version in place of the recorded version of NAME "
        "(default: exactly the recorded versions)",
    )


class Difference(Answer):
    path: str
    recorded: Any = None
    replayed: Any = None


class Replay(Answer):
    decision_id: str
    identical: bool = Field(description="the replayed decision equals the recorded one, field for field")
    differences: list[Difference]
    against: str | None


class Caller(Answer):
    kind: str
    id: str


class ReviewState(Answer):
    status: Literal["effective", "awaiting-confirmation"]
    outcome: Literal["approve", "decline"]
    limit: Number | None
    rate: Number | None
    conditions: list[str]
    reason: str
    by: str
    confirmed_by: str | None
    review_id: str | None


class DecisionRecord(Answer):
    """A decision as the audit trail holds it: who asked, when, under which rules, the input and the decision."""

    decision_id: str
    seq: int
    at: str = Field(description="when it was recorded, UTC")
    caller: Caller
    application_id: str | None
    policy: VersionRef
    engine: str = Field(description="the engine and back-end; `override` for an underwriter's override record")
    as_of: dt.date
    input: dict[str, Any] = Field(description="the case (an override's facts, for an override record)")
    decision: dict[str, Any] = Field(description="the Decision of design section 7, as answered")
    masked: list[Any] = Field(description="the spots masked as sensitive (`***`) in this copy")
    unmasked: bool
    hash: str
    prev_hash: str
    review: ReviewState | None = Field(None, description="the underwriter's review of this decision, if any")


# --- applications -----------------------------------------------------------------------------------------------


class ApplicationStatus(Answer):
    """What the borrower may see: no score, no reasons, no rule names."""

    application_id: str
    status: Literal["received", "decided", "in-review"]
    outcome: Literal["approve", "decline"] | None = Field(description="set once the application is decided")
    updated_at: dt.datetime | None


# --- monitoring ---------------------------------------------------------------------------------------------------


def _business_date(day: dt.date) -> dt.date:
    latest = latest_business_date()
    if not EARLIEST_DATE <= day <= latest:
        raise PydanticCustomError(
            "date_out_of_range",
            "as_of must be between {earliest} and a year after today ({latest})",
            {"earliest": EARLIEST_DATE.isoformat(), "latest": latest.isoformat()},
        )
    return day


# The business date of a monitoring run. Today (UTC) is checked on every request, so no schema bound can say it.
BusinessDate = Annotated[
    dt.date,
    AfterValidator(_business_date),
    Field(description="business date of the run (default today); from 1900-01-01 to a year after today (UTC)"),
]
# A statement item, in the customer's currency. The fact declarations bound most items further (assets are never
# negative); this keeps out what no declaration can mean: JSON's 1e400 (infinity) and magnitudes beyond any balance
# sheet (1e15 CNY is some twenty times the largest bank's).
StatementAmount = Annotated[float, Field(ge=-1e15, le=1e15, allow_inf_nan=False)]


class MonitoringRequest(Request):
    customer_id: Identifier | None = Field(None, description="a stored customer: its monitoring policy is re-run")
    case: dict[str, Any] | None = Field(None, description="a case: the early-warning rulesets in force run on it")
    policy: Name | None = Field(None, description="with `case`: run this policy instead of the early-warning rulesets")
    as_of: BusinessDate | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> MonitoringRequest:
        if (self.customer_id is None) == (self.case is None):
            raise ValueError("give exactly one of customer_id and case")
        if self.policy is not None and self.case is None:
            raise ValueError("policy goes with case; a stored customer is monitored under its own policy")
        return self


class StoredAlert(Answer):
    id: int
    customer_id: str
    code: str
    severity: str
    message: str
    status: AlertStatus
    assignee: str
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    seen_count: int
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    resolved_by: str | None
    resolved_at: dt.datetime | None


class Proposal(Answer):
    kind: Literal["limit", "rate"]
    current: Number | None
    proposed: Number | None


class Adjustment(Answer):
    """What re-running a customer's monitoring changed: tier, limit and rate proposals, alerts."""

    customer_id: str
    rating_id: int
    outcome: Outcome | None
    tier: str | None
    previous_tier: str | None
    tier_changed: bool
    proposals: list[Proposal]
    alerts_opened: list[str]
    alerts_refreshed: list[str]
    alerts: list[StoredAlert] = Field(description="the customer's live alerts after the run")
    problems: list[dict[str, Any]] = Field(description="why the customer could not be rated, when it could not")


class MonitoringResult(Answer):
    persisted: bool = Field(description="true for a stored customer, whose alerts are stored (one live per trigger)")
    alerts: list[Alert | StoredAlert]
    adjustment: Adjustment | None = None
    rulesets: list[VersionRef] = Field(description="the rules that ran")


class AlertList(Answer):
    alerts: list[StoredAlert]
    next_after_id: int | None = Field(description="pass as `after_id` for the next page; null on the last")


class AlertAction(Request):
    note: ShortText | None = Field(
        None, description="why: kept with the move in the governance log (`alert-acknowledged`, `alert-resolved`)"
    )


class Financials(Request):
    """One period's statement. Beyond this schema, the items must match the `financials` fact the rules in force
    declare (required items present, bounds, enum values): otherwise 422 with every problem, and nothing stored."""

    period_end: dt.date = Field(description="the period's last day: from 1900-01-01 to today (UTC)")
    as_of: BusinessDate | None = None
    total_assets: StatementAmount | None = None
    total_liabilities: StatementAmount | None = None
    current_assets: StatementAmount | None = None
    current_liabilities: StatementAmount | None = None
    revenue: StatementAmount | None = None
    ebitda: StatementAmount | None = None
    net_income: StatementAmount | None = None
    operating_cash_flow: StatementAmount | None = None
    debt_service: StatementAmount | None = None
    audited: bool | None = None
    audit_opinion: Annotated[str, StringConstraints(max_length=40)] | None = None


class CreditEventRequest(Request):
    kind: CreditEventKind
    event_date: dt.date = Field(description="when it happened: from 1900-01-01 to today (UTC)")
    days_past_due: Annotated[int, Field(ge=0, le=MAX_DAYS_PAST_DUE)] = 0
    amount: Annotated[float, Field(ge=-1e15, le=1e15)] | None = None
    note: ShortText | None = None
    as_of: BusinessDate | None = None


# --- rules ----------------------------------------------------------------------------------------------------


class PolicyInfo(Answer):
    name: str
    version: int | None
    digest: str
    product: str | None
    description: str | None
    effective_from: dt.date | None
    effective_to: dt.date | None
    rulesets: list[str]
    scorecard: str | None


class PolicyList(Answer):
    generation: int
    policies: list[PolicyInfo]


class RuleVersion(Answer):
    ref: str
    name: str
    version: int
    kind: Literal["ruleset", "scorecard", "policy"]
    status: Literal["draft", "submitted", "approved", "active", "retired"]
    digest: str
    effective_from: dt.date | None
    effective_to: dt.date | None
    parent: str | None
    author: str
    approver: str | None
    published_at: dt.datetime | None
    problems: list[dict[str, Any]]
    text: str | None = None


class RuleVersionList(Answer):
    name: str
    versions: list[RuleVersion]


# --- health -----------------------------------------------------------------------------------------------------


class Check(Answer):
    ok: bool
    detail: str


class Health(Answer):
    status: Literal["ok", "unavailable"]
    database: Check
    policies: Check
    generation: int | None


Review.model_rebuild()

__all__ = [
    "IDEMPOTENCY_KEY",
    "AlertAction",
    "AlertList",
    "ApplicationStatus",
    "CreditEventRequest",
    "Decision",
    "DecisionRecord",
    "DecisionRequest",
    "ErrorResponse",
    "Financials",
    "Health",
    "MonitoringRequest",
    "MonitoringResult",
    "PolicyList",
    "Replay",
    "ReplayRequest",
    "Review",
    "ReviewRequest",
    "RuleVersionList",
]

"""Small builders shared by the engine tests."""

from __future__ import annotations

import textwrap

from engine.documents import parse_document
from engine.library import Library
from engine.policy import CompiledPolicy

FACTS = """\
ruleset: test-facts
facts:
  application:
    amount: {type: number, min: 0}
    product: {type: enum, values: [project_loan, term_loan]}
  borrower:
    capital: {type: number, min: 0}
    industry: {type: enum, values: [energy, services, real_estate]}
    stage: {type: enum, values: [growth, maturity, decline], optional: true}
    founded: {type: date, optional: true}
    name: {type: string, optional: true, sensitive: true}
  financials:
    ebitda: number
    debt_service: {type: number, min: 0}
    audited: {type: boolean, optional: true}
    dpd: {type: integer, optional: true}
derive:
  financials.dscr: financials.ebitda / financials.debt_service
reasons:
  R-DSCR: "DSCR {financials.dscr:.2f} is below 1.2"
  R-IND: "Industry {borrower.industry} needs review"
  R-DPD: "Days past due: {financials.dpd}"
rules:
  - id: FACTS-NOOP
    when: application.amount < 0
    then: {conditions: ["impossible"]}
"""


def library(*texts: str, with_facts: bool = True) -> Library:
    docs = [parse_document(textwrap.dedent(t), f"doc{i}.yaml") for i, t in enumerate(texts)]
    if with_facts:
        docs.insert(0, parse_document(FACTS, "facts.yaml"))
    return Library(docs)


def ruleset_unit(text: str) -> CompiledPolicy:
    lib = library(text)
    doc = next(d for d in lib.documents if d.file == "doc0.yaml")
    return lib.compile_ruleset(doc)  # type: ignore[arg-type]


def case(**overrides: object) -> dict:
    base = {
        "application": {"amount": 1_000_000, "product": "project_loan"},
        "borrower": {"capital": 5_000_000, "industry": "energy", "stage": "growth"},
        "financials": {"ebitda": 300, "debt_service": 200, "audited": True, "dpd": 0},
    }
    for path, value in overrides.items():
        fact, field = path.split("__")
        if value is None:
            base[fact].pop(field, None)
        else:
            base[fact][field] = value
    return base

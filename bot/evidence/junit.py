"""JUnit XML (pytest, Maven Surefire, Jest, go-junit-report): totals over the test suites."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from bot.evidence.errors import HOW, refused, shown
from bot.evidence.models import TestReport
from bot.evidence.reading import XmlDoc, local

FIX = HOW["junit"]
OUTCOMES = ("failure", "error", "skipped")


def read(doc: XmlDoc, name: str) -> TestReport:
    root = local(doc.root.tag)
    if root not in ("testsuites", "testsuite"):
        raise refused(
            name, f"the root element is <{root}>, not <testsuites> or <testsuite>", FIX, "line 1"
        )
    totals = [0, 0, 0, 0]
    for suite in _outer_suites(doc.root):
        for i, figure in enumerate(_suite(doc, suite, name)):
            totals[i] += figure
    tests, failures, errors, skipped = totals
    suites = sum(local(e.tag) == "testsuite" for e in doc.root.iter())
    return TestReport(tests=tests, failures=failures, errors=errors, skipped=skipped, suites=suites)


def _outer_suites(root: Element) -> list[Element]:
    """The suites not inside another suite: a nested suite's tests are in its parent's."""
    found, stack = [], [root]
    while stack:
        element = stack.pop()
        if local(element.tag) == "testsuite":
            found.append(element)
        else:
            stack.extend(reversed(list(element)))
    return found


def _suite(doc: XmlDoc, suite: Element, name: str) -> tuple[int, int, int, int]:
    """One suite's tests, failures, errors and skipped: its attributes where it has them,
    else its test cases counted (Jest and some Maven plugins leave attributes out)."""
    cases = [e for e in suite.iter() if local(e.tag) == "testcase"]

    def counted(outcome: str) -> int:
        return sum(any(local(c.tag) == outcome for c in case) for case in cases)

    def figure(attribute: str, fallback: int) -> int:
        value = suite.get(attribute)
        if value is None:
            return fallback
        if not value.strip().isdigit():
            raise refused(
                name,
                f"<testsuite {attribute}={shown(value)}> is not a whole number",
                FIX,
                doc.line(suite),
            )
        return int(value)

    # A suite's attributes never hide what its cases show: the larger of the two counts.
    tests = max(figure("tests", len(cases)), len(cases))
    failures = max(figure("failures", 0), counted("failure"))
    errors = max(figure("errors", 0), counted("error"))
    skipped = max(figure("skipped", 0), counted("skipped"))
    if failures + errors + skipped > tests:
        raise refused(
            name,
            f"<testsuite> counts {failures} failures, {errors} errors and {skipped} skipped "
            f"of only {tests} tests",
            FIX,
            doc.line(suite),
        )
    return tests, failures, errors, skipped
